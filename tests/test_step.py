"""The train step: one device = eight devices, the HRNet-only switch, the GAN order."""
import functools

import jax
import numpy as np
import pytest

from conftest import metric_rtol, random_batch, relative_error, train_config, trained_scale_start
from hrgan_jax import parallel, state as state_lib, step as step_lib


@functools.lru_cache(maxsize=None)
def _setup(adversarial=True, dtype="float32"):
    config = train_config(**{"adversarial.enabled": adversarial, "model.dtype": dtype})
    g_tx, d_tx, g_lr, d_lr = state_lib.optimizers(config, steps_per_epoch=2)
    state = trained_scale_start(config, g_tx, d_tx)
    return config, step_lib.make_train_step(config, g_tx, d_tx, g_lr, d_lr), state


@functools.lru_cache(maxsize=None)
def _jitted(n_devices, adversarial, dtype="float32"):
    _, train_step, _ = _setup(adversarial, dtype)
    mesh = parallel.make_mesh(jax.devices()[:n_devices])
    rep = parallel.replicated(mesh)
    return mesh, jax.jit(train_step, in_shardings=(rep, parallel.data_sharded(mesh)),
                         out_shardings=(rep, rep))


@functools.lru_cache(maxsize=None)
def _run(n_devices, steps=2, adversarial=True, dtype="float32"):
    mesh, f = _jitted(n_devices, adversarial, dtype)
    state = parallel.replicate(_setup(adversarial, dtype)[2], mesh)
    all_metrics = []
    for i in range(steps):
        state, metrics = f(state, parallel.global_batch(random_batch(i), mesh))
        all_metrics.append(jax.device_get(metrics))
    return jax.device_get(state), all_metrics


def _leaves(tree):
    return np.concatenate([np.ravel(np.asarray(x, np.float64)) for x in jax.tree.leaves(tree)])


@pytest.mark.slow
@pytest.mark.skipif(jax.device_count() < 8, reason="needs 8 (fake CPU) devices")
def test_one_device_equals_eight_devices():
    one, (m1,) = _run(1, steps=1)
    eight, (m8,) = _run(8, steps=1)
    for name in m1:
        np.testing.assert_allclose(m8[name], m1[name], rtol=metric_rtol(name), err_msg=name)
    np.testing.assert_allclose(eight.k, one.k, rtol=1e-5, atol=1e-12)
    for field in ("g_stats", "d_params", "d_stats", "d_opt"):
        err = relative_error(_leaves(getattr(eight, field)), _leaves(getattr(one, field)))
        assert err < 1e-5, (field, err)
    # G's first RMSprop updates are +-10 lr sign(g): an element whose gradient is at the
    # level of float32 rounding can flip sign between the two reduction orders.  Its
    # gradient moments and all but a few of its parameters agree to float32 rounding.
    g1, g8 = _leaves(one.g_params), _leaves(eight.g_params)
    assert relative_error(_leaves(eight.g_opt), _leaves(one.g_opt)) < 1e-4
    assert relative_error(g8, g1) < 2e-4
    assert np.mean(np.abs(g8 - g1) > 1e-5 * (np.abs(g1) + 1e-3)) < 1e-2


def test_gan_step_moves_everything_and_k_follows_eq5():
    config, _, initial = _setup(True)
    final, metrics = _run(1, steps=2)
    assert int(final.step) == 2 and int(final.skipped) == 0
    for field in ("g_params", "g_stats", "d_params", "d_stats"):
        assert relative_error(_leaves(getattr(final, field)), _leaves(getattr(initial, field))) > 0
    adv = config.adversarial
    k = 0.0
    for m in metrics:  # k_t from the logged L_real, L_fake (measured before D's update)
        k = min(max(k + adv.lambda_k * (adv.gamma * m["l_real"] - m["l_fake"]), 0.0), 1.0)
        np.testing.assert_allclose(m["k"], k, rtol=1e-5, atol=1e-12)
    np.testing.assert_allclose(final.k, k, rtol=1e-5, atol=1e-12)
    assert all(m["finite"] == 1.0 for m in metrics)


