"""Per-person image ops in the tf.data graph: decode (with a size guard), the official
training augmentation (half-body, scale, rotation, flip) and the single bilinear warp
(OpenCV's, as the official code).

All randomness is stateless, from one (2,) int64 seed per (run seed, epoch, record), so
an example's augmentation depends on nothing but that seed.  The flip is folded into the
affine (warping the mirrored image with T equals warping the image with T o F, F: x ->
W - 1 - x), so the image is never mirrored in memory and joints go through the very
matrix the pixels go through.
"""
from __future__ import annotations

import dataclasses

import cv2
import numpy as np
import tensorflow as tf

from data_pipeline.affine import PIXEL_STD, get_affine_transform_tf

# Decompression-bomb guard: refuse images beyond these before decoding them.
MAX_SIDE = 16384
MAX_PIXELS = 100_000_000
# The accurate integer IDCT decodes exactly as OpenCV (the official reader) does; the
# default (fast) one differs by 1-2 grey levels on average.
DCT = "INTEGER_ACCURATE"

# One thread per warp: tf.data already runs many warps in parallel.
cv2.setNumThreads(1)


@dataclasses.dataclass(frozen=True)
class AugmentConfig:
    """The official augmentation's numbers (config.data fields of the same names)."""
    image_size: tuple[int, int]  # (width, height)
    flip_perm: tuple[int, ...]  # flipped[j] = original[flip_perm[j]]
    upper_body: tuple[bool, ...]  # per joint
    scale_factor: float = 0.35
    rotation_factor: float = 45.0
    rotation_prob: float = 0.6
    flip: bool = True
    half_body_prob: float = 0.3
    half_body_min_joints: int = 8

    @property
    def aspect_ratio(self) -> float:
        return self.image_size[0] / self.image_size[1]


def is_jpeg(data: tf.Tensor) -> tf.Tensor:
    """Whether the bytes are JPEG (SOI marker), whatever the file is called."""
    return tf.equal(tf.strings.substr(data, 0, 3), b"\xff\xd8\xff")


def decode_image(data: tf.Tensor) -> tf.Tensor:
    """Image bytes -> uint8 (H, W, 3) RGB.  Like the official cv2.imread, any format it
    reads (JPEG, PNG, BMP, ...) is decoded by its content, not its file name; EXIF
    orientation is ignored, as the official IMREAD_IGNORE_ORIENTATION does."""
    return tf.cond(is_jpeg(data),
                   lambda: tf.io.decode_jpeg(data, channels=3, dct_method=DCT),
                   lambda: tf.ensure_shape(
                       tf.io.decode_image(data, channels=3, expand_animations=False),
                       [None, None, 3]))


def header_shape(data: tf.Tensor) -> tf.Tensor:
    """(height, width, 3) int64 without decoding the pixels: the JPEG header, or PNG's
    IHDR; other formats (BMP, GIF, ...) are decoded to learn their size."""
    def png():
        wh = tf.io.decode_raw(tf.strings.substr(data, 16, 8), tf.uint8, little_endian=False)
        wh = tf.cast(tf.reshape(wh, [2, 4]), tf.int64)
        w, h = [wh[i, 0] * 2 ** 24 + wh[i, 1] * 2 ** 16 + wh[i, 2] * 2 ** 8 + wh[i, 3]
                for i in range(2)]
        return tf.stack([h, w, tf.constant(3, tf.int64)])

    is_png = tf.equal(tf.strings.substr(data, 0, 8), b"\x89PNG\r\n\x1a\n")
    return tf.case([(is_jpeg(data), lambda: tf.io.extract_jpeg_shape(data, output_type=tf.int64)),
                    (is_png, png)],
                   default=lambda: tf.shape(decode_image(data), out_type=tf.int64))


def image_shape(data: tf.Tensor, path: tf.Tensor) -> tf.Tensor:
    """(height, width, channels) from the image header; fails naming the file when the
    image is larger than MAX_SIDE on a side or MAX_PIXELS in all."""
    shape = header_shape(data)
    ok = tf.logical_and(tf.reduce_max(shape[:2]) <= MAX_SIDE, shape[0] * shape[1] <= MAX_PIXELS)
    check = tf.debugging.Assert(ok, ["image too large (decompression-bomb guard: at most",
                                     MAX_SIDE, "px a side and", MAX_PIXELS, "pixels):", path,
                                     "height, width:", shape[:2]])
    with tf.control_dependencies([check]):
        return tf.identity(shape)


