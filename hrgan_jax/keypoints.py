"""Heatmaps -> keypoints, as the official HRNet test does it.

Where each part runs:
  * on the device (jnp, jit-able, batch-parallel): ``flip_images``, ``flip_back``,
    ``flip_test_heatmaps`` and ``heatmap_peaks`` (argmax, max value, the zeroing of
    non-positive peaks and the quarter-pixel offset).  These are the parts that read
    whole heatmaps, so only (B, J, 3) numbers cross to the host instead of (B, h, w, J).
  * on the host (numpy, float64): ``to_image_coords``, the inverse affine of each crop,
    through ``data_pipeline.affine`` (the one place of the crop geometry).
``decode`` chains the two and is what evaluation calls.  ``dark_peaks`` is the
distribution-aware alternative to ``heatmap_peaks`` (config.eval.decode = "dark").

Layout: heatmaps are NHWC, ``(B, h, w, J)``; images ``(B, H, W, 3)``.
"""
from __future__ import annotations

from typing import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from data_pipeline import affine


def flip_images(images: jax.Array) -> jax.Array:
    """Mirror images left-right.  images: (B, H, W, C) -> (B, H, W, C)."""
    return jnp.asarray(images)[:, :, ::-1, :]


def _pair_permutation(num_joints: int, flip_pairs: Sequence[Sequence[int]]) -> np.ndarray:
    perm = np.arange(num_joints)
    for a, b in flip_pairs:
        if not (0 <= a < num_joints and 0 <= b < num_joints):
            raise ValueError(f"flip pair ({a}, {b}) is out of range for {num_joints} joints")
        perm[a], perm[b] = b, a
    return perm


def flip_back(heatmaps: jax.Array, flip_pairs: Sequence[Sequence[int]],
              shift: bool = True) -> jax.Array:
    """Heatmaps of a mirrored image, brought back to the original image's frame.

    heatmaps: (B, h, w, J).  Mirrors x, swaps the left/right channels of flip_pairs,
    and with ``shift`` moves every column one pixel right (column 0 keeps its value),
    as the official flip test does after ``flip_back`` to re-align the mirrored grid.
    """
    heatmaps = jnp.asarray(heatmaps)
    perm = _pair_permutation(heatmaps.shape[-1], flip_pairs)
    out = heatmaps[:, :, ::-1, :][..., perm]
    if shift:
        out = jnp.concatenate([out[:, :, :1], out[:, :, :-1]], axis=2)
    return out


def flip_test_heatmaps(apply_fn: Callable[[jax.Array], jax.Array], images: jax.Array,
                       flip_pairs: Sequence[Sequence[int]], shift: bool = True) -> jax.Array:
    """Mean of the heatmaps of the images and of their mirrors (flipped back).

    apply_fn: images (N, H, W, C) -> heatmaps (N, h, w, J), e.g. the generator in eval
    mode.  images: (B, H, W, C).  Returns (B, h, w, J).  The images and their mirrors go
    through one call of apply_fn on a batch of 2B (interleaved), so the network is traced once under
    jit (half the compile time of two calls).  ``flip_pairs`` and ``shift`` are static.
    """
    # Each image next to its mirror (batch axis interleaved), split again by a reshape:
    # no slice at a batch-size offset, so the batch may stay symbolic (ONNX, SavedModel).
    both = jnp.stack([images, flip_images(images)], axis=1).reshape((-1,) + images.shape[1:])
    out = apply_fn(both)
    out = out.reshape((-1, 2) + out.shape[1:])
    return (out[:, 0] + flip_back(out[:, 1], flip_pairs, shift)) * 0.5


