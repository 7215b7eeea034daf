"""COCO keypoints in the HRNet layout -> per-person Records.

    ROOT/annotations/person_keypoints_{train2017,val2017}.json
    ROOT/images/{train2017,val2017}/*.jpg        (or ROOT/{train2017,val2017}/*.jpg)
    ROOT/person_detection_results/COCO_val2017_detections_AP_H_56_person.json

Ground truth (training, and evaluation with use_gt_boxes): the annotations of one
category (config.data.category_id, 1 = person); crowd annotations and people with no
labelled keypoint are skipped, boxes are clipped to the image and kept if x2 >= x1,
y2 >= y1 and area > 0 (the official rules), then box -> centre/scale with the input's
aspect ratio and padding 1.25.  Detections: that category with score >= threshold;
every joint counts as visible.  The number of joints is the keypoint set's
(data_pipeline/keypoint_sets.py); a file whose category has another is refused up front.
"""
from __future__ import annotations

import collections
import math
import os

import numpy as np
from absl import logging

from data_pipeline.affine import box_to_center_scale, clip_box
from data_pipeline.records import BadRecords, DataError, Records, list_images, load_json

DEFAULT_DETECTIONS = os.path.join("person_detection_results",
                                  "COCO_val2017_detections_AP_H_56_person.json")


def annotation_file(root: str, split: str) -> str:
    return os.path.join(root, "annotations", f"person_keypoints_{split}.json")


def image_dir(root: str, split: str) -> str:
    """ROOT/images/<split>, or ROOT/<split> when only that exists."""
    for d in (os.path.join(root, "images", split), os.path.join(root, split)):
        if os.path.isdir(d):
            return d
    raise DataError(f"no image directory for split {split!r}: neither "
                    f"{os.path.join(root, 'images', split)} nor {os.path.join(root, split)} exists")


def _images(ann: dict, path: str, bad: BadRecords) -> dict[int, dict]:
    images = {}
    if not isinstance(ann, dict) or not isinstance(ann.get("images"), list) \
            or not isinstance(ann.get("annotations"), list):
        raise DataError(f"{path}: not a COCO annotation file (needs 'images' and 'annotations' lists)")
    for i, im in enumerate(ann["images"]):
        try:
            images[int(im["id"])] = {"file_name": str(im["file_name"]),
                                     "width": int(im["width"]), "height": int(im["height"])}
        except (KeyError, TypeError, ValueError) as e:
            bad(f"{path}: images[{i}]: missing or invalid field ({e!r}); needs id, file_name, "
                f"width, height")
    return images


def _number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _finite_box(box) -> bool:
    return isinstance(box, (list, tuple)) and len(box) == 4 and all(map(_number, box))


def detection(det, where: str, category_id: int = 1
              ) -> tuple[float, tuple[float, float, float, float]] | None:
    """(score, (x, y, w, h)) of one entry of a COCO results-format detection file, or None
    when it is of another category than ``category_id`` (1, person).  The one set of rules
    for such files, in every mode: a missing category_id means 1, a missing score 1; a score
    must be a finite number and bbox four finite numbers with w > 0 and h > 0.  A bad
    entry raises DataError naming ``where`` and the field."""
    if not isinstance(det, dict):
        raise DataError(f"{where}: not an object (a detection is {{image_id, category_id, bbox, score}})")
    if det.get("category_id", 1) != category_id:
        return None
    score = det.get("score", 1.0)
    if not _number(score):
        raise DataError(f"{where}: 'score' must be a number, got {score!r}")
    box = det.get("bbox")
    if not _finite_box(box) or box[2] <= 0 or box[3] <= 0:
        raise DataError(f"{where}: 'bbox' must be [x, y, w, h], four numbers with w > 0 and "
                        f"h > 0, got {box!r}")
    return float(score), tuple(float(v) for v in box)


def check_box_in_image(box, width: int, height: int, where: str) -> None:
    """DataError when a detection box lies wholly outside its image (width x height):
    it would crop nothing but the zero border."""
    x, y, w, h = box
    if x >= width or y >= height or x + w <= 0 or y + h <= 0:
        raise DataError(f"{where}: 'bbox' {list(box)} lies outside its image "
                        f"({width}x{height}): is it the right image?")


