"""Readers (official rules, bad data) and the tf.data pipelines (sharding, determinism,
resumption, evaluation coverage) on tiny generated datasets."""
import json
import os

import numpy as np
import pytest

from data_helpers import coco_cfg, write_coco, write_mpii
from data_pipeline import coco, mpii, pipeline
from data_pipeline.affine import box_to_center_scale, clip_box
from data_pipeline.records import DataError


@pytest.fixture(scope="module")
def coco_root(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("coco"))
    write_coco(root, "train2017", num_images=6, people=2)
    write_coco(root, "val2017", num_images=3, people=2, seed=1, detections=True)
    return root


def _edit_annotations(root, split, fn):
    path = os.path.join(root, "annotations", f"person_keypoints_{split}.json")
    with open(path) as f:
        ann = json.load(f)
    fn(ann)
    with open(path, "w") as f:
        json.dump(ann, f)
    return path


# ---- readers ----------------------------------------------------------------------------

def test_box_rules():
    assert clip_box([-5, 10, 30, 20], 100, 100) == (0, 10, 29, 19)
    assert clip_box([90, 10, 30, 20], 100, 100) == (90, 10, 9, 19)
    assert clip_box([120, 10, 30, 20], 100, 100) is None
    c, s = box_to_center_scale([10, 20, 30, 80], 0.75)
    np.testing.assert_allclose(c, [25, 60])
    np.testing.assert_allclose(s, [60 / 200 * 1.25, 80 / 200 * 1.25], rtol=1e-6)
    c, s = box_to_center_scale([10, 20, 90, 80], 0.75)
    np.testing.assert_allclose(s, [90 / 200 * 1.25, 120 / 200 * 1.25], rtol=1e-6)


def test_coco_reader_official_rules(tmp_path):
    root = write_coco(str(tmp_path), "train2017", num_images=2, people=3, nested=False)

    def edit(ann):
        a = ann["annotations"]
        a[0]["iscrowd"] = 1  # skipped
        a[1]["keypoints"] = [0] * 51  # no labelled keypoint: skipped
        a[2]["bbox"] = [70, 10, 5, 5]  # outside the 64x48 image: dropped by the clip rule
        a[3]["bbox"] = [-4, 2, 20, 30]
        a[3]["keypoints"][2] = 2
    _edit_annotations(root, "train2017", edit)
    r = coco.read_ground_truth(root, "train2017")
    assert len(r) == 3 and r.joints.shape == (3, 17, 2) and set(np.unique(r.joints_vis)) <= {0, 1}
    c, s = box_to_center_scale((0, 2, 19, 29), 0.75)  # x2 = x1 + w - 1 from the clipped x1
    np.testing.assert_allclose(r.center[0], c)
    np.testing.assert_allclose(r.scale[0], s)
    assert r.image_path[0].endswith(os.path.join("train2017", "000000001001.jpg"))
    np.testing.assert_array_equal(r.score, 1)


def test_coco_detections_threshold_and_category(coco_root, tmp_path):
    dets = json.load(open(os.path.join(coco_root, coco.DEFAULT_DETECTIONS)))
    dets[0]["category_id"] = 2
    path = str(tmp_path / "dets.json")
    json.dump(dets, open(path, "w"))
    r = coco.read_detections(coco_root, "val2017", detection_file=path, image_threshold=0.5)
    want = [d for d in dets[1:] if d["score"] >= 0.5]
    assert len(r) == len(want)
    np.testing.assert_allclose(r.score, [d["score"] for d in want], rtol=1e-6)
    np.testing.assert_array_equal(r.joints_vis, 1)


def test_mpii_reader_official_rules(tmp_path):
    root = write_mpii(str(tmp_path), "valid", num_people=3)
    anno = json.load(open(os.path.join(root, "annot", "valid.json")))
    r = mpii.read(root, "valid")
    a = anno[1]
    np.testing.assert_allclose(r.center[1], [a["center"][0] - 1, a["center"][1] + 15 * 0.2 - 1],
                               rtol=1e-6)
    np.testing.assert_allclose(r.scale[1], [0.25, 0.25], rtol=1e-6)
    np.testing.assert_allclose(r.joints[1], np.array(a["joints"]) - 1, rtol=1e-6)
    np.testing.assert_array_equal(r.image_id, [0, 1, 2])


BAD_COCO = {
    "wrong keypoint count": (lambda a: a["annotations"][2].update(keypoints=[1, 2, 2] * 16),
                             "annotations[2]"),
    "zero-size box": (lambda a: a["annotations"][3].update(bbox=[5, 5, 0, 10]), "annotations[3]"),
    "negative box": (lambda a: a["annotations"][1].update(bbox=[5, 5, 10, -3]), "annotations[1]"),
    "unknown image": (lambda a: a["annotations"][4].update(image_id=99999), "annotations[4]"),
    "missing image": (lambda a: a["images"][0].update(file_name="nope.jpg"), "nope.jpg"),
}


