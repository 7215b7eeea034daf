"""tf.data pipelines: per-person records -> per-process host batches (numpy dicts).

Training: batch k of the run is a pure function of (seed, k).  Epoch e = k // steps_per_epoch
visits the records in the order of a stateless permutation seeded by (seed, e)
(tf.random.experimental.index_shuffle, never materialised); within a global batch process
p takes rows [p b, (p + 1) b), b = global_batch / process_count; each example's
augmentation is seeded by (seed, e, record).  Resuming at step s starts the stream at
element s b: nothing before it is read or decoded.

Images leave the host as uint8; heatmap targets are made on the device from the joints.
"""
from __future__ import annotations

import atexit
import dataclasses
import functools
import weakref
import math
import os
import re

import numpy as np
import tensorflow as tf
from absl import logging

from data_pipeline import augment, coco, keypoint_sets, mpii, tf_on_host_only
from data_pipeline.records import DataError, Records, split_names


_DECODE_ERRORS = (tf.errors.InvalidArgumentError, tf.errors.NotFoundError,
                  tf.errors.DataLossError, tf.errors.OutOfRangeError)


# ---- records --------------------------------------------------------------------------

def _aspect(data_cfg) -> float:
    return data_cfg.image_size[0] / data_cfg.image_size[1]


@functools.lru_cache(maxsize=4)
def _read(name, root, split, num_joints, aspect, detections, detection_file, threshold, skip,
          category_id=1):
    if name == "coco":
        if detections:
            return coco.read_detections(root, split, detection_file=detection_file,
                                        num_joints=num_joints, aspect_ratio=aspect,
                                        image_threshold=threshold, skip_bad=skip,
                                        category_id=category_id)
        return coco.read_ground_truth(root, split, num_joints=num_joints, aspect_ratio=aspect,
                                      skip_bad=skip, category_id=category_id)
    if name == "mpii":
        return mpii.read(root, split, num_joints=num_joints, skip_bad=skip)
    raise ValueError(f"config.data.name must be 'coco' or 'mpii', got {name!r}")


def read_records(data_cfg, split: str, *, num_joints: int, training: bool) -> Records:
    """The records of a split from the files under config.data.root (cached per arguments)."""
    if not data_cfg.root:
        raise DataError("config.data.root is empty: set --config.data.root to the dataset directory")
    detections = data_cfg.name == "coco" and not training and not data_cfg.use_gt_boxes
    return _read(data_cfg.name, data_cfg.root, split, num_joints, _aspect(data_cfg), detections,
                 data_cfg.detection_file, float(data_cfg.image_threshold),
                 bool(data_cfg.skip_bad_records), int(data_cfg.get("category_id", 1)))


class _FileSource:
    """Records held in memory; an example reads its image file."""

    def __init__(self, records: Records):
        self.records = records
        self.num_records = len(records)
        r = records
        self._cols = {"path": tf.constant(r.image_path.astype(bytes)),
                      "center": tf.constant(r.center), "scale": tf.constant(r.scale),
                      "joints": tf.constant(r.joints), "joints_vis": tf.constant(r.joints_vis),
                      "score": tf.constant(r.score), "image_id": tf.constant(r.image_id)}

    def fetch(self, rec):
        ex = {k: tf.gather(v, rec) for k, v in self._cols.items()}
        ex["data"] = tf.io.read_file(ex["path"])
        return ex

    def describe(self, rec: int) -> tuple[str, str]:
        """(image path, the record as its file numbers it: 'FILE: annotations[9] (id N)')."""
        return str(self.records.image_path[rec]), f"{self.records.source}: {self.records.origin[rec]}"


def _source(data_cfg, split: str, *, num_joints: int, training: bool):
    if data_cfg.source == "files":
        return _FileSource(read_records(data_cfg, split, num_joints=num_joints, training=training))
    if data_cfg.source == "tfds":
        from data_pipeline.tfds import source as tfds_source  # TensorFlow Datasets: only for tfds
        return tfds_source.TfdsSource(data_cfg, split, num_joints=num_joints, training=training)
    raise ValueError(f"config.data.source must be 'files' or 'tfds', got {data_cfg.source!r}")


def _augment_config(data_cfg, num_joints: int) -> augment.AugmentConfig:
    kset = keypoint_sets.of_config(data_cfg)
    if kset.num_joints != num_joints:
        raise ValueError(f"num_joints={num_joints} but the keypoint set {kset.describe()} "
                         f"has {kset.num_joints} joints")
    upper = set(kset.upper_body)
    return augment.AugmentConfig(
        image_size=tuple(int(v) for v in data_cfg.image_size),
        flip_perm=tuple(kset.flip_permutation()),
        upper_body=tuple(j in upper for j in range(num_joints)),
        scale_factor=float(data_cfg.scale_factor), rotation_factor=float(data_cfg.rotation_factor),
        rotation_prob=float(data_cfg.rotation_prob), flip=bool(data_cfg.flip),
        half_body_prob=float(data_cfg.half_body_prob),
        half_body_min_joints=int(data_cfg.half_body_min_joints))


