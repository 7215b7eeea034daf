"""HRGAN's discriminator (HRDisNet): a stemless HRNet that reconstructs heatmaps.

D sees concat(image at heatmap resolution, heatmaps), 3 + J channels, and returns J
reconstructed heatmaps (no activation).  Its reconstruction error is the BEGAN
energy of eq. (3)-(4).  Key names follow the official code: ``layer1.*``,
``transition*``, ``stage*``, ``final_layer``.

The paper's ablation also tried the two conventional GAN discriminators on the same
trunk (``NetSpec.d_output``, from config.adversarial.d_output):

    image   one real/fake logit per input: the trunk's highest-resolution features,
            global average pooling, a linear layer ``classifier`` (C -> 1; PyTorch
            nn.Linear keys ``classifier.weight`` (1, C), ``classifier.bias`` (1,), the
            name of HRNet's ImageNet classifier head)
    joint   one logit per heatmap channel (Chen et al.'s per-joint fidelity):
            ``final_layer`` as in HRGAN's D (the same keys and shapes), then global
            average pooling over the pixels
"""
from __future__ import annotations

import math

import flax.linen as nn
import jax
import jax.numpy as jnp

from hrgan_jax.models.config import NetSpec
from hrgan_jax.models.hrnet import Norm, conv, high_resolution_trunk

# PyTorch's default Conv2d init, kaiming_uniform(a=sqrt(5)): U(-1/sqrt(fan_in), 1/sqrt(fan_in)).
torch_default_kernel_init = nn.initializers.variance_scaling(1.0 / 3.0, "fan_in", "uniform")


def torch_default_bias_init(fan_in: int):
    bound = 1.0 / math.sqrt(fan_in)

    def init(key, shape, dtype=jnp.float32):
        return jax.random.uniform(key, shape, dtype, -bound, bound)
    return init


def resize_to_heatmap(images: jax.Array, heatmap_hw: tuple[int, int]) -> jax.Array:
    """Images (B, H, W, 3) -> (B, h, w, 3): bilinear, half-pixel centres, no antialiasing.

    This is PyTorch's F.interpolate(mode='bilinear', align_corners=False), the resize of
    the official HRGAN code; the train step must use exactly this function.
    """
    b, _, _, c = images.shape
    return jax.image.resize(images, (b, heatmap_hw[0], heatmap_hw[1], c), "bilinear",
                            antialias=False)


def discriminator_input(images: jax.Array, heatmaps: jax.Array) -> jax.Array:
    """concat(images resized to the heatmaps' size, heatmaps): (B, h, w, 3 + J)."""
    small = resize_to_heatmap(images, heatmaps.shape[1:3]).astype(heatmaps.dtype)
    return jnp.concatenate([small, heatmaps], axis=-1)


class HRDiscriminator(nn.Module):
    """inputs (B, h, w, 3 + J) from ``discriminator_input`` -> reconstruction (B, h, w, J)
    float32; with ``spec.d_output`` 'image' logits (B, 1), 'joint' logits (B, J).

    passes: the batch holds this many independent passes interleaved in groups of
    ``spec.bn_group`` images (with bn_group 0: consecutive equal parts), each with its
    own train-mode BatchNorm statistics; see ``hrnet.Norm``.  The train step runs D on
    the real and the fake heatmaps as one call with passes=2.
    """
    spec: NetSpec

    @nn.compact
    def __call__(self, inputs: jax.Array, train: bool = False, passes: int = 1) -> jax.Array:
        j = self.spec.num_joints
        if inputs.shape[-1] != 3 + j:
            raise ValueError(f"discriminator input has {inputs.shape[-1]} channels; expected "
                             f"3 + num_joints = {3 + j} (use discriminator_input)")
        dtype = jnp.dtype(self.spec.dtype)
        in_dtype = jnp.dtype(self.spec.part_dtype("d_input"))
        x = high_resolution_trunk(inputs.astype(in_dtype), self.spec, train, dtype,
                                  torch_default_kernel_init, Norm(self.spec.bn_group, passes),
                                  in_dtype=in_dtype)
        fan_in = x.shape[-1]
        if self.spec.d_output == "image":
            pooled = jnp.mean(x.astype(jnp.float32), axis=(1, 2))
            return nn.Dense(1, name="classifier", kernel_init=torch_default_kernel_init,
                            bias_init=torch_default_bias_init(fan_in))(pooled)
        x = conv(j, 1, 1, "final_layer", jnp.dtype(self.spec.part_dtype("head")),
                 torch_default_kernel_init, use_bias=True,
                 bias_init=torch_default_bias_init(fan_in))(x)
        if self.spec.d_output == "joint":
            return jnp.mean(x.astype(jnp.float32), axis=(1, 2))
        return x.astype(jnp.float32)