def heatmap_peaks(heatmaps: jax.Array, post_process: bool = True):
    """Per-joint peak in heatmap pixels and its value (device part of ``decode``).

    heatmaps: (B, h, w, J).  Returns coords (B, J, 2) float32 as (x, y) in heatmap pixels
    and maxvals (B, J, 1).  The argmax takes the first maximum (row-major); coordinates
    are zero where the maximum is <= 0.  With ``post_process``, a peak with
    1 < x < w-1 and 1 < y < h-1 moves a quarter pixel toward the higher neighbour on
    each axis (sign of the neighbour difference), as the official get_final_preds.
    """
    heatmaps = jnp.asarray(heatmaps)
    bsz, h, w, j = heatmaps.shape
    flat = jnp.moveaxis(heatmaps, -1, 1).reshape(bsz, j, h * w)  # (B, J, h*w)
    idx = jnp.argmax(flat, axis=-1)
    maxvals = jnp.take_along_axis(flat, idx[..., None], axis=-1)  # (B, J, 1)
    # lax.div (idx >= 0, so truncation is floor), not // or %: their sign fix-ups lower
    # to lax.rem, which jax2onnx cannot convert with a symbolic batch size.
    idx = idx.astype(jnp.int32)
    y = jax.lax.div(idx, jnp.int32(w))
    x = idx - y * w
    positive = maxvals[..., 0] > 0
    x = jnp.where(positive, x, 0)
    y = jnp.where(positive, y, 0)
    coords = jnp.stack([x, y], axis=-1).astype(jnp.float32)
    if post_process:
        def at(dx, dy):
            i = jnp.clip(y + dy, 0, h - 1) * w + jnp.clip(x + dx, 0, w - 1)
            return jnp.take_along_axis(flat, i[..., None], axis=-1)[..., 0]
        diff = jnp.stack([at(1, 0) - at(-1, 0), at(0, 1) - at(0, -1)], axis=-1)
        inside = (x > 1) & (x < w - 1) & (y > 1) & (y < h - 1)
        coords = coords + jnp.where(inside[..., None], jnp.sign(diff) * 0.25, 0.0)
    return coords, maxvals


def gaussian_blur(heatmaps: jax.Array, kernel: int) -> jax.Array:
    """cv2.GaussianBlur(h, (kernel, kernel), 0) per joint: sigma = 0.3 ((kernel - 1) / 2 - 1)
    + 0.8, separable, borders reflected without repeating the edge (BORDER_REFLECT_101).
    heatmaps: (B, h, w, J)."""
    if kernel % 2 != 1 or kernel < 3:
        raise ValueError(f"the DARK blur kernel must be odd and >= 3, got {kernel}")
    sigma = 0.3 * ((kernel - 1) * 0.5 - 1) + 0.8
    r = kernel // 2
    taps = np.exp(-0.5 * (np.arange(-r, r + 1) / sigma) ** 2)
    taps = (taps / taps.sum()).astype(np.float32)
    x = jnp.asarray(heatmaps, jnp.float32)
    for axis in (1, 2):
        pad = [(0, 0)] * 4
        pad[axis] = (r, r)
        padded = jnp.pad(x, pad, mode="reflect")
        n = x.shape[axis]
        x = sum(float(t) * jax.lax.slice_in_dim(padded, k, k + n, axis=axis)
                for k, t in enumerate(taps))
    return x


