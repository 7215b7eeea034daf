"""Joint sets of the two datasets: counts, flip pairs, upper-body joints, OKS sigmas.

One place for the facts that training (flip augmentation, half-body) and evaluation
(flip test, OKS) both need.  Indices are 0-based, as in the official HRNet code.
"""
from __future__ import annotations

NUM_JOINTS = {"coco": 17, "mpii": 16}

# Left/right pairs swapped by a horizontal flip (SPEC "Data").
FLIP_PAIRS = {
    "coco": ((1, 2), (3, 4), (5, 6), (7, 8), (9, 10), (11, 12), (13, 14), (15, 16)),
    "mpii": ((0, 5), (1, 4), (2, 3), (10, 15), (11, 14), (12, 13)),
}

# Joints of the upper body for the half-body augmentation (the rest are the lower body).
UPPER_BODY = {
    "coco": tuple(range(11)),  # nose, eyes, ears, shoulders, elbows, wrists
    "mpii": (7, 8, 9, 10, 11, 12, 13, 14, 15),  # thorax, neck, head top, arms
}

# COCO keypoint OKS sigmas (pycocotools' COCOeval values).
COCO_SIGMAS = (.26, .25, .25, .35, .35, .79, .79, .72, .72, .62, .62, 1.07, 1.07, .87, .87,
               .89, .89)


def flip_permutation(name: str) -> list[int]:
    """perm such that flipped[j] = original[perm[j]]: the flip pairs as a gather index."""
    perm = list(range(NUM_JOINTS[name]))
    for a, b in FLIP_PAIRS[name]:
        perm[a], perm[b] = b, a
    return perm