def _threads() -> int:
    """tf.data's threads: all cores but one, so the thread that launches the train step
    keeps a core."""
    return max(1, len(os.sched_getaffinity(0)) - 1)


def _options(data_cfg) -> tf.data.Options:
    opts = tf.data.Options()
    opts.deterministic = True
    opts.experimental_optimization.map_parallelization = True
    opts.threading.private_threadpool_size = _threads()
    # No autotuning: its thread sleeps up to a minute between rounds, and an iterator's
    # destructor waits for it, so closing the training stream at the end of a run took
    # up to 60 s (49 s measured at the end of a 2-step run).  The parallelism is set
    # instead (_parallel), and the buffers are the fixed prefetch(2).
    opts.autotune.enabled = False
    return opts


def _parallel(data_cfg) -> int:
    """Examples decoded in parallel: config.data.num_parallel_calls, or (-1) one per
    tf.data thread."""
    n = int(data_cfg.num_parallel_calls)
    return _threads() if n < 0 else max(n, 1)


def tf_message(error: Exception) -> str:
    """A TensorFlow error's first line without its '{{function_node __wrapped__...}}' prefix."""
    text = (getattr(error, "message", "") or str(error) or type(error).__name__).strip()
    text = re.sub(r"\{\{function_node [^}]*\}\}\s*", "", text)
    return text.splitlines()[0] if text else type(error).__name__


def read_image(path: str) -> np.ndarray:
    """The image file at path as the training and evaluation pipelines decode it: uint8
    (H, W, 3) RGB by its content (JPEG, PNG, BMP, GIF, WebP; a 16-bit PNG scaled to 8
    bits as cv2.imread does), refused from its header when larger than augment.MAX_SIDE
    a side or augment.MAX_PIXELS in all.  A DataError naming the file otherwise."""
    try:
        data = tf.io.read_file(path)
        height, width = (int(v) for v in augment.header_shape(data).numpy()[:2])
        if max(height, width) > augment.MAX_SIDE or height * width > augment.MAX_PIXELS:
            raise DataError(f"{path}: image too large to decode safely: {width} x {height} px "
                            f"(at most {augment.MAX_SIDE} px a side and {augment.MAX_PIXELS:,} "
                            f"pixels in all, a decompression-bomb guard); make it smaller")
        return augment.decode_image(data).numpy()
    except _DECODE_ERRORS as e:
        raise DataError(f"{path}: cannot decode the image: {tf_message(e)}") from None


def _decode(path: str) -> np.ndarray:
    data = tf.io.read_file(path)
    augment.image_shape(data, tf.constant(path))
    return augment.decode_image(data).numpy()


def _check_decodable(path: str) -> str | None:
    """Why the image at path cannot be read and decoded (None if it can)."""
    try:
        _decode(path)
    except _DECODE_ERRORS as e:
        return tf_message(e)
    return None


# Iterators still open at interpreter exit: their tf.data threads may be inside a
# tf.numpy_function (the cv2 warp, the TFDS reader), which deadlocks with Python's
# finalisation.  Closing them at exit (while Python is still whole) avoids it.
_OPEN = weakref.WeakSet()


@atexit.register
def _close_open_iterators():
    for it in list(_OPEN):
        it.close()


class _Batches:
    """Iterator over numpy batches that turns a decoding failure into a DataError naming the
    file and record (or, when skipping, counts the examples tf.data dropped)."""

    def __init__(self, ds, source, locate, per_process: int, start_step: int, skip: bool,
                 drop_keys=("flat",)):
        self._it = ds.as_numpy_iterator()
        _OPEN.add(self)
        self._source, self._locate, self._b = source, locate, per_process
        self.step = start_step
        self._next_flat = start_step * per_process
        self._skip, self._drop = skip, drop_keys
        self.skipped = 0

    def __iter__(self):
        return self

    def close(self) -> None:
        """Stop the background tf.data work (also done at interpreter exit)."""
        self._it = None
        _OPEN.discard(self)

    def _records(self, flats) -> list[int]:
        return [int(self._locate(tf.constant(f, tf.int64))[0]) for f in flats]

    def __next__(self) -> dict:
        if self._it is None:
            raise StopIteration
        try:
            batch = next(self._it)
        except _DECODE_ERRORS as e:
            raise self._explain(e) from e
        flats = batch["flat"]
        if self._skip and flats[-1] - self._next_flat + 1 != len(flats):
            missing = sorted(set(range(self._next_flat, int(flats[-1]) + 1)) - set(flats.tolist()))
            for rec in self._records(missing):
                path, where = self._source.describe(rec)
                logging.warning("skipped unreadable image %s (%s)", path, where)
            self.skipped += len(missing)
            logging.warning("%d example(s) skipped so far (config.data.skip_bad_records=True)",
                            self.skipped)
        self._next_flat = int(flats[-1]) + 1
        self.step += 1
        return {k: v for k, v in batch.items() if k not in self._drop}

    def _explain(self, error) -> Exception:
        flats = range(self._next_flat, self._next_flat + self._b)
        for rec in self._records(flats):
            path, where = self._source.describe(rec)
            why = _check_decodable(path)
            if why is not None:
                return DataError(f"{path} ({where}): cannot read or decode the image: {why}. "
                                 f"Replace the file, or set config.data.skip_bad_records=True to "
                                 f"skip (and count) such images")
        return error


