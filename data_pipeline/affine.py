"""Centre/scale <-> affine matrices: the one place the crop geometry lives.

A person's crop is given by a centre (x, y) in image pixels and a scale (sw, sh) in
units of PIXEL_STD = 200 pixels.  The affine maps ``sw * 200`` source pixels of width
onto the output width, the centre onto the output centre, rotated by ``rot`` degrees
about the centre (positive = counter-clockwise on the screen).  Training, evaluation and
prediction all use these functions.
"""
from __future__ import annotations

import numpy as np

PIXEL_STD = 200.0


def _third_point(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The point that makes (a, b, c) a right angle at b, turned counter-clockwise."""
    d = a - b
    return b + np.array([-d[1], d[0]], dtype=np.float32)


def _solve_affine(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """The 2x3 matrix that maps the three src points onto the three dst points, solved
    in float64 from float32 points (as cv2.getAffineTransform does)."""
    a = np.concatenate([src.astype(np.float64), np.ones((3, 1))], axis=1)  # (3, 3)
    return np.linalg.solve(a, dst.astype(np.float64)).T  # (2, 3)


def get_affine_transform(center, scale, rot: float, output_size, shift=(0.0, 0.0),
                         inv: bool = False) -> np.ndarray:
    """(2, 3) float64 matrix taking image pixels to output pixels (or back, inv=True).

    center: (2,) pixels; scale: (2,) or scalar, units of 200 px; rot: degrees;
    output_size: (width, height).  Points are built in float32 as the official code
    builds them, so the result equals its cv2 solution to float64 rounding.
    """
    center = np.asarray(center, np.float32)
    scale = np.broadcast_to(np.asarray(scale, np.float32), (2,))
    shift = np.asarray(shift, np.float32)
    src_w = scale[0] * np.float32(PIXEL_STD)
    dst_w, dst_h = float(output_size[0]), float(output_size[1])
    rad = np.pi * float(rot) / 180.0
    sn, cs = np.sin(rad), np.cos(rad)
    # (0, -src_w / 2) rotated by rot: the direction from the centre to the top edge.
    src_dir = np.array([src_w * 0.5 * sn, -src_w * 0.5 * cs])  # float64, rounded once below
    src = np.zeros((3, 2), np.float32)
    dst = np.zeros((3, 2), np.float32)
    src[0] = center + scale * np.float32(PIXEL_STD) * shift
    src[1] = center + src_dir + scale * np.float32(PIXEL_STD) * shift
    dst[0] = [dst_w * 0.5, dst_h * 0.5]
    dst[1] = dst[0] + np.array([0.0, -dst_w * 0.5], np.float32)
    src[2] = _third_point(src[0], src[1])
    dst[2] = _third_point(dst[0], dst[1])
    return _solve_affine(dst, src) if inv else _solve_affine(src, dst)


def affine_points(points, trans) -> np.ndarray:
    """Apply a (2, 3) affine to points (..., 2)."""
    points = np.asarray(points, np.float64)
    trans = np.asarray(trans, np.float64)
    return points @ trans[:, :2].T + trans[:, 2]


# ---- boxes -> centre/scale (the official datasets' rules) -------------------------------

def clip_box(box, width: int, height: int):
    """COCO (x, y, w, h) clipped to the image as the official reader does, or None when the
    official rule drops it: x2 = min(W - 1, x1 + max(0, w - 1)), kept if x2 >= x1, y2 >= y1."""
    x, y, w, h = (float(v) for v in box)
    x1, y1 = max(0.0, x), max(0.0, y)
    x2 = min(width - 1.0, x1 + max(0.0, w - 1.0))
    y2 = min(height - 1.0, y1 + max(0.0, h - 1.0))
    if x2 >= x1 and y2 >= y1:
        return (x1, y1, x2 - x1, y2 - y1)
    return None


def box_to_center_scale(box, aspect_ratio: float, padding: float = 1.25):
    """(x, y, w, h) box -> (centre (2,), scale (2,)) float32: the box is widened or heightened
    to aspect_ratio = w / h, scale is in units of PIXEL_STD and multiplied by padding."""
    x, y, w, h = (float(v) for v in box)
    center = np.array([x + w * 0.5, y + h * 0.5], np.float32)
    if w > aspect_ratio * h:
        h = w / aspect_ratio
    elif w < aspect_ratio * h:
        w = h * aspect_ratio
    scale = np.array([w / PIXEL_STD, h / PIXEL_STD], np.float32) * np.float32(padding)
    return center, scale


def mpii_center_scale(center, scale: float):
    """MPII annotation (1-based centre, scalar scale) -> 0-based centre, scale (2,) float32:
    centre y += 15 s, s *= 1.25, centre -= 1 (the official reader)."""
    c = np.asarray(center, np.float64).copy()
    s = np.array([scale, scale], np.float64)
    if c[0] != -1:
        c[1] += 15 * s[1]
        s *= 1.25
    return (c - 1).astype(np.float32), s.astype(np.float32)


# ---- the same affine in TensorFlow (for tf.data graphs) --------------------------------

def get_affine_transform_tf(center, scale, rot, output_size, shift=(0.0, 0.0), inv=False,
                            dtype=None):
    """tf version of get_affine_transform: (2, 3) tensor, closed form of the same matrix.

    The official three-point construction is a similarity: output = k R (p - c) + o, with
    k = output_width / (scale_x * 200), R the rotation by -rot (image axes, y down) and o the
    output centre.  center, scale: (2,) tensors; rot: degrees (scalar tensor); output_size:
    python (width, height).  TensorFlow is imported here, not at module import.
    """
    import tensorflow as tf
    dtype = dtype or tf.float32
    center = tf.cast(center, dtype)
    scale = tf.cast(scale, dtype)
    shift = tf.cast(tf.constant(shift), dtype)
    rad = tf.cast(rot, dtype) * np.pi / 180.0
    sn, cs = tf.sin(rad), tf.cos(rad)
    k = tf.cast(output_size[0], dtype) / (scale[0] * PIXEL_STD)
    src_c = center + scale * PIXEL_STD * shift
    dst_c = tf.constant([output_size[0] * 0.5, output_size[1] * 0.5], dtype)
    if not inv:
        a = k * tf.stack([tf.stack([cs, sn]), tf.stack([-sn, cs])])
        t = dst_c - tf.linalg.matvec(a, src_c)
    else:
        a = tf.stack([tf.stack([cs, -sn]), tf.stack([sn, cs])]) / k
        t = src_c - tf.linalg.matvec(a, dst_c)
    return tf.concat([a, t[:, None]], axis=1)
