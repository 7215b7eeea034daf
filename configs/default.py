"""Default config: every field, its default and what it means.

    python launch.py export --config=configs/default.py          # HRNet-W32, 17 COCO joints
    python launch.py export --config=configs/default.py:w48 --config.model.num_joints=16

The argument after ':' picks the network preset: w32 (default), w48 or tiny.  Any
field can be overridden on the command line as --config.<path>=<value>; an unknown
path is an error.
"""
from hrgan_jax.models import hrnet_config


def get_config(preset: str = "w32"):
    from ml_collections import ConfigDict
    config = ConfigDict()
    # The network of G and D, in the official MODEL.EXTRA's field names (lower case):
    #   num_joints, final_conv_kernel (1 or 3), stage2..stage4 (num_modules, num_branches,
    #   block BASIC|BOTTLENECK, num_blocks, num_channels, fuse_method SUM),
    #   pretrained_layers (ImageNet-initialised layers), dtype (float32 | bfloat16 compute).
    config.model = hrnet_config(preset or "w32", num_joints=17)
    config.seed = 0  # PRNG seed of parameter initialisation
    return config
