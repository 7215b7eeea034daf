"""Keypoint sets as data: the built-in COCO and MPII sets, sets read from files, what is
derived from the names, what is refused, and the evaluation with a set's OKS sigmas."""
import json
import os
import pathlib

import numpy as np
import pytest

from data_helpers import write_coco
from data_pipeline import coco, keypoint_sets
from data_pipeline.joints import (COCO, COCO_FLIP_PAIRS, COCO_JOINTS, COCO_LIMBS, COCO_SIGMAS,
                                  COCO_UPPER_BODY, MPII, MPII_FLIP_PAIRS)
from data_pipeline.records import DataError

FIGURE13 = str(pathlib.Path(__file__).resolve().parent.parent / "docs" / "figure13.json")
FIVE = {"name": "hand5", "keypoints": ["wrist", "left_tip", "right_tip", "tip_l", "tip_r"],
        "skeleton": [[1, 2], [1, 3], ["wrist", "tip_l"], [1, 5]]}


def _write(path, obj) -> str:
    path.write_text(json.dumps(obj))
    return str(path)


def test_built_in_sets_are_the_official_facts():
    assert COCO.joints == COCO_JOINTS and COCO.flip_pairs == COCO_FLIP_PAIRS
    assert COCO.limbs == COCO_LIMBS and COCO.upper_body == COCO_UPPER_BODY
    assert np.array_equal(np.asarray(COCO.sigmas), COCO_SIGMAS)  # bitwise
    assert COCO.weights() == (1.0,) * 17
    assert MPII.num_joints == 16 and MPII.flip_pairs == MPII_FLIP_PAIRS and MPII.sigmas is None
    from pycocotools.cocoeval import Params
    assert np.array_equal(Params("keypoints").kpt_oks_sigmas, np.asarray(COCO.sigmas))


def test_a_set_read_back_from_its_json_is_the_same_set(tmp_path):
    for built_in in (COCO, MPII):
        entry = built_in.to_json()
        again = keypoint_sets.read(_write(tmp_path / f"{built_in.name}.json", entry))
        assert (again.joints, again.flip_pairs, again.limbs, again.upper_body) == (
            built_in.joints, built_in.flip_pairs, built_in.limbs, built_in.upper_body)
        assert again.sigmas == (built_in.sigmas or again.sigmas)
        assert again.source.endswith(f"{built_in.name}.json")
    # COCO's names alone give COCO's flip pairs, sides and sigmas.
    named = keypoint_sets.from_dict({"keypoints": list(COCO_JOINTS)}, "names only")
    assert named.flip_pairs == COCO_FLIP_PAIRS and named.sigmas == COCO.sigmas
    assert (named.left, named.right) == (COCO.left, COCO.right)
    assert named.upper_body == COCO_UPPER_BODY


def test_flip_pairs_sides_and_defaults_from_the_names():
    s = keypoint_sets.from_dict(FIVE, "hand5.json")
    assert s.flip_pairs == ((1, 2), (3, 4))
    assert s.limbs == ((0, 1), (0, 2), (0, 3), (0, 4))
    assert s.side(1) == s.side(3) == "left" and s.side(2) == "right" and s.side(0) == "centre"
    assert s.flip_permutation() == [0, 2, 1, 4, 3]
    assert s.sigmas == (keypoint_sets.DEFAULT_SIGMA,) * 5 and s.weights() == (1.0,) * 5
    assert keypoint_sets.mirror_name("Left-Paw") == "Right-Paw"
    assert keypoint_sets.mirror_name("l_knee") == "r_knee"
    assert keypoint_sets.mirror_name("tail") == "tail"
    # Given pairs (by name) replace the derived ones; an empty list means no flip pairs.
    assert keypoint_sets.from_dict({**FIVE, "flip_pairs": []}, "x").flip_pairs == ()


