"""The two networks of HRGAN and their configs.

    cfg = models.hrnet_config("w32", num_joints=17)
    g, d = models.generator(cfg), models.discriminator(cfg)
"""
from __future__ import annotations

import ml_collections

from hrgan_jax.models.config import (IMAGENET_LAYERS, NetSpec, config_from_official,
                                     hrnet_config, validate)
from hrgan_jax.models.discriminator import (HRDiscriminator, discriminator_input,
                                            resize_to_heatmap)
from hrgan_jax.models.hrnet import PoseHighResolutionNet


def generator(cfg: ml_collections.ConfigDict) -> PoseHighResolutionNet:
    """The HRNet pose estimator G: images (B, H, W, 3) -> heatmaps (B, H/4, W/4, J)."""
    return PoseHighResolutionNet(validate(cfg))


def discriminator(cfg: ml_collections.ConfigDict) -> HRDiscriminator:
    """HRGAN's D: (B, h, w, 3 + J) -> reconstructed heatmaps (B, h, w, J)."""
    return HRDiscriminator(validate(cfg))


__all__ = ["IMAGENET_LAYERS", "NetSpec", "config_from_official", "hrnet_config", "validate",
           "generator", "discriminator", "discriminator_input", "resize_to_heatmap",
           "PoseHighResolutionNet", "HRDiscriminator"]
