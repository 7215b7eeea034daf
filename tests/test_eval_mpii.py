import numpy as np
import pytest
import scipy.io

from conftest import FIXTURES
from hrgan_jax.evaluation import mpii
from data_pipeline.joints import MPII_SHORT_NAMES


@pytest.fixture(scope="module")
def ref():
    with np.load(FIXTURES / "pckh_mpii.npz") as z:
        return {k: z[k] for k in z.files}


def _write_gt(path, ref):
    """A gt_valid.mat laid out as the official one (dataset_joints a 1x16 cell array)."""
    names = np.empty((1, 16), object)
    for i, n in enumerate(MPII_SHORT_NAMES):
        names[0, i] = np.array([n])
    scipy.io.savemat(path, {"dataset_joints": names, "jnt_missing": ref["jnt_missing"],
                            "pos_gt_src": ref["pos_gt_src"], "headboxes_src": ref["headboxes_src"]})


def test_pckh_matches_official(ref):
    out = mpii.pckh(ref["preds"], ref["jnt_missing"], ref["pos_gt_src"], ref["headboxes_src"])
    assert list(out) == list(ref["names"]) == list(mpii.COLUMNS)
    np.testing.assert_array_equal(np.array(list(out.values())), ref["values"])


def test_evaluate_from_mat_writes_pred_mat(ref, tmp_path):
    gt = tmp_path / "gt_valid.mat"
    _write_gt(gt, ref)
    preds = np.concatenate([ref["preds"], np.ones(ref["preds"].shape[:2] + (1,))], axis=2)
    out = mpii.evaluate(preds, gt, output_dir=tmp_path / "out")
    np.testing.assert_array_equal(np.array(list(out.values())), ref["values"])
    written = scipy.io.loadmat(tmp_path / "out" / "pred.mat")["preds"]
    np.testing.assert_array_equal(written, ref["preds"] + 1.0)


def test_perfect_predictions_score_100(ref):
    perfect = np.transpose(ref["pos_gt_src"], [2, 0, 1]) - 1.0
    out = mpii.pckh(perfect, ref["jnt_missing"], ref["pos_gt_src"], ref["headboxes_src"])
    assert all(v == 100.0 for v in out.values())


def test_wrong_number_of_predictions_names_the_file(ref, tmp_path):
    gt = tmp_path / "gt_valid.mat"
    _write_gt(gt, ref)
    with pytest.raises(ValueError, match=r"59 predictions.*gt_valid\.mat has 60 people"):
        mpii.evaluate(ref["preds"][:59], gt)
    with pytest.raises(ValueError, match="nowhere.mat"):
        mpii.evaluate(ref["preds"], tmp_path / "nowhere.mat")
