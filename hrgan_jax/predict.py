"""Images (+ person boxes) -> keypoints as COCO results JSON, and pictures with skeletons.

    python launch.py --mode=predict --config=configs/synthetic.py --workdir=RUN \
        --input=DIR_OR_IMAGE [--boxes=DETECTIONS.json] [--out=DIR]

Each person is cropped exactly as evaluation crops it: box -> centre/scale by the
official rule (fit to the input's aspect ratio, x1.25), one affine warp
(cv2.warpAffine, INTER_LINEAR, as the data pipeline) to config.data.image_size, the
generator in eval mode with the flip test (``loader.load_predictor``: JAX with
BatchNorm folded, or an exported ONNX/SavedModel model), peaks and
the inverse affine (``keypoints.to_image_coords``).  Without boxes each image is one
person whose box is the whole image.  With boxes, people are rescored (box score x mean
confident joint score) and, for a keypoint set with OKS sigmas (COCO's, or your own:
config.data.keypoints), OKS-NMS'd as in evaluation; boxes scoring below
config.predict.box_threshold (0.5; the evaluation's config.data.image_threshold is 0.0)
are dropped.  The pictures show each person's box with its score.

Written into the output directory (--out, else the input's directory):
``keypoints.pose.json`` (COCO keypoint results, plus file_name and bbox per person) and
``<image name>.pose.png`` per image.  Files named ``*.pose.*`` are never read as inputs.
"""
from __future__ import annotations

import collections
import dataclasses
import json
import os
from typing import Iterable

import cv2
import numpy as np
from PIL import Image

from data_pipeline import keypoint_sets
from data_pipeline.affine import box_to_center_scale, get_affine_transform
from data_pipeline.coco import check_box_in_image, detection
from data_pipeline.records import DataError
from hrgan_jax import draw as draw_lib
from hrgan_jax import keypoints, loader
from hrgan_jax.evaluation import coco

# What the pipelines' decoder reads (data_pipeline.pipeline.read_image).
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp")
OUTPUT_TAG = ".pose."
JSON_NAME = "keypoints.pose.json"


class PredictError(ValueError):
    """Bad input to predict: the message names the file."""


@dataclasses.dataclass
class Person:
    """One crop to predict: the image it comes from and its box (x, y, w, h), score."""
    image: int  # index into the image list
    box: tuple[float, float, float, float]
    score: float


def list_images(path: str) -> list[str]:
    """An image file, or the image files of a directory (sorted, ``*.pose.*`` skipped)."""
    if os.path.isdir(path):
        names = sorted(n for n in os.listdir(path)
                       if n.lower().endswith(IMAGE_EXTENSIONS) and OUTPUT_TAG not in n)
        if not names:
            raise PredictError(f"{path}: no images ({', '.join(IMAGE_EXTENSIONS)}) in this directory")
        return [os.path.join(path, n) for n in names]
    if not os.path.exists(path):
        raise PredictError(f"{path}: no such file or directory")
    return [path]


def read_image(path: str) -> np.ndarray:
    """uint8 RGB (H, W, 3) decoded as the training and evaluation pipelines decode it
    (``data_pipeline.pipeline.read_image``: by its content, whatever the file is called, a
    16-bit PNG scaled to 8 bits, an image too large refused from its header), then turned
    upright as its EXIF orientation says (a photo from a phone is predicted as it is seen;
    the dataset pipelines, like the official code, ignore EXIF orientation).  A missing,
    truncated, undecodable or oversized file raises PredictError naming it."""
    from data_pipeline import pipeline  # TensorFlow (the pipelines' decoder): only when reading
    if not os.path.isfile(path):
        raise PredictError(f"{path}: no such image file")
    try:
        image = pipeline.read_image(path)
    except DataError as e:
        raise PredictError(str(e)) from None
    return _upright(image, path)


def _upright(image: np.ndarray, path: str) -> np.ndarray:
    """image turned as the file's EXIF orientation tag says (PIL's exif_transpose; only
    the header is read)."""
    try:
        with Image.open(path) as im:
            orientation = im.getexif().get(0x0112, 1)
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError):  # no EXIF to read
        return image
    method = {2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180,
              4: Image.Transpose.FLIP_TOP_BOTTOM, 5: Image.Transpose.TRANSPOSE,
              6: Image.Transpose.ROTATE_270, 7: Image.Transpose.TRANSVERSE,
              8: Image.Transpose.ROTATE_90}.get(orientation)
    return image if method is None else np.asarray(Image.fromarray(image).transpose(method))


def image_id_of(path: str, index: int) -> int:
    """COCO naming (000000397133.jpg -> 397133) when the name is a number, else index + 1."""
    stem = os.path.splitext(os.path.basename(path))[0]
    return int(stem) if stem.isdigit() else index + 1