def check_category(ann: dict, path: str, num_joints: int, category_id: int = 1) -> None:
    """A DataError, before any record is read, when the file cannot give people of
    ``num_joints`` joints in category ``category_id``: its categories entry lists another
    number of keypoints, no annotation is of that category (naming the ones there are),
    or every annotation of it has another number of keypoints.  Each names the file and
    the fix."""
    cats = {c.get("id"): c for c in ann.get("categories") or [] if isinstance(c, dict)}
    objs = [a for a in ann["annotations"] if isinstance(a, dict)]
    mine = [a for a in objs if a.get("category_id", 1) == category_id]
    if not mine and objs:
        counts = collections.Counter(a.get("category_id", 1) for a in objs)
        other, n = counts.most_common(1)[0]
        named = ", ".join(f"{c} ({cats.get(c, {}).get('name', '?')!r}, {k} annotations)"
                          for c, k in counts.most_common())
        raise DataError(f"{path}: no annotation is of category {category_id} "
                        f"(config.data.category_id): all {len(objs)} were skipped, being of "
                        f"category {named}: set --config.data.category_id={other}")
    names = cats.get(category_id, {}).get("keypoints")
    fix = (f"train on the file's own keypoints with --config.data.keypoints={path} "
           f"(and --config.model.num_joints=")
    if isinstance(names, list) and len(names) != num_joints:
        raise DataError(f"{path}: category {category_id} "
                        f"({cats[category_id].get('name', '?')!r}) has {len(names)} keypoints, "
                        f"the configured keypoint set {num_joints}: {fix}{len(names)})")
    lengths = collections.Counter(len(a["keypoints"]) // 3 for a in mine
                                  if isinstance(a.get("keypoints"), list))
    if lengths and num_joints not in lengths:
        found = lengths.most_common(1)[0][0]
        raise DataError(f"{path}: its annotations of category {category_id} have {found} "
                        f"keypoints each, the configured keypoint set {num_joints}: "
                        f"{fix}{found}), after adding the joint names to its categories "
                        f"entry, or give a keypoints file)")


def read_ground_truth(root: str, split: str, *, num_joints: int = 17, aspect_ratio: float = 0.75,
                      skip_bad: bool = False, category_id: int = 1) -> Records:
    """People of category ``category_id`` with labelled keypoints, ground-truth boxes;
    score 1.  A split that yields nobody is a DataError counting what was skipped."""
    path = annotation_file(root, split)
    ann = load_json(path)
    bad = BadRecords(skip_bad, path)
    images = _images(ann, path, bad)
    check_category(ann, path, num_joints, category_id)
    directory = image_dir(root, split)
    present = list_images(directory)
    rows, dropped = [], 0
    skipped = collections.Counter()
    for i, obj in enumerate(ann["annotations"]):
        origin = f"annotations[{i}] (id {obj.get('id') if isinstance(obj, dict) else '?'})"
        where = f"{path}: {origin}"
        if not isinstance(obj, dict):
            bad(f"{where}: not an object")
            continue
        im = images.get(obj.get("image_id"))
        if im is None:
            bad(f"{where}: refers to image_id {obj.get('image_id')!r}, which is not in 'images'")
            continue
        if obj.get("category_id", 1) != category_id:
            skipped["of another category"] += 1
            continue
        if obj.get("iscrowd", 0):
            skipped["crowd"] += 1
            continue
        kps = obj.get("keypoints")
        if not isinstance(kps, list) or len(kps) != 3 * num_joints or not all(
                isinstance(v, (int, float)) and math.isfinite(v) for v in kps):
            n = len(kps) if isinstance(kps, list) else kps
            bad(f"{where}: 'keypoints' must be {3 * num_joints} finite numbers "
                f"({num_joints} joints x (x, y, v)), got {n if not isinstance(kps, list) else f'{n} values'}")
            continue
        if max(kps) == 0:
            skipped["with no labelled keypoint"] += 1
            continue  # the official reader skips the person
        box = obj.get("bbox")
        if not _finite_box(box) or box[2] <= 0 or box[3] <= 0:
            bad(f"{where}: 'bbox' must be [x, y, w, h] with w > 0 and h > 0, got {box!r}")
            continue
        clean = clip_box(box, im["width"], im["height"])
        if clean is None or not obj.get("area", 1) > 0:
            dropped += 1  # the official clipping rule drops it: outside the image
            continue
        if im["file_name"] not in present:
            bad(f"{where}: image {os.path.join(directory, im['file_name'])} does not exist")
            continue
        k = np.asarray(kps, np.float32).reshape(num_joints, 3)
        center, scale = box_to_center_scale(clean, aspect_ratio)
        rows.append({"image_path": os.path.join(directory, im["file_name"]),
                     "image_id": obj["image_id"], "center": center, "scale": scale,
                     "joints": k[:, :2], "joints_vis": np.minimum(k[:, 2], 1.0), "score": 1.0,
                     "origin": origin})
    if dropped:
        logging.info("%s: %d box(es) outside their image dropped by the official clipping rule",
                     path, dropped)
    bad.summary()
    if not rows:
        skipped.update({"bad (config.data.skip_bad_records)": bad.count,
                        "outside their image": dropped})
        why = ", ".join(f"{n} {what}" for what, n in skipped.items() if n) or "none there"
        raise DataError(f"{path}: no person of category {category_id} to read: of "
                        f"{len(ann['annotations'])} annotations, skipped {why}")
    logging.info("%s: %d people", path, len(rows))
    return Records.from_rows(rows, num_joints, path)


