"""The tf affine, the warp against OpenCV, joints through the warp, flip, and the
augmentation's random draws against the official distributions."""
import subprocess
import sys

import cv2
import numpy as np
import pytest
import tensorflow as tf
from scipy import stats

from conftest import FIXTURES
from data_pipeline import augment
from data_pipeline.affine import affine_points, get_affine_transform, get_affine_transform_tf
from data_pipeline.joints import FLIP_PAIRS, UPPER_BODY, flip_permutation
from data_helpers import texture

COCO_CFG = augment.AugmentConfig(
    image_size=(192, 256), flip_perm=tuple(flip_permutation("coco")),
    upper_body=tuple(j in UPPER_BODY["coco"] for j in range(17)))


def test_tf_affine_matches_official_fixture():
    with np.load(FIXTURES / "affine_transforms.npz") as d:
        for i in range(len(d["rot"])):
            size = tuple(int(v) for v in d["output_size"][i])
            got = get_affine_transform_tf(d["center"][i], d["scale"][i], float(d["rot"][i]),
                                          size, inv=bool(d["inv"][i]), dtype=tf.float64).numpy()
            np.testing.assert_allclose(got, d["trans"][i], rtol=1e-5, atol=1e-4)
            got32 = get_affine_transform_tf(d["center"][i], d["scale"][i], float(d["rot"][i]),
                                            size, inv=bool(d["inv"][i])).numpy()
            np.testing.assert_allclose(got32, d["trans"][i], rtol=1e-4, atol=2e-3)


def test_importing_affine_does_not_import_tensorflow():
    code = "import sys, data_pipeline.affine, data_pipeline.coco, data_pipeline.mpii; " \
           "print('tensorflow' in sys.modules)"
    repo = str(FIXTURES.parent.parent)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=repo)
    assert out.stdout.strip() == "False"


def _jpeg_bytes(rgb, quality=95):
    ok, buf = cv2.imencode(".jpg", rgb[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, quality])
    return buf.tobytes()


@pytest.mark.parametrize("crop_decode", [False, True])
def test_warp_matches_cv2_warp_affine(crop_decode):
    rng = np.random.default_rng(0)
    data = _jpeg_bytes(texture(rng, 160, 120))
    decoded = tf.io.decode_jpeg(data, channels=3, dct_method=augment.DCT).numpy()
    # TF's JPEG decoding agrees with OpenCV's (the official reader) exactly with the accurate IDCT.
    cv_decoded = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)[:, :, ::-1]
    np.testing.assert_array_equal(decoded, cv_decoded)
    for center, scale, rot in [((80, 60), (0.5, 0.66), 0.0), ((60, 70), (0.3, 0.4), 30.0),
                               ((10, 10), (0.6, 0.8), -70.0), ((150, 100), (0.2, 0.27), 90.0)]:
        trans = get_affine_transform(np.array(center, float), np.array(scale), rot, (48, 64))
        want = cv2.warpAffine(decoded, trans, (48, 64), flags=cv2.INTER_LINEAR)
        got = augment.decode_and_warp(tf.constant(data), tf.constant("mem.jpg"),
                                      tf.constant(trans, tf.float32), (48, 64),
                                      crop_decode=crop_decode).numpy()
        assert got.shape == (64, 48, 3) and got.dtype == np.uint8
        assert np.abs(got.astype(float) - want).mean() < 1.0, (center, rot)


def _blob_image(points, size=(200, 160)):
    w, h = size
    yy, xx = np.mgrid[0:h, 0:w]
    img = np.zeros((h, w), np.float64)
    for x, y in points:
        img += 250 * np.exp(-((xx - x) ** 2 + (yy - y) ** 2) / (2 * 2.0 ** 2))
    return np.repeat(np.clip(img, 0, 255).astype(np.uint8)[:, :, None], 3, 2)


def _centroid(img, near, radius=6):
    g = img[:, :, 0].astype(float)
    yy, xx = np.mgrid[0:g.shape[0], 0:g.shape[1]]
    m = ((xx - near[0]) ** 2 + (yy - near[1]) ** 2 < radius ** 2) * g
    return np.array([(m * xx).sum() / m.sum(), (m * yy).sum() / m.sum()])


def _seed_where(pred, cfg=COCO_CFG):
    for i in range(200):
        seed = tf.constant([7, i], tf.int64)
        p = augment.sample_params(seed, cfg)
        if pred(p):
            return seed, p
    raise AssertionError("no seed found")


