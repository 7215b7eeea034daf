"""The pipeline's view of a prepared TFDS dataset: random access to per-person records."""
from __future__ import annotations

import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds

from data_pipeline.records import DataError
from data_pipeline.tfds.builders import BUILDERS, COCO_ASPECT_RATIO

_FIELDS = (("image", tf.string), ("image_file", tf.string), ("center", tf.float32),
           ("scale", tf.float32), ("joints", tf.float32), ("joints_vis", tf.float32),
           ("score", tf.float32), ("image_id", tf.int64))


class TfdsSource:
    """Same fetch/describe/num_records interface as the files source; each example is read
    by index (tfds.data_source over ArrayRecord), so a host reads only its own records."""

    def __init__(self, data_cfg, split: str, *, num_joints: int, training: bool):
        name = data_cfg.name
        if name == "coco":
            aspect = data_cfg.image_size[0] / data_cfg.image_size[1]
            if abs(aspect - COCO_ASPECT_RATIO) > 1e-6:
                raise DataError(f"the prepared COCO dataset has boxes fitted to aspect "
                                f"{COCO_ASPECT_RATIO}; config.data.image_size {data_cfg.image_size} "
                                f"needs source=files")
            if not training and not data_cfg.use_gt_boxes:
                if data_cfg.detection_file or data_cfg.image_threshold != 0.0:
                    raise DataError("the prepared COCO dataset holds the default detection file "
                                    "at threshold 0; use source=files for other detections")
                split = f"{split}_detections"
        builder = BUILDERS[name](data_dir=data_cfg.tfds_dir or None)
        if split not in builder.info.splits:
            raise DataError(f"split {split!r} of {builder.name} is not prepared in "
                            f"{builder.data_dir}: run python -m data_pipeline.tfds.prepare "
                            f"--name={name} --manual_dir=ROOT --data_dir={data_cfg.tfds_dir or '~/tensorflow_datasets'}")
        self._ds = builder.as_data_source(split=split)
        self.num_records = len(self._ds)
        self.name = f"{builder.name}/{split} in {builder.data_dir}"

    def _read(self, rec):
        ex = self._ds[int(rec)]
        return tuple(np.asarray(ex[k], dtype=object if t == tf.string else t.as_numpy_dtype)
                     for k, t in _FIELDS)

    def fetch(self, rec):
        values = tf.numpy_function(self._read, [rec], [t for _, t in _FIELDS], stateful=False)
        ex = dict(zip([k for k, _ in _FIELDS], values))
        ex["data"] = tf.reshape(ex.pop("image"), [])
        ex["path"] = tf.reshape(ex.pop("image_file"), [])
        return ex

    def describe(self, rec: int) -> tuple[str, str]:
        ex = self._ds[int(rec)]
        path = ex["image_file"]
        return (path.decode() if isinstance(path, bytes) else str(path)), f"record {rec} of {self.name}"
