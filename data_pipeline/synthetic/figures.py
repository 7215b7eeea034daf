"""The figure model: a 3D articulated person, its pose, its projection, its colours."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from data_pipeline.joints import COCO_JOINTS, MPII_JOINTS

# The figure's points, in body coordinates of a figure 1 unit tall (ankle to head top):
# x = the person's left, y = up, z = the direction the person faces.
POINTS = (
    "pelvis", "l_hip", "r_hip", "l_knee", "r_knee", "l_ankle", "r_ankle", "thorax",
    "l_sho", "r_sho", "l_elb", "r_elb", "l_wri", "r_wri", "neck", "head", "head_top",
    "nose", "l_eye", "r_eye", "l_ear", "r_ear", "l_toe", "r_toe", "l_hand", "r_hand",
    "chest_front", "belly_front")
P = {name: i for i, name in enumerate(POINTS)}
COCO_FROM_POINTS = tuple(P[n] for n in (
    "nose", "l_eye", "r_eye", "l_ear", "r_ear", "l_sho", "r_sho", "l_elb", "r_elb",
    "l_wri", "r_wri", "l_hip", "r_hip", "l_knee", "r_knee", "l_ankle", "r_ankle"))
MPII_FROM_POINTS = tuple(P[n] for n in (
    "r_ankle", "r_knee", "r_hip", "l_hip", "l_knee", "l_ankle", "pelvis", "thorax",
    "neck", "head_top", "r_wri", "r_elb", "r_sho", "l_sho", "l_elb", "l_wri"))



# The figure's points by the names COCO and MPII give them, and by their own.
NAMED_POINTS = {**dict(zip(COCO_JOINTS, COCO_FROM_POINTS)),
                **dict(zip(MPII_JOINTS, MPII_FROM_POINTS)), **P}


def figure_point(name: str) -> int | None:
    """The index in POINTS of a joint named as COCO or MPII name it (left_shoulder,
    r_wrist, upper_neck), as POINTS names it (l_sho, head_top, l_toe), or left_/right_
    and a POINTS name's rest (left_toe, right_hand); None for any other name."""
    for side, short in (("left_", "l_"), ("right_", "r_")):
        if name.startswith(side) and short + name[len(side):] in P:
            return P[short + name[len(side):]]
    return NAMED_POINTS.get(name)


# Segment lengths and widths in figure heights.
HEAD_R = 0.068
TORSO, NECK = 0.30, 0.055
SHOULDER_HALF, HIP_HALF = 0.105, 0.075
UPPER_ARM, FOREARM, THIGH, SHIN = 0.165, 0.15, 0.245, 0.245
CHEST_DEPTH, TORSO_ROUND = 0.04, 0.03  # half the chest's depth, the torso outline's rounding


def rot_x(a):
    c, s = np.cos(a), np.sin(a)
    return np.array([[1, 0, 0], [0, c, -s], [0, s, c]])


def rot_y(a):
    c, s = np.cos(a), np.sin(a)
    return np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]])


def rot_z(a):
    c, s = np.cos(a), np.sin(a)
    return np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])


DOWN = np.array([0.0, -1.0, 0.0])