def read_boxes(boxes_path: str, paths: list[str], threshold: float = 0.0,
               sizes: list[tuple[int, int]] | None = None, category_id: int = 1) -> list[Person]:
    """People from a COCO results-format detection file.

    Each entry is checked by the dataset reader's rules (``data_pipeline.coco.detection``:
    ``bbox`` [x, y, w, h] with w, h > 0, optional numeric ``score`` (1) and
    ``category_id`` (only ``category_id``'s, 1 = person, are used)) and names its image as ``file_name`` (a
    base name among the inputs) or ``image_id`` (matched to the inputs' COCO-style numeric
    names).  An entry naming an image that is not among the inputs, or (with the images'
    (width, height) ``sizes``) a box wholly outside its image, is an error naming both.
    """
    try:
        with open(boxes_path) as f:
            entries = json.load(f)
    except FileNotFoundError:
        raise PredictError(f"{boxes_path}: no such boxes file") from None
    except json.JSONDecodeError as e:
        raise PredictError(f"{boxes_path}: not JSON ({e})") from None
    if not isinstance(entries, list):
        raise PredictError(f"{boxes_path}: expected a list of COCO detections "
                           f"({{image_id or file_name, bbox, score}}), got {type(entries).__name__}")
    by_name = {os.path.basename(p): i for i, p in enumerate(paths)}
    by_id = {image_id_of(p, i): i for i, p in enumerate(paths)}
    people = []
    for n, e in enumerate(entries):
        where = f"{boxes_path}: [{n}]"
        try:
            person = detection(e, where, category_id)
        except DataError as err:
            raise PredictError(str(err)) from None
        if person is None:
            continue
        score, box = person
        if "file_name" in e:
            image = by_name.get(os.path.basename(str(e["file_name"])))
            name = f"file_name {e['file_name']!r}"
        elif "image_id" in e:
            try:
                image = by_id.get(int(e["image_id"]))
            except (TypeError, ValueError):
                raise PredictError(f"{where}: 'image_id' must be an integer, got "
                                   f"{e['image_id']!r}") from None
            name = f"image_id {e['image_id']}"
        else:
            raise PredictError(f"{where}: names no image (give image_id or file_name)")
        if image is None:
            raise PredictError(f"{where}: {name} is not among the input images "
                               f"({len(paths)} given; image_id matches numeric file names)")
        if sizes is not None:
            try:
                check_box_in_image(box, *sizes[image], where)
            except DataError as err:
                raise PredictError(str(err)) from None
        if score >= threshold:
            people.append(Person(image, box, score))
    return people


def whole_image_people(sizes: Iterable[tuple[int, int]]) -> list[Person]:
    """One person per image, its box the whole image as the official box rule clips it
    (x2 = W - 1): (0, 0, W - 1, H - 1), at least one pixel wide and high (a 1-pixel
    image would make a box of no size, and no crop)."""
    return [Person(i, (0.0, 0.0, float(max(w - 1, 1)), float(max(h - 1, 1))), 1.0)
            for i, (w, h) in enumerate(sizes)]


def crop(image: np.ndarray, center, scale, image_size) -> np.ndarray:
    """The network's input for one person: the evaluation crop (cv2.warpAffine, bilinear,
    zero border) of image (H, W, 3) uint8 -> (h, w, 3) uint8."""
    trans = get_affine_transform(center, scale, 0, image_size)
    return cv2.warpAffine(image, trans, (int(image_size[0]), int(image_size[1])),
                          flags=cv2.INTER_LINEAR)


def run(config, predictor, paths: list[str], people: list[Person] | None = None,
        images: list[np.ndarray] | None = None) -> list[dict]:
    """Keypoints for the people of the images: COCO results entries, best first per image.

    predictor: ``loader.load_predictor``'s, crops uint8 (B, H, W, 3) -> (coords
    (B, J, 2) heatmap px, maxvals (B, J, 1)).

    people: None = one whole-image person per image.  images: the decoded images (read
    from paths when None).  Each entry: image_id, file_name, category_id 1, keypoints
    [x, y, score] * J in image pixels, score (rescored), bbox, center, scale.
    """

    if images is None:
        images = [read_image(p) for p in paths]
    sizes = [(im.shape[1], im.shape[0]) for im in images]
    if people is None:
        people = whole_image_people(sizes)
    image_size = tuple(int(v) for v in config.data.image_size)
    heatmap_size = tuple(int(v) for v in config.data.heatmap_size)
    aspect = image_size[0] / image_size[1]
    # Boxes are used as evaluation uses detector boxes: as they are (read_boxes has
    # checked w, h > 0); a crop reaching past the image is zero-filled there.
    kept, centers, scales = list(people), [], []
    for p in kept:
        c, s = box_to_center_scale(p.box, aspect)
        centers.append(c)
        scales.append(s)
    if not kept:
        return []
    centers, scales = np.stack(centers), np.stack(scales)
    crops = np.stack([crop(images[p.image], c, s, image_size)
                      for p, c, s in zip(kept, centers, scales)])

    batch = max(1, min(int(config.eval.batch_size), len(crops)))
    coords, maxvals = [], []
    for start in range(0, len(crops), batch):
        chunk = crops[start:start + batch]
        n = len(chunk)
        if n < batch:  # one shape: one compilation
            chunk = np.concatenate([chunk, np.zeros((batch - n,) + chunk.shape[1:], np.uint8)])
        c, m = predictor(chunk)
        coords.append(np.asarray(c)[:n])
        maxvals.append(np.asarray(m)[:n])
    coords = keypoints.to_image_coords(np.concatenate(coords), centers, scales, heatmap_size)
    preds = np.concatenate([coords, np.concatenate(maxvals)], axis=-1)  # (N, J, 3)

    box_scores = np.array([p.score for p in kept])
    image_index = np.array([p.image for p in kept])
    in_vis = float(config.eval.in_vis_thre)
    sigmas = keypoint_sets.of_config(config.data).sigmas
    if sigmas is not None and preds.shape[1] == len(sigmas):
        areas = np.prod(scales * 200.0, axis=1)
        order, scores = coco.select_people(preds, box_scores, areas, image_index, in_vis,
                                           float(config.eval.oks_thre), sigmas)
    else:  # a set without OKS sigmas (MPII): rescore only
        scores = coco.rescore(preds, box_scores, in_vis)
        order = np.lexsort((-scores, image_index))
    category_id = int(config.data.get("category_id", 1))
    results = []
    for n in sorted(order.tolist(), key=lambda n: (image_index[n], -scores[n])):
        i = int(image_index[n])
        results.append({"image_id": image_id_of(paths[i], i),
                        "file_name": os.path.basename(paths[i]), "category_id": category_id,
                        "keypoints": preds[n].astype(np.float64).reshape(-1).round(3).tolist(),
                        "score": float(scores[n]), "bbox": [float(v) for v in kept[n].box],
                        "center": centers[n].astype(np.float64).tolist(),
                        "scale": scales[n].astype(np.float64).tolist()})
    return results


