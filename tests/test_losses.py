import jax.numpy as jnp
import numpy as np

from hrgan_jax import losses


def _maps(seed, shape=(2, 8, 6, 5)):
    return np.random.default_rng(seed).normal(0, 0.05, shape).astype(np.float32)


def test_content_loss_is_half_weighted_mse():
    pred, target = _maps(0), _maps(1)
    w = np.array([[1, 0, 1, 1, 0], [0, 1, 1, 1, 1]], np.float32)
    expected = 0.0
    for b in range(2):  # JointsMSELoss: per joint 0.5 * MSE(pred*w, gt*w), averaged over joints
        for j in range(5):
            expected += 0.5 * np.mean((pred[b, ..., j] * w[b, j] - target[b, ..., j] * w[b, j]) ** 2)
    expected /= 10
    np.testing.assert_allclose(losses.content_loss(pred, target, w), expected, rtol=1e-6)


def test_reconstruction_error_plain_and_weighted():
    rec, h = _maps(2), _maps(3)
    np.testing.assert_allclose(losses.reconstruction_error(rec, h), np.mean((rec - h) ** 2), rtol=1e-6)
    w = np.array([[1, 0, 1, 1, 0], [1, 1, 1, 1, 1]], np.float32)
    np.testing.assert_allclose(losses.reconstruction_error(rec, h, w),
                               np.mean((w[:, None, None] * (rec - h)) ** 2), rtol=1e-6)


def test_discriminator_and_generator_losses():
    assert np.isclose(losses.discriminator_loss(jnp.float32(2e-3), jnp.float32(3e-3), 0.25),
                      2e-3 - 0.25 * 3e-3)
    assert np.isclose(losses.discriminator_loss(2e-3, 3e-3, 0.25, equilibrium=False), 2.5e-3)
    assert np.isclose(losses.generator_loss(jnp.float32(1e-3), jnp.float32(2e-3), 1e-4),
                      1e-3 + 1e-4 * 2e-3, rtol=1e-7)


def test_equilibrium_update_and_convergence_measure_by_hand():
    k = losses.equilibrium_update(jnp.float32(0.3), jnp.float32(4e-3), jnp.float32(1e-3), 0.5, 1e-3)
    np.testing.assert_allclose(k, 0.3 + 1e-3 * (0.5 * 4e-3 - 1e-3), rtol=1e-7)
    m = losses.convergence_measure(jnp.float32(4e-3), jnp.float32(1e-3), 0.5)
    np.testing.assert_allclose(m, 4e-3 + abs(0.5 * 4e-3 - 1e-3), rtol=1e-6)


def test_k_stays_in_unit_interval_under_extreme_inputs():
    for k0, real, fake in [(0.0, 0.0, 1e30), (1.0, 1e30, 0.0), (0.5, 1e38, -1e38),
                           (0.0, 0.0, np.float32(3e38)), (1.0, 3e38, 0.0)]:
        k = float(losses.equilibrium_update(jnp.float32(k0), jnp.float32(real), jnp.float32(fake),
                                            0.5, 1e-3))
        assert 0.0 <= k <= 1.0, (k0, real, fake, k)
    # Tiny steps accumulate in float32 without being lost: 1e-6 per step from k = 0.
    k = jnp.float32(0.0)
    for _ in range(100):
        k = losses.equilibrium_update(k, jnp.float32(2e-3), jnp.float32(0.0), 0.5, 1e-3)
    np.testing.assert_allclose(k, 100 * 1e-6, rtol=1e-4)
