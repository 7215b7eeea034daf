"""The dataset writers: rendered scenes as COCO- and MPII-format datasets (official layouts)."""
from __future__ import annotations

import json
import multiprocessing
import os
import zlib

import cv2
import numpy as np
import scipy.io

from data_pipeline.joints import COCO, MPII_SHORT_NAMES
from data_pipeline.records import DataError
from data_pipeline.synthetic.figures import COCO_FROM_POINTS, POINTS, figure_point
from data_pipeline.synthetic.render import render_scene

COCO_DETECTION_FILE = "COCO_val2017_detections_AP_H_56_person.json"

# ---- dataset writers ----------------------------------------------------------------
def image_rng(seed: int, dataset: str, split: str, index: int) -> np.random.Generator:
    """The generator of one image: a pure function of (seed, dataset, split, index)."""
    return np.random.default_rng(np.random.SeedSequence(
        [int(seed), zlib.crc32(dataset.encode()), zlib.crc32(split.encode()), int(index)]))


def _r(v, nd=2):
    return float(round(float(v), nd))


def _write_jpeg(path, image):
    if not cv2.imwrite(path, np.ascontiguousarray(image[..., ::-1]), [cv2.IMWRITE_JPEG_QUALITY, 92]):
        raise OSError(f"could not write {path}")


def figure_points_of(kset) -> tuple[int, ...]:
    """The figure point (index in POINTS) of each joint of a keypoint set; a DataError
    naming the set's file and the joint for a name the figures do not have."""
    points = []
    for name in kset.joints:
        k = figure_point(name)
        if k is None:
            raise DataError(f"{kset.source or kset.name}: joint {name!r} is not a point of the "
                            f"synthetic figures: name each joint as COCO or MPII do, or as one "
                            f"of {', '.join(POINTS)}")
        points.append(k)
    return tuple(points)


def _labels(person, points, image_size) -> np.ndarray:
    """(J, 3) [x, y, v] of the figure points ``points``: a COCO joint's label as rendered
    (visibility from the id buffer), any other point labelled visible (2) where it lies
    inside the image and not labelled (0, 0, 0) elsewhere, as the MPII writer labels."""
    width, height = image_size
    out = np.zeros((len(points), 3))
    for j, k in enumerate(points):
        if k in COCO_FROM_POINTS:
            out[j] = person.coco[COCO_FROM_POINTS.index(k)]
            continue
        x, y = person.xy[k]
        if 0 <= x <= width - 1 and 0 <= y <= height - 1:
            out[j] = [x, y, 2]
    return out


def _coco_image(args):
    """Render, write and annotate one COCO image: (image entry, [annotation without ids])."""
    root, split, seed, index, image_id, image_size, people, scene, points, category_id = args
    image, persons = render_scene(image_rng(seed, "coco", split, index), image_size, people, scene)
    _write_jpeg(os.path.join(root, "images", split, f"{image_id:012d}.jpg"), image)
    anns = []
    for q in persons:
        labels = q.coco if points is None else _labels(q, points, image_size)
        num = int(np.count_nonzero(labels[:, 2]))
        if num == 0:
            continue
        kpts = [_r(v) if j < 2 else int(v) for row in labels for j, v in enumerate(row)]
        anns.append({"image_id": image_id, "category_id": category_id, "keypoints": kpts,
                     "num_keypoints": num,
                     "bbox": [_r(v) for v in q.bbox], "area": float(q.area), "iscrowd": 0,
                     "segmentation": [[_r(v, 1) for v in poly] for poly in q.polygons]})
    entry = {"id": image_id, "file_name": f"{image_id:012d}.jpg", "width": int(image_size[0]),
             "height": int(image_size[1])}
    return entry, anns


