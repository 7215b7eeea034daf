"""The official files as they are (issue: real COCO/MPII files, real failures).

Spellings and layouts are those of the official downloads, not of this project's writer:
gt_valid.mat's `dataset_joints` with `thrx`, COCO annotations whose fields pycocotools
reads, detection files with a bad entry, a PNG saved as .jpg, and runs whose evaluation
fails.  Start-up checks must fail in seconds, before anything is written.
"""
import json
import os
import re
import subprocess
import sys

import cv2
import jax
import numpy as np
import pytest
import scipy.io

from conftest import subprocess_env, train_config
from data_helpers import coco_cfg, texture, write_coco
from data_pipeline import augment, coco, pipeline, synthetic
from data_pipeline.joints import MPII_SHORT_NAMES
from data_pipeline.records import DataError, split_names
from hrgan_jax import checkpoints, cli, predict, trainer
from hrgan_jax.evaluation import mpii

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ONE = jax.devices()[:1]
OFFICIAL_MPII_NAMES = "rank rkne rhip lhip lkne lank pelv thrx neck head rwri relb rsho lsho lelb lwri"


def write_matlab_gt(path, records, head_boxes):
    """gt_valid.mat laid out as the official (MATLAB-written) file: dataset_joints a 1x16
    cell array of char arrays, the rest double arrays with people on the last axis."""
    names = np.empty((1, 16), dtype=object)
    for i, name in enumerate(OFFICIAL_MPII_NAMES.split()):
        names[0, i] = np.array([name])
    n = len(records)
    joints = np.array([r["joints"] for r in records], np.float64)  # (N, 16, 2), 1-based
    vis = np.array([r["joints_vis"] for r in records], np.float64)
    scipy.io.savemat(path, {"dataset_joints": names, "jnt_missing": (1.0 - vis).T,
                            "pos_gt_src": joints.transpose(1, 2, 0),
                            "headboxes_src": np.asarray(head_boxes, np.float64)
                            .reshape(n, 2, 2).transpose(1, 2, 0)}, format="5")


@pytest.fixture(scope="module")
def mpii_root(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("mpii"))
    synthetic.write_mpii(root, {"train": 8, "valid": 3}, seed=2, image_size=(160, 120))
    # Replace the writer's gt_valid.mat with one written as the official file is.
    records = json.load(open(os.path.join(root, "annot", "valid.json")))
    ours = scipy.io.loadmat(os.path.join(root, "annot", "gt_valid.mat"))
    heads = ours["headboxes_src"].transpose(2, 0, 1)
    write_matlab_gt(os.path.join(root, "annot", "gt_valid.mat"), records, heads)
    return root


def mpii_config(root, **overrides):
    config = train_config(**{"data.root": root, "data.name": "mpii",
                                  "model.num_joints": 16, "data.half_body_prob": 0.0,
                                  "train.log_every": 2, "checkpoint.every_steps": 1000,
                                  "eval.batch_size": 8, **overrides})
    return config


def test_the_one_joint_module_spells_thorax_as_the_official_file():
    assert " ".join(MPII_SHORT_NAMES) == OFFICIAL_MPII_NAMES


def test_ground_truth_as_predictions_scores_100_on_the_official_mat(mpii_root):
    records = json.load(open(os.path.join(mpii_root, "annot", "valid.json")))
    preds = np.array([r["joints"] for r in records], np.float64) - 1.0  # 0-based
    table = mpii.evaluate(preds, os.path.join(mpii_root, "annot", "gt_valid.mat"))
    assert all(v == 100.0 for v in table.values()), table


def test_pelvis_and_thorax_are_left_out_by_position_not_by_name(mpii_root):
    gt = mpii.load_ground_truth(os.path.join(mpii_root, "annot", "gt_valid.mat"))
    names = gt["dataset_joints"].copy()
    names[0, 6], names[0, 7] = np.array(["pelvis?"]), np.array(["chest"])
    n = gt["pos_gt_src"].shape[-1]
    preds = gt["pos_gt_src"].transpose(2, 0, 1) - 1.0
    table = mpii.pckh(preds, gt["jnt_missing"], gt["pos_gt_src"], gt["headboxes_src"], names)
    assert table["Mean"] == 100.0 and n >= 3
    names[0, 9] = np.array(["HEAD"])  # a reported joint it cannot find is an error
    with pytest.raises(ValueError, match=r"lacks \['head'\]"):
        mpii.pckh(preds, gt["jnt_missing"], gt["pos_gt_src"], gt["headboxes_src"], names)


