"""The networks against the official PyTorch outputs (tests/fixtures)."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import load_reference, nchw, nhwc, relative_error, requires_torch
from hrgan_jax import models, weights

NETWORKS = [("hrnet_tiny_k1_17j_128x96", "generator"),
            ("hrnet_tiny_k3_17j_128x96", "generator"),
            ("hrgan_disc_tiny_17j_32x24", "discriminator")]


def build(meta, net, dtype="float32"):
    cfg = models.config_from_official(meta["extra"], meta["num_joints"], dtype=dtype)
    module = models.generator(cfg) if net == "generator" else models.discriminator(cfg)
    return cfg, module


def jit_apply(module):
    """module.apply compiled once: much faster on a CPU than op-by-op dispatch."""
    return jax.jit(module.apply, static_argnames=("train", "mutable"))


@pytest.mark.parametrize("name,net", NETWORKS)
def test_matches_official_eval_and_train(name, net):
    meta, ref, sd = load_reference(name)
    cfg, module = build(meta, net)
    variables = weights.from_torch(sd, cfg, net)
    x = nhwc(ref["input"])

    apply = jit_apply(module)
    out = apply(variables, x, train=False)
    assert out.shape == nhwc(ref["output_eval"]).shape and out.dtype == jnp.float32
    assert relative_error(nchw(out), ref["output_eval"]) < 1e-4

    out, updates = apply(variables, x, train=True, mutable="batch_stats")
    assert relative_error(nchw(out), ref["output_train"]) < 1e-4

    after = weights.to_torch({"params": variables["params"], **updates}, cfg, net)
    running = {k[len("running_after_train/"):]: v for k, v in ref.items()
               if k.startswith("running_after_train/")}
    assert running, "fixture has no running statistics"
    for key, expected in running.items():
        assert relative_error(after[key], expected) < 1e-4, key
    # eval mode leaves the statistics alone; train mode moves every one of them
    moved = [k for k in running if not np.allclose(sd[k], after[k])]
    assert len(moved) == len(running)


@pytest.mark.parametrize("preset,joints,count", [("w32", 17, 28_536_113), ("w48", 17, 63_595_745),
                                                 ("w32", 16, 28_536_080)])
def test_parameter_counts(preset, joints, count):
    g = models.generator(models.hrnet_config(preset, num_joints=joints))
    shapes = jax.eval_shape(g.init, jax.random.PRNGKey(0), jnp.zeros((1, 256, 192, 3)))
    assert sum(int(np.prod(p.shape)) for p in jax.tree_util.tree_leaves(shapes["params"])) == count


def _final_conv_dtypes(module, variables, x) -> tuple[str, str]:
    """(input, output) dtype of the network's last convolution, from its jaxpr."""
    jaxpr = jax.make_jaxpr(lambda v, x: module.apply(v, x))(variables, x)
    convs = [e for e in jaxpr.eqns if e.primitive.name == "conv_general_dilated"]
    return convs[-1].invars[0].aval.dtype.name, convs[-1].outvars[0].aval.dtype.name


