"""A config's keypoint set: COCO's or MPII's built in, or one read from a file.

``config.data.keypoints = FILE`` names either

* a keypoints file: one JSON object, a COCO ``categories`` entry with optional extras,

      {"name": "figure13", "keypoints": ["head_top", "left_shoulder", ...],
       "skeleton": [[2, 4], ...],                       # limbs, 1-based as COCO's
       "flip_pairs": [["left_shoulder", "right_shoulder"], ...],   # optional
       "upper_body": ["head_top", "left_shoulder", ...],           # optional
       "sigmas": [0.079, 0.079, ...],                              # optional
       "joint_weights": [1.0, ...]}                                # optional

* or a COCO annotation file (or anything with a ``categories`` list, such as an exported
  model's config.json's ``keypoint_set``): the category whose id is
  ``config.data.category_id`` is read, with the same fields.

What is not given is derived (docs/keypoints.md): flip pairs from the names (left_* with
right_*, l_* with r_*, *_left with *_right), the upper body from the names COCO and MPII
count as upper body, sigmas COCO's for joints named as COCO's and their mean for any
other joint, joint weights 1.  Everything else wrong is a DataError naming the file and
the field: an unknown joint in flip_pairs, skeleton or upper_body, a joint in two flip
pairs, sigmas or weights of the wrong length or not positive.
"""
from __future__ import annotations

import functools
import json
import os
import re

import numpy as np
from absl import logging

from data_pipeline.joints import (COCO_JOINTS, COCO_SIGMAS, COCO_UPPER_BODY, MPII_JOINTS,
                                  MPII_UPPER_BODY, KeypointSet, get_skeleton)
from data_pipeline.records import DataError

# The names the built-in sets count as upper body, for sets that do not say.
UPPER_BODY_NAMES = frozenset([COCO_JOINTS[j] for j in COCO_UPPER_BODY]
                             + [MPII_JOINTS[j] for j in MPII_UPPER_BODY]
                             + ["head", "neck", "head_top", "thorax"])
COCO_SIGMA_OF = dict(zip(COCO_JOINTS, COCO_SIGMAS.tolist()))
# The OKS sigma of a joint no built-in set names: the mean of COCO's 17.
DEFAULT_SIGMA = float(np.mean(COCO_SIGMAS))
_MIRROR = {"left": "right", "right": "left", "l": "r", "r": "l"}


def mirror_name(name: str) -> str:
    """The name of the other side's joint: left_eye -> right_eye, l_knee -> r_knee,
    paw_left -> paw_right, Left-Hand -> Right-Hand (name itself for a midline joint)."""
    parts = re.split(r"([_\-\s.]+)", name)
    out = []
    for p in parts:
        m = _MIRROR.get(p.lower())
        if m is None:
            out.append(p)
        else:
            out.append(m.upper() if p.isupper() and len(p) > 1 else m.capitalize()
                       if p[:1].isupper() else m)
    return "".join(out)


def side_of(name: str) -> str:
    """'left', 'right' or 'centre', from the name's left/right/l/r word."""
    words = [w.lower() for w in re.split(r"[_\-\s.]+", name)]
    if "left" in words or "l" in words:
        return "left"
    if "right" in words or "r" in words:
        return "right"
    return "centre"


