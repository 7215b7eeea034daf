"""COCO keypoint evaluation, as the official HRNet COCODataset.evaluate does it.

Per person (one detector or ground-truth box each): rescoring = box score x the mean of
the joint scores above ``in_vis_thre``; then per image a greedy OKS-NMS at ``oks_thre``
(the keypoint set's sigmas, COCO's by default; area = prod(scale x 200)); the survivors
go to a COCO results JSON and through pycocotools COCOeval('keypoints'), its
params.kpt_oks_sigmas set to the same sigmas.

The returned OrderedDict uses the official stat names (STATS_NAMES, 'Ap .5' spelling
included) so the printed table is the official one; ``short_names`` maps them to
TensorBoard-friendly keys (AP, AP50, AP75, APM, APL, AR, AR50, ...).  'AP' is the same
in both and is the best-checkpoint metric.
"""
from __future__ import annotations

import collections
import contextlib
import io
import json
import os

import numpy as np

from data_pipeline.affine import PIXEL_STD
from data_pipeline.joints import COCO_SIGMAS

STATS_NAMES = ("AP", "Ap .5", "AP .75", "AP (M)", "AP (L)",
               "AR", "AR .5", "AR .75", "AR (M)", "AR (L)")
SHORT_NAMES = dict(zip(STATS_NAMES, ("AP", "AP50", "AP75", "APM", "APL",
                                     "AR", "AR50", "AR75", "ARM", "ARL")))
PERSON_CATEGORY_ID = 1


def short_names(results: dict) -> collections.OrderedDict:
    """The same results keyed AP, AP50, AP75, APM, APL, AR, AR50, AR75, ARM, ARL."""
    return collections.OrderedDict((SHORT_NAMES.get(k, k), v) for k, v in results.items())


def rescore(keypoints, box_scores, in_vis_thre: float = 0.2) -> np.ndarray:
    """Box score x mean of the joint scores above in_vis_thre (0 when none is above).

    keypoints: (N, J, 3) with (x, y, score); box_scores: (N,).  Returns (N,) float64.
    The joint scores are summed one joint after another in float32 and the box score
    is float64, as in the official code, so ties and the NMS order come out the same.
    """
    s = np.asarray(keypoints, np.float32)[:, :, 2]
    above = s > in_vis_thre
    total = np.zeros(s.shape[0], np.float32)
    for j in range(s.shape[1]):
        total = total + np.where(above[:, j], s[:, j], np.float32(0))
    count = above.sum(axis=1)
    mean = np.where(count > 0, total / np.maximum(count, 1).astype(np.float32), np.float32(0))
    return mean.astype(np.float32) * np.asarray(box_scores, np.float64)


def oks_iou(g, d, area_g, area_d, sigmas=COCO_SIGMAS, in_vis_thre=None) -> np.ndarray:
    """OKS of one person's keypoints g (J, 3) against others d (M, J, 3).

    area_g: scalar, area_d: (M,).  With in_vis_thre, only the joints of d scoring above
    it count (the official code meant both g's and d's, but its ``a and b`` on two lists
    keeps only d's; reproduced here).  Returns (M,) float64.
    """
    g = np.asarray(g, np.float64).reshape(-1, 3)
    d = np.asarray(d, np.float64).reshape(-1, g.shape[0], 3)
    variances = (np.asarray(sigmas, np.float64) * 2) ** 2
    area_d = np.asarray(area_d, np.float64).reshape(-1)
    dx = d[:, :, 0] - g[:, 0]
    dy = d[:, :, 1] - g[:, 1]
    e = (dx ** 2 + dy ** 2) / variances / ((area_g + area_d[:, None]) / 2 + np.spacing(1)) / 2
    if in_vis_thre is None:
        return np.sum(np.exp(-e), axis=1) / e.shape[1] if e.shape[1] else np.zeros(len(d))
    out = np.zeros(len(d))
    for m in range(len(d)):
        em = e[m][d[m, :, 2] > in_vis_thre]
        out[m] = np.sum(np.exp(-em)) / em.shape[0] if em.shape[0] else 0.0
    return out