# ---- training -------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class DatasetInfo:
    num_records: int
    global_batch: int

    @property
    def steps_per_epoch(self) -> int:
        return self.num_records // self.global_batch


def steps_per_epoch(data_cfg, global_batch: int, *, num_joints: int | None = None) -> int:
    """Training steps per epoch: num_records // global_batch (the remainder is dropped);
    a DataError when the training split cannot fill one global batch."""
    num_joints = num_joints or keypoint_sets.of_config(data_cfg).num_joints
    src = _source(data_cfg, split_names(data_cfg)[0], num_joints=num_joints, training=True)
    _check_fills_a_batch(src, global_batch)
    return DatasetInfo(src.num_records, global_batch).steps_per_epoch


def _check_fills_a_batch(src, global_batch: int) -> None:
    if src.num_records < global_batch:
        records = getattr(src, "records", None)
        where = records.source if records is not None else getattr(src, "name", "the training split")
        raise DataError(f"{where}: {src.num_records} training records cannot fill one global "
                        f"batch of {global_batch}: set --config.train.batch_size to at most "
                        f"{src.num_records} (a multiple of the device count), or add data")


def _per_process(global_batch: int, process_index: int, process_count: int) -> int:
    if global_batch % process_count:
        raise ValueError(f"global batch {global_batch} is not divisible by the process count "
                         f"{process_count}")
    if not 0 <= process_index < process_count:
        raise ValueError(f"process_index {process_index} not in [0, {process_count})")
    return global_batch // process_count


def _train_record(flat, *, num_records, global_batch, process_index, per_process, seed):
    """(record, epoch) of element `flat` of a process's training stream."""
    flat = tf.cast(flat, tf.int64)
    spe = num_records // global_batch
    step, row = flat // per_process, flat % per_process
    epoch = step // spe
    pos = (step % spe) * global_batch + process_index * per_process + row
    rec = tf.random.experimental.index_shuffle(
        pos, seed=tf.stack([tf.cast(seed, tf.int64), epoch]),
        max_index=tf.constant(num_records - 1, tf.int64))
    return rec, epoch


def train_record_indices(num_records: int, global_batch: int, seed: int, step: int,
                         process_index: int = 0, process_count: int = 1) -> np.ndarray:
    """The record indices in this process's rows of training batch `step` (b,) int64."""
    b = _per_process(global_batch, process_index, process_count)
    return np.array([int(_train_record(f, num_records=num_records, global_batch=global_batch,
                                       process_index=process_index, per_process=b,
                                       seed=seed)[0]) for f in range(step * b, (step + 1) * b)])


def train(data_cfg, *, num_joints: int, global_batch: int, seed: int, process_index: int = 0,
          process_count: int = 1, start_step: int = 0):
    """Infinite iterator of this process's training batches, starting at start_step.

    Batches: image uint8 (b, H, W, 3) RGB at config.data.image_size (w, h); joints float32
    (b, J, 2) input pixels; joints_vis float32 (b, J) in {0, 1}; b = global_batch /
    process_count.  The iterator also has .info (DatasetInfo) and .step (the next step).
    """
    tf_on_host_only()
    b = _per_process(global_batch, process_index, process_count)
    cfg = _augment_config(data_cfg, num_joints)
    src = _source(data_cfg, split_names(data_cfg)[0], num_joints=num_joints, training=True)
    info = DatasetInfo(src.num_records, global_batch)
    _check_fills_a_batch(src, global_batch)
    n = src.num_records
    seed_t = tf.constant(int(seed), tf.int64)

    def locate(flat):
        return _train_record(flat, num_records=n, global_batch=global_batch,
                             process_index=process_index, per_process=b, seed=seed_t)

    @tf.autograph.experimental.do_not_convert  # graph ops only (tf.cond): no 5 s conversion
    def example(flat):
        rec, epoch = locate(flat)
        ex = src.fetch(rec)
        ex_seed = tf.random.experimental.stateless_fold_in(tf.stack([seed_t, epoch]), rec)
        shape = augment.image_shape(ex["data"], ex["path"])
        trans, joints, vis = augment.train_transform(
            ex["center"], ex["scale"], ex["joints"], ex["joints_vis"], shape[1], ex_seed, cfg)
        image = augment.decode_and_warp(ex["data"], ex["path"], trans, cfg.image_size,
                                        crop_decode=bool(data_cfg.crop_decode))
        return {"image": image, "joints": joints, "joints_vis": vis, "flat": flat}

    ds = tf.data.Dataset.range(start_step * b, 2 ** 62)
    ds = ds.map(example, num_parallel_calls=_parallel(data_cfg), deterministic=True)
    if data_cfg.skip_bad_records:
        ds = ds.ignore_errors(log_warning=True)
    ds = ds.batch(b, drop_remainder=True).prefetch(2).with_options(_options(data_cfg))
    it = _Batches(ds, src, locate, b, start_step, bool(data_cfg.skip_bad_records))
    it.info = info
    return it


