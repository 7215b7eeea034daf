"""What the adversary does: the step's diagnostics and --mode=compare."""
import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import random_batch, train_config, trained_scale_start
from hrgan_jax import compare, losses, models, state as state_lib, step as step_lib, trainer
from hrgan_jax.images import normalize_images
from hrgan_jax.targets import heatmap_targets

ONE = jax.devices()[:1]


def test_diagnostics_on_known_gradients():
    dcontent = jnp.full((2, 4, 4, 3), 3.0)  # norm 3 sqrt(96)
    dadv = jnp.full((2, 4, 4, 3), -2.0)  # norm 2 sqrt(96)
    d = losses.adversary_diagnostics(dcontent, dadv, 0.5, jnp.float32(0.0), jnp.float32(0.2),
                                     jnp.float32(0.3), 0.5, 1e-3)
    np.testing.assert_allclose(d["content_grad_norm"], 3 * np.sqrt(96), rtol=1e-6)
    np.testing.assert_allclose(d["adv_grad_norm"], 0.5 * 2 * np.sqrt(96), rtol=1e-6)
    np.testing.assert_allclose(d["adv_grad_ratio"], 1.0 / 3.0, rtol=1e-6)
    np.testing.assert_allclose(d["d_gap"], 0.3 - 0.5 * 0.2, rtol=1e-6)
    assert float(d["k_clipped_low"]) == 1.0 and float(d["k_clipped_high"]) == 0.0  # 0 - 2e-4 < 0
    d = losses.adversary_diagnostics(jnp.zeros(3), jnp.ones(3), 1.0, jnp.float32(1.0),
                                     jnp.float32(1.0), jnp.float32(0.0), 0.5, 1e-3)
    assert float(d["adv_grad_ratio"]) == 0.0  # no content gradient: no ratio, not NaN
    assert float(d["k_clipped_high"]) == 1.0 and float(d["k_clipped_low"]) == 0.0


@pytest.mark.slow  # compiles a train step or starts a fresh interpreter
def test_the_step_reports_the_content_gradient_it_pulls_back():
    config = train_config()
    g_tx, d_tx, g_lr, d_lr = state_lib.optimizers(config, steps_per_epoch=2)
    state = trained_scale_start(config, g_tx, d_tx)
    batch = random_batch(0)
    _, metrics = jax.jit(step_lib.make_train_step(config, g_tx, d_tx, g_lr, d_lr))(state, batch)
    # The same quantity from first principles: d(0.5 mean((w (H_hat - H))^2))/dH_hat.
    h_hat, _ = models.generator(config.model).apply(
        {"params": state.g_params, "batch_stats": state.g_stats},
        normalize_images(batch["image"]), train=True, mutable=["batch_stats"])
    targets, weight = heatmap_targets(batch["joints"], batch["joints_vis"],
                                      tuple(config.data.image_size),
                                      tuple(config.data.heatmap_size), float(config.data.sigma))
    w = np.asarray(weight, np.float64).reshape(weight.shape[0], 1, 1, weight.shape[1])
    grad = w ** 2 * (np.asarray(h_hat, np.float64) - np.asarray(targets, np.float64)) / h_hat.size
    np.testing.assert_allclose(metrics["content_grad_norm"], np.linalg.norm(grad), rtol=1e-4)
    np.testing.assert_allclose(metrics["adv_grad_ratio"],
                               metrics["adv_grad_norm"] / metrics["content_grad_norm"], rtol=1e-5)
    np.testing.assert_allclose(metrics["d_gap"], metrics["l_fake"] - 0.5 * metrics["l_real"],
                               rtol=1e-5, atol=1e-9)
    # k_0 = 0 and L_fake > gamma L_real: eq. (5) clipped at 0, as the demo's logs show.
    assert float(metrics["k_clipped_low"]) == float(metrics["d_gap"] > 0)


@pytest.fixture(scope="module")
def two_runs(train_coco_root, tmp_path_factory):
    runs = []
    for name, adversarial in (("hrgan", True), ("hrnet", False)):
        workdir = str(tmp_path_factory.mktemp(name))
        config = train_config(**{"data.root": train_coco_root, "train.steps": 2,
                                      "train.log_every": 1, "eval.every_epochs": 0,
                                      "eval.batch_size": 8, "eval.max_images": 8,
                                      "adversarial.enabled": adversarial, "seed": 3})
        trainer.train_and_evaluate(config, workdir, devices=ONE)
        runs.append(workdir)
    return runs