@pytest.mark.parametrize("case", sorted(BAD_COCO))
def test_bad_coco_annotations_raise_or_skip(tmp_path, case):
    root = write_coco(str(tmp_path), "train2017", num_images=3, people=2)
    edit, where = BAD_COCO[case]
    path = _edit_annotations(root, "train2017", edit)
    with pytest.raises(DataError) as e:
        coco.read_ground_truth(root, "train2017")
    assert path in str(e.value) and where in str(e.value)
    r = coco.read_ground_truth(root, "train2017", skip_bad=True)
    assert len(r) == (4 if case == "missing image" else 5)


def test_malformed_json_names_the_file(tmp_path):
    root = write_coco(str(tmp_path), "train2017", num_images=1)
    path = os.path.join(root, "annotations", "person_keypoints_train2017.json")
    with open(path, "a") as f:
        f.write("{,")
    with pytest.raises(DataError, match="malformed JSON") as e:
        coco.read_ground_truth(root, "train2017", skip_bad=True)
    assert path in str(e.value)


def test_bad_mpii_record(tmp_path):
    root = write_mpii(str(tmp_path), "train", num_people=3)
    path = os.path.join(root, "annot", "train.json")
    anno = json.load(open(path))
    anno[1]["joints"] = anno[1]["joints"][:15]
    json.dump(anno, open(path, "w"))
    with pytest.raises(DataError, match=r"train.json: \[1\]"):
        mpii.read(root, "train")
    assert len(mpii.read(root, "train", skip_bad=True)) == 2


# ---- pipelines --------------------------------------------------------------------------

def _take(it, n):
    return [next(it) for _ in range(n)]


def test_train_batches_shapes_and_determinism(coco_root):
    cfg = coco_cfg(coco_root, image_size=(48, 64))
    a = _take(pipeline.train(cfg, num_joints=17, global_batch=4, seed=3), 4)
    b = _take(pipeline.train(cfg, num_joints=17, global_batch=4, seed=3), 4)
    c = _take(pipeline.train(cfg, num_joints=17, global_batch=4, seed=4), 4)
    assert a[0]["image"].shape == (4, 64, 48, 3) and a[0]["image"].dtype == np.uint8
    assert a[0]["joints"].shape == (4, 17, 2) and a[0]["joints"].dtype == np.float32
    assert a[0]["joints_vis"].shape == (4, 17) and set(np.unique(a[0]["joints_vis"])) <= {0, 1}
    assert set(a[0]) == {"image", "joints", "joints_vis"}
    for x, y in zip(a, b):
        for k in x:
            np.testing.assert_array_equal(x[k], y[k])
    assert any(not np.array_equal(x["image"], y["image"]) for x, y in zip(a, c))


def test_resume_at_step_gives_that_batch(coco_root):
    cfg = coco_cfg(coco_root, image_size=(48, 64))
    full = _take(pipeline.train(cfg, num_joints=17, global_batch=4, seed=0), 7)
    resumed = pipeline.train(cfg, num_joints=17, global_batch=4, seed=0, start_step=5)
    for s in (5, 6):  # step 6 is in the third epoch (12 records / 4 = 3 steps per epoch)
        got = next(resumed)
        for k in got:
            np.testing.assert_array_equal(got[k], full[s][k])


def test_processes_get_disjoint_shards_of_the_same_global_batch(coco_root):
    cfg = coco_cfg(coco_root, image_size=(48, 64))
    one = _take(pipeline.train(cfg, num_joints=17, global_batch=4, seed=1), 2)
    parts = [_take(pipeline.train(cfg, num_joints=17, global_batch=4, seed=1, process_index=p,
                                  process_count=2), 2) for p in range(2)]
    for s in range(2):
        for k in one[s]:
            np.testing.assert_array_equal(np.concatenate([parts[0][s][k], parts[1][s][k]]),
                                          one[s][k])
    n, spe = 12, 3
    for epoch in range(2):
        seen = np.concatenate([pipeline.train_record_indices(n, 4, 1, epoch * spe + s, p, 2)
                               for s in range(spe) for p in range(2)])
        assert len(set(seen.tolist())) == len(seen) == 12  # disjoint, and covers the epoch
    assert pipeline.steps_per_epoch(cfg, 4) == 3 and pipeline.steps_per_epoch(cfg, 5) == 2


@pytest.mark.parametrize("use_gt", [False, True])
def test_evaluation_covers_every_record_once(coco_root, use_gt):
    cfg = coco_cfg(coco_root, image_size=(48, 64), use_gt_boxes=use_gt)
    seen, n = [], None
    for p in range(2):
        it, info = pipeline.evaluation(cfg, num_joints=17, global_batch=4, process_index=p,
                                       process_count=2)
        batches = list(it)
        assert len(batches) == info.num_batches == 2
        for bt in batches:
            assert bt["image"].shape == (2, 64, 48, 3)
            seen += bt["index"][bt["valid"]].tolist()
            assert (bt["index"][~bt["valid"]] == -1).all()
            np.testing.assert_allclose(bt["area"], np.prod(bt["scale"] * 200, 1), rtol=1e-5)
        n = info.num_records
    assert sorted(seen) == list(range(n)) and n == 6
    assert info.annotation_file.endswith("person_keypoints_val2017.json")