def sample_params(seed: tf.Tensor, cfg: AugmentConfig) -> dict:
    """The official draws (JointsDataset.__getitem__), from one stateless seed.

    half_body: rand < p; upper body chosen when randn < 0.5; scale factor
    clip(randn sf + 1, 1 - sf, 1 + sf); rotation clip(randn rf, -2 rf, 2 rf) when
    rand <= rotation_prob, else 0; flip when rand <= 0.5.
    """
    s_normal, s_uniform = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
    n = tf.random.stateless_normal([3], s_normal)
    u = tf.random.stateless_uniform([3], s_uniform)
    sf, rf = cfg.scale_factor, cfg.rotation_factor
    return {
        "half_body": u[0] < cfg.half_body_prob,
        "upper_first": n[0] < 0.5,
        "scale": tf.clip_by_value(n[1] * sf + 1.0, 1.0 - sf, 1.0 + sf),
        "rotation": tf.where(u[1] <= cfg.rotation_prob,
                             tf.clip_by_value(n[2] * rf, -2.0 * rf, 2.0 * rf), 0.0),
        "flip": tf.logical_and(tf.constant(cfg.flip), u[2] <= 0.5),
    }


def half_body_box(joints, joints_vis, upper_first, cfg: AugmentConfig):
    """Official half_body_transform: (centre, scale, ok).  Upper body when upper_first and it
    has > 2 visible joints, else lower body when it has > 2, else upper; needs >= 2 joints;
    box of the joints fitted to the aspect ratio, x1.5."""
    vis = joints_vis > 0
    is_upper = tf.constant(cfg.upper_body)
    upper = tf.logical_and(vis, is_upper)
    lower = tf.logical_and(vis, tf.logical_not(is_upper))
    n_up = tf.reduce_sum(tf.cast(upper, tf.int32))
    n_low = tf.reduce_sum(tf.cast(lower, tf.int32))
    sel = tf.where(tf.logical_and(upper_first, n_up > 2), upper,
                   tf.where(n_low > 2, lower, upper))
    n = tf.reduce_sum(tf.cast(sel, tf.float32))
    big = tf.float32.max
    center = tf.reduce_sum(tf.where(sel[:, None], joints, 0.0), 0) / tf.maximum(n, 1.0)
    lt = tf.reduce_min(tf.where(sel[:, None], joints, big), 0)
    rb = tf.reduce_max(tf.where(sel[:, None], joints, -big), 0)
    w, h = rb[0] - lt[0], rb[1] - lt[1]
    a = cfg.aspect_ratio
    h2 = tf.where(w > a * h, w / a, h)
    w2 = tf.where(w < a * h, h * a, w)
    scale = tf.stack([w2, h2]) / PIXEL_STD * 1.5
    return center, scale, n >= 2


def _compose(a, b):
    """2x3 affines: (a o b)(p) = a(b(p))."""
    return tf.concat([a[:, :2] @ b[:, :2], (a[:, :2] @ b[:, 2:]) + a[:, 2:]], axis=1)


def _invert(m):
    a_inv = tf.linalg.inv(m[:, :2])
    return tf.concat([a_inv, -(a_inv @ m[:, 2:])], axis=1)


def train_transform(center, scale, joints, joints_vis, image_width, seed, cfg: AugmentConfig):
    """The training crop: (matrix (2,3) image px -> input px, joints (J,2), joints_vis (J,)).

    Joints go through the matrix whatever their visibility; nothing is zeroed (a joint
    outside the crop keeps its coordinates; the device's target weight handles it).
    """
    p = sample_params(seed, cfg)
    joints = tf.cast(joints, tf.float32)
    joints_vis = tf.cast(joints_vis, tf.float32)
    center = tf.cast(center, tf.float32)
    scale = tf.cast(scale, tf.float32)
    hb_center, hb_scale, hb_ok = half_body_box(joints, joints_vis, p["upper_first"], cfg)
    use_hb = tf.logical_and(p["half_body"], tf.logical_and(
        tf.reduce_sum(joints_vis) > cfg.half_body_min_joints, hb_ok))
    center = tf.where(use_hb, hb_center, center)
    scale = tf.where(use_hb, hb_scale, scale) * p["scale"]
    width = tf.cast(image_width, tf.float32)
    flip = p["flip"]
    center = tf.where(flip, tf.stack([width - center[0] - 1.0, center[1]]), center)
    trans = get_affine_transform_tf(center, scale, p["rotation"], cfg.image_size)
    mirror = tf.stack([tf.stack([-1.0, 0.0, width - 1.0]), tf.constant([0.0, 1.0, 0.0])])
    trans = tf.where(flip, _compose(trans, mirror), trans)
    out = joints @ tf.transpose(trans[:, :2]) + trans[:, 2]
    perm = tf.constant(cfg.flip_perm)
    out = tf.where(flip, tf.gather(out, perm), out)
    vis = tf.where(flip, tf.gather(joints_vis, perm), joints_vis)
    return trans, out, vis


