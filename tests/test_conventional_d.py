"""Issue 24: the conventional GAN discriminators of the paper's ablation (d_output image,
joint), their losses, their weights, the config refusals, and the collapse measure."""
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import random_batch, train_config, trained_scale_start
from hrgan_jax import config_checks, losses, models, state as state_lib, step as step_lib, weights
from hrgan_jax.evaluation.collapse import pose_spread


def _bce(z, label):  # -log sigmoid(z) for 1, -log(1 - sigmoid(z)) for 0, in float64
    z = np.asarray(z, np.float64)
    return float(np.mean(np.logaddexp(0.0, -z) if label else np.logaddexp(0.0, z)))


def _lsgan(z, label):
    return float(np.mean(np.square(np.asarray(z, np.float64) - label)))


@pytest.mark.parametrize("gan_loss,formula", [("bce", _bce), ("lsgan", _lsgan)])
def test_classifier_error_and_accuracy_are_the_textbook_formulas(gan_loss, formula):
    z = np.random.default_rng(0).normal(0, 3, (5, 16)).astype(np.float32)
    for label in (1.0, 0.0):
        np.testing.assert_allclose(losses.classifier_error(z, label, gan_loss), formula(z, label),
                                   rtol=1e-6)
    threshold = 0.0 if gan_loss == "bce" else 0.5
    np.testing.assert_allclose(losses.classifier_accuracy(z, 1.0, gan_loss), np.mean(z > threshold))
    np.testing.assert_allclose(losses.classifier_accuracy(z, 0.0, gan_loss), np.mean(z < threshold))


def _gan_config(d_output, gan_loss="bce"):
    return train_config(**{"adversarial.d_output": d_output, "adversarial.equilibrium": False,
                           "adversarial.gan_loss": gan_loss, "adversarial.beta_g": 1e-2})


def _by_hand(z, label, gan_loss):  # the formulas again, in jax, for their gradients
    if gan_loss == "bce":
        p = 1.0 / (1.0 + jnp.exp(-z))
        return -jnp.mean(jnp.log(p) if label else jnp.log(1.0 - p))
    return jnp.mean((z - label) ** 2)


def _logits_fn(config, images):
    d = models.discriminator(models.network_config(config, "discriminator"))

    @jax.jit
    def logits(params, stats, h):  # train mode: batch statistics, one pass per call
        x = models.discriminator_input(images, h)
        return d.apply({"params": params, "batch_stats": stats}, x, train=True,
                       mutable=["batch_stats"])[0]
    return logits


def _norm(tree):
    return np.sqrt(sum(np.sum(np.square(np.asarray(g, np.float64))) for g in jax.tree.leaves(tree)))


@pytest.mark.slow  # compiles a GAN step
def test_image_d_step_against_an_independent_computation():
    """One step with d_output='image' (BCE): L_real, L_fake, L_D, L_adv, D's accuracy,
    |dL_D/dtheta_D| and |beta_G dL_adv/dH_hat| against the same quantities computed here
    from D's logits with the plain formulas (float64 numpy losses, the gradients of a
    hand-written loss)."""
    config = _gan_config("image", "bce")
    g_tx, d_tx, g_lr, d_lr = state_lib.optimizers(config, steps_per_epoch=2)
    start = trained_scale_start(config, g_tx, d_tx)
    batch = random_batch(0)
    after, m = jax.jit(step_lib.make_train_step(config, g_tx, d_tx, g_lr, d_lr))(start, batch)
    after, m = jax.device_get((after, m))

    from hrgan_jax.images import normalize_images
    from hrgan_jax.targets import heatmap_targets
    images = normalize_images(batch["image"])
    data = config.data
    targets, _ = heatmap_targets(batch["joints"], batch["joints_vis"], tuple(data.image_size),
                                 tuple(data.heatmap_size), float(data.sigma))
    h_hat, _ = models.generator(config.model).apply(
        {"params": start.g_params, "batch_stats": start.g_stats}, images, train=True,
        mutable=["batch_stats"])
    logits = _logits_fn(config, images)
    z_real = logits(start.d_params, start.d_stats, targets)
    z_fake = logits(start.d_params, start.d_stats, h_hat)
    assert z_real.shape == (8, 1)
    l_real, l_fake = _bce(z_real, 1.0), _bce(z_fake, 0.0)
    np.testing.assert_allclose([m["l_real"], m["l_fake"], m["d_loss"]],
                               [l_real, l_fake, 0.5 * (l_real + l_fake)], rtol=1e-5)
    np.testing.assert_allclose([m["d_real_acc"], m["d_fake_acc"]],
                               [np.mean(z_real > 0), np.mean(z_fake < 0)])
    d_grads = jax.grad(lambda p: 0.5 * (_by_hand(logits(p, start.d_stats, targets), 1.0, "bce")
                                        + _by_hand(logits(p, start.d_stats, h_hat), 0.0, "bce")))(
        start.d_params)
    np.testing.assert_allclose(m["d_grad_norm"], _norm(d_grads), rtol=1e-4)

    # L_adv through the updated D, labelled real (non-saturating); its gradient at H_hat.
    z_adv = logits(after.d_params, start.d_stats, h_hat)
    np.testing.assert_allclose(m["l_adv"], _bce(z_adv, 1.0), rtol=1e-5)
    dadv = jax.grad(lambda h: _by_hand(logits(after.d_params, start.d_stats, h), 1.0, "bce"))(h_hat)
    adv_norm = 1e-2 * _norm(dadv)
    np.testing.assert_allclose(m["adv_grad_norm"], adv_norm, rtol=2e-3)
    np.testing.assert_allclose(m["adv_grad_ratio"], adv_norm / m["content_grad_norm"], rtol=2e-3)
    assert "k" not in m and "m_global" not in m  # no equilibrium to report
    assert float(after.k) == float(start.k)


