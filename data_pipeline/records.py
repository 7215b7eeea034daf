"""Per-person records (columnar numpy) and the bad-data policy shared by the readers."""
from __future__ import annotations

import dataclasses
import json
import os

import numpy as np
from absl import logging


class DataError(ValueError):
    """Bad input data: the message names the file and the record and says what to do."""


FIX_HINT = ("Fix or remove the record, or set config.data.skip_bad_records=True to skip "
            "(and count) such records.")


class BadRecords:
    """Raises DataError for a bad record, or (skip=True) logs it and counts it."""

    def __init__(self, skip: bool, what: str):
        self.skip = skip
        self.what = what
        self.count = 0

    def __call__(self, message: str) -> None:
        if not self.skip:
            raise DataError(f"{message}. {FIX_HINT}")
        self.count += 1
        if self.count <= 20:
            logging.warning("skipping bad record: %s", message)

    def summary(self) -> None:
        if self.count:
            logging.warning("%s: skipped %d bad record(s) (config.data.skip_bad_records=True)",
                            self.what, self.count)


# The official split names, used when config.data.train_split / val_split are ''.
DEFAULT_SPLITS = {"coco": ("train2017", "val2017"), "mpii": ("train", "valid")}


def split_names(data_cfg) -> tuple[str, str]:
    """(train split, validation split): the config's, or the dataset's official names
    where the config leaves them ''."""
    train, val = DEFAULT_SPLITS.get(data_cfg.name, ("", ""))
    return data_cfg.train_split or train, data_cfg.val_split or val


def load_json(path: str):
    """json.load with an error that names the file (and where it broke)."""
    if not os.path.isfile(path):
        raise DataError(f"{path}: annotation file not found; check config.data.root and the "
                        f"official layout (see data_pipeline/coco.py, mpii.py)")
    try:
        with open(path, "rb") as f:
            return json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise DataError(f"{path}: malformed JSON ({e}); re-download or repair the file") from e


@dataclasses.dataclass
class Records:
    """N people, one row each.  joints/joints_vis are zeros/ones for detector boxes.

    image_path: (N,) str, full path; image_id: (N,) int64 (COCO id, MPII index in the
    annotation list); center, scale: (N, 2) float32 (scale in units of 200 px);
    joints: (N, J, 2) float32 image pixels (0-based); joints_vis: (N, J) float32 in {0, 1};
    score: (N,) float32 box score (1 for ground-truth boxes); origin: (N,) str, where
    each record is in its file, as the file numbers it ('annotations[9] (id 1234)',
    '[41]'); source: the annotation (or detection) file the records came from.
    """
    image_path: np.ndarray
    image_id: np.ndarray
    center: np.ndarray
    scale: np.ndarray
    joints: np.ndarray
    joints_vis: np.ndarray
    score: np.ndarray
    origin: np.ndarray
    source: str = ""

    def __len__(self) -> int:
        return len(self.image_path)

    @classmethod
    def from_rows(cls, rows: list[dict], num_joints: int, source: str) -> "Records":
        n = len(rows)
        def col(key, shape, dtype):
            out = np.zeros((n,) + shape, dtype)
            for i, r in enumerate(rows):
                out[i] = r[key]
            return out
        return cls(
            image_path=np.array([r["image_path"] for r in rows], dtype=object).astype(str)
            if n else np.zeros((0,), str),
            image_id=col("image_id", (), np.int64),
            center=col("center", (2,), np.float32),
            scale=col("scale", (2,), np.float32),
            joints=col("joints", (num_joints, 2), np.float32),
            joints_vis=col("joints_vis", (num_joints,), np.float32),
            score=col("score", (), np.float32),
            origin=np.array([r["origin"] for r in rows], dtype=object).astype(str)
            if n else np.zeros((0,), str),
            source=source,
        )


def list_images(directory: str) -> set[str]:
    """File names in an image directory (one listing, so existence checks are cheap)."""
    try:
        return set(os.listdir(directory))
    except FileNotFoundError:
        return set()
