"""Evaluation: MPII PCKh (``mpii``) and COCO keypoint AP (``coco``), as the official
HRNet code computes them, plus the official-looking result table and a JSON writer.

Both evaluators return an OrderedDict of name -> float (MPII: mpii.COLUMNS, percentages;
COCO: coco.STATS_NAMES, fractions); ``format_table`` prints either.
"""
from __future__ import annotations

import json
import math
import os
import re

from hrgan_jax.evaluation.coco import SHORT_NAMES


def scalar_names(results: dict) -> dict:
    """An evaluation table keyed by clean names, in order: COCO's official columns
    ('Ap .5', 'AR (M)', ...) as coco.SHORT_NAMES (AP50, ARM, ...), MPII's as they are
    (Head, ..., Mean, Mean@0.1); anything else ('step') minus characters tags refuse."""
    return {SHORT_NAMES.get(k, re.sub(r"[^A-Za-z0-9_.@/-]+", "_", k)): v
            for k, v in results.items()}


def tensorboard_scalars(results: dict, prefix: str = "eval/") -> dict:
    """``prefix + clean name -> value`` for the numbers of an evaluation table: what a
    metric writer gets (eval/AP50, not eval/Ap .5).  TensorBoard's tag alphabet has no
    '@': MPII's Mean@0.1 becomes Mean_at_0.1."""
    return {prefix + name.replace("@", "_at_"): float(v)
            for name, v in scalar_names(results).items()
            if name != "step" and isinstance(v, (int, float)) and not isinstance(v, bool)}


# The metric that picks the best checkpoint when config.checkpoint.best_metric is ''.
HEADLINE_METRIC = {"coco": "AP", "mpii": "Mean"}


def best_metric(config) -> str:
    """config.checkpoint.best_metric, or the dataset's headline metric (COCO AP, MPII Mean)."""
    return config.checkpoint.best_metric or HEADLINE_METRIC.get(config.data.name, "")


def format_table(results: dict, arch: str = "hrgan") -> str:
    """The official _print_name_value table (three lines, markdown):

    | Arch | Head | Shoulder | ... |
    |---|---|...|
    | pose_hrnet | 97.783 | ... |

    Names longer than 15 characters are cut to 8 + '...', as the official code does.
    """
    if len(arch) > 15:
        arch = arch[:8] + "..."
    header = "| Arch " + " ".join(f"| {name}" for name in results) + " |"
    rule = "|---" * (len(results) + 1) + "|"
    row = "| " + arch + " " + " ".join(f"| {value:.3f}" for value in results.values()) + " |"
    return "\n".join([header, rule, row])


def write_json(results: dict, path) -> str:
    """Write results (name -> number) as a JSON object, in their order; NaN becomes null."""
    path = os.fspath(path)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    clean = {k: (None if isinstance(v, float) and math.isnan(v) else float(v))
             for k, v in results.items()}
    with open(path, "w") as f:
        json.dump(clean, f, indent=2)
        f.write("\n")
    return path