@pytest.mark.slow  # compiles the bfloat16 GAN step
def test_bfloat16_step_follows_float32():
    """Under model.float32's policy the bfloat16 step keeps what drives HRGAN at
    float32's: the losses, L_real and L_fake (whose gap moves k_t by lambda_k per step)
    and k_t, from the same weights, batches and k_0 = 0.5.  The first step (the same
    state) within 2e-3 (measured: 4.7e-4 at most, k 5e-7; 1.2e-3 for d_loss on an
    AVX-512 CPU, whose XLA code rounds bfloat16 differently); over three steps the two
    trajectories part as G's first RMSprop updates (~lr sign(g)) differ where a gradient
    is at rounding level (measured: losses within 7e-3, k within 1e-4)."""
    runs = {}
    for dtype in ("float32", "bfloat16"):
        mesh, f = _jitted(1, True, dtype)
        state = parallel.replicate(_setup(True, dtype)[2].replace(k=np.float32(0.5)), mesh)
        metrics = []
        for i in range(3):
            state, m = f(state, parallel.global_batch(random_batch(i), mesh))
            metrics.append(jax.device_get(m))
        runs[dtype] = metrics
    first16, first32 = runs["bfloat16"][0], runs["float32"][0]
    for name in ("content_loss", "g_loss", "l_adv", "l_real", "l_fake", "d_loss"):
        np.testing.assert_allclose(first16[name], first32[name], rtol=2e-3, err_msg=name)
    np.testing.assert_allclose(first16["k"], first32["k"], rtol=1e-5)
    for m16, m32 in zip(runs["bfloat16"], runs["float32"]):
        for name in ("content_loss", "g_loss", "l_adv", "l_real", "l_fake"):
            np.testing.assert_allclose(m16[name], m32[name], rtol=1.5e-2, err_msg=name)
        assert 0 < m32["k"] < 1  # k_t moves, unclipped
        np.testing.assert_allclose(m16["k"], m32["k"], rtol=3e-4)


def test_adversarial_off_is_hrnet_training():
    config, _, initial = _setup(False)
    final, metrics = _run(1, steps=2, adversarial=False)
    for field in ("d_params", "d_stats", "d_opt"):
        np.testing.assert_array_equal(_leaves(getattr(final, field)), _leaves(getattr(initial, field)))
    assert float(final.k) == float(initial.k)
    assert set(metrics[0]) == {"content_loss", "g_loss", "g_grad_norm", "g_lr", "finite"}
    assert relative_error(_leaves(final.g_params), _leaves(initial.g_params)) > 0


def test_non_finite_step_leaves_the_state_unchanged():
    _, _, initial = _setup(True)
    mesh, f = _jitted(1, True)
    g_params = jax.tree.map(np.array, initial.g_params)
    g_params["final_layer"]["bias"][0] = np.nan  # poisons H_hat, so every loss
    initial = initial.replace(g_params=g_params)
    state, metrics = f(parallel.replicate(initial, mesh), parallel.global_batch(random_batch(0), mesh))
    state = jax.device_get(state)
    assert float(metrics["finite"]) == 0.0
    assert int(state.step) == 1 and int(state.skipped) == 1
    for field in ("g_params", "g_stats", "g_opt", "d_params", "d_stats", "d_opt"):
        np.testing.assert_array_equal(_leaves(getattr(state, field)), _leaves(getattr(initial, field)))
    assert float(state.k) == float(initial.k)


