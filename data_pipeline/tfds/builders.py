"""TFDS builders for COCO keypoints and MPII that read the official layouts from manual_dir
with the same readers (and rules) as the files source."""
from __future__ import annotations

import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds
from etils import epath

from data_pipeline import coco, mpii, tf_on_host_only
from data_pipeline.records import Records


COCO_ASPECT_RATIO = 0.75  # boxes -> centre/scale for the 256x192 and 384x288 inputs


# disable_shuffling keeps the readers' order: record i of a prepared split is record i of the
# files source, so a seed gives the same batches from either source.
def _features(num_joints: int) -> tfds.features.FeaturesDict:
    return tfds.features.FeaturesDict({
        "image": tfds.features.Tensor(shape=(), dtype=tf.string),  # the JPEG file's bytes
        "image_file": tfds.features.Tensor(shape=(), dtype=tf.string),
        "image_id": tfds.features.Scalar(dtype=np.int64),
        "center": tfds.features.Tensor(shape=(2,), dtype=np.float32),
        "scale": tfds.features.Tensor(shape=(2,), dtype=np.float32),
        "joints": tfds.features.Tensor(shape=(num_joints, 2), dtype=np.float32),
        "joints_vis": tfds.features.Tensor(shape=(num_joints,), dtype=np.float32),
        "score": tfds.features.Scalar(dtype=np.float32),
    })


class _PersonRecords(tfds.core.GeneratorBasedBuilder, skip_registration=True):
    """Examples are Records rows, with their image file's bytes."""
    # Where TFDS looks for checksums/metadata next to the builder (there are none).  Set
    # explicitly: TFDS's own lookup needs the importlib_resources backport for this package.
    code_path = epath.Path(__file__)

    def _generate_examples(self, records: Records):
        return _examples(records)


def _examples(records: Records):
    for i in range(len(records)):
        path = str(records.image_path[i])
        with open(path, "rb") as f:
            data = f.read()
        yield i, {"image": data, "image_file": path, "image_id": int(records.image_id[i]),
                  "center": records.center[i], "scale": records.scale[i],
                  "joints": records.joints[i], "joints_vis": records.joints_vis[i],
                  "score": float(records.score[i])}


class HrganCocoKeypoints(_PersonRecords):
    """COCO 2017 person keypoints as per-person records (HRNet rules).

    Splits: train2017 and val2017 (ground-truth boxes, people with keypoints) and
    val2017_detections (the person detection file's boxes, score >= 0).
    """
    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "Per-person records, HRNet box rules, aspect 0.75."}
    MANUAL_DOWNLOAD_INSTRUCTIONS = (
        "manual_dir is the HRNet COCO layout: annotations/person_keypoints_{train,val}2017.json, "
        "images/{train,val}2017/*.jpg, person_detection_results/"
        "COCO_val2017_detections_AP_H_56_person.json")

    def _info(self):
        return self.dataset_info_from_configs(features=_features(17), disable_shuffling=True,
                                              homepage="https://cocodataset.org")

    def _split_generators(self, dl_manager):
        root = str(dl_manager.manual_dir)
        kw = {"num_joints": 17, "aspect_ratio": COCO_ASPECT_RATIO}
        return {
            "train2017": self._generate_examples(coco.read_ground_truth(root, "train2017", **kw)),
            "val2017": self._generate_examples(coco.read_ground_truth(root, "val2017", **kw)),
            "val2017_detections": self._generate_examples(coco.read_detections(root, "val2017", **kw)),
        }


class HrganMpii(_PersonRecords):
    """MPII human pose as distributed with HRNet (annot/{train,valid}.json), per person."""
    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "Per-person records, HRNet rules (centre y += 15 s, s x1.25, -1)."}
    MANUAL_DOWNLOAD_INSTRUCTIONS = (
        "manual_dir is the HRNet MPII layout: annot/{train,valid}.json, annot/gt_valid.mat, "
        "images/*.jpg")

    def _info(self):
        return self.dataset_info_from_configs(features=_features(16), disable_shuffling=True,
                                              homepage="http://human-pose.mpi-inf.mpg.de")

    def _split_generators(self, dl_manager):
        root = str(dl_manager.manual_dir)
        return {split: self._generate_examples(mpii.read(root, split, num_joints=16))
                for split in ("train", "valid")}


BUILDERS = {"coco": HrganCocoKeypoints, "mpii": HrganMpii}


def prepare(name: str, manual_dir: str, data_dir: str):
    """Build the dataset into data_dir (ArrayRecord files, random access by index)."""
    tf_on_host_only()
    builder = BUILDERS[name](data_dir=data_dir)
    config = tfds.download.DownloadConfig(manual_dir=manual_dir)
    builder.download_and_prepare(download_config=config, file_format="array_record")
    return builder
