"""Evaluate a generator on the configured validation set: the official numbers.

crops (data_pipeline.pipeline.evaluation) -> G in eval mode with the flip test, peaks
on the device (``inference.predict_fn``) -> every process's rows gathered -> inverse affine on
the host -> COCO (rescoring, OKS-NMS, COCOeval) or MPII (PCKh) on process 0, plus
``pose_spread`` (evaluation.collapse: 0 when G predicts one pose for everyone) -> the
same metrics returned on every process.
"""
from __future__ import annotations

import os
import sys
from typing import Any, Callable

import jax
import ml_collections
import numpy as np
from absl import logging

from data_pipeline import keypoint_sets
from data_pipeline.affine import affine_points, get_affine_transform
from data_pipeline.records import split_names
from hrgan_jax import draw, evaluation, inference, keypoints, parallel
from hrgan_jax.evaluation import coco, collapse, mpii


def _gather(x) -> np.ndarray:
    """A batch-sharded global array, or this process's rows as numpy -> the whole batch
    on every process, rows in process order."""
    if jax.process_count() == 1:
        return np.asarray(x)
    from jax.experimental import multihost_utils
    if isinstance(x, np.ndarray) and x.dtype == np.int64:  # ids travel as int32 (no x64)
        if np.abs(x).max(initial=0) >= 2 ** 31:
            raise ValueError("an image id or record index does not fit in int32")
        x = x.astype(np.int32)
    return np.asarray(multihost_utils.process_allgather(x, tiled=True))


def _broadcast(results: dict) -> dict:
    """Process 0's metrics on every process."""
    if jax.process_count() == 1:
        return results
    from jax.experimental import multihost_utils
    names = sorted(results) if results else []
    values = np.array([float(results[k]) for k in names], np.float64)
    values = multihost_utils.broadcast_one_to_all(values)
    return dict(zip(names, values.tolist()))