def test_splits_follow_the_dataset_unless_given():
    config = train_config(**{"data.name": "mpii"})
    assert split_names(config.data) == ("train", "valid")
    config.data.name = "coco"
    assert split_names(config.data) == ("train2017", "val2017")
    config.data.val_split = "minival"
    assert split_names(config.data) == ("train2017", "minival")


@pytest.mark.slow
def test_mpii_end_to_end_train_evaluate_pckh_table(mpii_root, tmp_path, capsys):
    workdir = str(tmp_path / "run")
    # No split given: MPII's own names (annot/train.json, annot/valid.json) are used.
    config = mpii_config(mpii_root, **{"train.steps": 2, "train.batch_size": 4,
                                       "eval.every_epochs": 0})
    metrics = trainer.train_and_evaluate(config, workdir, devices=ONE)
    out = capsys.readouterr().out
    # PCKh's columns in the table's order, then the collapse measure (evaluation.collapse).
    assert list(metrics)[:len(mpii.COLUMNS)] == list(mpii.COLUMNS)
    assert set(metrics) - set(mpii.COLUMNS) == {"pose_spread"}
    assert 0.0 <= metrics["pose_spread"] < 10.0
    assert "| Arch | Head | Shoulder | Elbow | Wrist | Hip | Knee | Ankle | Mean | Mean@0.1 |" in out
    assert os.path.exists(os.path.join(workdir, "eval", "pred.mat"))
    assert json.load(open(os.path.join(workdir, "eval", "results_2.json")))["step"] == 2
    # The best checkpoint is picked by MPII's Mean (the dataset's headline metric).
    ckpt = checkpoints.Checkpoints(os.path.join(workdir, "checkpoints"), every_steps=1, keep=9,
                                   best_metric="Mean", async_save=False)
    assert ckpt.best_step() == 2
    ckpt.close()


def _nothing_written(workdir):
    return not os.path.exists(workdir)


@pytest.mark.parametrize("damage, match", [
    ("num_keypoints", r"annotations\[0\] \(id 1\): no 'num_keypoints'"),
    ("area", r"annotations\[0\] \(id 1\): no 'area'"),
    ("iscrowd", r"annotations\[0\] \(id 1\): no 'iscrowd'"),
    ("categories", r"'categories' must be a list"),
])
def test_annotations_pycocotools_cannot_evaluate_stop_the_start(train_coco_root, tmp_path,
                                                                damage, match):
    root = tmp_path / "coco"
    (root / "annotations").mkdir(parents=True)
    os.symlink(os.path.join(train_coco_root, "images"), root / "images")
    os.symlink(os.path.join(train_coco_root, "person_detection_results"),
               root / "person_detection_results")
    for split in ("train2017", "val2017"):
        name = f"person_keypoints_{split}.json"
        ann = json.load(open(os.path.join(train_coco_root, "annotations", name)))
        if split == "val2017":
            if damage == "categories":
                del ann["categories"]
            else:
                del ann["annotations"][0][damage]
        json.dump(ann, open(root / "annotations" / name, "w"))
    workdir = str(tmp_path / "run")
    config = train_config(**{"data.root": str(root), "train.steps": 2})
    with pytest.raises(DataError, match=r"person_keypoints_val2017.json: " + match):
        trainer.train_and_evaluate(config, workdir, devices=ONE)
    assert _nothing_written(workdir)


def test_missing_evaluation_files_stop_the_start(train_coco_root, mpii_root, tmp_path):
    workdir = str(tmp_path / "run")
    config = train_config(**{"data.root": train_coco_root, "train.steps": 2,
                                  "data.detection_file": str(tmp_path / "dets.json")})
    with pytest.raises(DataError, match=r"dets.json: detection file not found"):
        trainer.train_and_evaluate(config, workdir, devices=ONE)
    assert _nothing_written(workdir)

    gtless = tmp_path / "mpii"
    os.makedirs(gtless / "annot")
    os.symlink(os.path.join(mpii_root, "images"), gtless / "images")
    for split in ("train", "valid"):
        os.symlink(os.path.join(mpii_root, "annot", f"{split}.json"),
                   gtless / "annot" / f"{split}.json")
    with pytest.raises(DataError, match=r"gt_valid.mat: MPII ground truth not found"):
        trainer.train_and_evaluate(mpii_config(str(gtless), **{"train.steps": 2}), workdir,
                                   devices=ONE)
    assert _nothing_written(workdir)
    # A metric the dataset's evaluation does not report, for the best checkpoint.
    with pytest.raises(DataError, match=r"best_metric = 'AP' is not a metric of the mpii"):
        trainer.train_and_evaluate(mpii_config(mpii_root, **{"checkpoint.best_metric": "AP"}),
                                   workdir, devices=ONE)
    assert _nothing_written(workdir)