@pytest.mark.parametrize("name,net", NETWORKS)
def test_bfloat16_policy_close_to_float32(name, net):
    """model.float32's default policy under bfloat16: the same weights and inputs give
    heatmaps (G) and reconstructions (D) within 1e-2 of float32's (eval mode; measured
    7.5e-3 and 7.3e-3), D's reconstruction error (eq. 4, what k_t integrates) within 3e-3
    (measured 1.2e-3), and G's and D's final convolutions compute in float32."""
    meta, ref, sd = load_reference(name)
    cfg32, m32 = build(meta, net)
    _, m16 = build(meta, net, dtype="bfloat16")
    variables = weights.from_torch(sd, cfg32, net)
    x = nhwc(ref["input"])
    out32 = jit_apply(m32)(variables, x)
    out16 = jit_apply(m16)(variables, x)
    assert out16.dtype == jnp.float32
    assert relative_error(out16, out32) < 1e-2
    if net == "discriminator":
        from hrgan_jax import losses
        heatmaps = x[..., 3:]  # D's input heatmaps as its target
        l32 = float(losses.reconstruction_error(out32, heatmaps))
        l16 = float(losses.reconstruction_error(out16, heatmaps))
        assert abs(l16 - l32) < 3e-3 * l32
    assert _final_conv_dtypes(m16, variables, x) == ("float32", "float32")
    cfg_none = models.config_from_official(meta["extra"], meta["num_joints"], dtype="bfloat16")
    cfg_none.float32 = ()  # no float32 parts: the head computes in bfloat16
    none = models.generator(cfg_none) if net == "generator" else models.discriminator(cfg_none)
    assert _final_conv_dtypes(none, variables, x) == ("bfloat16", "bfloat16")
    # parameters and BatchNorm statistics stay float32 under bfloat16 compute
    _, updates = jax.eval_shape(lambda v, x: m16.apply(v, x, train=True, mutable="batch_stats"),
                                variables, x)  # dtypes only: nothing to compile
    for leaf in jax.tree_util.tree_leaves(updates):
        assert leaf.dtype == jnp.float32
    shapes = jax.eval_shape(m16.init, jax.random.PRNGKey(0), x)
    assert {leaf.dtype for leaf in jax.tree_util.tree_leaves(shapes)} == {jnp.dtype("float32")}


@pytest.mark.slow  # compiles the plain Flax init too: ~18 s on a CPU
def test_quick_init_matches_plain_init():
    g = models.generator(models.hrnet_config("micro", num_joints=17))
    x = jnp.zeros((1, 64, 64, 3))
    quick = models.init(g, jax.random.PRNGKey(3), x)
    plain = jax.jit(g.init)(jax.random.PRNGKey(3), x)
    assert jax.tree_util.tree_structure(quick) == jax.tree_util.tree_structure(plain)
    for a, b in zip(jax.tree_util.tree_leaves(quick), jax.tree_util.tree_leaves(plain)):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-9)


def test_generator_shapes_and_official_init():
    cfg = models.hrnet_config("tiny", num_joints=16, final_conv_kernel=3)
    g = models.generator(cfg)
    x = jnp.zeros((3, 256, 192, 3))
    variables = models.init(g, jax.random.PRNGKey(0), x[:1])
    assert jax.eval_shape(g.apply, variables, x).shape == (3, 64, 48, 16)
    sd = weights.to_torch(variables, cfg)
    convs = [v for k, v in sd.items() if v.ndim == 4]
    stds = [float(v.std()) for v in convs if v.size > 2000]
    assert all(0.0008 < s < 0.0012 for s in stds), stds  # N(0, 0.001)
    assert not np.any(sd["final_layer.bias"])
    assert np.all(sd["bn1.weight"] == 1) and not np.any(sd["bn1.bias"])
    assert np.all(sd["bn1.running_var"] == 1) and not np.any(sd["bn1.running_mean"])


def test_he_init_option_keeps_the_head_small():
    cfg = models.hrnet_config("tiny", num_joints=17)
    cfg.kernel_init = "he"
    g = models.generator(cfg)
    sd = weights.to_torch(models.init(g, jax.random.PRNGKey(0), jnp.zeros((1, 64, 64, 3))), cfg)
    w = sd["layer1.0.conv2.weight"]  # (64, 64, 3, 3): fan_out 64 * 9
    assert abs(float(w.std()) - np.sqrt(2 / (64 * 9))) < 0.1 * np.sqrt(2 / (64 * 9))
    assert 0.0008 < float(sd["final_layer.weight"].std()) < 0.0012  # heatmaps start near 0
    cfg.kernel_init = "xavier"
    with pytest.raises(ValueError, match="kernel_init"):
        models.generator(cfg)


