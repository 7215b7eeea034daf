"""BatchNorm: one-pass statistics and closed-form backward against plain autodiff;
statistics over groups (model.bn_group) and over interleaved passes (D's real and fake)."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from hrgan_jax.models import hrnet


def reference_batch_norm(x, scale, bias, size):
    """Two-pass statistics per group of ``size`` images, differentiated by autodiff."""
    xg = x.astype(jnp.promote_types(x.dtype, jnp.float32))
    xg = xg.reshape((x.shape[0] // size, size) + x.shape[1:])
    mean = jnp.mean(xg, axis=(1, 2, 3), keepdims=True)
    var = jnp.mean(jnp.square(xg - mean), axis=(1, 2, 3), keepdims=True)
    y = (xg - mean) * (scale * jax.lax.rsqrt(var + hrnet.BN_EPS)) + bias
    return y.reshape(x.shape).astype(x.dtype), mean[:, 0, 0, 0], var[:, 0, 0, 0]


def _inputs(dtype=jnp.float32, offset=0.0):
    k = jax.random.split(jax.random.PRNGKey(0), 4)
    x = (offset + jax.random.normal(k[0], (8, 6, 5, 7)) * jnp.linspace(0.5, 3, 7)).astype(dtype)
    scale = jax.random.uniform(k[1], (7,), minval=0.5, maxval=1.5)
    bias = jax.random.normal(k[2], (7,))
    w = jax.random.normal(k[3], x.shape)  # a loss that weights every output differently
    return x, scale, bias, w


def _max_err(a, b):
    return float(np.max(np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64))))


@pytest.mark.parametrize("size", [8, 2])
@pytest.mark.parametrize("offset", [0.0, 300.0])
def test_one_pass_statistics_and_custom_backward_match_autodiff(size, offset):
    """Against float64 autodiff of the two-pass formula: no less accurate than float32
    autodiff of it (today's BatchNorm), also when |mean| >> std."""
    x, scale, bias, w = _inputs(offset=offset)

    def outputs(f, *args):
        def loss(x, s, b):
            y, mean, var = f(x, s, b, size)
            return jnp.sum(w.astype(y.dtype) * y), (y, mean, var)
        grads, (y, mean, var) = jax.grad(loss, argnums=(0, 1, 2), has_aux=True)(*args)
        return (y, mean, var) + tuple(grads)

    ours = jax.jit(lambda *a: outputs(hrnet.batch_norm_train, *a))(x, scale, bias)
    f32 = jax.jit(lambda *a: outputs(reference_batch_norm, *a))(x, scale, bias)
    with jax.enable_x64(True):
        truth = jax.jit(lambda *a: outputs(reference_batch_norm, *a))(
            *(jnp.asarray(np.asarray(a), jnp.float64) for a in (x, scale, bias)))
        truth = [np.asarray(t) for t in truth]
    for name, o, r, t in zip(("y", "mean", "var", "dx", "dscale", "dbias"), ours, f32, truth):
        # float32 rounding of the largest value involved (the mean: of the inputs)
        rounding = 1e-6 * float(np.max(np.abs(x if name == "mean" else t)))
        assert _max_err(o, t) <= 2 * _max_err(r, t) + 4 * rounding, name


def test_compute_dtype_in_and_out():
    x, scale, bias, w = _inputs(jnp.bfloat16)
    y, mean, var = hrnet.batch_norm_train(x, scale, bias, 4)
    assert y.dtype == jnp.bfloat16 and mean.dtype == var.dtype == jnp.float32
    dx, ds, db = jax.grad(lambda x, s, b: jnp.sum(w * hrnet.batch_norm_train(x, s, b, 4)[0]),
                          argnums=(0, 1, 2))(x, scale, bias)
    assert dx.dtype == jnp.bfloat16 and ds.dtype == db.dtype == jnp.float32
    y_ref = reference_batch_norm(x, scale, bias, 4)[0]
    np.testing.assert_allclose(np.asarray(y, np.float32), np.asarray(y_ref, np.float32), atol=0.05)


def _apply(norm, x, stats=None):
    bn = hrnet.BatchNorm(jnp.float32, norm)
    variables = bn.init(jax.random.PRNGKey(0), x[:1], train=False)
    if stats is not None:
        variables = {"params": variables["params"], "batch_stats": stats}
    y, upd = bn.apply(variables, x, train=True, mutable=["batch_stats"])
    return y, upd["batch_stats"]


def test_groups_normalise_apart_and_running_stats_average_the_groups():
    x = _inputs(offset=1.0)[0]
    y, stats = _apply(hrnet.Norm(group=2), x)
    parts = [_apply(hrnet.GLOBAL, x[i:i + 2]) for i in range(0, 8, 2)]
    np.testing.assert_allclose(y, jnp.concatenate([p[0] for p in parts]), rtol=1e-5, atol=1e-5)
    # documented choice: running statistics = the average of what each group's own
    # (PyTorch) update would give
    for key in ("mean", "var"):
        np.testing.assert_allclose(stats[key], np.mean([p[1][key] for p in parts], axis=0),
                                   rtol=1e-5)
    with pytest.raises(ValueError, match="does not split into groups for model.bn_group = 3"):
        _apply(hrnet.Norm(group=3), x)


@pytest.mark.parametrize("group", [0, 2])
def test_interleaved_passes_equal_separate_calls_in_turn(group):
    x, _, _, w = _inputs(offset=0.5)
    real, fake = x[:4], 2.0 * x[4:] + 1.0
    norm = hrnet.Norm(group)
    y_real, stats = _apply(norm, real)
    y_fake, stats = _apply(norm, fake, stats)
    size = group or 4
    both = jnp.stack([real.reshape((-1, size) + real.shape[1:]),
                      fake.reshape((-1, size) + fake.shape[1:])], axis=1).reshape(x.shape)
    y, stats2 = _apply(hrnet.Norm(group, passes=2), both)
    y = y.reshape((-1, 2, size) + x.shape[1:])
    np.testing.assert_allclose(y[:, 0].reshape(real.shape), y_real, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(y[:, 1].reshape(fake.shape), y_fake, rtol=1e-5, atol=1e-5)
    for key in ("mean", "var"):
        np.testing.assert_allclose(stats2[key], stats[key], rtol=1e-6)


def test_bn_group_config_field():
    from hrgan_jax import models
    cfg = models.hrnet_config("tiny")
    assert cfg.bn_group == 0 and models.validate(cfg).bn_group == 0
    cfg.bn_group = -2
    with pytest.raises(ValueError, match="model config field bn_group"):
        models.generator(cfg)
    from hrgan_jax.configs import coco_w32_256x192, mpii_w32_256x256
    coco, mpii = coco_w32_256x192.get_config(), mpii_w32_256x256.get_config()
    assert (coco.model.bn_group, mpii.model.bn_group) == (16, 8)  # the public code's per-GPU batch
    assert coco.model.dtype == mpii.model.dtype == "bfloat16"
    assert coco_w32_256x192.get_config("hrnet").model.bn_group == 32