def test_a_dataset_smaller_than_one_batch_stops_before_anything_is_written(train_coco_root, tmp_path):
    workdir = str(tmp_path / "run")
    config = train_config(**{"data.root": train_coco_root, "train.batch_size": 64,
                                  "eval.every_epochs": -1})
    with pytest.raises(DataError, match=r"training records cannot fill one global batch of 64: "
                                        r"set --config.train.batch_size to at most \d+"):
        trainer.train_and_evaluate(config, workdir, devices=ONE)
    assert _nothing_written(workdir)


@pytest.mark.slow  # compiles a train step or starts a fresh interpreter
def test_launch_says_it_in_one_line(train_coco_root, tmp_path):
    workdir = tmp_path / "run"
    r = subprocess.run(
        [sys.executable, "launch.py", "--mode=train", "--config=configs/default.py:micro",
         f"--workdir={workdir}", f"--config.data.root={train_coco_root}",
         "--config.train.batch_size=64"], cwd=ROOT, capture_output=True, text=True, timeout=300,
        env=subprocess_env(1))
    assert r.returncode == 1
    last = r.stderr.strip().splitlines()[-1]
    assert re.match(r"error: .*person_keypoints_train2017.json: \d+ training records cannot "
                    r"fill one global batch of 64: set --config.train.batch_size", last), r.stderr
    assert "Traceback" not in r.stderr and not workdir.exists()


@pytest.mark.slow
def test_a_failing_evaluation_keeps_its_checkpoint_and_the_rerun_resumes(train_coco_root,
                                                                         tmp_path, capsys):
    workdir = str(tmp_path / "run")
    # Evaluation at the end of the first epoch (it fails) and at the end; no regular saves.
    config = train_config(**{"data.root": train_coco_root, "checkpoint.every_steps": 1000,
                                  "eval.every_epochs": 1, "eval.batch_size": 8})
    epoch = pipeline.steps_per_epoch(config.data, 8)
    config.train.steps = total = epoch + 1

    def broken(variables, step):
        raise FileNotFoundError("the evaluation's ground truth went missing")

    with pytest.raises(FileNotFoundError, match="went missing"):
        trainer.train_and_evaluate(config, workdir, evaluator=broken, devices=ONE)
    assert "checkpoint" in capsys.readouterr().err
    ckpt = checkpoints.Checkpoints(os.path.join(workdir, "checkpoints"), every_steps=1, keep=9,
                                   best_metric="AP", async_save=False)
    assert ckpt.all_steps() == [epoch]
    ckpt.close()

    # The rerun (the real evaluation now) resumes there, first runs the evaluation that
    # failed, then trains on and records the final one.
    trainer.train_and_evaluate(config, workdir, devices=ONE)
    captured = capsys.readouterr()
    assert f"resuming from step {epoch} of {total}" in captured.out
    assert (f"checkpoint {workdir}/checkpoints/{epoch} has no evaluation yet: evaluating it "
            f"first") in captured.err
    ckpt = checkpoints.Checkpoints(os.path.join(workdir, "checkpoints"), every_steps=1, keep=9,
                                   best_metric="AP", async_save=False)
    evaluations = json.load(open(os.path.join(workdir, "checkpoints", "evaluations.json")))
    assert list(evaluations) == [str(epoch), str(total)]
    assert all("AP" in e for e in evaluations.values())
    best = max((e["AP"], int(s)) for s, e in evaluations.items())[1]
    assert ckpt.all_steps() == [epoch, total] and ckpt.best_step() == best
    ckpt.close()

    # --mode=evaluate writes its own directory and leaves the training's results alone.
    training_results = os.path.join(workdir, "eval", f"results_{total}.json")
    before = open(training_results).read()
    cli.evaluate(config, workdir, None, "best")
    assert open(training_results).read() == before
    assert os.path.exists(os.path.join(workdir, "evaluate", f"results_{total}.json"))
    assert cli.evaluation_dir(workdir, None, "/x") == "/x"
    assert cli.evaluation_dir(None, "/w/generator.msgpack", None) == "/w/generator.msgpack.evaluate"


BAD_DETECTIONS = [
    ({"score": "high"}, r"\[1\]: 'score' must be a number, got 'high'"),
    ({"bbox": [1, "2", 10, 10]}, r"\[1\]: 'bbox' must be \[x, y, w, h\], four numbers"),
    ({"bbox": [1, 2, 0, 10]}, r"\[1\]: 'bbox' must be \[x, y, w, h\], four numbers with w > 0"),
    ({"score": True}, r"\[1\]: 'score' must be a number, got True"),
]


