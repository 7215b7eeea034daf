"""Keypoint sets as data (KeypointSet), and the built-in ones of COCO and MPII: the one
place their facts live.

Joint names (and MPII's official short names, as gt_valid.mat spells them), flip pairs,
limbs, upper-body joints and OKS sigmas.  Training (flip augmentation, half-body),
evaluation (flip test, OKS, PCKh), the synthetic writer and drawing all read them from
a KeypointSet; data_pipeline/keypoint_sets.py reads other sets from files and picks a
config's.  Indices are 0-based, in each dataset's official joint order; left and right
are the person's own sides.
"""
from __future__ import annotations

import dataclasses

import numpy as np

COCO_JOINTS = (
    "nose", "left_eye", "right_eye", "left_ear", "right_ear",
    "left_shoulder", "right_shoulder", "left_elbow", "right_elbow",
    "left_wrist", "right_wrist", "left_hip", "right_hip",
    "left_knee", "right_knee", "left_ankle", "right_ankle",
)
COCO_FLIP_PAIRS = ((1, 2), (3, 4), (5, 6), (7, 8), (9, 10), (11, 12), (13, 14), (15, 16))
# The 19 limbs of person_keypoints_*.json's "skeleton" (1-based there), 0-based.
COCO_LIMBS = (
    (15, 13), (13, 11), (16, 14), (14, 12), (11, 12), (5, 11), (6, 12), (5, 6),
    (5, 7), (6, 8), (7, 9), (8, 10), (1, 2), (0, 1), (0, 2), (1, 3), (2, 4),
    (3, 5), (4, 6),
)
# Per-joint OKS falloff of the COCO keypoint challenge, exactly as pycocotools and the
# official oks_nms compute it.
COCO_SIGMAS = np.array([.26, .25, .25, .35, .35, .79, .79, .72, .72, .62, .62, 1.07, 1.07,
                        .87, .87, .89, .89]) / 10.0
COCO_UPPER_BODY = tuple(range(11))  # nose, eyes, ears, shoulders, elbows, wrists

MPII_JOINTS = (
    "r_ankle", "r_knee", "r_hip", "l_hip", "l_knee", "l_ankle", "pelvis", "thorax",
    "upper_neck", "head_top", "r_wrist", "r_elbow", "r_shoulder", "l_shoulder",
    "l_elbow", "l_wrist",
)
# gt_valid.mat's dataset_joints, as the official file spells them (thorax is 'thrx').
MPII_SHORT_NAMES = ("rank", "rkne", "rhip", "lhip", "lkne", "lank", "pelv", "thrx",
                    "neck", "head", "rwri", "relb", "rsho", "lsho", "lelb", "lwri")
# The joints the official PCKh looks up by name in dataset_joints; pelvis and thorax it
# leaves out of the means by position (MPII_NOT_IN_MEAN), never by name.
MPII_PCKH_NAMES = ("head", "lsho", "lelb", "lwri", "lhip", "lkne", "lank",
                   "rsho", "relb", "rwri", "rhip", "rkne", "rank")
MPII_NOT_IN_MEAN = (6, 7)
MPII_FLIP_PAIRS = ((0, 5), (1, 4), (2, 3), (10, 15), (11, 14), (12, 13))
MPII_LIMBS = (
    (0, 1), (1, 2), (2, 6), (6, 3), (3, 4), (4, 5), (6, 7), (7, 8), (8, 9),
    (10, 11), (11, 12), (12, 7), (7, 13), (13, 14), (14, 15),
)
MPII_UPPER_BODY = (7, 8, 9, 10, 11, 12, 13, 14, 15)  # thorax, neck, head top, arms


