"""The synthetic figures: official COCO / MPII layouts, exact and visible keypoints, determinism."""
import contextlib
import filecmp
import io
import json
import os

import numpy as np
import pytest
import scipy.io
from PIL import Image
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from data_pipeline import synthetic as S
from data_pipeline.joints import COCO_JOINTS

SMALL = (320, 240)


@pytest.fixture(scope="module")
def coco_root(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("coco"))
    summary = S.write_coco(root, {"train2017": 3, "val2017": 6}, seed=1, image_size=SMALL)
    return root, summary


@pytest.fixture(scope="module")
def mpii_root(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("mpii"))
    summary = S.write_mpii(root, {"train": 3, "valid": 6}, seed=1, image_size=SMALL)
    return root, summary


def _quiet(fn, *args):
    with contextlib.redirect_stdout(io.StringIO()):
        return fn(*args)


def test_coco_layout_and_pycocotools_round_trip(coco_root):
    root, summary = coco_root
    for split in ("train2017", "val2017"):
        coco = _quiet(COCO, os.path.join(root, "annotations", f"person_keypoints_{split}.json"))
        anns = coco.loadAnns(coco.getAnnIds())
        assert len(coco.getImgIds()) == summary[split]["images"]
        assert len(anns) == summary[split]["people"] > 0
        assert sum(a["num_keypoints"] for a in anns) == summary[split]["keypoints"]
        cat = coco.loadCats(1)[0]
        assert cat["name"] == "person" and cat["keypoints"] == list(COCO_JOINTS)
        assert len(cat["skeleton"]) == 19
        for img in coco.loadImgs(coco.getImgIds()):
            assert img["file_name"] == f"{img['id']:012d}.jpg"
            with Image.open(os.path.join(root, "images", split, img["file_name"])) as im:
                assert im.size == (img["width"], img["height"]) == SMALL
        for a in anns:
            k = np.array(a["keypoints"], float).reshape(17, 3)
            assert a["category_id"] == 1 and a["iscrowd"] == 0 and a["area"] > 0
            assert a["num_keypoints"] == np.count_nonzero(k[:, 2]) > 0
            assert set(np.unique(k[:, 2])) <= {0, 1, 2}
            assert np.all(k[k[:, 2] == 0, :2] == 0)
            lab = k[k[:, 2] > 0]
            assert np.all((lab[:, 0] >= 0) & (lab[:, 0] <= SMALL[0] - 1) & (lab[:, 1] >= 0)
                          & (lab[:, 1] <= SMALL[1] - 1))
            x, y, w, h = a["bbox"]
            assert w > 0 and h > 0 and x >= 0 and y >= 0 and x + w <= SMALL[0] and y + h <= SMALL[1]
            # The box is around the drawn figure: it holds every labelled keypoint.
            assert np.all((lab[:, 0] >= x - 1) & (lab[:, 0] <= x + w) & (lab[:, 1] >= y - 1) & (lab[:, 1] <= y + h))


def test_cocoeval_ground_truth_as_predictions_gives_ap_1(coco_root):
    root, _ = coco_root
    gt = _quiet(COCO, os.path.join(root, "annotations", "person_keypoints_val2017.json"))
    results = [{"image_id": a["image_id"], "category_id": 1, "keypoints": a["keypoints"], "score": 1.0}
               for a in gt.loadAnns(gt.getAnnIds())]
    dt = _quiet(gt.loadRes, results)
    ev = COCOeval(gt, dt, "keypoints")
    _quiet(ev.evaluate)
    _quiet(ev.accumulate)
    _quiet(ev.summarize)
    assert ev.stats[0] == pytest.approx(1.0)  # AP
    assert ev.stats[5] == pytest.approx(1.0)  # AR


def test_coco_detection_file(coco_root):
    root, summary = coco_root
    with open(os.path.join(root, "person_detection_results", S.COCO_DETECTION_FILE)) as f:
        dets = json.load(f)
    gt = _quiet(COCO, os.path.join(root, "annotations", "person_keypoints_val2017.json"))
    assert {d["image_id"] for d in dets} <= set(gt.getImgIds())
    assert all(d["category_id"] == 1 and len(d["bbox"]) == 4 and d["bbox"][2] > 0 and d["bbox"][3] > 0
               for d in dets)
    high = [d for d in dets if d["score"] > 0.5]
    assert len(high) == summary["val2017"]["people"]
    assert all(d["score"] <= 1.0 for d in high) and all(d["score"] < 0.5 for d in dets if d not in high)
    # Each found person's box overlaps its ground truth well.
    ious = []
    for d in high:
        boxes = [a["bbox"] for a in gt.loadAnns(gt.getAnnIds(imgIds=d["image_id"]))]
        ious.append(max(_iou(d["bbox"], b) for b in boxes))
    assert np.median(ious) > 0.7