@pytest.mark.parametrize("extra, message", [
    ({"flip_pairs": [["left_tip", "paw"]]}, r"'flip_pairs' names 'paw', which is not among the 5 keypoints"),
    ({"flip_pairs": [["left_tip", "right_tip"], ["left_tip", "tip_r"]]}, r"'left_tip' in two pairs"),
    ({"sigmas": [0.1, 0.1, 0.1]}, r"'sigmas' must be 5 positive numbers, one per keypoint, got 3 values"),
    ({"joint_weights": [1, 1, 1, 1, -1]}, r"'joint_weights' must be 5 non-negative numbers"),
    ({"skeleton": [[1, 6]]}, r"'skeleton' has 6: give a joint name or a 1-based index of the 5"),
    ({"upper_body": ["wrist", "elbow"]}, r"'upper_body' names 'elbow'"),
    ({"keypoints": ["a", "b", "a"]}, r"'keypoints' names \['a'\] more than once"),
])
def test_a_wrong_set_is_refused_in_one_line_naming_the_file(tmp_path, extra, message):
    path = _write(tmp_path / "hand5.json", {**FIVE, **extra})
    with pytest.raises(DataError, match=message) as e:
        keypoint_sets.read(path)
    assert str(e.value).startswith(path) and "\n" not in str(e.value)


def test_a_coco_annotation_file_gives_the_set_of_its_category(tmp_path):
    cats = [{"id": 1, "name": "person", "keypoints": list(COCO_JOINTS)},
            {"id": 2, "name": "dog", "keypoints": ["nose", "left_ear", "right_ear", "tail"],
             "skeleton": [[1, 2], [1, 3]]}]
    path = _write(tmp_path / "ann.json", {"images": [], "annotations": [], "categories": cats})
    dog = keypoint_sets.read(path, category_id=2)
    assert dog.joints == ("nose", "left_ear", "right_ear", "tail") and dog.flip_pairs == ((1, 2),)
    assert dog.sigmas[:3] == COCO.sigmas[:1] + COCO.sigmas[3:5]
    assert keypoint_sets.read(path).joints == COCO_JOINTS
    with pytest.raises(DataError, match=r"ann.json: no category with id 3 .*its categories: 1 "
                                        r"\('person'\), 2 \('dog'\): set --config.data.category_id=1"):
        keypoint_sets.read(path, category_id=3)


def test_the_config_check_names_the_joint_count_and_the_fix(tmp_path):
    from hrgan_jax.configs.default import get_config
    from hrgan_jax import config_checks
    config = get_config("micro")
    config_checks.check(config)
    config.data.keypoints = _write(tmp_path / "hand5.json", FIVE)
    with pytest.raises(ValueError, match=r"config.model.num_joints = 17 but the keypoint set "
                                         r"'hand5' \(from .*hand5.json\) has 5: set "
                                         r"--config.model.num_joints=5$"):
        config_checks.check(config)
    config.model.num_joints = 5
    config_checks.check(config)
    config.data.name = "mpii"
    with pytest.raises(ValueError, match="needs the COCO layout"):
        config_checks.check(config)


def test_joint_weights_scale_the_target_weights_only():
    from hrgan_jax.targets import heatmap_targets
    rng = np.random.default_rng(0)
    joints = rng.uniform(0, 64, (2, 5, 2)).astype(np.float32)
    vis = np.array([[1, 1, 0, 1, 1], [1, 0, 1, 1, 1]], np.float32)
    plain_maps, plain = heatmap_targets(joints, vis, (64, 64), (16, 16), 2.0)
    same_maps, same = heatmap_targets(joints, vis, (64, 64), (16, 16), 2.0, (1.0,) * 5)
    w = keypoint_sets.from_dict({**FIVE, "joint_weights": [1, 1.5, 1.5, 2, 0]}, "x").weights()
    maps, weighted = heatmap_targets(joints, vis, (64, 64), (16, 16), 2.0, w)
    assert np.array_equal(same, plain) and np.array_equal(same_maps, plain_maps)
    np.testing.assert_array_equal(maps, plain_maps)
    np.testing.assert_allclose(weighted, np.asarray(plain) * np.asarray(w, np.float32))


def _five_joint_split(root, split="val2017", num_images=3, category_id=1):
    """write_coco's people with 5 of their joints, category ``category_id``."""
    write_coco(root, split, num_images=num_images, people=2)
    path = coco.annotation_file(root, split)
    ann = json.load(open(path))
    for a in ann["annotations"]:
        k = np.asarray(a["keypoints"]).reshape(17, 3)[:5]
        k[:, 2] = 2
        a.update(keypoints=k.reshape(-1).tolist(), num_keypoints=5, category_id=category_id)
    ann["categories"] = [{"id": category_id, **FIVE}]
    json.dump(ann, open(path, "w"))
    return path


