"""A TFDS builder prepares a tiny dataset and the pipeline reads from it the same records
(and the same batches) as from the files."""
import numpy as np

from data_helpers import coco_cfg, write_coco, write_mpii
from data_pipeline import pipeline
from data_pipeline.tfds.builders import prepare


def _same_batch(x, y):
    assert set(x) == set(y)
    for k in x:
        if k == "image":  # a rare pixel may round differently (float32 matrix ~1e-6 apart)
            diff = np.abs(x[k].astype(int) - y[k].astype(int))
            assert diff.max() <= 1 and (diff > 0).mean() < 1e-3
        elif x[k].dtype.kind == "f":
            np.testing.assert_allclose(x[k], y[k], atol=1e-3)
        else:
            np.testing.assert_array_equal(x[k], y[k])


def test_coco_builder_gives_the_records_of_the_files(tmp_path):
    root, tfds_dir = str(tmp_path / "coco"), str(tmp_path / "tfds")
    write_coco(root, "train2017", num_images=4, people=2)
    write_coco(root, "val2017", num_images=3, people=1, seed=1, detections=True)
    builder = prepare("coco", root, tfds_dir)
    assert builder.info.splits["train2017"].num_examples == 8
    files = coco_cfg(root, image_size=(48, 64))
    tfds_cfg = coco_cfg(root, image_size=(48, 64), source="tfds", tfds_dir=tfds_dir)
    a = pipeline.train(files, num_joints=17, global_batch=4, seed=5, start_step=1)
    b = pipeline.train(tfds_cfg, num_joints=17, global_batch=4, seed=5, start_step=1)
    for _ in range(3):
        _same_batch(next(a), next(b))
    for use_gt in (True, False):
        files.use_gt_boxes = tfds_cfg.use_gt_boxes = use_gt
        (ea, ia), (eb, ib) = (pipeline.evaluation(c, num_joints=17, global_batch=2)
                              for c in (files, tfds_cfg))
        assert ia.num_records == ib.num_records == 3
        for x, y in zip(ea, eb):
            _same_batch(x, y)


def test_mpii_builder_prepares_both_splits(tmp_path):
    root, tfds_dir = str(tmp_path / "mpii"), str(tmp_path / "tfds")
    write_mpii(root, "train", num_people=4)
    write_mpii(root, "valid", num_people=3, seed=1)
    builder = prepare("mpii", root, tfds_dir)
    assert builder.info.splits["valid"].num_examples == 3
    cfg = coco_cfg(root, name="mpii", image_size=(64, 64), train_split="train",
                   val_split="valid", source="tfds", tfds_dir=tfds_dir)
    it, info = pipeline.evaluation(cfg, num_joints=16, global_batch=4)
    batch = next(it)
    np.testing.assert_array_equal(batch["image_id"], [0, 1, 2, -1])
    cfg.source = "files"
    ref, _ = pipeline.evaluation(cfg, num_joints=16, global_batch=4)
    _same_batch(batch, next(ref))