def _iou(a, b):
    ax2, ay2, bx2, by2 = a[0] + a[2], a[1] + a[3], b[0] + b[2], b[1] + b[3]
    iw = max(0.0, min(ax2, bx2) - max(a[0], b[0]))
    ih = max(0.0, min(ay2, by2) - max(a[1], b[1]))
    inter = iw * ih
    return inter / (a[2] * a[3] + b[2] * b[3] - inter)


def test_mpii_json_and_gt_valid_mat(mpii_root):
    root, summary = mpii_root
    for split in ("train", "valid"):
        with open(os.path.join(root, "annot", f"{split}.json")) as f:
            records = json.load(f)
        assert len(records) == summary[split]["people"] > 0
        for r in records:
            assert set(r) == {"image", "center", "scale", "joints", "joints_vis"}
            assert len(r["image"]) == len("000000001.jpg") and os.path.exists(os.path.join(root, "images", r["image"]))
            joints, vis = np.array(r["joints"]), np.array(r["joints_vis"])
            assert joints.shape == (16, 2) and vis.shape == (16,) and set(vis) <= {0, 1}
            lab = joints[vis == 1]
            # 1-based (MATLAB) pixel coordinates inside the image.
            assert np.all((lab >= 1) & (lab <= np.array(SMALL)))
            assert 0.2 < r["scale"] < 3.0
    gt = scipy.io.loadmat(os.path.join(root, "annot", "gt_valid.mat"))
    n = len(records)
    dataset_joints = gt["dataset_joints"]
    assert dataset_joints.shape == (1, 16)
    # The lookups MPII's evaluation does on the official file.
    assert np.where(dataset_joints == "head")[1][0] == 9
    assert np.where(dataset_joints == "lsho")[1][0] == 13
    assert np.where(dataset_joints == "rank")[1][0] == 0
    assert gt["jnt_missing"].shape == (16, n)
    assert gt["pos_gt_src"].shape == (16, 2, n)
    assert gt["headboxes_src"].shape == (2, 2, n)
    vis = np.array([r["joints_vis"] for r in records]).T
    np.testing.assert_array_equal(gt["jnt_missing"], 1 - vis)
    pos = np.array([r["joints"] for r in records]).transpose(1, 2, 0)
    np.testing.assert_allclose(gt["pos_gt_src"].transpose(0, 2, 1)[vis == 1], pos.transpose(0, 2, 1)[vis == 1])
    heads = gt["headboxes_src"]
    size = np.linalg.norm(heads[1] - heads[0], axis=0)
    assert np.all(size > 5)
    # PCKh of the ground truth itself, as MPII's evaluation computes it, is 100 %.
    err = np.linalg.norm(gt["pos_gt_src"] - pos, axis=1) / (0.6 * size)
    assert np.all(err[vis == 1] <= 0.5)
    # The head box holds the head top and upper neck.
    for j in (8, 9):
        p = pos[j][:, vis[j] == 1]
        h0, h1 = heads[0][:, vis[j] == 1], heads[1][:, vis[j] == 1]
        assert np.all((p >= h0 - 1) & (p <= h1 + 1))


def test_mpii_coordinates_are_one_based_scene_points(tmp_path):
    S.write_mpii(str(tmp_path), {"valid": 2}, seed=5, image_size=SMALL)
    with open(tmp_path / "annot" / "valid.json") as f:
        records = json.load(f)
    _, persons = S.render_scene(S.image_rng(5, "mpii", "valid", 0), SMALL)
    first = [r for r in records if r["image"] == "000000001.jpg"]
    assert len(first) == sum(p.mpii_vis.any() for p in persons)
    for r, p in zip(first, [p for p in persons if p.mpii_vis.any()]):
        v = p.mpii_vis == 1
        np.testing.assert_allclose(np.array(r["joints"])[v], p.mpii[v] + 1, atol=0.006)
        # HRNet moves the centre down 15 * scale: it lands in the middle of the figure's box.
        x, y, w, h = p.bbox
        assert r["center"][1] + 15 * r["scale"] - 1 == pytest.approx(y + h / 2, abs=0.02)


def test_same_seed_same_bytes_other_seed_differs(tmp_path):
    a, b, c = (str(tmp_path / n) for n in "abc")
    for root, seed in ((a, 3), (b, 3), (c, 4)):
        S.write_coco(root, {"val2017": 2}, seed=seed, image_size=(160, 120), people=(1, 2))
    files = ["annotations/person_keypoints_val2017.json", f"person_detection_results/{S.COCO_DETECTION_FILE}",
             "images/val2017/000000000001.jpg", "images/val2017/000000000002.jpg"]
    for f in files:
        assert filecmp.cmp(os.path.join(a, f), os.path.join(b, f), shallow=False), f
    assert not filecmp.cmp(os.path.join(a, files[0]), os.path.join(c, files[0]), shallow=False)
    assert not filecmp.cmp(os.path.join(a, files[2]), os.path.join(c, files[2]), shallow=False)