def test_ground_truth_as_predictions_scores_ap_1_with_the_sets_sigmas(tmp_path):
    """COCOeval carries COCO's 17 sigmas unless told; the evaluation gives it the set's."""
    root = str(tmp_path)
    path = _five_joint_split(root, category_id=3)
    hand = keypoint_sets.read(path, category_id=3)
    records = coco.read_ground_truth(root, "val2017", num_joints=5, category_id=3)
    assert len(records) == 6 and records.joints.shape == (6, 5, 2)
    from hrgan_jax.evaluation import coco as coco_eval
    ann = json.load(open(path))["annotations"]
    kpts = np.stack([np.asarray(a["keypoints"], np.float64).reshape(5, 3) for a in ann])
    kpts[:, :, 2] = 0.9
    out = coco_eval.evaluate(kpts, np.ones(len(ann)), [a["image_id"] for a in ann], path,
                             tmp_path / "res.json", areas=[a["area"] for a in ann],
                             sigmas=hand.sigmas, category_id=3)
    assert out["AP"] == pytest.approx(1.0) and out["AR"] == pytest.approx(1.0)
    assert {r["category_id"] for r in json.load(open(tmp_path / "res.json"))} == {3}
    with pytest.raises(ValueError, match="5 joints but 17 OKS sigmas"):
        coco_eval.evaluate(kpts, np.ones(len(ann)), [a["image_id"] for a in ann], path,
                           tmp_path / "res.json", areas=[a["area"] for a in ann])


def test_the_reader_refuses_another_category_and_another_joint_count(tmp_path):
    root = str(tmp_path)
    path = _five_joint_split(root, category_id=2)
    with pytest.raises(DataError, match=r"person_keypoints_val2017.json: no annotation is of "
                                        r"category 1 \(config.data.category_id\): all 6 were "
                                        r"skipped, being of category 2 \('hand5', 6 annotations\): "
                                        r"set --config.data.category_id=2$"):
        coco.read_ground_truth(root, "val2017", num_joints=17)
    with pytest.raises(DataError, match=r"category 2 \('hand5'\) has 5 keypoints, the configured "
                                        r"keypoint set 17: train on the file's own keypoints with "
                                        r"--config.data.keypoints=\S+person_keypoints_val2017.json "
                                        r"\(and --config.model.num_joints=5\)$"):
        coco.read_ground_truth(root, "val2017", num_joints=17, category_id=2)
    ann = json.load(open(path))
    del ann["categories"][0]["keypoints"]
    json.dump(ann, open(path, "w"))
    with pytest.raises(DataError, match=r"annotations of category 2 have 5 keypoints each, the "
                                        r"configured keypoint set 17"):
        coco.read_ground_truth(root, "val2017", num_joints=17, category_id=2)
    for a in ann["annotations"]:
        a["iscrowd"] = 1
    json.dump(ann, open(path, "w"))
    with pytest.raises(DataError, match=r"no person of category 2 to read: of 6 annotations, "
                                        r"skipped 6 crowd$"):
        coco.read_ground_truth(root, "val2017", num_joints=5, category_id=2)
    assert os.path.exists(path)