def dark_peaks(heatmaps: jax.Array, kernel: int = 11):
    """Distribution-aware decoding (DARK, Zhang et al. 2020), the device part.

    heatmaps: (B, h, w, J).  The integer peaks and max values are the official ones
    (``heatmap_peaks`` without the quarter offset).  Each heatmap is blurred with a
    Gaussian (``gaussian_blur``, rescaled to its original maximum), its log taken, and
    where 1 < x < w-2 and 1 < y < h-2 the peak moves by one Newton step, -H^-1 g, with
    the gradient g and Hessian H of the log heatmap from central differences at the
    peak, taken only where H is negative definite (a maximum; the official code also
    steps at saddles).  For an exact Gaussian this is its centre.
    Returns coords (B, J, 2) float32 (x, y) in heatmap pixels, maxvals (B, J, 1).
    """
    coords, maxvals = heatmap_peaks(heatmaps, post_process=False)
    bsz, h, w, j = heatmaps.shape
    blurred = gaussian_blur(heatmaps, kernel)
    peak = lambda a: jnp.max(a, axis=(1, 2), keepdims=True)  # noqa: E731
    blurred = blurred * peak(heatmaps) / jnp.where(peak(blurred) > 0, peak(blurred), 1.0)
    logh = jnp.log(jnp.maximum(blurred, 1e-10))
    flat = jnp.moveaxis(logh, -1, 1).reshape(bsz, j, h * w)
    x = coords[..., 0].astype(jnp.int32)
    y = coords[..., 1].astype(jnp.int32)

    def at(dx, dy):
        i = jnp.clip(y + dy, 0, h - 1) * w + jnp.clip(x + dx, 0, w - 1)
        return jnp.take_along_axis(flat, i[..., None], axis=-1)[..., 0]

    centre = at(0, 0)
    gx = 0.5 * (at(1, 0) - at(-1, 0))
    gy = 0.5 * (at(0, 1) - at(0, -1))
    hxx = 0.25 * (at(2, 0) - 2 * centre + at(-2, 0))
    hyy = 0.25 * (at(0, 2) - 2 * centre + at(0, -2))
    hxy = 0.25 * (at(1, 1) - at(1, -1) - at(-1, 1) + at(-1, -1))
    det = hxx * hyy - hxy * hxy
    # A Newton step toward a maximum only: the official DARK code steps wherever det != 0,
    # which at a saddle or a minimum of the blurred log heatmap (the integer peak is the
    # unblurred one's) can throw the keypoint across the heatmap.
    inside = (x > 1) & (x < w - 2) & (y > 1) & (y < h - 2) & (det > 0) & (hxx < 0)
    safe = jnp.where(inside, det, 1.0)
    step_x = -(hyy * gx - hxy * gy) / safe
    step_y = -(hxx * gy - hxy * gx) / safe
    step = jnp.where(inside[..., None], jnp.stack([step_x, step_y], axis=-1), 0.0)
    return coords + step, maxvals


_heatmap_peaks_jit = jax.jit(heatmap_peaks, static_argnums=1)


def to_image_coords(coords, center, scale, heatmap_size) -> np.ndarray:
    """Heatmap pixels -> image pixels through each crop's inverse affine (host part).

    coords: (B, J, 2); center, scale: (B, 2) (scale in units of 200 px);
    heatmap_size: (w, h).  Computed in float64, returned float32 as the official
    transform_preds result lands in a float32 array.
    """
    coords = np.asarray(coords, np.float32)
    center = np.asarray(center, np.float32).reshape(-1, 2)
    scale = np.asarray(scale, np.float32).reshape(-1, 2)
    if not coords.shape[0] == center.shape[0] == scale.shape[0]:
        raise ValueError(f"batch sizes differ: coords {coords.shape}, center {center.shape}, "
                         f"scale {scale.shape}")
    out = np.empty(coords.shape, np.float32)
    for i in range(coords.shape[0]):
        trans = affine.get_affine_transform(center[i], scale[i], 0, heatmap_size, inv=True)
        out[i] = affine.affine_points(coords[i], trans)
    return out


def decode(heatmaps, center, scale, post_process: bool = True):
    """Heatmaps -> keypoints in image pixels (official get_final_preds).

    heatmaps: (B, h, w, J) numpy or jax array; center, scale: (B, 2).
    Returns (coords (B, J, 2) float32 image pixels, maxvals (B, J, 1) float32) as numpy.
    """
    h, w = heatmaps.shape[1:3]
    coords, maxvals = _heatmap_peaks_jit(heatmaps, bool(post_process))
    return to_image_coords(np.asarray(coords), center, scale, (w, h)), np.asarray(maxvals)