@pytest.mark.parametrize("flip", [False, True])
def test_joints_land_where_the_warp_puts_the_pixels(flip):
    joints = np.zeros((17, 2), np.float32)
    joints[5] = (80, 60)   # left shoulder
    joints[6] = (120, 70)  # right shoulder
    vis = np.zeros(17, np.float32)
    vis[[5, 6]] = 1
    seed, p = _seed_where(lambda p: bool(p["flip"]) == flip and abs(float(p["rotation"])) > 10
                          and not bool(p["half_body"]))
    trans, out, out_vis = augment.train_transform(
        np.array([100.0, 65.0]), np.array([0.6, 0.8]), joints, vis, 200, seed, COCO_CFG)
    data = _jpeg_bytes(_blob_image(joints[[5, 6]]), quality=100)
    img = augment.decode_and_warp(tf.constant(data), tf.constant("x"), trans, (192, 256)).numpy()
    out = out.numpy()
    for j in (5, 6):
        np.testing.assert_allclose(_centroid(img, out[j]), out[j], atol=0.3)
    np.testing.assert_array_equal(out_vis.numpy()[[5, 6]], [1, 1])


def test_flip_follows_the_official_rule():
    """x' = W - 1 - x, pairs swapped, centre x' = W - c_x - 1, then the usual affine."""
    rng = np.random.default_rng(1)
    width = 640
    joints = rng.uniform(0, 400, (17, 2)).astype(np.float32)
    vis = (rng.uniform(size=17) > 0.3).astype(np.float32)
    center, scale = np.array([300.0, 200.0], np.float32), np.array([1.0, 1.33], np.float32)
    seed, p = _seed_where(lambda p: bool(p["flip"]) and not bool(p["half_body"]))
    _, out, out_vis = augment.train_transform(center, scale, joints, vis, width, seed, COCO_CFG)
    fj, fv = joints.copy(), vis.copy()
    fj[:, 0] = width - fj[:, 0] - 1
    for a, b in FLIP_PAIRS["coco"]:
        fj[[a, b]] = fj[[b, a]]
        fv[[a, b]] = fv[[b, a]]
    c = np.array([width - center[0] - 1, center[1]])
    trans = get_affine_transform(c, scale * float(p["scale"]), float(p["rotation"]), (192, 256))
    np.testing.assert_allclose(out.numpy(), affine_points(fj, trans), atol=2e-3)
    np.testing.assert_array_equal(out_vis.numpy(), fv)


def test_half_body_follows_the_official_rule():
    joints = np.random.default_rng(2).uniform(50, 150, (17, 2)).astype(np.float32)
    vis = np.ones(17, np.float32)
    for upper_first in (True, False):
        c, s, ok = augment.half_body_box(joints, vis, tf.constant(upper_first), COCO_CFG)
        sel = joints[:11] if upper_first else joints[11:]
        w, h = np.ptp(sel[:, 0]), np.ptp(sel[:, 1])
        if w > 0.75 * h:
            h = w / 0.75
        else:
            w = h * 0.75
        np.testing.assert_allclose(c.numpy(), sel.mean(0), rtol=1e-5)
        np.testing.assert_allclose(s.numpy(), np.array([w, h]) / 200 * 1.5, rtol=1e-5)
        assert bool(ok)


def test_augmentation_draws_follow_the_official_distributions():
    n = 20000
    seeds = tf.stack([tf.fill([n], tf.constant(3, tf.int64)), tf.range(n, dtype=tf.int64)], 1)
    draws = tf.function(lambda s: tf.vectorized_map(
        lambda x: augment.sample_params(x, COCO_CFG), s))(seeds)
    d = {k: v.numpy() for k, v in draws.items()}
    tol = 4 * np.sqrt(0.25 / n)
    sf, rf = COCO_CFG.scale_factor, COCO_CFG.rotation_factor
    assert abs(d["flip"].mean() - 0.5) < tol
    assert abs(d["half_body"].mean() - 0.3) < tol
    assert abs(d["upper_first"].mean() - stats.norm.cdf(0.5)) < tol
    rot = d["rotation"]
    assert abs((rot != 0).mean() - 0.6) < tol
    assert rot.min() >= -2 * rf and rot.max() <= 2 * rf
    z = rot[rot != 0] / rf  # N(0, 1) clipped at +-2
    assert abs((np.abs(z) >= 2).mean() - 2 * stats.norm.sf(2)) < 0.01
    assert stats.kstest(z[np.abs(z) < 1.9], stats.truncnorm(-1.9, 1.9).cdf).pvalue > 1e-3
    sc = d["scale"]
    assert sc.min() >= 1 - sf - 1e-6 and sc.max() <= 1 + sf + 1e-6
    assert abs(np.isclose(sc, 1 - sf).mean() - stats.norm.sf(1)) < 0.015
    assert abs(np.isclose(sc, 1 + sf).mean() - stats.norm.sf(1)) < 0.015
    inner = (sc[(sc > 1 - sf) & (sc < 1 + sf)] - 1) / sf
    assert stats.kstest(inner, stats.truncnorm(-1, 1).cdf).pvalue > 1e-3