@pytest.mark.slow  # trains two steps of the micro network
def test_your_own_keypoints_end_to_end(tmp_path):
    """The README's "Your own keypoints", in one process: --mode=synth writes figures with
    docs/figure13.json's 13 joints in COCO format (its own categories entry), the run
    reads the set from that annotation file, trains (one step), evaluates (COCO AP with
    the set's sigmas), exports (ONNX, safetensors, a config.json carrying the set) and predicts with
    the ONNX model; the ground truth as predictions scores AP 1."""
    import jax

    from conftest import train_config
    from hrgan_jax import cli, config_checks, onnx_export, predict, trainer
    from hrgan_jax.evaluation import coco as coco_eval

    figure13 = keypoint_sets.read(FIGURE13)
    synth = train_config(**{"data.root": str(tmp_path / "data"), "model.num_joints": 13,
                            "data.keypoints": FIGURE13,
                            "synth.num_train": 16, "synth.num_val": 4, "synth.max_people": 1,
                            "synth.image_size": (96, 72), "synth.datasets": ("coco",),
                            "synth.scene": "plain"})
    cli.synth(synth)
    root = tmp_path / "data" / "coco"
    val = coco.annotation_file(str(root), "val2017")
    config = train_config(**{"data.root": str(root), "model.num_joints": 13,
                             "data.keypoints": coco.annotation_file(str(root), "train2017"),
                             "train.steps": 1, "eval.every_epochs": -1, "eval.batch_size": 8})
    config_checks.check(config)
    kset = keypoint_sets.of_config(config.data)
    assert (kset.joints, kset.flip_pairs, kset.sigmas) == (
        figure13.joints, figure13.flip_pairs, figure13.sigmas)
    assert kset.flip_pairs == tuple((i, i + 1) for i in range(1, 13, 2))  # from the names

    # Ground truth as predictions: AP 1 with the set's sigmas.
    ann = json.load(open(val))
    gt = [{"image_id": a["image_id"], "category_id": 1, "keypoints": a["keypoints"],
           "score": 1.0} for a in ann["annotations"]]
    json.dump(gt, open(tmp_path / "gt_results.json", "w"))
    assert coco_eval.coco_keypoint_eval(val, tmp_path / "gt_results.json",
                                        kset.sigmas)["AP"] == pytest.approx(1.0)

    workdir = str(tmp_path / "run")
    trainer.train_and_evaluate(config, workdir, devices=jax.devices()[:1])
    evaluated = cli.evaluate(config, workdir, None, out=str(tmp_path / "evaluate"))
    assert 0.0 <= evaluated["AP"] <= 1.0
    results = json.load(open(tmp_path / "evaluate" / "keypoints_val2017_results_1.json"))
    assert results and all(len(r["keypoints"]) == 3 * 13 for r in results)

    export = tmp_path / "export"
    cli.export(config, "generator", workdir, None, str(export))
    assert (export / "generator.safetensors").exists()
    described = json.load(open(export / "config.json"))["keypoint_set"]
    assert described["keypoints"] == list(figure13.joints)
    assert described["sigmas"] == list(figure13.sigmas)

    # The exported model, its keypoint set read back from its own config.json.
    config.data.keypoints = str(export / "config.json")
    assert keypoint_sets.of_config(config.data).flip_pairs == figure13.flip_pairs
    model = "generator.msgpack" if onnx_export.available() else "generator.onnx"
    json_path = predict.predict(config, str(root / "images" / "val2017"),
                                boxes=str(root / "person_detection_results" /
                                          "COCO_val2017_detections_AP_H_56_person.json"),
                                weights_path=str(export / model), out=str(tmp_path / "pred"))
    people = json.load(open(json_path))
    assert people and all(len(p["keypoints"]) == 3 * 13 and p["category_id"] == 1
                          for p in people)
    assert len(list((tmp_path / "pred").glob("*.pose.png"))) == 4


def test_the_command_line_says_it_in_one_line_before_anything_is_written(tmp_path, monkeypatch):
    from test_launch import launch_here
    bad = _write(tmp_path / "hand5.json", {**FIVE, "sigmas": [0.1]})
    status, _, err = launch_here(monkeypatch, "--mode=check", "--config=configs/default.py:micro",
                                 f"--config.data.keypoints={bad}", "--config.model.num_joints=5",
                                 f"--weights={tmp_path / 'g.safetensors'}")
    assert status == 1 and err.strip().count("\n") <= 1, err
    assert f"{bad}: 'sigmas' must be 5 positive numbers, one per keypoint, got 1 values" in err
    root = str(tmp_path / "data")
    _five_joint_split(root, "train2017", category_id=2)
    workdir = tmp_path / "run"
    status, _, err = launch_here(monkeypatch, "--mode=train", "--config=configs/default.py:micro",
                                 f"--config.data.root={root}", f"--workdir={workdir}")
    assert status == 1 and err.strip().count("\n") == 0, err
    assert err.startswith("error: ") and "set --config.data.category_id=2" in err
    assert not workdir.exists()