def test_visible_keypoints_lie_on_the_drawn_figure():
    changed, total = 0, 0
    for i in range(8):
        # The background is the first thing drawn from the image's generator.
        background = S.background(S.image_rng(0, "coco", "t", i), *SMALL)
        image, persons = S.render_scene(S.image_rng(0, "coco", "t", i), SMALL)
        diff = np.abs(image.astype(int) - background.astype(int)).sum(-1)
        for p in persons:
            for x, y, v in p.coco:
                if v == 2:
                    total += 1
                    changed += diff[int(round(y)), int(round(x))] > 20
    assert total > 50 and changed / total > 0.97


def test_left_and_right_follow_the_facing():
    pose = S.sample_pose(np.random.default_rng(0))
    pose.update(roll=0.0, twist=0.0, side=0.0)
    pts = S.figure_points(pose)
    front, _ = S.project(pts, {**pose, "yaw": 0.0}, 200, (100, 100))
    back, _ = S.project(pts, {**pose, "yaw": np.pi}, 200, (100, 100))
    # Facing the camera the person's left is on the image's right; from behind, on its left.
    assert front[S.P["l_hip"], 0] > front[S.P["r_hip"], 0]
    assert back[S.P["l_hip"], 0] < back[S.P["r_hip"], 0]
    assert front[S.P["head_top"], 1] < front[S.P["pelvis"], 1] < front[S.P["l_ankle"], 1]


def test_scenes_vary_pose_facing_visibility_and_scale():
    vis_face, hidden, outside, heights, counts = set(), 0, 0, [], []
    for i in range(25):
        _, persons = S.render_scene(S.image_rng(0, "coco", "vary", i), SMALL, people=(1, 3))
        counts.append(len(persons))
        for p in persons:
            heights.append(p.height / SMALL[1])
            v = p.coco[:, 2]
            vis_face.add(int(v[0]))
            hidden += int(np.sum(v[5:] == 1))
            inside = ((p.xy[:, 0] >= 0) & (p.xy[:, 0] <= SMALL[0] - 1) & (p.xy[:, 1] >= 0)
                      & (p.xy[:, 1] <= SMALL[1] - 1))
            outside += int(not inside.all())
    assert vis_face == {0, 1, 2}  # noses seen, hidden, and turned away
    assert hidden > 10 and outside > 0
    assert min(counts) >= 1 and max(counts) == 3
    assert min(heights) < 0.4 and max(heights) > 0.7


def test_plain_scenes_are_uncluttered_and_side_by_side():
    for i in range(12):
        rng = S.image_rng(0, "coco", "plain", i)
        image, persons = S.render_scene(rng, SMALL, people=(1, 2), scene="plain")
        assert 1 <= len(persons) <= 2
        for p in persons:
            assert p.height >= 0.5 * SMALL[1]
            assert abs(np.rad2deg(p.pose["roll"])) <= 10
            assert p.pose["kind"] in ("stand", "walk", "raise")
            assert (p.xy >= -0.5).all() and (p.xy[:, 0] <= SMALL[0]).all() and (p.xy[:, 1] <= SMALL[1]).all()
        if len(persons) == 2:
            a, b = (q.xy[:, 0] for q in persons)
            assert a.max() <= b.min() or b.max() <= a.min()  # never overlapping
    with pytest.raises(ValueError, match="scene"):
        S.render_scene(S.image_rng(0, "coco", "plain", 0), SMALL, scene="busy")


def test_renders_a_full_size_scene():
    """A COCO-sized (640x480) cluttered scene: the image and people fit that size.  (No
    timing assertion: the machine may be shared; benchmarks/ measures speed.)"""
    image, persons = S.render_scene(S.image_rng(0, "coco", "full size", 0), (640, 480))
    assert image.shape == (480, 640, 3) and image.dtype == np.uint8
    assert image.std() > 10  # a textured scene, not a blank canvas
    assert persons and all(p.coco.shape == (17, 3) and np.isfinite(p.coco).all() for p in persons)


@pytest.mark.slow
def test_workers_give_the_same_dataset(tmp_path):
    a, b = str(tmp_path / "a"), str(tmp_path / "b")
    S.write_coco(a, {"val2017": 6}, seed=2, image_size=(160, 120))
    S.write_coco(b, {"val2017": 6}, seed=2, image_size=(160, 120), workers=2)
    for f in ("annotations/person_keypoints_val2017.json", "images/val2017/000000000006.jpg"):
        assert filecmp.cmp(os.path.join(a, f), os.path.join(b, f), shallow=False)


def test_demo_config_is_valid():
    from hrgan_jax.configs import synthetic as demo
    from hrgan_jax import config_checks, models
    config = demo.get_config()
    config_checks.check(config)
    models.validate(config.model)
    assert models.validate(models.network_config(config, "discriminator")).stage1.num_channels == (8,)
    assert config.synth.scene in S.SCENES and config.model.kernel_init == "he"
    assert config.data.heatmap_size[0] * 4 == config.data.image_size[0]
    assert config.optim.lr_steps[-1] * 93 < config.train.steps  # both decays happen