def test_batched_d_pass_equals_two_calls():
    """D's real and fake passes as one call on 2B (per-pass statistics, running statistics
    real then fake) is the public code's two calls, to float32 rounding."""
    config, _, initial = _setup(True)
    g_tx, d_tx, g_lr, d_lr = state_lib.optimizers(config, steps_per_epoch=2)
    two_calls = jax.jit(step_lib.make_train_step(config, g_tx, d_tx, g_lr, d_lr, batched_d=False))
    state, metrics = two_calls(initial, random_batch(0))
    state, metrics = jax.device_get((state, metrics))
    (batched, (m1,)) = _run(1, steps=1)
    for name in metrics:
        np.testing.assert_allclose(m1[name], metrics[name], rtol=metric_rtol(name), err_msg=name)
    for field in ("d_params", "d_stats", "d_opt", "g_stats"):
        err = relative_error(_leaves(getattr(batched, field)), _leaves(getattr(state, field)))
        assert err < 1e-5, (field, err)
    # G's RMSprop moments square its gradient (rounding doubles); see the 1-vs-8 test
    assert relative_error(_leaves(batched.g_opt), _leaves(state.g_opt)) < 1e-4
    assert relative_error(_leaves(batched.g_params), _leaves(state.g_params)) < 2e-4


def _count_all_reduces(hlo_text: str) -> int:
    import re
    return len(re.findall(r"\ball-reduce(?:-start)?\(", hlo_text))


def _nudged(tree, rng, rel=1e-7):
    """Every element times (1 +- rel): a change at the level of float32 rounding."""
    return jax.tree.map(lambda p: p * (1 + rel * rng.choice([-1, 1], p.shape)).astype(p.dtype), tree)


@pytest.mark.slow  # two compilations of the GAN step (1 and 8 devices)
@pytest.mark.skipif(jax.device_count() < 8, reason="needs 8 (fake CPU) devices")
def test_grouped_batchnorm_ignores_the_device_count_and_needs_no_communication():
    """bn_group 4, 4 images per device on 8 devices: the same step as on one device, and
    (issue 13) a compiled 8-device step with at most 24 all-reduces: the gradients' and
    metrics', none per BatchNorm layer (the tiny preset at 128x96 had 991 with
    synchronised BatchNorm; this micro step has 2, and 131 with synchronised BatchNorm).

    This step (random pixels and joints, G at a trained network's scale) is
    ill-conditioned at float32 rounding: nudging every parameter by 1e-7 of itself moved
    the gradients by ~4e-3 (measured on the tiny preset with SGD: G 4.6e-3, D 3.3e-3),
    with synchronised BatchNorm as with groups, and the 1- and 8-device gradients were
    3.9e-3 and 1.7e-3 apart.  So the two are compared with that noise floor, measured in
    the same run on the optimisers' moments (functions of the gradients alone) and the
    parameters; a wrong grouping would be O(1) apart.
    """
    config = train_config(**{"model.bn_group": 4, "train.batch_size": 32})
    g_tx, d_tx, g_lr, d_lr = state_lib.optimizers(config, steps_per_epoch=2)
    initial = trained_scale_start(config, g_tx, d_tx)
    rng = np.random.default_rng(1)
    nudged = initial.replace(g_params=_nudged(initial.g_params, rng),
                             d_params=_nudged(initial.d_params, rng))
    train_step = step_lib.make_train_step(config, g_tx, d_tx, g_lr, d_lr)
    batch = random_batch(0, batch=32)
    results = {}
    for n in (8, 1):
        mesh = parallel.make_mesh(jax.devices()[:n])
        rep = parallel.replicated(mesh)
        on_mesh = parallel.global_batch(batch, mesh)
        compiled = jax.jit(train_step, in_shardings=(rep, parallel.data_sharded(mesh)),
                           out_shardings=(rep, rep)).lower(initial, on_mesh).compile()
        if n == 8:
            count = _count_all_reduces(compiled.as_text())
            assert count <= 24, count
        results[n] = jax.device_get(compiled(parallel.replicate(initial, mesh), on_mesh))
    results["nudged"] = jax.device_get(compiled(parallel.replicate(nudged, mesh), on_mesh))
    (one, m1), (eight, m8), (other, m_nudged) = results[1], results[8], results["nudged"]
    for name in m1:  # the metrics, too, within the larger of their tolerance and the floor
        floor = 3 * abs(float(m_nudged[name]) - float(m1[name]))
        assert abs(float(m8[name]) - float(m1[name])) <= max(
            floor, metric_rtol(name) * abs(float(m1[name]))), (name, m8[name], m1[name], floor)
    for field in ("g_stats", "d_stats"):
        err = relative_error(_leaves(getattr(eight, field)), _leaves(getattr(one, field)))
        assert err < 1e-5, (field, err)

    for field in ("g_opt", "d_opt", "g_params", "d_params"):
        reference = _leaves(getattr(one, field))
        devices = relative_error(_leaves(getattr(eight, field)), reference)
        floor = relative_error(_leaves(getattr(other, field)), reference)
        assert devices < 3 * floor + 1e-6, (field, devices, floor)


