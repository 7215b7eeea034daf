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

from data_pipeline.joints import KeypointSet, get_skeleton
from hrgan_jax import evaluation

BOX_COLOR = (80, 200, 255)
PRED_COLORS = {"left": (255, 150, 0), "right": (230, 30, 30), "centre": (255, 230, 0)}
GT_COLORS = {"left": (0, 210, 70), "right": (30, 110, 255), "centre": (0, 230, 230)}


def _skeleton(dataset) -> KeypointSet:
    return dataset if isinstance(dataset, KeypointSet) else get_skeleton(dataset)


def draw_skeleton(image, joints, dataset="coco", scores=None, threshold: float = 0.2,
                  colors=PRED_COLORS, radius: float | None = None,
                  width: int | None = None) -> np.ndarray:
    """A copy of image (H, W, 3) uint8 with the limbs and joints of one person.

    joints: (J, 2); scores: (J,) scores or visibilities, joints with score < threshold are
    left out together with their limbs (None: all drawn); dataset: 'coco', 'mpii' or a
    KeypointSet.  radius/width default to about 1/64 and 1/128 of the image's shorter side.
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


def draw_box(image, box, label: str = "", color=BOX_COLOR, width: int | None = None
             ) -> np.ndarray:
    """A copy of image (H, W, 3) uint8 with the rectangle box (x, y, w, h) and, above its
    top-left corner, label (e.g. the detector's score); width defaults to about 1/256 of
    the image's shorter side."""
    image = np.asarray(image)
    x, y, w, h = (float(v) for v in box)
    width = max(1, round(min(image.shape[:2]) / 256)) if width is None else width
    pil = Image.fromarray(image)
    draw = ImageDraw.Draw(pil)
    draw.rectangle([x, y, x + w, y + h], outline=color, width=width)
    if label:
        draw.text((x + width + 1, max(0.0, y - 11)), label, fill=color)
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


# curves.png's panels: (title, which names go in it, log y axis).  Names are those of
# metrics.jsonl (the trainer's scalars) and of the evaluation tables.
CURVE_PANELS = (
    ("evaluation", lambda n: n.startswith("eval/"), False),
    ("losses", lambda n: "loss" in n.lower() or n in ("l_real", "l_fake", "l_adv"), True),
    ("equilibrium: k_t and M_global", lambda n: n.lower() in ("k", "k_t", "m_global"), False),
    ("learning rates", lambda n: n.lower().endswith("lr"), True),
    ("adversary's share of G's gradient: |beta_G dL_adv/dH| / |dL_content/dH|",
     lambda n: n == "adv_grad_ratio", True),
)
# The evaluation curves drawn: COCO AP, AP50 and AR (fractions) or MPII PCKh (percent).
EVAL_CURVES = ("AP", "AP50", "AR", "Mean", "Mean@0.1")


def plot_curves(history: dict, path) -> str:
    """Write curves.png: a grid of panels against the step.

    history: name -> [(step, value), ...].  Names starting 'eval/' go into the
    evaluation panel (AP / PCKh); names with 'loss' (and l_real, l_fake, l_adv) into
    one losses panel with a log y axis; k / k_t and m_global into one equilibrium
    panel; names ending in 'lr' into the learning-rate panel (log); any other name
    gets a panel of its own.  Two columns.  Returns the path.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    panels, placed = [], set()
    for title, belongs, log in CURVE_PANELS:
        names = [n for n in history if n not in placed and belongs(n) and len(history[n])]
        if names:
            panels.append((title, names, log))
            placed.update(names)
    panels += [(n, [n], False) for n in history if n not in placed and len(history[n])]
    if not panels:
        raise ValueError("plot_curves: history is empty, nothing to plot")
    cols = min(2, len(panels))
    rows = math.ceil(len(panels) / cols)
    fig = Figure(figsize=(6 * cols, 3.6 * rows), dpi=100)
    FigureCanvasAgg(fig)
    for n, (title, names, log) in enumerate(panels):
        ax = fig.add_subplot(rows, cols, n + 1)
        values = []
        for name in names:
            points = np.asarray(history[name], np.float64).reshape(-1, 2)
            style = {"marker": "o", "markersize": 3} if name.startswith("eval/") else {}
            ax.plot(points[:, 0], points[:, 1], label=name.removeprefix("eval/"),
                    linewidth=1.2, **style)
            values.append(points[:, 1])
        if log and np.all(np.concatenate(values) > 0):
            ax.set_yscale("log")
        if len(names) > 1 or title != names[0]:
            ax.legend(fontsize=8)
        ax.set_title(title)
        ax.set_xlabel("step")
        ax.grid(True, alpha=0.3)
    fig.tight_layout()
    path = os.fspath(path)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path, format="png")
    return path


def read_metrics(workdir) -> dict[int, dict]:
    """step -> row of a training run's metrics.jsonl, in step order: the last row of a step
    wins (a resumed run rewrites later steps); a line cut short by a kill is skipped."""
    import json
    rows: dict[int, dict] = {}
    metrics = os.path.join(workdir, "metrics.jsonl")
    if os.path.exists(metrics):
        with open(metrics) as f:
            for line in f:
                try:
                    row = json.loads(line)
                except json.JSONDecodeError:
                    continue
                rows[int(row["step"])] = row
    return dict(sorted(rows.items()))


def read_evaluations(workdir) -> dict[int, dict]:
    """step -> the evaluation table of a training run (eval/results_<step>.json, official
    names), in step order; unreadable files are skipped."""
    import glob
    import json
    results = {}
    for path in glob.glob(os.path.join(workdir, "eval", "results_*.json")):
        try:
            with open(path) as f:
                row = json.load(f)
            results[int(row["step"])] = row
        except (OSError, ValueError, KeyError):
            continue
    return dict(sorted(results.items()))


def read_history(workdir) -> dict:
    """name -> [(step, value), ...] of a training run: every number in metrics.jsonl
    (read_metrics) and, as 'eval/<name>', EVAL_CURVES from its evaluations."""
    history: dict[str, list] = {}
    for step, row in read_metrics(workdir).items():
        for name, value in row.items():
            if name != "step" and isinstance(value, (int, float)) and math.isfinite(value):
                history.setdefault(name, []).append((step, float(value)))
    for step, row in read_evaluations(workdir).items():
        results = evaluation.scalar_names(row)
        for name in EVAL_CURVES:
            value = results.get(name)
            if isinstance(value, (int, float)) and math.isfinite(value):
                history.setdefault(f"eval/{name}", []).append((step, float(value)))
    return history


def training_curves(workdir, path=None) -> str | None:
    """curves.png (default: in ``workdir``) from the run's metrics.jsonl and evaluation
    results: the CURVE_PANELS (throughput, gradient norms and skipped steps stay in
    TensorBoard); None when the run has logged nothing yet."""
    history = {name: points for name, points in read_history(workdir).items()
               if any(belongs(name) for _, belongs, _ in CURVE_PANELS)}
    if not history:
        return None
    return plot_curves(history, path or os.path.join(workdir, "curves.png"))