def eval_transform(center, scale, image_size):
    return get_affine_transform_tf(tf.cast(center, tf.float32), tf.cast(scale, tf.float32),
                                   0.0, image_size)


def decode_and_warp(data, path, trans, image_size, crop_decode: bool = True):
    """Image bytes -> uint8 (h, w, 3) RGB: the image warped by trans (image px -> output px)
    with bilinear interpolation and zero fill, as cv2.warpAffine(INTER_LINEAR) does.

    crop_decode: for JPEG, decode only the part of the image the crop reads (plus a
    pixel), which gives the same output for a fraction of the decoding work.  Other
    formats (decode_image) are decoded whole.
    """
    shape = image_shape(data, path)
    trans = tf.cast(trans, tf.float32)
    if crop_decode:
        image, trans = tf.cond(is_jpeg(data),
                               lambda: _crop_decode_jpeg(data, shape, trans, image_size),
                               lambda: (decode_image(data), trans))
    else:
        image = decode_image(data)
    return warp(image, trans, image_size)


def _crop_decode_jpeg(data, shape, trans, image_size):
    """(the JPEG's window that the crop reads, decoded; trans for that window's pixels)."""
    out_w, out_h = image_size
    inv = _invert(trans)
    h, w = tf.cast(shape[0], tf.float32), tf.cast(shape[1], tf.float32)
    corners = tf.constant([[0.0, 0.0], [out_w - 1.0, 0.0], [0.0, out_h - 1.0],
                           [out_w - 1.0, out_h - 1.0]])
    src = corners @ tf.transpose(inv[:, :2]) + inv[:, 2]
    lo = tf.floor(tf.reduce_min(src, 0)) - 1.0
    hi = tf.math.ceil(tf.reduce_max(src, 0)) + 1.0
    x0 = tf.clip_by_value(lo[0], 0.0, w - 1.0)
    y0 = tf.clip_by_value(lo[1], 0.0, h - 1.0)
    x1 = tf.clip_by_value(hi[0], x0, w - 1.0)
    y1 = tf.clip_by_value(hi[1], y0, h - 1.0)
    window = tf.cast(tf.stack([y0, x0, y1 - y0 + 1.0, x1 - x0 + 1.0]), tf.int32)
    image = tf.io.decode_and_crop_jpeg(data, window, channels=3, dct_method=DCT)
    # Crop pixel q is image pixel q + (x0, y0): shift the matrix's input accordingly.
    trans = tf.concat([trans[:, :2], trans[:, 2:] + trans[:, :2] @ tf.stack([[x0], [y0]])], 1)
    return tf.ensure_shape(image, [None, None, 3]), trans


def _cv2_warp(image: np.ndarray, trans: np.ndarray, out_w, out_h) -> np.ndarray:
    return cv2.warpAffine(image, trans.astype(np.float64), (int(out_w), int(out_h)),
                          flags=cv2.INTER_LINEAR)


def warp(image, trans, image_size):
    """uint8 (H, W, 3) -> uint8 (h, w, 3): the official cv2.warpAffine(INTER_LINEAR, zero
    border) with trans (image px -> output px).  OpenCV releases the GIL, so parallel
    tf.data calls run concurrently; it is ~5x faster than TF's ImageProjectiveTransform or
    a gather-based bilinear warp at this size."""
    out_w, out_h = image_size
    out = tf.numpy_function(_cv2_warp, [image, tf.cast(trans, tf.float32), out_w, out_h],
                            tf.uint8, stateful=False)
    return tf.ensure_shape(out, [out_h, out_w, 3])
