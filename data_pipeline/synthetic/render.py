"""Drawing figures into scenes: the canvas, body parts in painter's order, an id buffer
of which part owns each pixel, backgrounds, occluders, and the visibility it gives."""
from __future__ import annotations

import cv2
import numpy as np

from data_pipeline.synthetic.figures import (
    CHEST_DEPTH, COCO_FROM_POINTS, HEAD_R, MPII_FROM_POINTS, POINTS, TORSO_ROUND, P, Person,
    figure_points, person_colours, project, random_colour, rot_y, sample_pose)

# Part codes in the id buffer: COCO keypoint k owns code k (its disc or face mark).
TORSO_CODE, NECK_CODE, HEAD_CODE = 20, 21, 22
LIMB_CODES = {"l_uarm": 23, "r_uarm": 24, "l_farm": 25, "r_farm": 26, "l_hand": 27,
              "r_hand": 28, "l_thigh": 29, "r_thigh": 30, "l_shin": 31, "r_shin": 32,
              "l_foot": 33, "r_foot": 34}
# A body keypoint is visible when the pixel under it belongs to its disc or a limb that ends there.
OWNERS = {5: ("l_uarm",), 6: ("r_uarm",), 7: ("l_uarm", "l_farm"), 8: ("r_uarm", "r_farm"),
          9: ("l_farm", "l_hand"), 10: ("r_farm", "r_hand"), 11: ("l_thigh",),
          12: ("r_thigh",), 13: ("l_thigh", "l_shin"), 14: ("r_thigh", "r_shin"),
          15: ("l_shin", "l_foot"), 16: ("r_shin", "r_foot")}
CODES_PER_PERSON = 64
OCCLUDER_ID = 1


# ---- drawing ------------------------------------------------------------------------
_SHIFT = 4  # cv2 fractional bits: 1/16 px positions
_ONE = 1 << _SHIFT


def _fx(p):
    return (int(round(p[0] * _ONE)), int(round(p[1] * _ONE)))


class Canvas:
    """The RGB image, its id buffer and the current person's amodal mask, drawn together."""

    def __init__(self, image: np.ndarray):
        self.image = image
        self.ids = np.zeros(image.shape[:2], np.uint16)
        self.mask = None

    def _each(self, fn, colour, code):
        fn(self.image, tuple(float(c) for c in np.clip(colour, 0, 255)), cv2.LINE_AA)
        fn(self.ids, int(code), cv2.LINE_8)
        if self.mask is not None:
            fn(self.mask, 1, cv2.LINE_8)

    def disc(self, c, r, colour, code):
        r = max(r, 1.0)
        self._each(lambda im, col, lt: cv2.circle(im, _fx(c), int(round(r * _ONE)), col, -1, lt, _SHIFT),
                   colour, code)

    def polygon(self, pts, colour, code):
        pts = np.round(np.asarray(pts) * _ONE).astype(np.int32)
        self._each(lambda im, col, lt: cv2.fillConvexPoly(im, pts, col, lt, _SHIFT), colour, code)

    def ellipse(self, c, axes, angle_deg, colour, code):
        axes = (int(round(max(axes[0], 1.0) * _ONE)), int(round(max(axes[1], 1.0) * _ONE)))
        self._each(lambda im, col, lt: cv2.ellipse(im, _fx(c), axes, float(angle_deg), 0, 360, col, -1, lt,
                                                   _SHIFT), colour, code)

    def limb(self, p0, p1, w0, w1, colour, code, outline=True):
        """A tapered stroke with round ends; widths in pixels; a darker rim when outline."""
        p0, p1 = np.asarray(p0, float), np.asarray(p1, float)
        if outline:
            self._capsule(p0, p1, w0 + 2.0, w1 + 2.0, np.asarray(colour) * 0.55, code)
        self._capsule(p0, p1, w0, w1, colour, code)

    def _capsule(self, p0, p1, w0, w1, colour, code):
        d = p1 - p0
        n = np.array([-d[1], d[0]]) / max(np.hypot(*d), 1e-6)
        self.polygon([p0 + n * w0 / 2, p1 + n * w1 / 2, p1 - n * w1 / 2, p0 - n * w0 / 2], colour, code)
        self.disc(p0, w0 / 2, colour, code)
        self.disc(p1, w1 / 2, colour, code)


def _shade(colour, depth):
    """Nearer parts lighter, farther darker: a depth cue that survives a mirror flip."""
    return np.asarray(colour) * float(np.clip(1.0 + 2.5 * depth, 0.6, 1.25))


