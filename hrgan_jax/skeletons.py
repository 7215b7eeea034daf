"""Joint names, flip pairs, limbs and OKS sigmas of the COCO and MPII keypoint sets.

Indices are 0-based, in each dataset's official joint order.  Left and right are the
person's own sides.  Flip pairs and OKS sigmas come from data_pipeline.joints (shared
with the augmentation); decoding, evaluation and drawing read everything from here.
"""
from __future__ import annotations

import dataclasses

import numpy as np

from data_pipeline import joints as _joints

COCO_JOINTS = (
    "nose", "left_eye", "right_eye", "left_ear", "right_ear",
    "left_shoulder", "right_shoulder", "left_elbow", "right_elbow",
    "left_wrist", "right_wrist", "left_hip", "right_hip",
    "left_knee", "right_knee", "left_ankle", "right_ankle",
)
COCO_FLIP_PAIRS = _joints.FLIP_PAIRS["coco"]
# The 19 limbs of person_keypoints_*.json's "skeleton", turned 0-based.
COCO_LIMBS = (
    (15, 13), (13, 11), (16, 14), (14, 12), (11, 12), (5, 11), (6, 12), (5, 6),
    (5, 7), (6, 8), (7, 9), (8, 10), (1, 2), (0, 1), (0, 2), (1, 3), (2, 4),
    (3, 5), (4, 6),
)
# Per-joint OKS falloff of the COCO keypoint challenge (pycocotools, official oks_nms).
COCO_SIGMAS = np.array(_joints.COCO_SIGMAS) / 10.0

# MPII order; the short names are gt_valid.mat's dataset_joints.
MPII_JOINTS = (
    "r_ankle", "r_knee", "r_hip", "l_hip", "l_knee", "l_ankle", "pelvis", "thorax",
    "upper_neck", "head_top", "r_wrist", "r_elbow", "r_shoulder", "l_shoulder",
    "l_elbow", "l_wrist",
)
MPII_SHORT_NAMES = ("rank", "rkne", "rhip", "lhip", "lkne", "lank", "pelv", "thor",
                    "neck", "head", "rwri", "relb", "rsho", "lsho", "lelb", "lwri")
MPII_FLIP_PAIRS = _joints.FLIP_PAIRS["mpii"]
MPII_LIMBS = (
    (0, 1), (1, 2), (2, 6), (6, 3), (3, 4), (4, 5), (6, 7), (7, 8), (8, 9),
    (10, 11), (11, 12), (12, 7), (7, 13), (13, 14), (14, 15),
)


@dataclasses.dataclass(frozen=True)
class Skeleton:
    """A keypoint set: names, left/right pairs, limbs, and which joints are left/right."""
    name: str
    joints: tuple
    flip_pairs: tuple
    limbs: tuple
    left: frozenset
    right: frozenset

    @property
    def num_joints(self) -> int:
        return len(self.joints)

    def side(self, joint: int) -> str:
        """'left', 'right' or 'centre' (the person's own side)."""
        return "left" if joint in self.left else "right" if joint in self.right else "centre"

    def limb_side(self, a: int, b: int) -> str:
        sa, sb = self.side(a), self.side(b)
        return sa if sa == sb else "centre"


COCO = Skeleton("coco", COCO_JOINTS, COCO_FLIP_PAIRS, COCO_LIMBS,
                left=frozenset(range(1, 17, 2)), right=frozenset(range(2, 17, 2)))
MPII = Skeleton("mpii", MPII_JOINTS, MPII_FLIP_PAIRS, MPII_LIMBS,
                left=frozenset((3, 4, 5, 13, 14, 15)), right=frozenset((0, 1, 2, 10, 11, 12)))
SKELETONS = {"coco": COCO, "mpii": MPII}


def get_skeleton(dataset: str) -> Skeleton:
    """The Skeleton of 'coco' or 'mpii' (case-insensitive)."""
    try:
        return SKELETONS[dataset.lower()]
    except KeyError:
        raise ValueError(f"unknown dataset {dataset!r}: expected one of {sorted(SKELETONS)}") from None
