import json

import numpy as np
import pytest

from conftest import FIXTURES
from hrgan_jax.evaluation import coco
from data_pipeline.joints import COCO_JOINTS, COCO_LIMBS


def test_oks_nms_matches_official():
    with np.load(FIXTURES / "oks_nms.npz") as z:
        cases = sorted({k.split("/")[0] for k in z.files})
        for c in cases:
            keep = coco.oks_nms(z[f"{c}/keypoints"], z[f"{c}/score"], z[f"{c}/area"], 0.9)
            assert keep == z[f"{c}/keep"].tolist(), c


def test_rescore_is_box_score_times_mean_of_confident_joints():
    rng = np.random.default_rng(0)
    kpts = rng.uniform(0, 1, (5, 17, 3)).astype(np.float32)
    kpts[4, :, 2] = 0.1  # no joint above the threshold -> 0
    box = rng.uniform(0.5, 1, 5)
    got = coco.rescore(kpts, box, 0.2)
    for n in range(5):
        s = kpts[n, :, 2]
        want = (s[s > 0.2].mean() if (s > 0.2).any() else 0.0) * box[n]
        assert got[n] == pytest.approx(want, rel=1e-6)
    assert got[4] == 0.0


def _make_gt(path, num_images=3, people=2, seed=0):
    """A tiny person_keypoints json: people 100 x 200 px, all 17 joints labelled visible."""
    rng = np.random.default_rng(seed)
    images, anns, truth = [], [], []
    for i in range(num_images):
        img_id = 1000 + i
        images.append({"id": img_id, "file_name": f"{img_id:012d}.jpg", "width": 1000, "height": 480})
        for p in range(people):
            x0, y0 = 20 + 300 * p, 40
            xy = np.stack([rng.uniform(x0, x0 + 100, 17), rng.uniform(y0, y0 + 200, 17)], 1)
            kp = np.concatenate([xy, np.full((17, 1), 2.0)], 1)
            anns.append({"id": len(anns) + 1, "image_id": img_id, "category_id": 1, "iscrowd": 0,
                         "bbox": [x0, y0, 100, 200], "area": 100.0 * 200.0, "num_keypoints": 17,
                         "keypoints": kp.reshape(-1).tolist()})
            truth.append((img_id, xy))
    cats = [{"id": 1, "name": "person", "supercategory": "person", "keypoints": list(COCO_JOINTS),
             "skeleton": [[a + 1, b + 1] for a, b in COCO_LIMBS]}]
    path.write_text(json.dumps({"images": images, "annotations": anns, "categories": cats}))
    ids = np.array([t[0] for t in truth])
    xy = np.stack([t[1] for t in truth])
    return ids, xy


def _predictions(xy):
    kpts = np.concatenate([xy, np.full(xy.shape[:2] + (1,), 0.9)], axis=2).astype(np.float32)
    centre = xy.mean(axis=1)
    scale = np.tile([[1.0, 1.25]], (len(xy), 1))
    return kpts, centre, scale


def test_perfect_predictions_give_ap_1(tmp_path):
    ids, xy = _make_gt(tmp_path / "gt.json")
    kpts, centre, scale = _predictions(xy)
    res_file = tmp_path / "results" / "keypoints_val_results.json"
    out = coco.evaluate(kpts, np.ones(len(kpts)), ids, tmp_path / "gt.json", res_file,
                        center=centre, scale=scale)
    assert list(out) == list(coco.STATS_NAMES)
    assert out["AP"] == pytest.approx(1.0) and out["AR"] == pytest.approx(1.0)
    assert list(coco.short_names(out))[:3] == ["AP", "AP50", "AP75"]
    written = json.loads(res_file.read_text())
    assert len(written) == len(kpts)
    assert set(written[0]) >= {"image_id", "category_id", "keypoints", "score"}
    assert written[0]["category_id"] == 1 and len(written[0]["keypoints"]) == 51


def test_duplicates_are_suppressed_and_swapped_people_score_low(tmp_path):
    ids, xy = _make_gt(tmp_path / "gt.json")
    kpts, centre, scale = _predictions(xy)
    # A duplicate of every person with a lower box score: OKS-NMS removes it, AP stays 1.
    moved = kpts.copy()
    moved[:, :, :2] += 0.5
    dup = coco.evaluate(np.concatenate([kpts, moved]), np.r_[np.ones(6), 0.5 * np.ones(6)],
                        np.r_[ids, ids], tmp_path / "gt.json", tmp_path / "dup.json",
                        scale=np.r_[scale, scale])
    assert dup["AP"] == pytest.approx(1.0)
    assert len(json.loads((tmp_path / "dup.json").read_text())) == 6
    # Keypoints dealt out between the three people of each image (300 px apart): each
    # prediction has joints 0-5 of one person, 6-11 of the next, 12-16 of the third, so
    # it agrees with any person on at most 6 of 17 joints (OKS < 0.5).
    ids, xy = _make_gt(tmp_path / "gt3.json", people=3)
    kpts, _, scale = _predictions(xy)
    people = kpts.reshape(3, 3, 17, 3)
    dealt = people.copy()
    for p in range(3):
        dealt[:, p, 6:12] = people[:, (p + 1) % 3, 6:12]
        dealt[:, p, 12:] = people[:, (p + 2) % 3, 12:]
    out = coco.evaluate(dealt.reshape(9, 17, 3), np.ones(9), ids, tmp_path / "gt3.json",
                        tmp_path / "dealt.json", scale=scale)
    assert out["AP"] < 0.1


def test_clear_errors(tmp_path):
    ids, xy = _make_gt(tmp_path / "gt.json")
    kpts, _, scale = _predictions(xy)
    with pytest.raises(ValueError, match="no predictions"):
        coco.evaluate(np.zeros((0, 17, 3)), np.zeros(0), np.zeros(0), tmp_path / "gt.json",
                      tmp_path / "r.json", scale=np.zeros((0, 2)))
    with pytest.raises(ValueError, match=r"not in .*gt\.json"):
        coco.evaluate(kpts, np.ones(6), ids + 7, tmp_path / "gt.json", tmp_path / "r.json",
                      scale=scale)
    with pytest.raises(FileNotFoundError, match="missing.json"):
        coco.evaluate(kpts, np.ones(6), ids, tmp_path / "missing.json", tmp_path / "r.json",
                      scale=scale)


def test_rescore_sums_in_float32_like_the_official_loop():
    rng = np.random.default_rng(3)
    kpts = rng.uniform(0, 1, (50, 17, 3)).astype(np.float32)
    box = rng.uniform(0, 1, 50)
    want = []
    for n in range(50):  # the official per-person loop, with its scalar types
        total, count = 0, 0
        for s in kpts[n, :, 2]:
            if s > 0.2:
                total, count = total + s, count + 1
        want.append((total / count if count else 0) * box[n])
    np.testing.assert_array_equal(coco.rescore(kpts, box, 0.2), np.array(want))


def test_oks_iou_counts_only_confident_detected_joints():
    g = np.zeros((17, 3))
    d = np.zeros((1, 17, 3))
    d[0, :, 2] = 1.0
    d[0, :8, 0] = 1000.0  # far off, but scored below the threshold
    d[0, :8, 2] = 0.1
    assert coco.oks_iou(g, d, 100.0, [100.0], in_vis_thre=0.2)[0] == pytest.approx(1.0)
    assert coco.oks_iou(g, d, 100.0, [100.0])[0] == pytest.approx(9 / 17)