def _mpii_image(args):
    root, split, seed, index, image_id, image_size, people, scene = args
    image, persons = render_scene(image_rng(seed, "mpii", split, index), image_size, people, scene)
    name = f"{image_id:09d}.jpg"
    _write_jpeg(os.path.join(root, "images", name), image)
    records, head_boxes = [], []
    for q in persons:
        if not q.mpii_vis.any():
            continue
        # MPII's centre/scale: scale = person height / 200; the reader moves the centre
        # down by 15 * scale, so put it that far above the middle of the figure.
        x, y, w, h = q.bbox
        scale = max(w, h) / 200.0
        centre = [x + w / 2, y + h / 2 - 15.0 * scale]
        joints = [[_r(px + 1), _r(py + 1)] if v else [-1.0, -1.0] for (px, py), v in zip(q.mpii, q.mpii_vis)]
        records.append({"image": name, "center": [_r(centre[0] + 1), _r(centre[1] + 1)],
                        "scale": _r(scale, 4), "joints": joints,
                        "joints_vis": [int(v) for v in q.mpii_vis]})
        head_boxes.append([[_r(v + 1) for v in q.head_box[0]], [_r(v + 1) for v in q.head_box[1]]])
    return records, head_boxes


def _map(fn, jobs, workers):
    if workers and workers > 1:
        with multiprocessing.get_context("spawn").Pool(workers) as pool:
            return pool.map(fn, jobs, chunksize=max(1, len(jobs) // (4 * workers)))
    return [fn(job) for job in jobs]


def _dump(path, obj):
    with open(path, "w") as f:
        json.dump(obj, f, separators=(",", ":"))


def write_coco(root, splits=None, seed: int = 0, image_size=(640, 480), people=(1, 3), workers: int = 0,
               scene: str = "cluttered", keypoint_set=None, category_id: int = 1) -> dict:
    """Write a COCO person-keypoints dataset under root; returns {split: {images, people, keypoints}}.

    Image ids run on across the splits in order (1, 2, ...).  The detection file
    holds, for the split named like val2017 (else the last split), one jittered box per
    person scored in (0.5, 1] and a few low-scored false positives.

    keypoint_set: the joints labelled (a KeypointSet whose names the figures have, see
    figures.figure_point; None = COCO's 17), written as the ``categories`` entry of
    id ``category_id`` (its keypoints, skeleton, flip pairs, upper body, sigmas and joint
    weights), which the annotations and detections name.
    """
    points = None if keypoint_set is None else figure_points_of(keypoint_set)
    kset = keypoint_set or COCO
    category = {"id": int(category_id), "name": "person" if keypoint_set is None else kset.name,
             "supercategory": "person", "keypoints": list(kset.joints),
             "skeleton": [[a + 1, b + 1] for a, b in kset.limbs]}
    if keypoint_set is not None:
        category = {"id": int(category_id), **kset.to_json(), "supercategory": "person"}
    splits = dict(splits if splits is not None else {"train2017": 100, "val2017": 20})
    os.makedirs(os.path.join(root, "annotations"), exist_ok=True)
    os.makedirs(os.path.join(root, "person_detection_results"), exist_ok=True)
    summary, next_id = {}, 1
    val_split = next((s for s in splits if s.startswith("val")), list(splits)[-1])
    for split, count in splits.items():
        os.makedirs(os.path.join(root, "images", split), exist_ok=True)
        jobs = [(root, split, seed, i, next_id + i, tuple(image_size), tuple(people), scene,
                 points, int(category_id)) for i in range(count)]
        next_id += count
        results = _map(_coco_image, jobs, workers)
        images, annotations = [], []
        for entry, anns in results:
            images.append(entry)
            for a in anns:
                annotations.append({"id": len(annotations) + 1, **a})
        _dump(os.path.join(root, "annotations", f"person_keypoints_{split}.json"),
              {"info": {"description": f"hrgan-jax synthetic figures, seed {seed}"},
               "images": images, "annotations": annotations, "categories": [category]})
        if split == val_split:
            _dump(os.path.join(root, "person_detection_results", COCO_DETECTION_FILE),
                  _detections(annotations, images, seed, split, int(category_id)))
        summary[split] = {"images": len(images), "people": len(annotations),
                          "keypoints": int(sum(a["num_keypoints"] for a in annotations))}
    return summary


def _detections(annotations, images, seed, split, category_id=1):
    """A person detector's output: every person found with a jittered box, plus some noise."""
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), zlib.crc32(b"detections"),
                                                        zlib.crc32(split.encode())]))
    sizes = {im["id"]: (im["width"], im["height"]) for im in images}
    dets = []
    for a in annotations:
        x, y, w, h = a["bbox"]
        jit = rng.normal(0, 0.05, 4) * [w, h, w, h]
        x1, y1 = max(x + jit[0], 0.0), max(y + jit[1], 0.0)
        x2 = min(x + w + jit[2], sizes[a["image_id"]][0])
        y2 = min(y + h + jit[3], sizes[a["image_id"]][1])
        dets.append({"image_id": a["image_id"], "category_id": category_id,
                     "bbox": [_r(x1), _r(y1), _r(max(x2 - x1, 1.0)), _r(max(y2 - y1, 1.0))],
                     "score": max(_r(1.0 - 0.5 * rng.random(), 4), 0.5001)})
    for im in images:
        for _ in range(int(rng.poisson(0.3))):
            W, H = im["width"], im["height"]
            w, h = rng.uniform(0.05, 0.3) * W, rng.uniform(0.1, 0.6) * H
            x, y = rng.uniform(0, W - w), rng.uniform(0, H - h)
            dets.append({"image_id": im["id"], "category_id": category_id,
                         "bbox": [_r(x), _r(y), _r(w), _r(h)],
                         "score": _r(rng.uniform(0.05, 0.35), 4)})
    dets.sort(key=lambda d: (d["image_id"], -d["score"]))
    return dets