def make_evaluator(config: ml_collections.ConfigDict, mesh, workdir: str | None = None,
                   writer=None, out_dir: str | None = None,
                   predictor: Callable | None = None) -> Callable[[Any, int], dict]:
    """``evaluate(generator_variables, step) -> metrics`` on config.data.val_split.

    With ``predictor`` (``loader.load_predictor``'s: uint8 crops -> (coords, maxvals),
    e.g. an exported ONNX or SavedModel model) that is evaluated instead, on the host
    batches of one process, and ``generator_variables`` is ignored.

    Results files (COCO results JSON, MPII pred.mat) and the table as JSON go under
    ``out_dir`` (default ``workdir/eval``, the training's own evaluations).  With a clu
    ``writer``, a grid of evaluation crops with predicted skeletons (and true ones where
    the record has joints) goes to TensorBoard.
    """
    from data_pipeline import pipeline  # TensorFlow (tf.data): only when an evaluation is made

    rep, sharded = parallel.replicated(mesh), parallel.data_sharded(mesh)
    predict = jax.jit(inference.predict_fn(config), in_shardings=(rep, sharded),
                      out_shardings=(sharded, sharded))
    global_batch = int(config.eval.batch_size)
    parallel.check_batch_size(global_batch, mesh, field="config.eval.batch_size")
    heatmap_size = tuple(int(v) for v in config.data.heatmap_size)
    image_size = tuple(int(v) for v in config.data.image_size)
    out_dir = out_dir or (os.path.join(workdir, "eval") if workdir else None)
    coco_gt = None
    lead = jax.process_index() == 0
    kset = keypoint_sets.of_config(config.data)

    if predictor is not None and jax.process_count() > 1:
        raise ValueError("an exported model is evaluated by one process: run without "
                         "--num_processes/--coordinator")

    def evaluate(variables, step: int) -> dict:
        nonlocal coco_gt
        if predictor is None:
            variables = parallel.replicate(variables, mesh)
        batches, info = pipeline.evaluation(
            config.data, num_joints=int(config.model.num_joints), global_batch=global_batch,
            process_index=jax.process_index(), process_count=jax.process_count())
        limit = int(config.eval.max_images)
        num_batches = info.num_batches
        if limit > 0:
            num_batches = min(num_batches, -(-limit // global_batch))
        bar = None
        if lead and sys.stderr.isatty():
            from tqdm import tqdm
            bar = tqdm(total=num_batches, desc=f"evaluate (step {step})", unit="batch", leave=False)
        rows: dict[str, list] = {k: [] for k in ("coords", "maxvals", "center", "scale",
                                                  "score", "area", "image_id", "index", "valid")}
        pictures = None
        for i in range(num_batches):
            host = next(batches)
            if predictor is not None:
                coords, maxvals = predictor(np.asarray(host["image"]))
            else:
                images = parallel.global_batch({"image": host["image"]}, mesh)["image"]
                coords, maxvals = predict(variables, images)
            rows["coords"].append(_gather(coords))
            rows["maxvals"].append(_gather(maxvals))
            for k in ("center", "scale", "score", "area", "image_id", "index", "valid"):
                rows[k].append(_gather(np.asarray(host[k])))
            if writer is not None and lead:
                pictures = _best_people(pictures, host, rows["coords"][-1], rows["maxvals"][-1],
                                        float(config.eval.in_vis_thre))
            if bar is not None:
                bar.update(1)
        if bar is not None:
            bar.close()
        close = getattr(batches, "close", None)
        if close:
            close()
        cat = {k: np.concatenate(v) for k, v in rows.items()}
        keep = cat["valid"].astype(bool)
        cat = {k: v[keep] for k, v in cat.items()}
        order = np.argsort(cat["index"], kind="stable")
        cat = {k: v[order] for k, v in cat.items()}
        if limit > 0:
            cat = {k: v[:limit] for k, v in cat.items()}
        if len(np.unique(cat["index"])) != len(cat["index"]):
            raise RuntimeError("evaluation gathered a record twice: the process shards overlap")
        results: dict = {}
        if lead:
            coords = keypoints.to_image_coords(cat["coords"], cat["center"], cat["scale"],
                                               heatmap_size)
            preds = np.concatenate([coords, cat["maxvals"]], axis=-1)
            if config.data.name == "coco":
                if coco_gt is None:
                    coco_gt = coco.load_ground_truth(info.annotation_file)
                res_file = os.path.join(out_dir or "/tmp", f"keypoints_{split_names(config.data)[1]}"
                                        f"_results_{step}.json")
                results = coco.evaluate(preds, cat["score"], cat["image_id"], coco_gt, res_file,
                                        center=cat["center"], scale=cat["scale"],
                                        areas=cat["area"], in_vis_thre=config.eval.in_vis_thre,
                                        oks_thre=config.eval.oks_thre, sigmas=kset.sigmas,
                                        category_id=int(config.data.get("category_id", 1)))
            else:
                if limit > 0 and len(preds) < info.num_records:
                    raise ValueError("MPII PCKh needs the whole validation set: set "
                                     "--config.eval.max_images=0")
                results = mpii.evaluate(preds, info.annotation_file, out_dir)
            results = {k: float(v) for k, v in results.items()}
            spread = _pose_spread(coords, cat, info.records)
            if spread is not None:
                results["pose_spread"] = spread
            table = evaluation.format_table(results, f"{config.model.name} step {step}")
            print(table, flush=True)
            logging.info("evaluation at step %d:\n%s", step, table)
            if out_dir:
                evaluation.write_json({"step": step, **results},
                                      os.path.join(out_dir, f"results_{step}.json"))
            if pictures is not None:
                images, pred, scores, index = _one_per_image(pictures)
                pred = pred * inference.heatmap_stride(config)
                gt = gt_vis = None
                records = info.records
                if records is not None and np.asarray(records.joints_vis)[index].any():
                    trans = [_crop_affine(records, int(r), image_size) for r in index]
                    gt = np.stack([_affine(t, np.asarray(records.joints)[r])
                                   for t, r in zip(trans, index)])
                    gt_vis = np.asarray(records.joints_vis)[index]
                crops = draw.crops_with_skeletons(images, pred, gt, gt_vis, kset,
                                                  pred_scores=scores,
                                                  threshold=float(config.eval.draw_threshold))
                writer.write_images(step, {"eval/crops": draw.image_grid(crops)[None]})
        return _broadcast(results)

    return evaluate


# The TensorBoard picture eval/crops: this many people, the highest-scoring, chosen among
# the CANDIDATES best of the evaluation (this process's crops).
CROPS_SHOWN, CANDIDATES = 16, 64


def _best_people(best: dict | None, host: dict, coords, maxvals, in_vis: float) -> dict:
    """The CANDIDATES highest-scoring people so far (rescored as the COCO evaluation does:
    box score x mean confident joint score), among ``best`` and this batch's own rows (the
    first rows of the gathered coords and maxvals are this process's)."""
    n = len(host["image"])
    maxvals = np.asarray(maxvals)[:n]
    scores = coco.rescore(np.concatenate([np.zeros(maxvals.shape[:-1] + (2,)), maxvals], -1),
                          np.asarray(host["score"]), in_vis)
    scores = np.where(np.asarray(host["valid"]).astype(bool), scores, -np.inf)
    batch = {"image": np.asarray(host["image"]), "coords": np.asarray(coords)[:n],
             "maxvals": maxvals, "index": np.asarray(host["index"]),
             "image_id": np.asarray(host["image_id"]), "score": scores}
    if best is not None:
        batch = {k: np.concatenate([best[k], batch[k]]) for k in batch}
    keep = np.argsort(-batch["score"], kind="stable")[:CANDIDATES]
    keep = keep[np.isfinite(batch["score"][keep])]
    return {k: v[keep] for k, v in batch.items()}


def _one_per_image(best: dict) -> tuple:
    """(crops, coords in heatmap px, maxvals, record indices) of the CROPS_SHOWN people to
    draw: the best person of each image first, best first, then the next best of any."""
    first, rest, seen = [], [], set()
    for i, image_id in enumerate(best["image_id"]):  # best is sorted, best first
        (rest if int(image_id) in seen else first).append(i)
        seen.add(int(image_id))
    chosen = (first + rest)[:CROPS_SHOWN]
    return (best["image"][chosen], best["coords"][chosen], best["maxvals"][chosen],
            best["index"][chosen])


def _pose_spread(coords, cat: dict, records) -> float | None:
    """``collapse.pose_spread`` of the evaluated people that have true joints (detector
    boxes have none); None when there are none."""
    if records is None:
        return None
    joints = np.asarray(records.joints)[cat["index"]]
    truth = np.any(joints != 0, axis=(1, 2))
    if not truth.any():
        return None
    return collapse.pose_spread(coords[truth], joints[truth],
                                np.asarray(records.joints_vis)[cat["index"]][truth],
                                cat["center"][truth], cat["scale"][truth])


def _crop_affine(records, r: int, image_size) -> np.ndarray:
    return get_affine_transform(np.asarray(records.center)[r], np.asarray(records.scale)[r], 0,
                                image_size)


def _affine(trans, points):
    return affine_points(points, trans).astype(np.float32)


