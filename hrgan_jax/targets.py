"""Gaussian heatmap targets, built on the device from joints in input pixels.

The official HRNet ``generate_target`` (JointsDataset) on the host, as one jnp
expression: each joint's centre is ``int(x / stride + 0.5)`` (truncation toward zero,
not floor), its Gaussian (peak 1) is drawn in a window of 6 sigma + 1 pixels, and a
joint whose window lies wholly outside the heatmap gets weight 0.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp


def heatmap_targets(joints: jax.Array, joints_vis: jax.Array, image_size: tuple[int, int],
                    heatmap_size: tuple[int, int], sigma: float,
                    joint_weights=None) -> tuple[jax.Array, jax.Array]:
    """Targets and target weights.

    joints: (B, J, 2) float32, x, y in input pixels; joints_vis: (B, J), > 0.5 = labelled.
    image_size, heatmap_size: (width, height).  joint_weights: (J,) the keypoint set's
    per-joint factors of the target weights (the official USE_DIFFERENT_JOINTS_WEIGHT);
    None or all 1: none applied.
    Returns heatmaps (B, h, w, J) float32 and target weights (B, J) float32.
    """
    joints = jnp.asarray(joints, jnp.float32)
    vis = jnp.asarray(joints_vis, jnp.float32)
    (img_w, img_h), (hm_w, hm_h) = image_size, heatmap_size
    stride = jnp.array([img_w / hm_w, img_h / hm_h], jnp.float32)
    tmp = 3.0 * sigma
    size = 2.0 * tmp + 1.0
    centre_in_window = float(size // 2)  # the official g's centre index, x0 = size // 2
    mu = jnp.trunc(joints / stride + 0.5)  # (B, J, 2)
    upper_left = jnp.trunc(mu - tmp)
    bottom_right = jnp.trunc(mu + tmp + 1.0)
    outside = ((upper_left[..., 0] >= hm_w) | (upper_left[..., 1] >= hm_h)
               | (bottom_right[..., 0] < 0) | (bottom_right[..., 1] < 0))
    weight = jnp.where(outside, 0.0, vis)

    def axis_profile(n: int, k: int) -> jax.Array:
        """exp(-d^2 / 2 sigma^2) inside the window along axis k, 0 outside: (B, J, n)."""
        p = jnp.arange(n, dtype=jnp.float32)
        lo, hi = upper_left[..., k, None], bottom_right[..., k, None]
        d = p - lo - centre_in_window
        inside = (p >= lo) & (p < hi)
        return jnp.where(inside, d * d, jnp.inf)

    dx2, dy2 = axis_profile(hm_w, 0), axis_profile(hm_h, 1)
    g = jnp.exp(-(dy2[..., :, None] + dx2[..., None, :]) / (2.0 * sigma ** 2))  # (B, J, h, w)
    g = jnp.where((weight > 0.5)[..., None, None], g, 0.0)
    if joint_weights is not None and set(map(float, joint_weights)) != {1.0}:
        weight = weight * jnp.asarray(joint_weights, jnp.float32)
    return jnp.transpose(g, (0, 2, 3, 1)), weight