def test_corrupt_image_raises_naming_the_file_or_is_skipped(tmp_path):
    root = write_coco(str(tmp_path), "train2017", num_images=4, people=1)
    bad = os.path.join(root, "images", "train2017", "000000001002.jpg")
    data = open(bad, "rb").read()
    open(bad, "wb").write(data[:200] + b"\x00" * 40)  # header survives, the scan data does not
    cfg = coco_cfg(root, image_size=(48, 64))
    it = pipeline.train(cfg, num_joints=17, global_batch=4, seed=0)
    with pytest.raises(DataError, match="000000001002.jpg") as e:
        next(it)
    # The record as the annotation file numbers it, without TensorFlow's node prefix.
    assert "person_keypoints_train2017.json: annotations[" in str(e.value)
    assert "function_node" not in str(e.value)
    cfg.skip_bad_records = True
    it = pipeline.train(cfg, num_joints=17, global_batch=2, seed=0)
    _take(it, 4)  # one bad image in each epoch of 4 records: 8 needed, 6 good per 8 visited
    # Closed here: its prefetch would otherwise go on decoding (and logging each skipped
    # record to the terminal) after the test.
    it.close()
    assert it.skipped >= 1


def test_oversized_image_is_refused_from_its_header(tmp_path, monkeypatch):
    from data_pipeline import augment
    monkeypatch.setattr(augment, "MAX_SIDE", 50)  # the test images are 64 px wide
    root = write_coco(str(tmp_path), "train2017", num_images=2, people=1)
    cfg = coco_cfg(root, image_size=(48, 64))
    with pytest.raises(DataError, match="too large"):
        next(pipeline.train(cfg, num_joints=17, global_batch=2, seed=0))


def test_mpii_training_batches(tmp_path):
    root = write_mpii(str(tmp_path), "train", num_people=4)
    cfg = coco_cfg(root, name="mpii", image_size=(64, 64), train_split="train",
                   val_split="valid", scale_factor=0.25, rotation_factor=30.0,
                   half_body_prob=0.0)
    batch = next(pipeline.train(cfg, num_joints=16, global_batch=2, seed=0))
    assert batch["image"].shape == (2, 64, 64, 3) and batch["joints"].shape == (2, 16, 2)
    with pytest.raises(ValueError, match="num_joints"):
        pipeline.train(cfg, num_joints=17, global_batch=2, seed=0)


def test_missing_dataset_directory_names_what_is_missing(tmp_path):
    cfg = coco_cfg(str(tmp_path / "nowhere"), image_size=(48, 64))
    with pytest.raises(DataError, match="nowhere.*person_keypoints_train2017.json: annotation "
                                        "file not found; check config.data.root"):
        pipeline.train(cfg, num_joints=17, global_batch=2, seed=0)
    root = write_coco(str(tmp_path / "no_images"), "train2017", num_images=2)
    os.rename(os.path.join(root, "images"), os.path.join(root, "pictures"))
    with pytest.raises(DataError, match=r"no image directory for split 'train2017'.*no_images"):
        pipeline.train(coco_cfg(root, image_size=(48, 64)), num_joints=17, global_batch=2, seed=0)


def test_detections_for_unknown_images_name_the_entry(coco_root, tmp_path):
    dets = json.load(open(os.path.join(coco_root, coco.DEFAULT_DETECTIONS)))
    dets[1]["image_id"] = 424242
    path = str(tmp_path / "dets.json")
    json.dump(dets, open(path, "w"))
    with pytest.raises(DataError, match=r"dets.json: \[1\]: refers to image_id 424242, which is "
                                        r"not in .*person_keypoints_val2017.json"):
        coco.read_detections(coco_root, "val2017", detection_file=path)
    assert len(coco.read_detections(coco_root, "val2017", detection_file=path,
                                    skip_bad=True)) == len(dets) - 1


def test_empty_evaluation_set_is_an_error_naming_the_file(coco_root):
    cfg = coco_cfg(coco_root, image_size=(48, 64), image_threshold=2.0)  # scores are <= 1
    with pytest.raises(DataError, match=r"COCO_val2017_detections_AP_H_56_person.json: nothing "
                                        r"to evaluate in split 'val2017'.*image_threshold = 2.0"):
        pipeline.evaluation(cfg, num_joints=17, global_batch=4)


@pytest.mark.slow  # compiles a train step or starts a fresh interpreter
def test_importing_the_pipeline_leaves_tensorflow_devices_alone():
    """Importing changes nothing in TensorFlow; building a pipeline hides the GPUs from it
    (tf.data runs on the host; a TensorFlow seeing a GPU takes its memory from JAX)."""
    import subprocess
    import sys
    code = ("import tensorflow as tf\n"
            "calls = []\n"
            "tf.config.set_visible_devices = lambda devices, kind=None: calls.append(kind)\n"
            "import data_pipeline.pipeline, data_pipeline.augment\n"
            "assert calls == [], calls\n"
            "import data_pipeline\n"
            "data_pipeline.tf_on_host_only()\n"
            "assert calls == ['GPU'], calls\n")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=300,
                   cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