def output_dir(input_path: str, out: str | None) -> str:
    if out:
        return out
    return input_path if os.path.isdir(input_path) else os.path.dirname(os.path.abspath(input_path))


def draw(image: np.ndarray, results: list[dict], dataset,
         threshold: float = 0.2, boxes: bool = False) -> tuple[np.ndarray, int]:
    """(image with every result's skeleton, the number of joints drawn): joints scoring
    below threshold are left out.  dataset: 'coco', 'mpii' or a KeypointSet.  boxes: also
    each person's box, labelled with its rescored score."""
    drawn = 0
    for r in results:
        if boxes:
            image = draw_lib.draw_box(image, r["bbox"], f"{r['score']:.2f}")
        k = np.asarray(r["keypoints"], np.float64).reshape(-1, 3)
        image = draw_lib.draw_skeleton(image, k[:, :2], dataset, k[:, 2], threshold)
        drawn += int(np.sum(k[:, 2] >= threshold))
    return image, drawn


def predict(config, input_path: str, boxes: str | None = None, workdir: str | None = None,
            weights_path: str | None = None, out: str | None = None,
            which: str = "best") -> str:
    """The whole of --mode=predict; returns the JSON's path."""


    kset = keypoint_sets.of_config(config.data)
    paths = list_images(input_path)
    images = [read_image(p) for p in paths]  # every input checked before any work
    people, found = None, ", one person per image"
    if boxes:
        every = read_boxes(boxes, paths, -np.inf, [(im.shape[1], im.shape[0]) for im in images],
                           int(config.data.get("category_id", 1)))
        threshold = float(config.predict.box_threshold)
        people = [p for p in every if p.score >= threshold]
        found = (f", {len(people)} of the {len(every)} box(es) in {boxes} (those scoring >= "
                 f"config.predict.box_threshold = {threshold:g})")
    predictor, source, _ = loader.load_predictor(config, workdir, weights_path, which)
    print(f"predicting {len(paths)} image(s) with {source}{found}", flush=True)
    results = run(config, predictor, paths, people, images)
    directory = output_dir(input_path, out)
    os.makedirs(directory, exist_ok=True)
    json_path = os.path.join(directory, JSON_NAME)
    with open(json_path + ".tmp", "w") as f:
        json.dump(results, f)
    os.replace(json_path + ".tmp", json_path)
    per_image = collections.defaultdict(list)
    for r in results:
        per_image[r["file_name"]].append(r)
    threshold = float(config.eval.draw_threshold)
    joints_drawn = 0
    for path, image in zip(paths, images):
        name = os.path.basename(path)
        picture, n = draw(image, per_image.get(name, []), kset, threshold, bool(boxes))
        joints_drawn += n
        Image.fromarray(picture).save(os.path.join(directory,
                                                   os.path.splitext(name)[0] + ".pose.png"))
    num_joints = sum(len(r["keypoints"]) // 3 for r in results)
    print(f"wrote {json_path} ({len(results)} people) and {len(paths)} drawn image(s) "
          f"<name>.pose.png in {directory}: {joints_drawn} of {num_joints} joints drawn "
          f"(score >= config.eval.draw_threshold = {threshold:g})", flush=True)
    if results and not joints_drawn:
        print(f"note: no joint scored {threshold:g} or more, so the pictures show no "
              f"skeleton; an undertrained model scores low: lower "
              f"--config.eval.draw_threshold to see its guesses", flush=True)
    return json_path