def _hull(points, radius, n=10):
    a = np.linspace(0, 2 * np.pi, n, endpoint=False)
    circle = np.stack([np.cos(a), np.sin(a)], 1) * radius
    cloud = (np.asarray(points)[:, None, :] + circle[None]).reshape(-1, 2).astype(np.float32)
    return cv2.convexHull(cloud)[:, 0, :].astype(np.float64)


def _draw_head(cv: Canvas, person: Person, base: int):
    xy, dep, h, col = person.xy, person.depth, person.height, person.colours
    c, r = xy[P["head"]], HEAD_R * h
    f = person.face_dir  # head forward in camera coordinates (x right, y up, z to camera)
    rel = lambda name: (dep[P[name]] - dep[P["head"]]) / HEAD_R  # noqa: E731  in [-1, 1]
    ear_r = max(0.28 * r, 1.2)

    def ear(name, code):
        cv.ellipse(xy[P[name]], (ear_r * 0.8, ear_r * 1.15), 0.0, col["skin"] * 0.85, base + code)

    for name, code in (("l_ear", 3), ("r_ear", 4)):
        if -0.35 < rel(name) < 0:
            ear(name, code)
    cv.disc(c, r + 1.0, col["skin"] * 0.55, base + HEAD_CODE)
    cv.disc(c, r, col["skin"], base + HEAD_CODE)
    # Hair: a disc clipped to the head, covering the back of the head.
    # Seen from the front it is a cap above the eyes, from the side the back half, from
    # behind all of the head.
    up = (xy[P["head_top"]] - c) / r
    front, back = max(f[2], 0.0), max(-f[2], 0.0)
    hair_c = c + r * (-0.6 * np.array([f[0], -f[1]]) + up * (0.3 * (1 - back) + 0.75 * front))
    hair_r = r * (0.9 - 0.18 * front + 0.6 * back)
    x0, y0 = int(np.floor(c[0] - r - 2)), int(np.floor(c[1] - r - 2))
    x1, y1 = int(np.ceil(c[0] + r + 3)), int(np.ceil(c[1] + r + 3))
    H, W = cv.image.shape[:2]
    if x1 > 0 and y1 > 0 and x0 < W and y0 < H:
        sx0, sy0, sx1, sy1 = max(x0, 0), max(y0, 0), min(x1, W), min(y1, H)
        head_mask = np.zeros((y1 - y0, x1 - x0), np.uint8)
        hair_mask = np.zeros_like(head_mask)
        off = np.array([x0, y0], float)
        cv2.circle(head_mask, _fx(c - off), int(round((r - 0.5) * _ONE)), 1, -1, cv2.LINE_8, _SHIFT)
        cv2.circle(hair_mask, _fx(hair_c - off), int(round(hair_r * _ONE)), 1, -1, cv2.LINE_8, _SHIFT)
        m = (head_mask & hair_mask)[sy0 - y0:sy1 - y0, sx0 - x0:sx1 - x0].astype(bool)
        cv.image[sy0:sy1, sx0:sx1][m] = np.clip(col["hair"], 0, 255).astype(np.uint8)
    for name, code in (("l_ear", 3), ("r_ear", 4)):
        if rel(name) >= 0:
            ear(name, code)
    for name, code in (("l_eye", 1), ("r_eye", 2)):
        if rel(name) > 0.1:
            er = max(0.2 * r, 1.2)
            cv.ellipse(xy[P[name]], (er * (0.4 + 0.6 * rel(name)), er * 0.8), 0.0, (250, 250, 245), base + code)
            cv.disc(xy[P[name]], max(0.5 * er, 1.0), (20, 20, 30), base + code)
    if rel("nose") > 0.1:
        cv.disc(xy[P["nose"]], max(0.17 * r, 1.2), col["skin"] * 0.6 + np.array([60, 0, 0]), base + 0)