# ---- evaluation -----------------------------------------------------------------------

@dataclasses.dataclass
class EvalInfo:
    """num_records: people evaluated; num_batches: batches per process; annotation_file:
    COCO keypoint annotations or MPII gt_valid.mat; records: the Records (files source)."""
    num_records: int
    num_batches: int
    annotation_file: str
    records: Records | None = None


def evaluation(data_cfg, *, num_joints: int, global_batch: int, process_index: int = 0,
               process_count: int = 1):
    """(iterator of this process's evaluation batches, EvalInfo).

    Batches: image uint8 (b, H, W, 3) unflipped; center, scale float32 (b, 2); score (b,);
    area (b,) = prod(scale * 200); image_id int64 (b,); index int64 (b,) record index
    (-1 on padding); valid bool (b,).  Every record appears once over all processes; the
    last global batch is padded with invalid rows.
    """
    tf_on_host_only()
    b = _per_process(global_batch, process_index, process_count)
    _augment_config(data_cfg, num_joints)  # checks num_joints against the dataset
    split = split_names(data_cfg)[1]
    src = _source(data_cfg, split, num_joints=num_joints, training=False)
    n = src.num_records
    num_batches = max(1, math.ceil(n / global_batch))
    size = tuple(int(v) for v in data_cfg.image_size)

    def locate(flat):
        step, row = flat // b, flat % b
        pos = step * global_batch + process_index * b + row
        return tf.minimum(pos, max(n - 1, 0)), pos < n

    @tf.autograph.experimental.do_not_convert  # graph ops only (tf.cond): no 5 s conversion
    def example(flat):
        rec, valid = locate(flat)
        ex = src.fetch(rec)
        trans = augment.eval_transform(ex["center"], ex["scale"], size)
        image = tf.cond(valid,
                        lambda: augment.decode_and_warp(ex["data"], ex["path"], trans, size,
                                                        crop_decode=bool(data_cfg.crop_decode)),
                        lambda: tf.zeros([size[1], size[0], 3], tf.uint8))
        scale = tf.cast(ex["scale"], tf.float32)
        return {"image": image, "center": tf.cast(ex["center"], tf.float32), "scale": scale,
                "score": tf.cast(ex["score"], tf.float32),
                "area": scale[0] * scale[1] * augment.PIXEL_STD ** 2,
                "image_id": tf.where(valid, tf.cast(ex["image_id"], tf.int64), -1),
                "index": tf.where(valid, rec, -1), "valid": valid, "flat": flat}

    if n == 0:
        records = getattr(src, "records", None)
        where = records.source if records is not None and records.source else f"split {split!r}"
        boxes = ("person with labelled joints" if data_cfg.use_gt_boxes or data_cfg.name != "coco"
                 else f"detection of category {data_cfg.get('category_id', 1)} scoring >= "
                      f"config.data.image_threshold = "
                      f"{data_cfg.image_threshold}")
        raise DataError(f"{where}: nothing to evaluate in split {split!r}: it holds no {boxes}")
    ds = tf.data.Dataset.range(num_batches * b)
    ds = ds.map(example, num_parallel_calls=_parallel(data_cfg), deterministic=True)
    ds = ds.batch(b, drop_remainder=True).prefetch(2).with_options(_options(data_cfg))
    # Evaluation never skips: a record dropped here would silently change the metric.
    it = _Batches(ds, src, locate, b, 0, False)
    if data_cfg.name == "coco":
        ann = coco.annotation_file(data_cfg.root, split)
    else:
        ann = mpii.gt_file(data_cfg.root)
    records = getattr(src, "records", None)
    info = EvalInfo(n, num_batches, ann, records)
    return it, info