@pytest.mark.slow  # compiles D's forward and backward
def test_joint_d_losses_and_gradients_against_an_independent_computation():
    """d_output='joint' (LSGAN): one logit per heatmap channel, D's final_layer pooled over
    the pixels; the step's losses of those logits (losses.classifier_error, as the step
    calls it) and their gradients for D's parameters and for H against the formulas.  The
    step's wiring is the image D's (tested above) with (B, J) logits for (B, 1)."""
    config = _gan_config("joint", "lsgan")
    start = state_lib.create(config, *state_lib.optimizers(config, steps_per_epoch=2)[:2])
    batch = random_batch(1)
    from hrgan_jax.images import normalize_images
    images = normalize_images(batch["image"])
    h = jnp.asarray(np.random.default_rng(2).uniform(0, 1, (8, 16, 16, 17)), jnp.float32)
    logits = _logits_fn(config, images)
    z = logits(start.d_params, start.d_stats, h)
    assert z.shape == (8, 17)
    # The head by hand: final_layer (a 1x1 conv) on D's trunk features, then the mean.
    d = models.discriminator(models.network_config(config, "discriminator"))
    x = models.discriminator_input(images, h)
    _, inter = jax.jit(lambda v, x: d.apply(
        v, x, train=True, mutable=["batch_stats", "intermediates"],
        capture_intermediates=lambda mdl, _: mdl.name == "final_layer"))(
        {"params": start.d_params, "batch_stats": start.d_stats}, x)
    (per_pixel,) = inter["intermediates"]["final_layer"]["__call__"]
    np.testing.assert_allclose(z, np.mean(np.asarray(per_pixel, np.float64), axis=(1, 2)),
                               rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose([losses.classifier_error(z, 1.0, "lsgan"),
                                losses.classifier_error(z, 0.0, "lsgan")],
                               [_lsgan(z, 1.0), _lsgan(z, 0.0)], rtol=1e-5)

    def d_loss(loss, p, hh):  # D's loss form, (real + fake) / 2, on one set of inputs
        out = logits(p, start.d_stats, hh)
        return 0.5 * (loss(out, 1.0) + loss(out, 0.0)) + loss(out, 1.0)

    ours = jax.grad(functools.partial(d_loss, lambda o, y: losses.classifier_error(o, y, "lsgan")),
                    argnums=(0, 1))(start.d_params, h)
    plain = jax.grad(functools.partial(d_loss, lambda o, y: _by_hand(o, y, "lsgan")),
                     argnums=(0, 1))(start.d_params, h)
    for a, b in zip(jax.tree.leaves(ours), jax.tree.leaves(plain)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7 * float(_norm(plain)))


def test_the_image_head_exports_as_an_official_linear_layer():
    config = _gan_config("image")
    d_cfg = models.network_config(config, "discriminator")
    slots = weights.layout(d_cfg, "discriminator")
    assert list(slots)[-2:] == ["classifier.weight", "classifier.bias"]
    assert not any(k.startswith("final_layer") for k in slots)
    width = models.validate(d_cfg).stages[-1].num_channels[0]
    assert slots["classifier.weight"].shape == (1, width) and slots["classifier.bias"].shape == (1,)
    rng = np.random.default_rng(0)
    sd = {k: rng.normal(size=s.shape).astype(np.float32) for k, s in slots.items()}
    variables = weights.from_torch(sd, d_cfg, "discriminator")
    np.testing.assert_array_equal(variables["params"]["classifier"]["kernel"],
                                  sd["classifier.weight"].T)
    back = weights.to_torch(variables, d_cfg, "discriminator")
    assert all(np.array_equal(back[k], sd[k]) for k in sd)
    # 'joint' keeps HRGAN's keys and shapes; a reconstructing D's file is not an image D's.
    reconstruct = weights.layout(config.model, "discriminator")
    assert {k: s.shape for k, s in weights.layout(models.network_config(
        _gan_config("joint"), "discriminator"), "discriminator").items()} == \
        {k: s.shape for k, s in reconstruct.items()}
    with pytest.raises(weights.WeightsMismatchError, match="classifier.weight"):
        weights.from_torch({k: np.zeros(s.shape, np.float32) for k, s in reconstruct.items()},
                           d_cfg, "discriminator")


def test_the_default_discriminator_config_is_the_model_config():
    config = train_config()
    assert models.network_config(config, "discriminator") is config.model
    assert models.validate(models.network_config(_gan_config("joint"), "discriminator")).d_output \
        == "joint"


@pytest.mark.parametrize("overrides,message", [
    ({"adversarial.d_output": "image"},
     "config.adversarial.d_output = 'image' has no boundary equilibrium"),
    ({"adversarial.d_output": "joint", "adversarial.equilibrium": False,
      "adversarial.target_weight_in_d": True},
     "config.adversarial.target_weight_in_d weights D's reconstruction errors"),
    ({"adversarial.gan_loss": "lsgan"}, "config.adversarial.gan_loss = 'lsgan' is a loss of"),
])
def test_meaningless_adversarial_combinations_are_refused(overrides, message):
    with pytest.raises(ValueError, match=message):
        config_checks.check(train_config(**overrides))
    config_checks.check(train_config(**overrides, **{"adversarial.enabled": False}))  # no D
    with pytest.raises(ValueError, match="config.adversarial.d_output = 'patch': choose one of"):
        config_checks.check(train_config(**{"adversarial.d_output": "patch"}))


def _people(n=40, joints=16, seed=0):
    rng = np.random.default_rng(seed)
    center = rng.uniform(50, 250, (n, 2))
    scale = rng.uniform(0.5, 2.0, (n, 1)) * np.array([1.0, 1.0])
    pose = rng.normal(0, 0.2, (n, joints, 2))  # in the box frame
    gt = center[:, None] + 200.0 * scale[:, None] * pose
    visible = (rng.uniform(size=(n, joints)) < 0.8).astype(np.float32)
    return gt, visible, center, scale


def test_pose_spread_end_points():
    gt, visible, center, scale = _people()
    assert pose_spread(gt, gt, visible, center, scale) == pytest.approx(1.0, abs=1e-12)
    one_pose = np.random.default_rng(1).normal(0, 0.2, (16, 2))  # the same pose for everyone
    same = center[:, None] + 200.0 * scale[:, None] * one_pose[None]
    assert pose_spread(same, gt, visible, center, scale) == pytest.approx(0.0, abs=1e-9)
    # Half-way to the mean pose: half as varied.  Invisible joints do not count.
    mean = np.sum(visible[..., None] * (gt - center[:, None]) / (200 * scale[:, None]), 0) \
        / visible.sum(0)[:, None]
    half = 0.5 * (gt + center[:, None] + 200.0 * scale[:, None] * mean[None])
    half[visible == 0] = 1e6
    assert pose_spread(half, gt, visible, center, scale) == pytest.approx(0.5, abs=1e-9)
    assert np.isnan(pose_spread(gt, gt, np.zeros_like(visible), center, scale))


def test_the_evaluation_measures_the_spread_of_the_people_with_true_joints():
    """runner._pose_spread: detector boxes (no true joints) are left out; none at all: None."""
    from types import SimpleNamespace
    from hrgan_jax.evaluation import runner
    gt, visible, center, scale = _people(n=6)
    joints = np.concatenate([gt, np.zeros_like(gt[:2])]).astype(np.float32)  # 2 detections
    records = SimpleNamespace(joints=joints, joints_vis=np.concatenate([visible, np.ones_like(
        visible[:2])]))
    order = np.array([7, 0, 1, 2, 3, 4, 5, 6])  # evaluated rows, by record index
    cat = {"index": order, "center": np.concatenate([center, center[:2]])[order],
           "scale": np.concatenate([scale, scale[:2]])[order]}
    coords = joints[order] + 0.0
    assert runner._pose_spread(coords, cat, records) == pytest.approx(1.0)
    assert runner._pose_spread(coords, cat, None) is None
    no_truth = SimpleNamespace(joints=np.zeros_like(joints), joints_vis=records.joints_vis)
    assert runner._pose_spread(coords, cat, no_truth) is None