def _primitives(person: Person):
    """(depth key, draw function) pairs of one person; drawn in increasing key."""
    xy, dep, h, col = person.xy, person.depth, person.height, person.colours
    prims = []

    def key(*names):
        return float(np.mean([dep[P[n]] for n in names]))

    def limb(a, b, w0, w1, colour, code):
        k = key(a, b)
        prims.append((k, lambda cv, base: cv.limb(xy[P[a]], xy[P[b]], w0 * h, w1 * h, _shade(colour, k),
                                                  base + code)))
        return k

    limb_keys = {}
    for s in "lr":
        limb_keys[s + "_uarm"] = limb(s + "_sho", s + "_elb", 0.06, 0.048, col["sleeve"], LIMB_CODES[s + "_uarm"])
        limb_keys[s + "_farm"] = limb(s + "_elb", s + "_wri", 0.046, 0.036, col["skin"], LIMB_CODES[s + "_farm"])
        limb_keys[s + "_hand"] = limb(s + "_wri", s + "_hand", 0.04, 0.03, col["skin"] * 0.92, LIMB_CODES[s + "_hand"])
        limb_keys[s + "_thigh"] = limb(s + "_hip", s + "_knee", 0.085, 0.065, col["trousers"], LIMB_CODES[s + "_thigh"])
        limb_keys[s + "_shin"] = limb(s + "_knee", s + "_ankle", 0.062, 0.046, col["trousers"], LIMB_CODES[s + "_shin"])
        limb_keys[s + "_foot"] = limb(s + "_ankle", s + "_toe", 0.045, 0.035, col["shoes"], LIMB_CODES[s + "_foot"])
    neck_key = limb("thorax", "neck", 0.05, 0.045, col["skin"] * 0.9, NECK_CODE)

    # Torso: the hull of shoulders, hips and the chest/belly front and back.
    centre = key("thorax", "pelvis")
    forward = xy[P["chest_front"]] - xy[P["thorax"]], xy[P["belly_front"]] - xy[P["pelvis"]]
    torso_pts = [xy[P[n]] for n in ("l_sho", "r_sho", "l_hip", "r_hip", "thorax", "pelvis")]
    torso_pts += [xy[P["chest_front"]], xy[P["belly_front"]],
                  xy[P["thorax"]] - forward[0], xy[P["pelvis"]] - forward[1]]
    hull = _hull(torso_pts, TORSO_ROUND * h)
    front_visible = (dep[P["chest_front"]] - dep[P["thorax"]]) / CHEST_DEPTH

    def torso(cv, base):
        cv.polygon(_hull(torso_pts, TORSO_ROUND * h + 1.0), _shade(col["shirt"], 0) * 0.55, base + TORSO_CODE)
        cv.polygon(hull, _shade(col["shirt"], 0), base + TORSO_CODE)
        hip_band = [xy[P[n]] for n in ("l_hip", "r_hip", "pelvis", "belly_front")]
        cv.polygon(_hull(hip_band, TORSO_ROUND * h), _shade(col["trousers"], 0), base + TORSO_CODE)
        if front_visible > 0.25:  # the shirt's front: a placket from the collar down
            a, b = xy[P["chest_front"]], xy[P["belly_front"]] + 0.3 * (xy[P["chest_front"]] - xy[P["belly_front"]])
            w = max(0.02 * h * front_visible, 1.5)
            cv.limb(a, b, w, w, col["placket"], base + TORSO_CODE, outline=False)
            cv.disc(a, max(0.03 * h * front_visible, 1.5), col["skin"], base + TORSO_CODE)
    prims.append((centre - 0.03, torso))

    # Joint discs go right after the limbs that meet there, so those never hide them.
    for k in range(5, 17):
        name = POINTS[COCO_FROM_POINTS[k]]
        kk = max(dep[P[name]], *(limb_keys[o] for o in OWNERS[k])) + 1e-4
        prims.append((kk, lambda cv, base, name=name, k=k: cv.disc(
            xy[P[name]], max(0.024 * h, 2.0), _shade(col["joint"], dep[P[name]]), base + k)))
    # The head covers its own neck whichever way it turns.
    prims.append((max(dep[P["head"]], neck_key + 1e-4), lambda cv, base: _draw_head(cv, person, base)))
    return prims


