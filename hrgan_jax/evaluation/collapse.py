"""The collapse the paper reports for conventional GAN discriminators, as one number.

The paper's ablation: with a real/fake D "the generator predicts the same joints for
every input image and fails to converge".  ``pose_spread`` measures how far a set of
predictions is from that: how varied the predicted poses are across the validation
people, relative to how varied the true poses are.
"""
from __future__ import annotations

import numpy as np


def pose_spread(pred: np.ndarray, gt: np.ndarray, visible: np.ndarray, center: np.ndarray,
                scale: np.ndarray) -> float:
    """sqrt(sum_ij v_ij |q^_ij - mean_i q^_j|^2 / sum_ij v_ij |q_ij - mean_i q_j|^2).

    Over people i and joints j with a visible ground-truth joint (v_ij = 1), q_ij is the
    true and q^_ij the predicted position of joint j in person i's box frame,
    (p - center_i) / (200 scale_i) -- the frame of the crop G sees -- and the means over
    i are over the people where joint j is visible.  So each joint's scatter of
    predictions about its own mean is compared with the truth's scatter:

        1  the predicted poses are as varied as the true ones (e.g. the truth itself)
        0  the same pose, in the box frame, for every input: the paper's collapse

    Values above 1 mean predictions more scattered than the poses (e.g. noise).  It
    does not measure accuracy (PCKh, AP do); it tells a collapsed G from a poor one.

    pred, gt: (N, J, 2) image pixels; visible: (N, J); center, scale: (N, 2) (scale in
    units of 200 px, as the records').  NaN when no joint is visible or the true poses
    do not vary.
    """
    pred, gt = np.asarray(pred, np.float64)[..., :2], np.asarray(gt, np.float64)[..., :2]
    v = (np.asarray(visible) > 0).astype(np.float64)[..., None]  # (N, J, 1)
    frame = lambda p: (p - np.asarray(center, np.float64)[:, None]) / (
        200.0 * np.asarray(scale, np.float64)[:, None])

    def scatter(p):
        q = frame(p)
        count = np.maximum(v.sum(axis=0, keepdims=True), 1.0)
        mean = (v * q).sum(axis=0, keepdims=True) / count
        return float(np.sum(v * np.square(q - mean)))

    truth = scatter(gt)
    if not truth > 0:
        return float("nan")
    return float(np.sqrt(scatter(pred) / truth))
