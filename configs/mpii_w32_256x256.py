"""HRGAN on MPII, HRNet-W32, 256x256 (the paper's MPII table: PCKh@0.5 92.5).

    python launch.py --mode=train --config=configs/mpii_w32_256x256.py \
        --config.data.root=/data/mpii --workdir=/runs/hrgan_mpii_w32

Variants after ':' as in coco_w32_256x192.py: hrgan (default), paper, hrnet.
"""
from hrgan_jax.configs import default


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
    # bfloat16 convolutions; parameters, BatchNorm statistics, losses and optimiser
    # states stay float32.  --config.model.dtype=float32 for float32 compute (on
    # NVIDIA GPUs XLA then runs convolutions and matmuls in TF32 unless
    # JAX_DEFAULT_MATMUL_PRECISION=highest is set).
    config.model.dtype = "bfloat16"
    config = default.apply_variant(config, variant)
    # BatchNorm statistics per 8 images, as the public code's DataParallel (8 per GPU):
    # no communication between devices in BatchNorm; 0 = synchronised over the batch.
    config.model.bn_group = 32 if variant == "hrnet" else 8  # HRNet's own runs: 32 per GPU
    return config
