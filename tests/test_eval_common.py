import collections
import json

from hrgan_jax.evaluation import coco, format_table, mpii, write_json


def test_format_table_mpii_and_coco():
    res = collections.OrderedDict((n, 90.0 + i) for i, n in enumerate(mpii.COLUMNS))
    lines = format_table(res, "pose_hrnet").splitlines()
    assert lines[0] == ("| Arch | Head | Shoulder | Elbow | Wrist | Hip | Knee | Ankle | Mean "
                        "| Mean@0.1 |")
    assert lines[1] == "|---" * 10 + "|"
    assert lines[2].startswith("| pose_hrnet | 90.000 | 91.000 |")
    res = collections.OrderedDict((n, 0.5) for n in coco.STATS_NAMES)
    lines = format_table(res, "a_very_long_architecture_name").splitlines()
    assert lines[0].startswith("| Arch | AP | Ap .5 | AP .75 | AP (M)")
    assert lines[2].startswith("| a_very_l... | 0.500 |")


def test_write_json_keeps_order(tmp_path):
    res = collections.OrderedDict([("Mean", 91.5), ("Head", float("nan"))])
    path = write_json(res, tmp_path / "sub" / "results.json")
    assert list(json.load(open(path)).items()) == [("Mean", 91.5), ("Head", None)]


def test_evaluation_tables_give_clean_tensorboard_tags():
    from hrgan_jax import evaluation
    coco_row = {"step": 3, "AP": 0.5, "Ap .5": 0.9, "AP .75": 0.4, "AP (M)": 0.3, "AR (L)": 0.7}
    assert evaluation.tensorboard_scalars(coco_row) == {
        "eval/AP": 0.5, "eval/AP50": 0.9, "eval/AP75": 0.4, "eval/APM": 0.3, "eval/ARL": 0.7}
    mpii_row = {"Head": 97.0, "Mean": 90.0, "Mean@0.1": 40.0}
    assert evaluation.tensorboard_scalars(mpii_row) == {
        "eval/Head": 97.0, "eval/Mean": 90.0, "eval/Mean_at_0.1": 40.0}
    assert list(evaluation.scalar_names(coco_row)) == ["step", "AP", "AP50", "AP75", "APM", "ARL"]


def test_tensorboard_crops_show_the_best_people_of_every_image():
    """eval/crops: the highest-scoring people across the evaluation, the best of each
    image first, not the first batch's first crops (often one image's low-score boxes)."""
    import numpy as np
    from hrgan_jax.evaluation import runner

    def batch(image_ids, box_scores, joint_score, first_index):
        n = len(image_ids)
        return {"image": np.full((n, 8, 8, 3), first_index, np.uint8),
                "score": np.asarray(box_scores, np.float32),
                "image_id": np.asarray(image_ids), "valid": np.ones(n, bool),
                "index": np.arange(first_index, first_index + n)}, \
            np.zeros((n, 3, 2), np.float32), np.full((n, 3, 1), joint_score, np.float32)

    best = None
    # Image 1's many low-score boxes come first; images 2 and 3 hold the confident people.
    for host, coords, maxvals in (batch([1] * 20, [0.05] * 20, 0.5, 0),
                                  batch([2, 2, 3], [0.9, 0.8, 0.7], 0.9, 20)):
        best = runner._best_people(best, host, coords, maxvals, 0.2)
    images, coords, maxvals, index = runner._one_per_image(best)
    assert len(index) == runner.CROPS_SHOWN
    # The best of images 2, 3 and 1, then image 2's second person, then image 1's others.
    assert list(index[:4]) == [20, 22, 0, 21]
    assert set(index[4:]) <= set(range(1, 20))
    host, coords, maxvals = batch([4], [1.0], 0.9, 30)
    host["valid"][:] = False  # a padding row is never shown
    assert 30 not in runner._best_people(best, host, coords, maxvals, 0.2)["index"]