@pytest.mark.parametrize("change, match", BAD_DETECTIONS)
def test_detection_files_follow_one_set_of_rules_in_every_mode(tmp_path, change, match):
    root = write_coco(str(tmp_path / "coco"), "val2017", num_images=2, people=1,
                      detections=True)
    path = os.path.join(root, coco.DEFAULT_DETECTIONS)
    dets = json.load(open(path))
    dets[1].update(change)
    json.dump(dets, open(path, "w"))
    with pytest.raises(DataError, match=match):  # the dataset reader (train, evaluate)
        coco.read_detections(root, "val2017")
    images = sorted(os.path.join(root, "images", "val2017", n)
                    for n in os.listdir(os.path.join(root, "images", "val2017")))
    with pytest.raises(predict.PredictError, match=match):  # --mode=predict --boxes
        predict.read_boxes(path, images)


@pytest.fixture()
def png_as_jpg(tmp_path):
    rgb = texture(np.random.default_rng(3), 80, 60)
    path = tmp_path / "looks_like.jpg"
    cv2.imwrite(str(tmp_path / "real.png"), rgb[:, :, ::-1])
    os.rename(tmp_path / "real.png", path)
    assert path.read_bytes()[:4] == b"\x89PNG"
    return path, rgb


@pytest.mark.parametrize("crop_decode", [True, False])
def test_png_data_in_a_jpg_file_is_read_as_cv2_imread_reads_it(png_as_jpg, crop_decode):
    import tensorflow as tf
    path, rgb = png_as_jpg
    data = tf.io.read_file(str(path))
    assert tuple(augment.image_shape(data, tf.constant(str(path))).numpy()) == (60, 80, 3)
    trans = cv2.getAffineTransform(np.float32([[5, 5], [70, 5], [5, 50]]),
                                   np.float32([[0, 0], [47, 0], [0, 63]]))
    got = augment.decode_and_warp(data, tf.constant(str(path)), trans, (48, 64),
                                  crop_decode=crop_decode).numpy()
    official = cv2.imread(str(path), cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION)[:, :, ::-1]
    want = cv2.warpAffine(np.ascontiguousarray(official), trans, (48, 64), flags=cv2.INTER_LINEAR)
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(predict.read_image(str(path)), rgb)  # predict: the same pixels


def test_png_images_train_and_evaluate_through_the_pipelines(tmp_path):
    root = write_coco(str(tmp_path), "val2017", num_images=3, people=1, detections=True)
    folder = os.path.join(root, "images", "val2017")
    for name in os.listdir(folder):  # every image PNG data under its .jpg name
        image = cv2.imread(os.path.join(folder, name))
        ok, png = cv2.imencode(".png", image)
        open(os.path.join(folder, name), "wb").write(png.tobytes())
    cfg = coco_cfg(root, image_size=(48, 64), train_split="val2017")
    batch = next(pipeline.train(cfg, num_joints=17, global_batch=2, seed=0))
    assert batch["image"].shape == (2, 64, 48, 3) and batch["image"].any()
    batches, info = pipeline.evaluation(cfg, num_joints=17, global_batch=4)
    assert next(batches)["image"].shape == (4, 64, 48, 3) and info.num_records == 3


def test_predict_threshold_is_a_setting_and_joints_drawn_are_counted():
    config = train_config()
    assert config.eval.draw_threshold == 0.2
    image = np.zeros((40, 40, 3), np.uint8)
    person = {"keypoints": sum(([10.0 + j, 20.0, 0.05 * j] for j in range(17)), [])}
    _, drawn = predict.draw(image, [person], "coco", threshold=0.2)
    assert drawn == 13  # scores 0.2 .. 0.8
    picture, drawn = predict.draw(image, [person], "coco", threshold=0.0)
    assert drawn == 17 and picture.any()


def test_predict_turns_photos_upright_by_their_exif_orientation(tmp_path):
    from PIL import Image
    rgb = texture(np.random.default_rng(4), 60, 30)
    im = Image.fromarray(rgb)
    exif = im.getexif()
    exif[0x0112] = 6  # "rotate 90 CW to view"
    im.save(tmp_path / "phone.jpg", exif=exif, quality=95)
    assert predict.read_image(str(tmp_path / "phone.jpg")).shape == (60, 30, 3)


def test_orbax_floor_is_the_release_with_preservation_policies():
    line = next(l for l in open(os.path.join(ROOT, "pyproject.toml"))
                if l.strip().startswith('"orbax-checkpoint'))
    floor = tuple(int(v) for v in re.search(r">=([\d.]+)", line).group(1).split("."))
    assert floor >= (0, 11, 14), line  # CheckpointManagerOptions(preservation_policy=...)