@pytest.mark.slow
def test_compare_two_tiny_runs_gives_the_table_and_the_plot(two_runs, tmp_path):
    rows = [json.loads(line) for line in open(os.path.join(two_runs[0], "metrics.jsonl"))]
    for key in ("content_grad_norm", "adv_grad_norm", "adv_grad_ratio", "d_gap",
                "k_clipped_low", "k_clipped_high"):
        assert all(np.isfinite(r[key]) for r in rows), key  # in metrics.jsonl (and TensorBoard)
    md, png = compare.compare(two_runs, str(tmp_path / "cmp"))
    text = open(md).read()
    lines = text.splitlines()
    assert lines[0].startswith("| run | seed | best AP % | at step | final AP % | at step |")
    names = [os.path.basename(w) for w in two_runs]  # the rows say which workdir they are
    assert lines[2].startswith(f"| HRGAN ({names[0]}) | 3 |")
    assert lines[3].startswith(f"| HRNet ({names[1]}) | 3 |")
    assert "In %: COCO OKS AP and AR (the evaluation's fractions x 100)" in text
    assert "| 2 |" in lines[2]  # the evaluation at step 2
    assert os.path.getsize(png) > 1000
    # A run in progress (no evaluation yet) still gets a row; another dataset does not mix.
    os.makedirs(tmp_path / "fresh")
    json.dump({"seed": 1, "adversarial": {"enabled": True, "equilibrium": False,
                                          "beta_g": 0.01}, "data": {"name": "coco"}},
              open(tmp_path / "fresh" / "config.json", "w"))
    run = compare.read_run(str(tmp_path / "fresh"))
    assert run["name"] == "HRGAN, no equilibrium (beta_g 0.01)"
    assert compare.table([run]).splitlines()[2].startswith(
        "| HRGAN, no equilibrium (beta_g 0.01) (fresh) | 1 | - |")
    with pytest.raises(compare.CompareError, match="no config.json"):
        compare.compare([str(tmp_path)], str(tmp_path / "cmp"))


def test_a_run_is_named_by_what_it_changes_in_the_adversary():
    assert compare.variant({"adversarial": {"enabled": False, "d_network": "micro"}}) == "HRNet"
    assert compare.variant({}) == "HRGAN"
    assert compare.variant({"adversarial": {"enabled": True, "d_network": "micro",
                                            "gamma": 1.0}}) == "HRGAN, D micro (gamma 1)"
    assert compare.variant({"adversarial": {"d_output": "image", "equilibrium": False,
                                            "beta_g": 0.01}}) == "GAN, D image (beta_g 0.01)"
    assert compare.variant({"adversarial": {"d_output": "joint", "gan_loss": "lsgan",
                                            "equilibrium": False}}) == "GAN, D joint lsgan"


def test_compare_summarises_each_variant_over_its_seeds():
    def run(name, seed, values, ratio):
        evals = {100 * (i + 1): {"Mean": v} for i, v in enumerate(values)}
        if ratio:  # the HRGAN runs' last evaluations measured the pose spread
            evals[100 * len(values)]["pose_spread"] = 0.4 if seed == 0 else 0.8
        return {"name": name, "seed": seed, "dataset": "mpii", "workdir": "",
                "evaluations": evals,
                "history": [{"k": 0.0, "adv_grad_ratio": ratio}] if ratio else [{}]}
    runs = [run("HRNet", 0, [30.0, 41.0], None), run("HRNet", 1, [32.0, 40.0], None),
            run("HRGAN", 0, [29.0, 38.0], 2e-4), run("HRGAN", 1, [42.0, 40.0], 4e-4)]
    lines = compare.by_variant(runs).splitlines()
    assert lines[0].startswith("| variant | runs | best Mean %: mean (range) | final Mean %")
    assert lines[2] == ("| HRNet | 2, seeds 0 and 1 | 40.50 (40.00 to 41.00) | 40.50 (40.00 to "
                        "41.00) | - | - |")
    assert lines[3] == ("| HRGAN | 2, seeds 0 and 1 | 40.00 (38.00 to 42.00) | 39.00 (38.00 to "
                        "40.00) | 0.0003 | 0.60 (0.40 to 0.80) |")
    assert compare.by_variant(runs[:1]) == ""  # one run per variant: no summary
    # Two runs with seed 0 are repeats, not two seeds.
    repeats = [run("HRNet", 0, [30.0], None), run("HRNet", 0, [31.0], None),
               run("HRNet", 1, [32.0], None)]
    assert compare.by_variant(repeats[:2]).splitlines()[2].startswith("| HRNet | 2, all seed 0 |")
    assert compare.by_variant(repeats).splitlines()[2].startswith("| HRNet | 3, seeds 0 (x2), 1 |")
    # A variant with one run beside one with several: its one seed.
    lines = compare.by_variant(runs[:3]).splitlines()
    assert lines[3].startswith("| HRGAN | 1, seed 0 | 38.00 (38.00 to 38.00) |"), lines[3]


def test_compare_names_a_broken_config_json(tmp_path):
    (tmp_path / "config.json").write_text('{"seed": 0, "adversarial": {')  # cut short
    with pytest.raises(compare.CompareError, match=r"config.json: cannot read the run's config "
                       r"\(JSONDecodeError: .*\); the trainer writes it at the start"):
        compare.read_run(str(tmp_path))
    (tmp_path / "config.json").write_text("[1, 2]")
    with pytest.raises(compare.CompareError, match="expected the run's config"):
        compare.read_run(str(tmp_path))
