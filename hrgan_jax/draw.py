"""Pictures: skeletons on images, crop grids for TensorBoard, training curves.

Host-side numpy/PIL/matplotlib only.  Images are uint8 RGB (H, W, 3); joints are (x, y)
in that image's pixels.  Predictions use the warm colour set (left orange, right red),
ground truth the cool one (left green, right blue); joints on the body's midline use the
set's third colour.
"""
from __future__ import annotations

import math
import os

import numpy as np
from PIL import Image, ImageDraw

from data_pipeline.joints import Skeleton, get_skeleton

PRED_COLORS = {"left": (255, 150, 0), "right": (230, 30, 30), "centre": (255, 230, 0)}
GT_COLORS = {"left": (0, 210, 70), "right": (30, 110, 255), "centre": (0, 230, 230)}


def _skeleton(dataset) -> Skeleton:
    return dataset if isinstance(dataset, Skeleton) else get_skeleton(dataset)


def draw_skeleton(image, joints, dataset="coco", scores=None, threshold: float = 0.2,
                  colors=PRED_COLORS, radius: float | None = None,
                  width: int | None = None) -> np.ndarray:
    """A copy of image (H, W, 3) uint8 with the limbs and joints of one person.

    joints: (J, 2); scores: (J,) scores or visibilities, joints with score < threshold are
    left out together with their limbs (None: all drawn); dataset: 'coco', 'mpii' or a
    Skeleton.  radius/width default to about 1/64 and 1/128 of the image's shorter side.
    """
    image = np.asarray(image)
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"image must be (H, W, 3) uint8, got {image.shape} {image.dtype}")
    skel = _skeleton(dataset)
    joints = np.asarray(joints, np.float64)
    if joints.shape != (skel.num_joints, 2):
        raise ValueError(f"joints must be ({skel.num_joints}, 2) for {skel.name}, got {joints.shape}")
    shown = np.isfinite(joints).all(axis=1)
    if scores is not None:
        shown &= np.asarray(scores, np.float64).reshape(-1) >= threshold
    short = min(image.shape[:2])
    radius = max(1.5, short / 64) if radius is None else radius
    width = max(1, round(short / 128)) if width is None else width
    pil = Image.fromarray(image)
    draw = ImageDraw.Draw(pil)
    for a, b in skel.limbs:
        if shown[a] and shown[b]:
            draw.line([tuple(joints[a]), tuple(joints[b])], fill=colors[skel.limb_side(a, b)],
                      width=width)
    for j in np.flatnonzero(shown):
        x, y = joints[j]
        draw.ellipse([x - radius, y - radius, x + radius, y + radius],
                     fill=colors[skel.side(int(j))])
    return np.asarray(pil)


def crops_with_skeletons(images, pred, gt=None, gt_vis=None, dataset="coco",
                         pred_scores=None, threshold: float = 0.2) -> np.ndarray:
    """Each crop with its true (cool colours, drawn first) and predicted (warm colours,
    on top) skeleton, for TensorBoard image summaries.

    images: (B, H, W, 3) uint8; pred: (B, J, 2) and gt: (B, J, 2) or None, in the crop's
    pixels; gt_vis: (B, J) (or (B, J, 1)) visibility, joints with 0 skipped;
    pred_scores: (B, J) or (B, J, 1), joints below threshold skipped.  Returns
    (B, H, W, 3) uint8.
    """
    images = np.asarray(images)
    if images.ndim != 4:
        raise ValueError(f"images must be (B, H, W, 3), got {images.shape}")
    out = np.empty_like(images)
    for i in range(len(images)):
        img = images[i]
        if gt is not None:
            vis = None if gt_vis is None else np.asarray(gt_vis)[i].reshape(-1)
            img = draw_skeleton(img, np.asarray(gt)[i], dataset, vis, 0.5, GT_COLORS)
        s = None if pred_scores is None else np.asarray(pred_scores)[i].reshape(-1)
        out[i] = draw_skeleton(img, np.asarray(pred)[i], dataset, s, threshold, PRED_COLORS)
    return out


def image_grid(images, cols: int | None = None, pad: int = 2, fill: int = 255) -> np.ndarray:
    """(B, H, W, 3) -> one (rows*(H+pad)+pad, cols*(W+pad)+pad, 3) picture, row-major."""
    images = np.asarray(images)
    b, h, w, c = images.shape
    cols = cols or math.ceil(math.sqrt(b))
    rows = math.ceil(b / cols)
    grid = np.full((rows * (h + pad) + pad, cols * (w + pad) + pad, c), fill, images.dtype)
    for i in range(b):
        r, q = divmod(i, cols)
        y, x = pad + r * (h + pad), pad + q * (w + pad)
        grid[y:y + h, x:x + w] = images[i]
    return grid


def plot_curves(history: dict, path) -> str:
    """Write curves.png: one panel per quantity, against the step.

    history: name -> [(step, value), ...].  Every name containing 'loss' goes into one
    'losses' panel with a log y axis; every other name (k_t, M_global, ...) gets its own
    linear panel.  Returns the path.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    losses = [k for k in history if "loss" in k.lower()]
    panels = ([("losses", losses)] if losses else []) + [(k, [k]) for k in history
                                                          if k not in losses]
    if not panels:
        raise ValueError("plot_curves: history is empty, nothing to plot")
    fig = Figure(figsize=(5 * len(panels), 3.6), dpi=100)
    FigureCanvasAgg(fig)
    for n, (title, names) in enumerate(panels):
        ax = fig.add_subplot(1, len(panels), n + 1)
        for name in names:
            points = np.asarray(history[name], np.float64).reshape(-1, 2)
            ax.plot(points[:, 0], points[:, 1], label=name, linewidth=1.2)
        if title == "losses":
            values = np.concatenate([np.asarray(history[k], np.float64).reshape(-1, 2)[:, 1]
                                     for k in names])
            if np.any(values > 0):
                ax.set_yscale("log")
            ax.legend(fontsize=8)
        ax.set_title(title)
        ax.set_xlabel("step")
        ax.grid(True, alpha=0.3)
    fig.tight_layout()
    path = os.fspath(path)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path, format="png")
    return path