def oks_nms(keypoints, scores, areas, thresh: float, sigmas=COCO_SIGMAS,
            in_vis_thre=None) -> list:
    """Greedy OKS non-maximum suppression (official lib/nms/nms.py oks_nms).

    keypoints: (M, J, 3); scores, areas: (M,).  Repeatedly keeps the highest-scoring
    person and drops the rest whose OKS with it exceeds thresh.  Returns the kept
    indices, highest score first (ties broken as numpy's argsort, reversed, breaks them).
    """
    keypoints = np.asarray(keypoints, np.float64)
    scores = np.asarray(scores, np.float64)
    areas = np.asarray(areas, np.float64)
    if len(keypoints) == 0:
        return []
    order = scores.argsort()[::-1]
    keep = []
    while order.size > 0:
        i = order[0]
        keep.append(int(i))
        ovr = oks_iou(keypoints[i], keypoints[order[1:]], areas[i], areas[order[1:]],
                      sigmas, in_vis_thre)
        order = order[np.where(ovr <= thresh)[0] + 1]
    return keep


def select_people(keypoints, box_scores, areas, image_ids, in_vis_thre: float = 0.2,
                  oks_thre: float = 0.9, sigmas=COCO_SIGMAS):
    """Rescoring then per-image OKS-NMS (with the keypoint set's ``sigmas``).  Returns
    (indices into the inputs, new scores), grouped by image in order of first appearance,
    highest score first in each image."""
    scores = rescore(keypoints, box_scores, in_vis_thre)
    by_image = collections.defaultdict(list)
    for n, img in enumerate(np.asarray(image_ids).tolist()):
        by_image[img].append(n)
    kept = []
    for people in by_image.values():
        people = np.asarray(people)
        keep = oks_nms(np.asarray(keypoints)[people], scores[people], np.asarray(areas)[people],
                       oks_thre, sigmas)
        kept.extend(people[keep].tolist())
    return np.asarray(kept, np.int64), scores


def results_json(keypoints, scores, image_ids, center=None, scale=None,
                 category_id: int = PERSON_CATEGORY_ID) -> list:
    """COCO keypoint results: [{image_id, category_id (1), keypoints: [x, y, s] * J,
    score}], plus center and scale when given (the official file carries them too)."""
    keypoints = np.asarray(keypoints, np.float32).astype(np.float64)
    out = []
    for n in range(len(keypoints)):
        r = {"image_id": int(np.asarray(image_ids)[n]), "category_id": int(category_id),
             "keypoints": keypoints[n].reshape(-1).tolist(), "score": float(scores[n])}
        if center is not None:
            r["center"] = np.asarray(center, np.float64)[n].tolist()
        if scale is not None:
            r["scale"] = np.asarray(scale, np.float64)[n].tolist()
        out.append(r)
    return out


def load_ground_truth(gt):
    """A pycocotools COCO from a person_keypoints_*.json path (or a COCO, returned as is).
    Loading val2017 takes seconds: load once and pass the COCO to every evaluation."""
    from pycocotools.coco import COCO
    if isinstance(gt, COCO):
        return gt
    gt = os.fspath(gt)
    if not os.path.exists(gt):
        raise FileNotFoundError(f"COCO annotation file {gt} not found")
    with contextlib.redirect_stdout(io.StringIO()):
        coco = COCO(gt)
    coco.annotation_file = gt
    return coco


