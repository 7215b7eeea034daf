"""MPII PCKh, computed as the official HRNet MPIIDataset.evaluate computes it.

Head size = 0.6 (SC_BIAS) x the diagonal of the head box; a visible joint is correct
when its error / head size <= 0.5.  The columns average left and right; Mean weights
every joint by its visible count with pelvis and thorax (positions 6 and 7) left out;
Mean@0.1 is, as in the official code, the curve at index 11 of arange(0, 0.51, 0.01),
i.e. threshold 0.11.  Predictions are 0-based image pixels; 1 is added to compare with
the 1-based MATLAB ground truth (gt_valid.mat) and to write pred.mat.
"""
from __future__ import annotations

import collections
import os

import numpy as np
import scipy.io

from data_pipeline.joints import MPII_NOT_IN_MEAN, MPII_PCKH_NAMES, MPII_SHORT_NAMES
from data_pipeline.records import DataError

SC_BIAS = 0.6
THRESHOLD = 0.5
COLUMNS = ("Head", "Shoulder", "Elbow", "Wrist", "Hip", "Knee", "Ankle", "Mean", "Mean@0.1")


def joint_names(dataset_joints) -> list:
    """gt_valid.mat's dataset_joints ((1, 16) object array of 1-element string arrays)."""
    if dataset_joints is None:
        return list(MPII_SHORT_NAMES)
    return [str(np.asarray(n).ravel()[0]) for n in np.asarray(dataset_joints, object).ravel()]


def pckh(preds, jnt_missing, pos_gt_src, headboxes_src, dataset_joints=None,
         source: str = "ground truth") -> collections.OrderedDict:
    """PCKh table from arrays.

    preds: (N, 16, 2 or 3) 0-based image pixels (a third column, the score, is ignored);
    jnt_missing: (16, N); pos_gt_src: (16, 2, N) 1-based; headboxes_src: (2, 2, N);
    dataset_joints: the joint names of the .mat (default: the official MPII order).
    Returns an OrderedDict over COLUMNS of float percentages.
    """
    preds = np.asarray(preds, np.float64)
    jnt_missing = np.asarray(jnt_missing)
    pos_gt_src = np.asarray(pos_gt_src, np.float64)
    headboxes_src = np.asarray(headboxes_src, np.float64)
    if preds.ndim != 3 or preds.shape[2] < 2:
        raise ValueError(f"preds must be (N, joints, 2 or 3), got {preds.shape}")
    n_gt = pos_gt_src.shape[-1]
    if preds.shape[0] != n_gt or preds.shape[1] != pos_gt_src.shape[0]:
        raise ValueError(
            f"{preds.shape[0]} predictions of {preds.shape[1]} joints, but {source} has "
            f"{n_gt} people of {pos_gt_src.shape[0]} joints: evaluate the whole validation "
            f"set in its annotation order (eval.max_images must be 0 for MPII)")
    # As the official code: the reported joints are looked up by name; pelvis and thorax
    # are left out of the means by position, whatever the file calls them.
    names = joint_names(dataset_joints)
    absent = [n for n in MPII_PCKH_NAMES if n not in names]
    if absent:
        raise ValueError(f"{source}: dataset_joints lacks {absent} (it holds {names}): expected "
                         f"the official MPII short names {list(MPII_SHORT_NAMES)}")
    col = {name: names.index(name) for name in MPII_PCKH_NAMES}

    pos_pred_src = np.transpose(preds[:, :, :2] + 1.0, [1, 2, 0])  # (16, 2, N), 1-based
    jnt_visible = 1 - jnt_missing
    uv_err = np.linalg.norm(pos_pred_src - pos_gt_src, axis=1)  # (16, N)
    headsizes = np.linalg.norm(headboxes_src[1] - headboxes_src[0], axis=0) * SC_BIAS  # (N,)
    with np.errstate(invalid="ignore", divide="ignore"):
        scaled_uv_err = uv_err / (headsizes * np.ones((len(uv_err), 1))) * jnt_visible
        jnt_count = np.sum(jnt_visible, axis=1)

        def pck_at(threshold):
            return 100.0 * np.sum((scaled_uv_err <= threshold) * jnt_visible, axis=1) / jnt_count

        pck = pck_at(THRESHOLD)
        curve = np.arange(0, 0.5 + 0.01, 0.01)  # the official grid: index 11 is 0.11
        pck_011 = pck_at(curve[11])

    # Pelvis and thorax (positions 6, 7, as the official code masks them) leave the means.
    # The official masked arrays sum all 16 entries with the masked ones as 0; summing the
    # same way keeps the result equal to the last bit.
    used = np.ones(len(pck), bool)
    used[list(MPII_NOT_IN_MEAN)] = False
    ratio = np.where(used, jnt_count, 0.0) / np.sum(np.where(used, jnt_count, 0.0))

    def weighted_mean(values):
        return np.sum(np.where(used, values * ratio, 0.0))

    def both(left, right):
        return 0.5 * (pck[col[left]] + pck[col[right]])

    return collections.OrderedDict([
        ("Head", float(pck[col["head"]])),
        ("Shoulder", float(both("lsho", "rsho"))),
        ("Elbow", float(both("lelb", "relb"))),
        ("Wrist", float(both("lwri", "rwri"))),
        ("Hip", float(both("lhip", "rhip"))),
        ("Knee", float(both("lkne", "rkne"))),
        ("Ankle", float(both("lank", "rank"))),
        ("Mean", float(weighted_mean(pck))),
        ("Mean@0.1", float(weighted_mean(pck_011))),
    ])


