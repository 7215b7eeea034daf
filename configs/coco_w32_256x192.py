"""HRGAN on COCO keypoints, HRNet-W32, 256x192 (the paper's COCO table).

    python launch.py --mode=train --config=configs/coco_w32_256x192.py \
        --config.data.root=/data/coco --workdir=/runs/hrgan_coco_w32

Variants after ':':
  hrgan  (default) the public HRGAN code: G RMSprop 2.5e-4, D Adam 8e-5, x0.1 at epochs
         170 and 200, 210 epochs, batch 16 per GPU (64 on 4 GPUs).
  paper  the paper's text: RMSprop 1e-3 / Adam 1e-3, x0.1 at 70 and 120, 140 epochs,
         ImageNet-pretrained G (set --config.model.init=hrnet_w32-36af842e.pth).
  hrnet  the baseline, HRNet alone: adversarial term off, Adam 1e-3, x0.1 at 170 and 200,
         210 epochs, batch 32 per GPU x 4.
"""
from hrgan_jax.configs import default


def get_config(variant: str = "hrgan"):
    config = default.get_config("w32")
    config.data.name = "coco"
    config.data.image_size = (192, 256)
    config.data.heatmap_size = (48, 64)
    config.train.batch_size = 64
    # bfloat16 convolutions; parameters, BatchNorm statistics, losses and optimiser
    # states stay float32.  --config.model.dtype=float32 for float32 compute (on
    # NVIDIA GPUs XLA then runs convolutions and matmuls in TF32 unless
    # JAX_DEFAULT_MATMUL_PRECISION=highest is set).
    config.model.dtype = "bfloat16"
    config = default.apply_variant(config, variant)
    # BatchNorm statistics per 16 images, as the public code's DataParallel (16 per GPU):
    # no communication between devices in BatchNorm; 0 = synchronised over the batch.
    config.model.bn_group = 32 if variant == "hrnet" else 16  # HRNet's own runs: 32 per GPU
    return config
