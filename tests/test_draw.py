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


def test_plot_curves_writes_a_grid(tmp_path):
    steps = np.arange(0, 100, 10)
    history = {"content_loss": [(s, 1.0 / (s + 1)) for s in steps],
               "l_real": [(s, 0.5 / (s + 1)) for s in steps],
               "k": [(s, s * 1e-4) for s in steps],
               "m_global": [(s, 0.2 - s * 1e-3) for s in steps],
               "g_lr": [(s, 1e-3 if s < 50 else 1e-4) for s in steps],
               "eval/AP": [(50, 0.3), (90, 0.6)]}
    path = draw.plot_curves(history, tmp_path / "curves.png")
    with Image.open(path) as im:  # 4 panels in 2 x 2
        assert im.format == "PNG" and im.size == (1200, 720)
    with pytest.raises(ValueError, match="empty"):
        draw.plot_curves({}, tmp_path / "none.png")


def test_training_curves_read_the_run_and_its_evaluations(tmp_path):
    import json
    with open(tmp_path / "metrics.jsonl", "w") as f:
        for step, loss in ((2, 1.0), (4, 0.5), (4, 0.4)):  # step 4 rewritten on a resume
            f.write(json.dumps({"step": step, "content_loss": loss, "k": 0.0, "g_lr": 1e-3,
                                "images_per_sec": 10.0}) + "\n")
        f.write('{"step": 6, "content_lo')  # cut short by a kill
    (tmp_path / "eval").mkdir()
    for step, ap in ((2, 0.25), (4, 0.5)):
        (tmp_path / "eval" / f"results_{step}.json").write_text(
            json.dumps({"step": step, "AP": ap, "Ap .5": 0.9, "AR": 0.6}))
    history = draw.read_history(tmp_path)
    assert history["content_loss"] == [(2, 1.0), (4, 0.4)]
    assert history["eval/AP"] == [(2, 0.25), (4, 0.5)] and history["eval/AP50"][0] == (2, 0.9)
    assert history["images_per_sec"] == [(2, 10.0), (4, 10.0)]  # read, but not drawn:
    assert draw.training_curves(tmp_path) == str(tmp_path / "curves.png")
    with Image.open(tmp_path / "curves.png") as im:  # evaluation, losses, k_t, lr: 2 x 2
        assert im.size == (1200, 720)
    assert draw.training_curves(tmp_path / "empty") is None
