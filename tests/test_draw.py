import numpy as np
import pytest
from PIL import Image

from hrgan_jax import draw
from data_pipeline.joints import COCO, MPII


def _person(skel, h=128, w=96):
    rng = np.random.default_rng(0)
    return np.stack([rng.uniform(10, w - 10, skel.num_joints),
                     rng.uniform(10, h - 10, skel.num_joints)], 1)


@pytest.mark.parametrize("skel", [COCO, MPII])
def test_draw_marks_the_joints_and_skips_low_scores(skel):
    image = np.zeros((128, 96, 3), np.uint8)
    joints = _person(skel)
    scores = np.ones(skel.num_joints)
    scores[0] = 0.0
    out = draw.draw_skeleton(image, joints, skel.name, scores, threshold=0.2)
    assert out.shape == image.shape and out.dtype == np.uint8
    assert not image.any()  # the input is untouched
    x, y = np.round(joints).astype(int).T
    drawn = out[y, x].any(axis=1)
    assert drawn[1:].all()
    assert {tuple(c) for c in out[y[1:], x[1:]]} <= set(draw.PRED_COLORS.values())
    colours = {tuple(c) for c in out.reshape(-1, 3)}
    assert draw.PRED_COLORS["left"] in colours and draw.PRED_COLORS["right"] in colours
    alone = draw.draw_skeleton(image, joints, skel.name, (np.arange(skel.num_joints) == 0) * 1.0)
    assert alone[y[0], x[0]].any() and alone.any(axis=2).sum() < 200  # one joint, no limbs


def test_crops_with_skeletons_shapes_and_colours():
    images = np.full((3, 64, 48, 3), 40, np.uint8)
    pred = np.tile(_person(COCO, 64, 48)[None], (3, 1, 1))
    gt = pred + 6.0
    vis = np.ones((3, 17, 1))
    out = draw.crops_with_skeletons(images, pred, gt, vis, "coco", pred_scores=np.ones((3, 17)))
    assert out.shape == images.shape and out.dtype == np.uint8
    colours = {tuple(c) for c in out.reshape(-1, 3)}
    assert draw.GT_COLORS["right"] in colours and draw.PRED_COLORS["right"] in colours
    only_pred = draw.crops_with_skeletons(images, pred, None, None, "coco")
    assert draw.GT_COLORS["right"] not in {tuple(c) for c in only_pred.reshape(-1, 3)}
    grid = draw.image_grid(out, cols=2, pad=2)
    assert grid.shape == (2 * 66 + 2, 2 * 50 + 2, 3)


def test_plot_curves_writes_a_png(tmp_path):
    steps = np.arange(0, 100, 10)
    history = {"loss_g": [(s, 1.0 / (s + 1)) for s in steps],
               "loss_d": [(s, 0.5 / (s + 1)) for s in steps],
               "k_t": [(s, s * 1e-4) for s in steps],
               "M_global": [(s, 0.2 - s * 1e-3) for s in steps]}
    path = draw.plot_curves(history, tmp_path / "curves.png")
    with Image.open(path) as im:
        assert im.format == "PNG" and im.size[0] > im.size[1] > 100
    with pytest.raises(ValueError, match="empty"):
        draw.plot_curves({}, tmp_path / "none.png")