def test_discriminator_pytorch_default_init_and_input_check():
    cfg = models.hrnet_config("tiny", num_joints=17)
    d = models.discriminator(cfg)
    x = jnp.zeros((2, 32, 24, 20))
    variables = models.init(d, jax.random.PRNGKey(0), x[:1])
    assert jax.eval_shape(d.apply, variables, x).shape == (2, 32, 24, 17)
    sd = weights.to_torch(variables, cfg, net="discriminator")
    for key in ["layer1.0.conv1.weight", "stage4.0.branches.3.0.conv2.weight", "final_layer.weight"]:
        w = sd[key]
        bound = 1 / np.sqrt(np.prod(w.shape[1:]))
        assert np.abs(w).max() <= bound and np.abs(w).max() > 0.9 * bound, key
    bound = 1 / np.sqrt(sd["final_layer.weight"].shape[1])
    assert 0 < np.abs(sd["final_layer.bias"]).max() <= bound
    with pytest.raises(ValueError, match="3 \\+ num_joints = 20"):
        jax.eval_shape(d.apply, variables, jnp.zeros((2, 32, 24, 17)))


def _torch_bilinear(x, out_h, out_w):
    """PyTorch's F.interpolate(bilinear, align_corners=False), written out in numpy."""
    def weights_1d(n_in, n_out):
        src = np.maximum((np.arange(n_out) + 0.5) * (n_in / n_out) - 0.5, 0)
        i0 = np.floor(src).astype(int)
        i1 = np.minimum(i0 + 1, n_in - 1)
        m = np.zeros((n_out, n_in))
        m[np.arange(n_out), i0] += 1 - (src - i0)
        m[np.arange(n_out), i1] += src - i0
        return m
    mh, mw = weights_1d(x.shape[1], out_h), weights_1d(x.shape[2], out_w)
    return np.einsum("oh,bhwc,pw->bopc", mh, x.astype(np.float64), mw, optimize=True)


@pytest.mark.parametrize("size,out", [((256, 192), (64, 48)), ((256, 256), (64, 64)),
                                      ((128, 96), (32, 24)), ((384, 288), (96, 72))])
def test_resize_is_pytorch_bilinear(size, out):
    x = np.random.default_rng(0).normal(size=(2, *size, 3)).astype(np.float32)
    got = models.resize_to_heatmap(jnp.asarray(x), out)
    np.testing.assert_allclose(got, _torch_bilinear(x, *out), rtol=1e-5, atol=1e-5)


@requires_torch
def test_resize_matches_torch_interpolate():
    import torch
    x = np.random.default_rng(1).normal(size=(2, 256, 192, 3)).astype(np.float32)
    expected = torch.nn.functional.interpolate(torch.from_numpy(nchw(x)), size=(64, 48),
                                               mode="bilinear", align_corners=False).numpy()
    got = models.resize_to_heatmap(jnp.asarray(x), (64, 48))
    np.testing.assert_allclose(nchw(got), expected, rtol=1e-5, atol=1e-6)


def test_discriminator_input():
    images = jax.random.normal(jax.random.PRNGKey(0), (2, 128, 96, 3))
    heatmaps = jax.random.uniform(jax.random.PRNGKey(1), (2, 32, 24, 17))
    x = models.discriminator_input(images, heatmaps)
    assert x.shape == (2, 32, 24, 20)
    np.testing.assert_array_equal(x[..., 3:], heatmaps)
    np.testing.assert_allclose(x[..., :3], models.resize_to_heatmap(images, (32, 24)))