@dataclasses.dataclass(frozen=True)
class KeypointSet:
    """A keypoint set, as data: what training, evaluation, prediction and export need to
    know about the joints.

    joints: names, in the annotation's order; flip_pairs: (left, right) index pairs that
    swap under a horizontal flip; limbs: index pairs drawn as lines; upper_body: the
    joints of the half-body augmentation's upper half; sigmas: per-joint OKS falloff of
    COCO-style AP (None: no OKS, e.g. MPII, whose metric is PCKh); joint_weights: per-joint
    factors of the heatmap loss (the official USE_DIFFERENT_JOINTS_WEIGHT); left, right:
    the person's own sides (drawing colours); source: where the set was read ('' for the
    built-in ones).
    """
    name: str
    joints: tuple
    flip_pairs: tuple
    limbs: tuple
    upper_body: tuple
    left: frozenset
    right: frozenset
    sigmas: tuple | None = None
    joint_weights: tuple | None = None
    source: str = ""

    @property
    def num_joints(self) -> int:
        return len(self.joints)

    def describe(self) -> str:
        """'coco', 'figure13' (from FILE): the set's name in messages."""
        return f"{self.name!r}" + (f" (from {self.source})" if self.source else "")

    def side(self, joint: int) -> str:
        """'left', 'right' or 'centre' (the person's own side)."""
        return "left" if joint in self.left else "right" if joint in self.right else "centre"

    def limb_side(self, a: int, b: int) -> str:
        sa, sb = self.side(a), self.side(b)
        return sa if sa == sb else "centre"

    def flip_permutation(self) -> list[int]:
        """perm such that flipped[j] = original[perm[j]]: the flip pairs as a gather index."""
        perm = list(range(self.num_joints))
        for a, b in self.flip_pairs:
            perm[a], perm[b] = b, a
        return perm

    def weights(self) -> tuple:
        """The loss's per-joint weights (1 for each joint unless the set gives others)."""
        return self.joint_weights or (1.0,) * self.num_joints

    def to_json(self) -> dict:
        """The set as a keypoints file holds it (data_pipeline/keypoint_sets.py reads it
        back): names, and pairs and lists by joint name; skeleton 1-based as COCO's."""
        n = self.joints
        out = {"name": self.name, "keypoints": list(n),
               "skeleton": [[a + 1, b + 1] for a, b in self.limbs],
               "flip_pairs": [[n[a], n[b]] for a, b in self.flip_pairs],
               "upper_body": [n[j] for j in self.upper_body],
               "joint_weights": list(self.weights())}
        if self.sigmas is not None:
            out["sigmas"] = list(self.sigmas)
        return out


COCO = KeypointSet("coco", COCO_JOINTS, COCO_FLIP_PAIRS, COCO_LIMBS, COCO_UPPER_BODY,
                   left=frozenset(range(1, 17, 2)), right=frozenset(range(2, 17, 2)),
                   sigmas=tuple(COCO_SIGMAS.tolist()))
MPII = KeypointSet("mpii", MPII_JOINTS, MPII_FLIP_PAIRS, MPII_LIMBS, MPII_UPPER_BODY,
                   left=frozenset((3, 4, 5, 13, 14, 15)), right=frozenset((0, 1, 2, 10, 11, 12)))
SKELETONS = {"coco": COCO, "mpii": MPII}

# Per-dataset views, for code that holds a dataset name.
NUM_JOINTS = {name: s.num_joints for name, s in SKELETONS.items()}
FLIP_PAIRS = {name: s.flip_pairs for name, s in SKELETONS.items()}
UPPER_BODY = {name: s.upper_body for name, s in SKELETONS.items()}


def get_skeleton(dataset: str) -> KeypointSet:
    """The built-in keypoint set of 'coco' or 'mpii' (case-insensitive)."""
    try:
        return SKELETONS[dataset.lower()]
    except KeyError:
        raise ValueError(f"unknown dataset {dataset!r}: expected one of {sorted(SKELETONS)}") from None


def flip_permutation(name: str) -> list[int]:
    """The flip permutation of dataset ``name`` (see KeypointSet.flip_permutation)."""
    return get_skeleton(name).flip_permutation()