def write_mpii(root, splits=None, seed: int = 0, image_size=(640, 480), people=(1, 3), workers: int = 0,
               scene: str = "cluttered") -> dict:
    """Write an MPII-format dataset (HRNet's json layout) under root; 1-based coordinates.

    annot/{split}.json: [{image, center, scale, joints (16, 2), joints_vis (16,)}] per
    person; for the
    split named like valid (else the last split) also annot/gt_{split}.mat with
    dataset_joints (1, 16) cell of names, jnt_missing (16, N), pos_gt_src (16, 2, N),
    headboxes_src (2, 2, N).  Image names run on across the splits: 000000001.jpg, ...
    """
    splits = dict(splits if splits is not None else {"train": 100, "valid": 20})
    os.makedirs(os.path.join(root, "annot"), exist_ok=True)
    os.makedirs(os.path.join(root, "images"), exist_ok=True)
    summary, next_id = {}, 1
    val_split = next((s for s in splits if s.startswith("val")), list(splits)[-1])
    for split, count in splits.items():
        jobs = [(root, split, seed, i, next_id + i, tuple(image_size), tuple(people), scene)
                for i in range(count)]
        next_id += count
        results = _map(_mpii_image, jobs, workers)
        records = [r for rs, _ in results for r in rs]
        head_boxes = [b for _, bs in results for b in bs]
        _dump(os.path.join(root, "annot", f"{split}.json"), records)
        if split == val_split:
            _write_gt_mat(os.path.join(root, "annot", f"gt_{split}.mat"), records, head_boxes)
        summary[split] = {"images": count, "people": len(records),
                          "keypoints": int(sum(sum(r["joints_vis"]) for r in records))}
    return summary


def _write_gt_mat(path, records, head_boxes):
    n = len(records)
    names = np.empty((1, 16), dtype=object)
    for i, name in enumerate(MPII_SHORT_NAMES):
        names[0, i] = np.array([name])
    pos = np.array([r["joints"] for r in records], np.float64).reshape(n, 16, 2)
    scipy.io.savemat(path, {
        "dataset_joints": names,
        "jnt_missing": (1 - np.array([r["joints_vis"] for r in records], np.float64).reshape(n, 16)).T,
        "pos_gt_src": pos.transpose(1, 2, 0),
        "headboxes_src": np.array(head_boxes, np.float64).reshape(n, 2, 2).transpose(1, 2, 0),
    }, do_compression=False)