def sample_pose(rng: np.random.Generator, plain: bool = False) -> dict:
    """Joint angles (radians) of one of: standing, walking, arms raised, crouching, free.

    plain: standing, walking or arms raised only, facing the camera or turned away
    (no profiles), upright."""
    d = np.deg2rad
    if plain:
        kind = rng.choice(["stand", "walk", "raise"], p=[0.3, 0.35, 0.35])
    else:
        kind = rng.choice(["stand", "walk", "raise", "crouch", "free"], p=[0.25, 0.25, 0.2, 0.15, 0.15])
    u = lambda lo, hi: float(rng.uniform(d(lo), d(hi)))  # noqa: E731
    pose = {"kind": str(kind), "bend": u(-8, 15), "side": u(-8, 8), "twist": u(-15, 15),
            "head_yaw": u(-35, 35), "head_pitch": u(-20, 20), "head_roll": u(-12, 12)}
    for s in "lr":
        pose[s + "_arm_flex"], pose[s + "_arm_abd"], pose[s + "_elbow"] = u(-20, 30), u(5, 25), u(0, 40)
        pose[s + "_hip_flex"], pose[s + "_hip_abd"], pose[s + "_knee"] = u(-8, 12), u(0, 10), u(0, 15)
    if kind == "walk":
        swing = u(15, 40)
        sign = 1 if rng.random() < 0.5 else -1
        pose["l_hip_flex"], pose["r_hip_flex"] = sign * swing, -sign * swing * 0.8
        pose["l_knee" if sign < 0 else "r_knee"] = u(20, 60)
        pose["l_arm_flex"], pose["r_arm_flex"] = -sign * swing, sign * swing
        pose["l_elbow"], pose["r_elbow"] = u(10, 60), u(10, 60)
    elif kind == "raise":
        for s in "lr":
            if rng.random() < 0.75:
                if rng.random() < 0.5:
                    pose[s + "_arm_abd"], pose[s + "_arm_flex"] = u(60, 175), u(-10, 30)
                else:
                    pose[s + "_arm_flex"], pose[s + "_arm_abd"] = u(60, 175), u(0, 40)
                pose[s + "_elbow"] = u(0, 120)
    elif kind == "crouch":
        pose["bend"] = u(15, 50)
        for s in "lr":
            pose[s + "_hip_flex"], pose[s + "_knee"] = u(50, 110), u(70, 140)
            pose[s + "_hip_abd"] = u(0, 25)
            pose[s + "_arm_flex"], pose[s + "_elbow"] = u(0, 80), u(20, 110)
    elif kind == "free":
        pose["bend"] = u(-15, 45)
        for s in "lr":
            pose[s + "_arm_flex"], pose[s + "_arm_abd"], pose[s + "_elbow"] = u(-45, 170), u(0, 150), u(0, 140)
            pose[s + "_hip_flex"], pose[s + "_hip_abd"], pose[s + "_knee"] = u(-25, 95), u(0, 40), u(0, 120)
    # Facing: mostly towards the camera, some backs, some profiles.
    r = rng.random()
    if plain:
        pose["yaw"] = u(-40, 40) if r < 0.7 else u(140, 220)
        pose["roll"] = u(-10, 10)
        return pose
    yaw = u(-45, 45) if r < 0.5 else (u(135, 225) if r < 0.7 else u(45, 135) * (1 if rng.random() < 0.5 else -1))
    pose["yaw"] = yaw
    pose["roll"] = u(-12, 12) if rng.random() < 0.85 else u(-60, 60)
    return pose


def figure_points(pose: dict) -> np.ndarray:
    """(len(POINTS), 3) body-frame points of a posed figure 1 unit tall, pelvis at 0."""
    pts = np.zeros((len(POINTS), 3))
    torso = rot_y(pose["twist"]) @ rot_z(pose["side"]) @ rot_x(pose["bend"])
    pts[P["thorax"]] = torso @ [0, TORSO, 0]
    pts[P["chest_front"]] = pts[P["thorax"]] + torso @ [0, -0.04, CHEST_DEPTH]
    pts[P["belly_front"]] = torso @ [0, 0.04, CHEST_DEPTH]
    head_rot = torso @ rot_y(pose["head_yaw"]) @ rot_x(-pose["head_pitch"]) @ rot_z(pose["head_roll"])
    pts[P["neck"]] = pts[P["thorax"]] + torso @ [0, NECK, 0]
    head = pts[P["neck"]] + head_rot @ [0, HEAD_R * 0.95, 0]
    pts[P["head"]] = head
    pts[P["head_top"]] = head + head_rot @ [0, HEAD_R, 0]
    pts[P["nose"]] = head + HEAD_R * (head_rot @ [0, -0.2, 1.02])
    for s, sx in (("l", 1.0), ("r", -1.0)):
        pts[P[s + "_eye"]] = head + HEAD_R * (head_rot @ [0.4 * sx, 0.2, 0.9])
        pts[P[s + "_ear"]] = head + HEAD_R * (head_rot @ [0.98 * sx, 0.0, 0.05])
        sho = pts[P["thorax"]] + torso @ [SHOULDER_HALF * sx, 0, 0]
        pts[P[s + "_sho"]] = sho
        arm = torso @ rot_z(sx * pose[s + "_arm_abd"]) @ rot_x(-pose[s + "_arm_flex"])
        elb = sho + UPPER_ARM * (arm @ DOWN)
        fore = arm @ rot_x(-pose[s + "_elbow"]) @ DOWN
        wri = elb + FOREARM * fore
        pts[P[s + "_elb"]], pts[P[s + "_wri"]] = elb, wri
        pts[P[s + "_hand"]] = wri + 0.055 * fore
        hip = np.array([HIP_HALF * sx, 0.0, 0.0])
        leg = rot_z(sx * pose[s + "_hip_abd"]) @ rot_x(-pose[s + "_hip_flex"])
        knee = hip + THIGH * (leg @ DOWN)
        shin = leg @ rot_x(pose[s + "_knee"])
        ank = knee + SHIN * (shin @ DOWN)
        pts[P[s + "_hip"]], pts[P[s + "_knee"]], pts[P[s + "_ankle"]] = hip, knee, ank
        pts[P[s + "_toe"]] = ank + shin @ [0, -0.025, 0.085]
    # Stand the figure so that its ankles-to-head-top span is 1 when upright.
    return pts - pts[P["pelvis"]]


