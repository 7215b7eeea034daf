"""What an evaluation will read, checked in seconds before a training run starts.

A training run evaluates long after it starts; a missing gt_valid.mat, a detection file
with a bad entry or an annotation without a field pycocotools reads would otherwise
stop it there.  ``check(config)`` reads the same files the evaluation reads, through the
same readers, and raises a DataError naming the file, the record (as the file numbers
it) and the field.
"""
from __future__ import annotations

import math

from data_pipeline import coco, keypoint_sets, mpii
from data_pipeline.records import DataError, load_json, split_names
from hrgan_jax import evaluation
from hrgan_jax.evaluation import coco as coco_eval, mpii as mpii_eval

# The fields pycocotools' COCO and COCOeval('keypoints') read from every ground-truth
# annotation (COCOeval._prepare, computeOks, evaluateImg).
COCO_EVAL_FIELDS = ("id", "image_id", "category_id", "keypoints", "num_keypoints", "area",
                    "iscrowd", "bbox")


def metric_names(dataset: str) -> tuple[str, ...]:
    """The names an evaluation of ``dataset`` returns."""
    return coco_eval.STATS_NAMES if dataset == "coco" else mpii_eval.COLUMNS


def check(config) -> None:
    """Raise DataError unless the evaluation of ``config`` can read everything it needs."""
    data = config.data
    metric = evaluation.best_metric(config)
    if metric not in metric_names(data.name):
        raise DataError(f"config.checkpoint.best_metric = {metric!r} is not a metric of the "
                        f"{data.name} evaluation: choose one of {', '.join(metric_names(data.name))}")
    if data.name == "mpii" and int(config.eval.max_images) > 0:
        raise DataError(f"config.eval.max_images = {config.eval.max_images}: MPII PCKh needs "
                        f"the whole validation set; set --config.eval.max_images=0")
    if not data.root:
        raise DataError("config.data.root is empty: set --config.data.root to the dataset directory")
    split = split_names(data)[1]
    num_records = None
    if data.source == "files":  # the readers check every record, box and image file
        from data_pipeline import pipeline  # TensorFlow (the readers live with tf.data): only for files
        records = pipeline.read_records(data, split,
                                        num_joints=keypoint_sets.of_config(data).num_joints,
                                        training=False)
        num_records = len(records)
        if not num_records:
            raise DataError(f"{records.source}: nothing to evaluate in split {split!r}")
    if data.name == "coco":
        check_coco_annotations(coco.annotation_file(data.root, split),
                               int(data.get("category_id", 1)))
    else:
        mpii_eval.check_ground_truth(mpii.gt_file(data.root), num_records)


def _number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def check_coco_annotations(path: str, category_id: int = 1) -> None:
    """Every field pycocotools' keypoint evaluation reads, in every annotation, and the
    evaluated category (config.data.category_id, 1 = person) among the categories."""
    ann = load_json(path)
    if not isinstance(ann, dict):
        raise DataError(f"{path}: not a COCO annotation file (a JSON object)")
    for key in ("images", "annotations", "categories"):
        if not isinstance(ann.get(key), list):
            raise DataError(f"{path}: '{key}' must be a list (pycocotools' evaluation reads it)")
    keypoint_sets.category(ann["categories"], category_id, path)
    for i, im in enumerate(ann["images"]):
        if not isinstance(im, dict) or "id" not in im:
            raise DataError(f"{path}: images[{i}]: needs an 'id'")
    for i, a in enumerate(ann["annotations"]):
        where = f"{path}: annotations[{i}] (id {a.get('id', '?') if isinstance(a, dict) else '?'})"
        if not isinstance(a, dict):
            raise DataError(f"{where}: not an object")
        missing = [k for k in COCO_EVAL_FIELDS if k not in a]
        if missing:
            raise DataError(f"{where}: no {', '.join(repr(k) for k in missing)}: the COCO "
                            f"keypoint evaluation (pycocotools) reads {', '.join(COCO_EVAL_FIELDS)}")
        for k in ("num_keypoints", "area", "iscrowd"):
            if not _number(a[k]):
                raise DataError(f"{where}: '{k}' must be a number, got {a[k]!r}")
        if not (isinstance(a["bbox"], list) and len(a["bbox"]) == 4 and all(map(_number, a["bbox"]))):
            raise DataError(f"{where}: 'bbox' must be [x, y, w, h], got {a['bbox']!r}")
        if not (isinstance(a["keypoints"], list) and all(map(_number, a["keypoints"]))):
            raise DataError(f"{where}: 'keypoints' must be a list of numbers")