def read_detections(root: str, split: str, *, detection_file: str = "", num_joints: int = 17,
                    aspect_ratio: float = 0.75, image_threshold: float = 0.0,
                    skip_bad: bool = False, category_id: int = 1) -> Records:
    """Detector boxes (COCO results format): category ``category_id``, score >= image_threshold."""
    ann_path = annotation_file(root, split)
    images = _images(load_json(ann_path), ann_path, BadRecords(skip_bad, ann_path))
    path = detection_file or os.path.join(root, DEFAULT_DETECTIONS)
    if not os.path.isfile(path):
        raise DataError(f"{path}: detection file not found (config.data.detection_file; '' = "
                        f"ROOT/{DEFAULT_DETECTIONS}); or evaluate with ground-truth boxes: "
                        f"--config.data.use_gt_boxes=true")
    dets = load_json(path)
    if not isinstance(dets, list):
        raise DataError(f"{path}: a COCO results file is a list of {{image_id, category_id, "
                        f"bbox, score}}, got {type(dets).__name__}")
    bad = BadRecords(skip_bad, path)
    directory = image_dir(root, split)
    present = list_images(directory)
    rows = []
    for i, det in enumerate(dets):
        where = f"{path}: [{i}]"
        try:
            person = detection(det, where, category_id)
        except DataError as e:
            bad(str(e))
            continue
        if person is None:
            continue
        score, box = person
        if score < image_threshold:
            continue
        im = images.get(det.get("image_id"))
        if im is None:
            bad(f"{where}: refers to image_id {det.get('image_id')!r}, which is not in {ann_path}")
            continue
        try:
            check_box_in_image(box, im["width"], im["height"], where)
        except DataError as e:
            bad(str(e))
            continue
        if im["file_name"] not in present:
            bad(f"{where}: image {os.path.join(directory, im['file_name'])} does not exist")
            continue
        center, scale = box_to_center_scale(box, aspect_ratio)
        rows.append({"image_path": os.path.join(directory, im["file_name"]),
                     "image_id": det["image_id"], "center": center, "scale": scale,
                     "joints": np.zeros((num_joints, 2), np.float32),
                     "joints_vis": np.ones((num_joints,), np.float32), "score": score,
                     "origin": f"[{i}]"})
    bad.summary()
    logging.info("%s: %d person boxes with score >= %g", path, len(rows), image_threshold)
    return Records.from_rows(rows, num_joints, path)
