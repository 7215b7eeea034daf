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