def background(rng, width, height, plain: bool = False) -> np.ndarray:
    """Textured clutter: blotchy colour fields, optional stripes or noise, random shapes.
    plain: the colour field alone."""
    gx, gy = int(rng.integers(2, 7)), int(rng.integers(2, 6))
    field_ = cv2.resize(rng.random((gy, gx)).astype(np.float32), (width, height), interpolation=cv2.INTER_CUBIC)
    a, b = random_colour(rng, 0, 255).astype(np.float32), random_colour(rng, 0, 255).astype(np.float32)
    img = a[None, None] + np.clip(field_, 0, 1)[..., None] * (b - a)[None, None]
    if plain:
        return np.clip(img, 0, 255).astype(np.uint8)
    r = rng.random()
    if r < 0.35:
        yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
        theta, period = rng.uniform(0, np.pi), rng.uniform(6, 60)
        wave = np.sin((xx * np.cos(theta) + yy * np.sin(theta)) * (2 * np.pi / period))
        img += (wave[..., None] * np.float32(rng.uniform(10, 40))) * rng.uniform(0.3, 1.0, 3).astype(np.float32)
    elif r < 0.7:
        g = cv2.resize(rng.standard_normal((height // 4, width // 4)).astype(np.float32), (width, height),
                       interpolation=cv2.INTER_LINEAR)
        img += g[..., None] * np.float32(rng.uniform(5, 25))
    img = np.clip(img, 0, 255).astype(np.uint8)
    for _ in range(int(rng.integers(3, 12))):
        colour = tuple(float(v) for v in random_colour(rng, 0, 255))
        c = (int(rng.integers(0, width)), int(rng.integers(0, height)))
        s = rng.uniform(0.03, 0.3) * min(width, height)
        kind = rng.integers(3)
        if kind == 0:
            cv2.rectangle(img, (int(c[0] - s), int(c[1] - s * rng.uniform(0.3, 2))), (int(c[0] + s), c[1]), colour, -1)
        elif kind == 1:
            cv2.ellipse(img, c, (int(s), int(s * rng.uniform(0.3, 1))), float(rng.uniform(0, 180)), 0, 360, colour, -1,
                        cv2.LINE_AA)
        else:
            d = rng.uniform(-1, 1, 2) * s * 2
            cv2.line(img, c, (int(c[0] + d[0]), int(c[1] + d[1])), colour, int(rng.integers(1, 8)), cv2.LINE_AA)
    return img


def _occluder(cv: Canvas, rng, centre, size):
    colour = random_colour(rng, 0, 255)
    pts_kind = rng.integers(3)
    if pts_kind == 0:  # a rotated box
        w, h, a = size * rng.uniform(0.6, 1.4), size * rng.uniform(0.6, 1.4), rng.uniform(0, np.pi)
        rot = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
        corners = np.array([[-w, -h], [w, -h], [w, h], [-w, h]]) / 2 @ rot.T + centre
        cv.polygon(corners, colour, OCCLUDER_ID)
    elif pts_kind == 1:  # an ellipse
        cv.ellipse(centre, (size * rng.uniform(0.4, 0.8), size * rng.uniform(0.3, 0.7)), rng.uniform(0, 180),
                   colour, OCCLUDER_ID)
    else:  # a blob: the hull of a few random points
        cloud = centre + rng.uniform(-0.6, 0.6, (7, 2)) * size
        cv.polygon(_hull(cloud, size * 0.12, 6), colour, OCCLUDER_ID)


def _place_person(rng, width, height, others, pose, points, height_px, plain=False):
    """Pelvis position: mostly inside the image, sometimes overlapping another person or
    partly outside it (plain: always inside, beside the others).  Returns (xy, depth) of
    the placed figure, or None."""
    xy0, depth = project(points, pose, height_px, (0.0, 0.0))
    lo, hi = xy0.min(0), xy0.max(0)
    for attempt in range(12):
        r = rng.random()
        if plain:
            px = rng.uniform(-lo[0], max(width - hi[0], -lo[0]))
            py = rng.uniform(-lo[1], max(height - hi[1], -lo[1]))
            box = np.array([lo[0] + px, lo[1] + py, hi[0] + px, hi[1] + py])
            if any(box[0] < o.xy[:, 0].max() and o.xy[:, 0].min() < box[2] for o in others):
                continue  # side by side, never overlapping
            return xy0 + [px, py], depth
        if others and r < 0.3:  # stand beside a previous person, overlapping part of them
            o = others[rng.integers(len(others))]
            px = o.xy[P["pelvis"], 0] + rng.choice([-1, 1]) * rng.uniform(0.15, 0.45) * max(o.height, height_px)
            py = o.xy[P["pelvis"], 1] + rng.uniform(-0.15, 0.15) * height_px
        elif r < 0.5:  # partly outside the image
            px = rng.uniform(-lo[0] - 0.3 * (hi[0] - lo[0]), width - hi[0] + 0.3 * (hi[0] - lo[0]))
            py = rng.uniform(-lo[1] - 0.3 * (hi[1] - lo[1]), height - hi[1] + 0.3 * (hi[1] - lo[1]))
        else:
            px = rng.uniform(min(-lo[0], width / 2), max(width - hi[0], width / 2))
            py = rng.uniform(min(-lo[1], height / 2), max(height - hi[1], height / 2))
        xy = xy0 + [px, py]
        coco = xy[list(COCO_FROM_POINTS)]
        inside = (coco[:, 0] >= 0) & (coco[:, 0] <= width - 1) & (coco[:, 1] >= 0) & (coco[:, 1] <= height - 1)
        if inside.sum() >= 8:
            return xy, depth
    return None


SCENES = ("cluttered", "plain")


def render_scene(rng: np.random.Generator, image_size=(640, 480), people=(1, 3),
                 scene: str = "cluttered"):
    """One image and its people.

    scene: "cluttered" (textured backgrounds with shapes, every pose kind and facing,
    overlapping people, people partly outside the image, occluders) or "plain" (a
    smooth colour field, upright people facing towards or away from the camera, side by
    side and inside the image, no occluders: a task a small network learns in minutes).

    Returns (image (H, W, 3) uint8 RGB, [Person]) with each person's `coco` (17, 3)
    [x, y, v] (v 0 not labelled, 1 labelled but hidden, 2 visible), `mpii` (16, 2) and
    `mpii_vis`, 0-based pixel coordinates, and their amodal `mask`, `bbox`, `area`,
    `polygons` and `head_box`.
    """
    if scene not in SCENES:
        raise ValueError(f"scene {scene!r}: choose one of {SCENES}")
    plain = scene == "plain"
    width, height = int(image_size[0]), int(image_size[1])
    image = background(rng, width, height, plain)
    n = int(rng.integers(people[0], people[1] + 1))
    persons: list[Person] = []
    for _ in range(n):
        pose = sample_pose(rng, plain)
        points = figure_points(pose)
        height_px = float(rng.uniform(0.5 if plain else 0.25, 0.85) * height)
        placed = _place_person(rng, width, height, persons, pose, points, height_px, plain)
        if placed is None:
            continue
        xy, depth = placed
        head_rot_fwd = (points[P["nose"]] - points[P["head"]]) @ rot_y(pose["yaw"]).T
        c, s = np.cos(pose["roll"]), np.sin(pose["roll"])
        f = head_rot_fwd / np.linalg.norm(head_rot_fwd)
        face_dir = np.array([f[0] * c - f[1] * s, f[0] * s + f[1] * c, f[2]])
        persons.append(Person(xy=xy, depth=depth, height=height_px, pose=pose, colours=person_colours(rng),
                              face_dir=face_dir))
    # Smaller figures are farther away: draw them first.
    persons.sort(key=lambda q: q.height)
    cv = Canvas(image)
    for i, person in enumerate(persons):
        base = 2 + i * CODES_PER_PERSON
        person.mask = np.zeros((height, width), np.uint8)
        cv.mask = person.mask
        for _, draw in sorted(_primitives(person), key=lambda kd: kd[0]):
            draw(cv, base)
        cv.mask = None
    # Occluders in front of some joints.
    for person in persons:
        if not plain and rng.random() < 0.3:
            j = COCO_FROM_POINTS[int(rng.integers(5, 17))]
            _occluder(cv, rng, person.xy[j] + rng.normal(0, 0.03 * person.height, 2),
                      person.height * rng.uniform(0.08, 0.2))
    for i, person in enumerate(persons):
        _label(person, cv.ids, 2 + i * CODES_PER_PERSON, width, height)
    return image, persons


def _label(person: Person, ids, base, width, height):
    xy, dep = person.xy, person.depth
    coco = np.zeros((17, 3))
    for k in range(17):
        p = xy[COCO_FROM_POINTS[k]]
        if not (0 <= p[0] <= width - 1 and 0 <= p[1] <= height - 1):
            continue
        if k < 5:
            rel = (dep[COCO_FROM_POINTS[k]] - dep[P["head"]]) / HEAD_R
            if rel <= (0.1 if k < 3 else -0.35):  # on the far side of the head: not labelled
                continue
            owners = {base + k}
        else:
            owners = {base + k} | {base + LIMB_CODES[o] for o in OWNERS[k]}
        seen = int(ids[int(round(p[1])), int(round(p[0]))]) in owners
        coco[k] = [p[0], p[1], 2 if seen else 1]
    person.coco = coco
    mp = xy[list(MPII_FROM_POINTS)]
    person.mpii = mp
    person.mpii_vis = ((mp[:, 0] >= 0) & (mp[:, 0] <= width - 1) & (mp[:, 1] >= 0)
                       & (mp[:, 1] <= height - 1)).astype(np.int64)
    c, r = xy[P["head"]], HEAD_R * person.height
    person.head_box = np.array([c - r, c + r])
    ys, xs = np.nonzero(person.mask.any(1))[0], np.nonzero(person.mask.any(0))[0]
    person.bbox = (float(xs[0]), float(ys[0]), float(xs[-1] - xs[0] + 1), float(ys[-1] - ys[0] + 1))
    person.area = int(np.count_nonzero(person.mask))
    contours, _ = cv2.findContours(person.mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    person.polygons = [[float(v) for v in cv2.approxPolyDP(cnt, 1.0, True).reshape(-1)]
                       for cnt in contours if len(cnt) >= 3]
    person.polygons = [poly for poly in person.polygons if len(poly) >= 6]
    person.mask = None
