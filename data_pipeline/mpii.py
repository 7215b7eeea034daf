"""MPII as distributed with HRNet -> per-person Records.

    ROOT/annot/{train,valid}.json   list of {image, center, scale, joints (16x2, 1-based), joints_vis}
    ROOT/annot/gt_valid.mat         evaluation ground truth
    ROOT/images/*.jpg

Official rules: centre y += 15 s, s *= 1.25, then centre and joints -= 1.
"""
from __future__ import annotations

import math
import os

import numpy as np
from absl import logging

from data_pipeline.affine import mpii_center_scale
from data_pipeline.records import BadRecords, DataError, Records, list_images, load_json


def annotation_file(root: str, split: str) -> str:
    return os.path.join(root, "annot", f"{split}.json")


def gt_file(root: str) -> str:
    return os.path.join(root, "annot", "gt_valid.mat")


def _numbers(x, shape) -> np.ndarray | None:
    try:
        a = np.asarray(x, np.float64)
    except (TypeError, ValueError):
        return None
    if a.shape != shape or not np.all(np.isfinite(a)):
        return None
    return a


def read(root: str, split: str, *, num_joints: int = 16, skip_bad: bool = False) -> Records:
    """image_id = the record's index in the annotation list (what gt_valid.mat is ordered by)."""
    path = annotation_file(root, split)
    anno = load_json(path)
    if not isinstance(anno, list):
        raise DataError(f"{path}: expected a list of {{image, center, scale, joints, joints_vis}}, "
                        f"got {type(anno).__name__}")
    bad = BadRecords(skip_bad, path)
    directory = os.path.join(root, "images")
    if not os.path.isdir(directory):
        raise DataError(f"{directory}: MPII image directory not found (ROOT/images/*.jpg)")
    present = list_images(directory)
    rows = []
    for i, a in enumerate(anno):
        where = f"{path}: [{i}]"
        if not isinstance(a, dict) or not isinstance(a.get("image"), str):
            bad(f"{where}: needs an 'image' file name")
            continue
        center = _numbers(a.get("center"), (2,))
        scale = a.get("scale")
        if center is None or not isinstance(scale, (int, float)) or not math.isfinite(scale) \
                or scale <= 0:
            bad(f"{where}: 'center' must be 2 numbers and 'scale' a positive number, got "
                f"{a.get('center')!r}, {scale!r}")
            continue
        joints = _numbers(a.get("joints"), (num_joints, 2))
        vis = _numbers(a.get("joints_vis"), (num_joints,))
        if joints is None or vis is None:
            got = np.shape(a.get("joints")) if a.get("joints") is not None else None
            bad(f"{where}: 'joints' must be {num_joints}x2 numbers and 'joints_vis' {num_joints} "
                f"numbers (got joints of shape {got})")
            continue
        if a["image"] not in present:
            bad(f"{where}: image {os.path.join(directory, a['image'])} does not exist")
            continue
        c, s = mpii_center_scale(center, float(scale))
        rows.append({"image_path": os.path.join(directory, a["image"]), "image_id": i,
                     "center": c, "scale": s, "joints": joints - 1.0,
                     "joints_vis": (vis > 0).astype(np.float32), "score": 1.0,
                     "origin": f"[{i}]"})
    bad.summary()
    logging.info("%s: %d people", path, len(rows))
    return Records.from_rows(rows, num_joints, path)