def coco_keypoint_eval(coco_gt, res_file, sigmas=COCO_SIGMAS,
                       category_id: int = PERSON_CATEGORY_ID) -> collections.OrderedDict:
    """pycocotools COCOeval('keypoints') of a results JSON: the ten stats, official names.

    sigmas: the keypoint set's OKS sigmas (COCOeval's params.kpt_oks_sigmas; its own
    default is COCO's 17, the same numbers as COCO_SIGMAS); category_id: the category
    evaluated (params.catIds)."""
    from pycocotools.cocoeval import COCOeval
    coco_gt = load_ground_truth(coco_gt)
    gt_name = getattr(coco_gt, "annotation_file", "the annotation file")
    res_file = os.fspath(res_file)
    with open(res_file) as f:
        results = json.load(f)
    if not results:
        raise ValueError(f"{res_file} holds no detections: nothing to evaluate")
    unknown = sorted({r["image_id"] for r in results} - set(coco_gt.getImgIds()))
    if unknown:
        raise ValueError(f"{len(unknown)} image ids of {res_file} are not in {gt_name} "
                         f"(first: {unknown[:5]}): predictions and annotations come from "
                         f"different sets")
    log = io.StringIO()
    with contextlib.redirect_stdout(log):
        coco_dt = coco_gt.loadRes(res_file)
        coco_eval = COCOeval(coco_gt, coco_dt, "keypoints")
        coco_eval.params.kpt_oks_sigmas = np.asarray(sigmas, np.float64)
        coco_eval.params.catIds = [int(category_id)]
        coco_eval.evaluate()
        coco_eval.accumulate()
        coco_eval.summarize()
    return collections.OrderedDict(
        (name, float(coco_eval.stats[i])) for i, name in enumerate(STATS_NAMES))


def evaluate(keypoints, box_scores, image_ids, coco_gt, res_file, center=None, scale=None,
             areas=None, in_vis_thre: float = 0.2, oks_thre: float = 0.9, sigmas=COCO_SIGMAS,
             category_id: int = PERSON_CATEGORY_ID):
    """The official COCO evaluation of per-person predictions.

    keypoints: (N, J, 3) image pixels and joint score (decode's coords and maxvals);
    sigmas: (J,) the keypoint set's OKS sigmas (OKS-NMS and COCOeval; COCO's by default);
    category_id: the COCO category of the people (1, person);
    box_scores: (N,); image_ids: (N,) COCO image ids; center, scale: (N, 2) the crops
    (scale in units of 200 px); areas: (N,), default prod(scale * 200) as the official
    code; coco_gt: annotation path or COCO; res_file: where the results JSON goes.
    Returns the OrderedDict of STATS_NAMES.
    """
    keypoints = np.asarray(keypoints)
    if keypoints.size == 0 or len(keypoints) == 0:
        raise ValueError("no predictions to evaluate (empty keypoints): did the evaluation "
                         "set or the detection file yield any person box?")
    if keypoints.ndim != 3 or keypoints.shape[2] != 3:
        raise ValueError(f"keypoints must be (N, J, 3) with (x, y, score), got {keypoints.shape}")
    if keypoints.shape[1] != len(sigmas):
        raise ValueError(f"keypoints have {keypoints.shape[1]} joints but {len(sigmas)} OKS "
                         f"sigmas were given: give the keypoint set's")
    n = len(keypoints)
    for name, a in (("box_scores", box_scores), ("image_ids", image_ids), ("center", center),
                    ("scale", scale), ("areas", areas)):
        if a is not None and len(a) != n:
            raise ValueError(f"{name} has {len(a)} entries for {n} people")
    if areas is None:
        if scale is None:
            raise ValueError("give areas or scale (area = prod(scale * 200))")
        areas = np.prod(np.asarray(scale, np.float64) * PIXEL_STD, axis=1)
    kept, scores = select_people(keypoints, box_scores, areas, image_ids, in_vis_thre, oks_thre,
                                 sigmas)
    pick = lambda a: None if a is None else np.asarray(a)[kept]
    results = results_json(keypoints[kept], scores[kept], np.asarray(image_ids)[kept],
                           pick(center), pick(scale), category_id)
    res_file = os.fspath(res_file)
    os.makedirs(os.path.dirname(os.path.abspath(res_file)), exist_ok=True)
    with open(res_file, "w") as f:
        json.dump(results, f, sort_keys=True, indent=4)
    return coco_keypoint_eval(coco_gt, res_file, sigmas, category_id)