def from_dict(entry: dict, where: str) -> KeypointSet:
    """A KeypointSet from one category-like object (see the module docstring); ``where``
    names it in errors ('FILE', 'FILE: categories[0]')."""
    if not isinstance(entry, dict):
        raise DataError(f"{where}: a keypoint set is a JSON object with a 'keypoints' list")
    names = entry.get("keypoints")
    if not (isinstance(names, list) and names and all(isinstance(n, str) and n for n in names)):
        raise DataError(f"{where}: 'keypoints' must be a non-empty list of joint names, got "
                        f"{names!r}")
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise DataError(f"{where}: 'keypoints' names {dup} more than once")
    index = {n: i for i, n in enumerate(names)}
    count = len(names)

    def joint(ref, field: str, one_based: bool = False) -> int:
        if isinstance(ref, str):
            if ref not in index:
                raise DataError(f"{where}: '{field}' names {ref!r}, which is not among the "
                                f"{count} keypoints ({', '.join(names)})")
            return index[ref]
        if isinstance(ref, int) and not isinstance(ref, bool):
            j = ref - 1 if one_based else ref
            if 0 <= j < count:
                return j
        base = "1-based" if one_based else "a name"
        raise DataError(f"{where}: '{field}' has {ref!r}: give a joint name or a {base} "
                        f"index of the {count} keypoints")

    def pairs(field: str, one_based: bool) -> list[tuple[int, int]]:
        value = entry.get(field, [])
        if not isinstance(value, list) or not all(isinstance(p, list) and len(p) == 2
                                                  for p in value):
            raise DataError(f"{where}: '{field}' must be a list of [a, b] pairs, got {value!r}")
        return [(joint(a, field, one_based), joint(b, field, one_based)) for a, b in value]

    limbs = pairs("skeleton", one_based=True)
    if "flip_pairs" in entry:
        flip = pairs("flip_pairs", one_based=False)
    else:
        flip = [(i, index[mirror_name(n)]) for i, n in enumerate(names)
                if mirror_name(n) != n and index.get(mirror_name(n), -1) > i]
    seen: dict[int, tuple] = {}
    for a, b in flip:
        if a == b:
            raise DataError(f"{where}: 'flip_pairs' pairs {names[a]!r} with itself")
        for j in (a, b):
            if j in seen:
                raise DataError(f"{where}: 'flip_pairs' has {names[j]!r} in two pairs "
                                f"({[names[k] for k in seen[j]]} and {[names[a], names[b]]})")
            seen[j] = (a, b)
    if "upper_body" in entry:
        value = entry["upper_body"]
        if not isinstance(value, list):
            raise DataError(f"{where}: 'upper_body' must be a list of joint names, got {value!r}")
        upper = sorted({joint(r, "upper_body") for r in value})
    else:
        upper = [i for i, n in enumerate(names) if n in UPPER_BODY_NAMES]

    def per_joint(field: str, default: list[float], positive: bool) -> tuple | None:
        value = entry.get(field)
        if value is None:
            return tuple(default)
        ok = isinstance(value, list) and all(
            isinstance(v, (int, float)) and not isinstance(v, bool) and np.isfinite(v)
            and (v > 0 if positive else v >= 0) for v in value)
        if not ok or len(value) != count:
            rule = "positive" if positive else "non-negative"
            got = f"{len(value)} values" if isinstance(value, list) else repr(value)
            raise DataError(f"{where}: '{field}' must be {count} {rule} numbers, one per "
                            f"keypoint, got {got}")
        return tuple(float(v) for v in value)

    guessed = [n for n in names if n not in COCO_SIGMA_OF]
    if "sigmas" not in entry and guessed:
        logging.warning("%s: no 'sigmas'; the OKS sigma of %s is COCO's mean %.4f "
                        "(docs/keypoints.md)", where, ", ".join(guessed), DEFAULT_SIGMA)
    sigmas = per_joint("sigmas", [COCO_SIGMA_OF.get(n, DEFAULT_SIGMA) for n in names], True)
    weights = per_joint("joint_weights", [1.0] * count, False)
    sides = [side_of(n) for n in names]
    name = entry.get("name")
    return KeypointSet(
        name=str(name) if isinstance(name, str) and name else f"{count} joints",
        joints=tuple(names), flip_pairs=tuple(flip), limbs=tuple(limbs),
        upper_body=tuple(upper),
        left=frozenset(i for i, s in enumerate(sides) if s == "left"),
        right=frozenset(i for i, s in enumerate(sides) if s == "right"),
        sigmas=sigmas, joint_weights=weights, source=where)


def category(categories, category_id: int, path: str) -> tuple[int, dict]:
    """(index, entry) of the category with ``category_id`` in a COCO 'categories' list; a
    DataError naming the file, the categories it has and the fix when there is none."""
    if not isinstance(categories, list):
        raise DataError(f"{path}: 'categories' must be a list")
    for i, c in enumerate(categories):
        if isinstance(c, dict) and c.get("id") == category_id:
            return i, c
    have = ", ".join(f"{c.get('id')} ({c.get('name', '?')!r})" for c in categories
                     if isinstance(c, dict)) or "none"
    hint = ""
    others = [c.get("id") for c in categories if isinstance(c, dict) and "id" in c]
    if others:
        hint = f": set --config.data.category_id={others[0]}"
    raise DataError(f"{path}: no category with id {category_id} (config.data.category_id); "
                    f"its categories: {have}{hint}")


def read(path: str, category_id: int = 1) -> KeypointSet:
    """The keypoint set of a keypoints file or a COCO annotation file (module docstring)."""
    return _read(os.path.abspath(path), _mtime(path), int(category_id))


def _mtime(path: str) -> float:
    try:
        return os.path.getmtime(path)
    except OSError:
        return -1.0


@functools.lru_cache(maxsize=8)
def _read(path: str, mtime: float, category_id: int) -> KeypointSet:
    if not os.path.isfile(path):
        raise DataError(f"{path}: keypoints file not found (config.data.keypoints): give a "
                        f"keypoints JSON file or a COCO annotation file")
    try:
        with open(path, "rb") as f:
            data = json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise DataError(f"{path}: malformed JSON ({e}) (config.data.keypoints)") from None
    if isinstance(data, dict) and isinstance(data.get("keypoint_set"), dict):
        return from_dict(data["keypoint_set"], f"{path}: keypoint_set")
    if isinstance(data, dict) and "categories" in data:
        i, entry = category(data["categories"], category_id, path)
        if "keypoints" not in entry:
            raise DataError(f"{path}: categories[{i}] (id {category_id}) has no 'keypoints' "
                            f"list of joint names: add it, or give a keypoints file")
        return from_dict(entry, f"{path}: categories[{i}]")
    return from_dict(data, path)


def of_config(data_cfg) -> KeypointSet:
    """The keypoint set of a config's data section: config.data.keypoints's (read from the
    file, category config.data.category_id), else the built-in one of config.data.name."""
    path = data_cfg.get("keypoints", "")
    if path:
        return read(path, int(data_cfg.get("category_id", 1)))
    return get_skeleton(data_cfg.name)