def check_ground_truth(path: str, num_records: int | None) -> None:
    """gt_valid.mat: the four arrays the official PCKh reads, shaped for num_records people
    (the records of the validation annotation file, in the same order)."""
    if not os.path.isfile(path):
        raise DataError(f"{path}: MPII ground truth not found; it is annot/gt_valid.mat of the "
                        f"official HRNet MPII download (the PCKh evaluation reads it)")
    try:
        mat = scipy.io.loadmat(path)
    except Exception as e:  # noqa: BLE001 - scipy raises several kinds for a damaged file
        raise DataError(f"{path}: not a readable MATLAB file ({e})") from None
    for key in ("dataset_joints", "jnt_missing", "pos_gt_src", "headboxes_src"):
        if key not in mat:
            raise DataError(f"{path}: no '{key}': expected the official gt_valid.mat "
                            f"(dataset_joints, jnt_missing, pos_gt_src, headboxes_src)")
    names = joint_names(mat["dataset_joints"])
    absent = [n for n in MPII_PCKH_NAMES if n not in names]
    if absent:
        raise DataError(f"{path}: 'dataset_joints' lacks {absent} (it holds {names})")
    n = np.shape(mat["pos_gt_src"])[-1]
    shapes = {"jnt_missing": (16, n), "pos_gt_src": (16, 2, n), "headboxes_src": (2, 2, n)}
    for key, shape in shapes.items():
        if np.shape(mat[key]) != shape:
            raise DataError(f"{path}: '{key}' has shape {np.shape(mat[key])}, expected {shape}")
    if num_records is not None and num_records != n:
        raise DataError(f"{path}: holds {n} people but the validation annotations hold "
                        f"{num_records}: the PCKh compares them in order, so they must be the "
                        f"same set (annot/valid.json and annot/gt_valid.mat of one download)")


def load_ground_truth(gt_file) -> dict:
    """The four arrays of an official gt_*.mat (dataset_joints, jnt_missing, pos_gt_src,
    headboxes_src)."""
    gt_file = os.fspath(gt_file)
    check_ground_truth(gt_file, None)  # a DataError naming the file and the field
    mat = scipy.io.loadmat(gt_file)
    return {k: mat[k] for k in ("dataset_joints", "jnt_missing", "pos_gt_src", "headboxes_src")}


def write_predictions(preds, output_dir) -> str:
    """Write <output_dir>/pred.mat with key 'preds': (N, 16, 2) 1-based, as the official
    code does (for the MATLAB evaluation tools).  Returns the path."""
    path = os.path.join(os.fspath(output_dir), "pred.mat")
    os.makedirs(os.fspath(output_dir), exist_ok=True)
    scipy.io.savemat(path, mdict={"preds": np.asarray(preds, np.float64)[:, :, :2] + 1.0})
    return path


def evaluate(preds, gt_file, output_dir=None) -> collections.OrderedDict:
    """PCKh of 0-based predictions (N, 16, 2 or 3) against an official gt_valid.mat; also
    writes pred.mat under output_dir when given."""
    if output_dir:
        write_predictions(preds, output_dir)
    gt = load_ground_truth(gt_file)
    return pckh(preds, gt["jnt_missing"], gt["pos_gt_src"], gt["headboxes_src"],
                gt["dataset_joints"], source=os.fspath(gt_file))