def test_config_presets_and_official_yaml():
    w32 = models.hrnet_config("w32", num_joints=17)
    assert w32.stage4.num_channels == (32, 64, 128, 256) and w32.stage3.num_modules == 4
    w48 = models.hrnet_config("w48")
    assert w48.stage2.num_channels == (48, 96)
    extra = {"PRETRAINED_LAYERS": ["conv1", "bn1"], "FINAL_CONV_KERNEL": 1,
             "STAGE2": {"NUM_MODULES": 1, "NUM_BRANCHES": 2, "BLOCK": "BASIC", "NUM_BLOCKS": [4, 4],
                        "NUM_CHANNELS": [32, 64], "FUSE_METHOD": "SUM"},
             "STAGE3": {"NUM_MODULES": 4, "NUM_BRANCHES": 3, "BLOCK": "BASIC",
                        "NUM_BLOCKS": [4, 4, 4], "NUM_CHANNELS": [32, 64, 128], "FUSE_METHOD": "SUM"},
             "STAGE4": {"NUM_MODULES": 3, "NUM_BRANCHES": 4, "BLOCK": "BASIC",
                        "NUM_BLOCKS": [4, 4, 4, 4], "NUM_CHANNELS": [32, 64, 128, 256],
                        "FUSE_METHOD": "SUM"}}
    cfg = models.config_from_official(extra, num_joints=17)
    assert models.validate(cfg) == models.validate(w32)
    assert cfg.pretrained_layers == ("conv1", "bn1")


def test_d_is_g_network_unless_the_run_names_another_preset():
    from hrgan_jax.configs.default import get_config
    config = get_config("tiny")
    config.model.bn_group = 4
    config.model.dtype = "bfloat16"
    assert models.network_config(config, "discriminator") is config.model  # the paper's D
    config.adversarial.d_network = "micro"
    d_cfg = models.network_config(config, "discriminator")
    assert models.network_config(config, "generator") is config.model
    micro = models.hrnet_config("micro")
    spec, g_spec = models.validate(d_cfg), models.validate(config.model)
    assert spec.stages == models.validate(micro).stages and spec.stage1 == models.validate(micro).stage1
    assert (spec.num_joints, spec.dtype, spec.bn_group) == (17, "bfloat16", 4)
    assert g_spec.stages != spec.stages and config.model.name == "tiny" and d_cfg.name == "micro"
    # Its official-layout keys round-trip, and G's file does not fit it.
    module, sample = models.network(d_cfg, "discriminator")
    variables = models.init(module, jax.random.PRNGKey(0), sample)
    sd = weights.to_torch(variables, d_cfg, "discriminator")
    back = weights.from_torch(sd, d_cfg, "discriminator")
    assert jax.tree.all(jax.tree.map(lambda a, b: np.array_equal(a, b), back, variables))
    assert sd["final_layer.weight"].shape == (17, 4, 1, 1)
    with pytest.raises(weights.WeightsMismatchError):
        weights.from_torch(sd, config.model, "discriminator")


def test_config_errors_name_the_field():
    with pytest.raises(ValueError, match="unknown HRNet preset"):
        models.hrnet_config("w40")
    cfg = models.hrnet_config("w32")
    cfg.stage3.num_channels = (32, 64)
    with pytest.raises(ValueError, match="stage3.num_channels"):
        models.generator(cfg)
    cfg = models.hrnet_config("w32")
    cfg.final_conv_kernel = 5
    with pytest.raises(ValueError, match="final_conv_kernel"):
        models.generator(cfg)
    cfg = models.hrnet_config("w32")
    cfg.dtype = "int8"
    with pytest.raises(ValueError, match="dtype"):
        models.generator(cfg)
    with pytest.raises(ValueError, match="STAGE_5"):
        models.config_from_official({"STAGE_5": {}, "STAGE2": {}, "STAGE3": {}, "STAGE4": {}}, 17)
    with pytest.raises(ValueError, match="STAGE2.*NUM_CHANNELS"):
        models.config_from_official({"STAGE2": {"NUM_MODULES": 1, "NUM_BRANCHES": 2, "BLOCK": "BASIC",
                                                "NUM_BLOCKS": [4, 4]},
                                     "STAGE3": {}, "STAGE4": {}}, 17)
