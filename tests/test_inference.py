"""hrgan_jax.inference: BatchNorm folding, the flip test, the predictors."""
import jax
import numpy as np
import pytest

from conftest import small_config
from hrgan_jax import inference, loader, weights
from hrgan_jax.images import normalize_images


@pytest.fixture(scope="module")
def small():
    config = small_config()
    sd = weights.trained_scale_state_dict(config.model, "generator", seed=7)
    return config, weights.from_torch(sd, config.model, "generator")


def test_fold_batch_norm_structure(small):
    config, variables = small
    folded = weights.fold_batch_norm(variables, config.model)
    assert set(folded) == {"params"}  # no batch statistics left
    slots = weights.layout(config.model)
    num_bn = sum(k.endswith("running_mean") for k in slots)
    leaves = jax.tree_util.tree_flatten_with_path(folded["params"])[0]
    names = [p[-1].key for p, _ in leaves]
    assert "scale" not in names  # every BatchNorm went into a conv
    assert names.count("kernel") == sum(k.endswith(".weight") and len(s.shape) == 4
                                        for k, s in slots.items())
    assert names.count("bias") == num_bn + 1  # one per folded conv, plus the head's own
    assert all(set(folded["params"][k]) == {"bias"} for k in ("bn1", "bn2"))
    # the input is untouched
    assert "batch_stats" in variables and "scale" in variables["params"]["bn1"]


def test_folded_network_equals_the_unfolded_one_to_float32_rounding(small):
    config, variables = small
    folded = inference.fold(config, variables)
    x = normalize_images(
        np.random.default_rng(0).integers(0, 256, (2, 64, 64, 3), dtype=np.uint8))
    want = np.asarray(jax.jit(inference.apply_fn(config))(variables, x))
    got = np.asarray(jax.jit(inference.apply_fn(config, folded=True))(folded, x))
    scale = np.abs(want).max()
    assert scale > 1e-1  # trained-scale weights: not a comparison of near-zeros
    err = np.abs(got - want).max() / scale
    assert err < 1e-5, err
    assert err > 0 or np.array_equal(got, want)
    # a folded tree in the unfolded network fails loudly instead of running without BN
    with pytest.raises(Exception):
        inference.apply_fn(config)(folded, x)


def test_folded_predictions_equal_unfolded(small):
    config, variables = small
    images = np.random.default_rng(1).integers(0, 256, (3, 64, 64, 3), dtype=np.uint8)
    want = jax.jit(inference.crop_outputs_fn(config, variables))(images)
    got = jax.jit(inference.crop_outputs_fn(config, inference.fold(config, variables),
                                            folded=True))(images)
    scale = np.abs(want["heatmaps"]).max()
    np.testing.assert_allclose(got["heatmaps"], want["heatmaps"], rtol=0, atol=1e-5 * scale)
    assert np.isclose(got["keypoints"], want["keypoints"]).all(-1).mean() > 0.95


def test_unknown_decoder_is_an_error():
    config = small_config()
    with config.unlocked():
        config.eval.decode = "softargmax"
    with pytest.raises(ValueError, match="config.eval.decode"):
        inference.decoder(config)


def test_an_exported_model_is_not_weights(tmp_path):
    config = small_config()
    (tmp_path / "generator.onnx").write_bytes(b"")
    with pytest.raises(ValueError, match="exported model"):
        loader.generator_variables(config, None, str(tmp_path / "generator.onnx"))


def test_flip_test_matches_two_separate_passes(small):
    """The interleaved 2B batch gives what two calls (image, mirror) give."""
    from data_pipeline.joints import FLIP_PAIRS
    from hrgan_jax import keypoints
    config, variables = small
    apply = jax.jit(inference.apply_fn(config))
    x = normalize_images(
        np.random.default_rng(2).integers(0, 256, (2, 64, 64, 3), dtype=np.uint8))
    plain, mirrored = apply(variables, x), apply(variables, keypoints.flip_images(x))
    want = (plain + keypoints.flip_back(mirrored, FLIP_PAIRS["coco"], True)) * 0.5
    got = keypoints.flip_test_heatmaps(lambda im: apply(variables, im), x, FLIP_PAIRS["coco"], True)
    np.testing.assert_allclose(np.asarray(got), np.asarray(want), rtol=0,
                               atol=1e-5 * float(np.abs(want).max()))


def test_config_eval_decode_dark_reaches_the_predictor(small):
    _, variables = small
    config = small_config()
    images = np.random.default_rng(3).integers(0, 256, (2, 64, 64, 3), dtype=np.uint8)
    official = jax.jit(inference.predict_fn(config))(variables, images)
    with config.unlocked():
        config.eval.decode = "dark"
    dark = jax.jit(inference.predict_fn(config))(variables, images)
    np.testing.assert_array_equal(np.asarray(dark[1]), np.asarray(official[1]))  # same scores
    moved = np.abs(np.asarray(dark[0]) - np.asarray(official[0]))
    assert moved.max() > 0 and np.isfinite(moved).all()  # random weights: no Gaussian peaks