def test_bn_group_must_divide_the_per_device_batch():
    mesh = parallel.make_mesh(jax.devices()[:2])
    assert parallel.check_batch_size(16, mesh, 4) == 16
    with pytest.raises(ValueError, match="bn_group = 3 does not divide the per-device batch 8"):
        parallel.check_batch_size(16, mesh, 3)


REFERENCE = "hrgan_step_micro_f32.npz"
STATE_FIELDS = ("g_params", "g_stats", "g_opt", "d_params", "d_stats", "d_opt")


def _step_fingerprint(state, metrics) -> dict:
    """Two default float32 GAN steps (micro preset, 64x64, batch 8) as a few KB: every
    logged metric of both steps, k_t, and per state field the sha256 of its leaves'
    bytes plus its first 8 values (to see where a changed step departs)."""
    import hashlib
    out = {f"metrics{i}/{name}": np.asarray(v, np.float32)
           for i, m in enumerate(metrics) for name, v in m.items()}
    out["k"] = np.asarray(state.k, np.float32)
    for field in STATE_FIELDS:
        leaves = [np.asarray(x) for x in jax.tree.leaves(getattr(state, field))]
        digest = hashlib.sha256(b"".join(np.ascontiguousarray(x).tobytes() for x in leaves))
        out[f"sha256/{field}"] = np.array(digest.hexdigest())
        out[f"head/{field}"] = np.concatenate([x.ravel() for x in leaves])[:8]
    return out


def test_default_step_is_bitwise_the_saved_reference():
    """d_output='reconstruct' (HRGAN) is the step as it was before the conventional
    discriminators existed (issue 24), bit for bit in float32.  Regenerate the fixture
    (only for an intended change of the step) with `python tests/test_step.py`."""
    config, _, _ = _setup(True)
    assert config.adversarial.d_output == "reconstruct" and config.model.dtype == "float32"
    got = _step_fingerprint(*_run(1, steps=2))
    from conftest import FIXTURES
    with np.load(FIXTURES / REFERENCE) as saved:
        saved = dict(saved)
    assert sorted(got) == sorted(saved)
    # XLA:CPU's code depends on the CPU's instruction set.  Measured on an AVX-512 CPU
    # against the reference (made without AVX-512): the first step's metrics within
    # 2.5e-7 relative (an ulp or two), and after G's first RMSprop update (~lr sign(g),
    # where a gradient is at rounding level) its weights part by up to 3e-3.  So the
    # first step holds to float32 rounding everywhere, and the whole fingerprint (both
    # steps, every state leaf's digest) bit for bit where the first step is bit for bit
    # the reference's (the same kind of CPU).
    first = [n for n in saved if n.startswith("metrics0/")] + ["k"]
    for name in first:
        np.testing.assert_allclose(got[name], saved[name], rtol=1e-6, atol=0, err_msg=name)
    if all(np.array_equal(got[n], saved[n]) for n in first):
        for name, value in saved.items():
            np.testing.assert_array_equal(got[name], value, err_msg=name)


if __name__ == "__main__":
    import pathlib
    import sys
    sys.path.insert(0, str(pathlib.Path(__file__).parent))
    from conftest import FIXTURES
    np.savez_compressed(FIXTURES / REFERENCE, **_step_fingerprint(*_run(1, steps=2)))
    print("wrote", FIXTURES / REFERENCE)
