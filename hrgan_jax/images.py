"""The network's input: uint8 RGB crops -> ImageNet mean/std float32 (torchvision's
ToTensor + Normalize).  Training (step.py) and inference (inference.py) both normalise
here, so neither imports the other."""
from __future__ import annotations

import jax
import jax.numpy as jnp

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def normalize_images(images: jax.Array) -> jax.Array:
    """uint8 RGB (B, H, W, 3) -> float32, ImageNet mean/std (torchvision ToTensor + Normalize)."""
    x = images.astype(jnp.float32) / 255.0
    return (x - jnp.asarray(IMAGENET_MEAN, jnp.float32)) / jnp.asarray(IMAGENET_STD, jnp.float32)
