"""HRGAN on MPII, HRNet-W32, 256x256 (the paper's MPII table: PCKh@0.5 92.5).

    python launch.py --mode=train --config=configs/mpii_w32_256x256.py \
        --config.data.root=/data/mpii --workdir=/runs/hrgan_mpii_w32

Variants after ':' as in coco_w32_256x192.py: hrgan (default), paper, hrnet.
"""
from configs import default


def get_config(variant: str = "hrgan"):
    config = default.get_config("w32")
    config.model.num_joints = 16
    config.data.name = "mpii"
    config.data.image_size = (256, 256)
    config.data.heatmap_size = (64, 64)
    config.data.scale_factor = 0.25
    config.data.rotation_factor = 30.0
    config.data.half_body_prob = 0.0  # the official MPII config never uses half-body
    config.train.batch_size = 32  # 8 per GPU x 4 in the public code
    return default.apply_variant(config, variant)