def project(points: np.ndarray, pose: dict, height_px: float, pelvis_xy) -> tuple:
    """Body-frame points -> image (x, y) pixels and depth towards the camera (in figure heights).

    Orthographic: the camera looks at the figure's front when yaw = 0, so the
    person's left appears on the image's right.
    """
    world = points @ rot_y(pose["yaw"]).T
    c, s = np.cos(pose["roll"]), np.sin(pose["roll"])
    x = world[:, 0] * c - world[:, 1] * s
    y = world[:, 0] * s + world[:, 1] * c
    xy = np.stack([pelvis_xy[0] + height_px * x, pelvis_xy[1] - height_px * y], axis=1)
    return xy, world[:, 2]


@dataclass
class Person:
    xy: np.ndarray  # (len(POINTS), 2) image pixels, 0-based, pixel centres at integers
    depth: np.ndarray  # (len(POINTS),) towards the camera, figure heights
    height: float  # pixels
    pose: dict
    colours: dict
    face_dir: np.ndarray  # (3,) head forward in camera coordinates
    mask: np.ndarray | None = None
    coco: np.ndarray = field(default_factory=lambda: np.zeros((17, 3)))
    mpii: np.ndarray = field(default_factory=lambda: np.zeros((16, 2)))
    mpii_vis: np.ndarray = field(default_factory=lambda: np.zeros(16, np.int64))
    head_box: np.ndarray = field(default_factory=lambda: np.zeros((2, 2)))  # [[x1, y1], [x2, y2]]
    bbox: tuple = (0.0, 0.0, 0.0, 0.0)
    area: int = 0
    polygons: list = field(default_factory=list)


_SKIN = np.array([[255, 220, 185], [234, 192, 150], [200, 150, 110], [160, 110, 75],
                  [115, 75, 50], [90, 60, 40]], np.float64)
_HAIR = np.array([[30, 25, 20], [70, 45, 25], [120, 80, 40], [200, 170, 100], [140, 140, 140],
                  [150, 50, 20]], np.float64)


def random_colour(rng, lo=30, hi=235):
    return rng.uniform(lo, hi, 3)


def _far_colour(rng, avoid, min_dist=140.0):
    for _ in range(20):
        c = random_colour(rng, 0, 255)
        if np.linalg.norm(c - avoid) >= min_dist:
            return c
    return 255.0 - avoid


def person_colours(rng):
    shirt = random_colour(rng)
    trousers = random_colour(rng)
    return {"skin": _SKIN[rng.integers(len(_SKIN))] + rng.uniform(-12, 12, 3),
            "hair": _HAIR[rng.integers(len(_HAIR))] + rng.uniform(-10, 10, 3),
            "shirt": shirt, "sleeve": shirt if rng.random() < 0.6 else random_colour(rng),
            "trousers": trousers, "shoes": random_colour(rng, 10, 120),
            "joint": _far_colour(rng, (shirt + trousers) / 2),
            "placket": _far_colour(rng, shirt, 100.0)}
