"""Official state_dict <-> Flax variables: exact round trips, strict errors, files."""
import json
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import FIXTURES, load_reference, requires_torch
from hrgan_jax import models, weights

TINY = "hrnet_tiny_k1_17j_128x96"


def tiny():
    meta, ref, sd = load_reference(TINY)
    return models.config_from_official(meta["extra"], meta["num_joints"]), ref, sd


@pytest.mark.parametrize("name,net", [(TINY, "generator"), ("hrnet_tiny_k3_17j_128x96", "generator"),
                                      ("hrgan_disc_tiny_17j_32x24", "discriminator")])
def test_round_trip_is_exact_and_ordered(name, net):
    meta, _, sd = load_reference(name)
    cfg = models.config_from_official(meta["extra"], meta["num_joints"])
    back = weights.to_torch(weights.from_torch(sd, cfg, net), cfg, net)
    assert [(k, list(v.shape)) for k, v in back.items()] == [tuple(x) for x in meta["keys_shapes"]]
    for key, value in sd.items():
        assert back[key].dtype == np.float32
        np.testing.assert_array_equal(back[key], value, err_msg=key)


@pytest.mark.parametrize("fixture,preset,joints", [("hrnet_w32_17j_keys", "w32", 17),
                                                   ("hrnet_w48_17j_keys", "w48", 17),
                                                   ("hrnet_w32_16j_keys", "w32", 16)])
def test_full_network_key_layout_both_directions(fixture, preset, joints):
    meta = json.loads((FIXTURES / f"{fixture}.json").read_text())
    cfg = models.hrnet_config(preset, num_joints=joints)
    # official keys and shapes -> Flax variables -> official keys and shapes
    sd = {k: np.zeros(s, np.float32) for k, s in meta["keys_shapes"]}
    variables = weights.from_torch(sd, cfg)
    out = weights.to_torch(variables, cfg)
    assert [(k, list(v.shape)) for k, v in out.items()] == [tuple(x) for x in meta["keys_shapes"]]
    # and the Flax network's own variables have exactly this layout
    shapes = jax.eval_shape(models.generator(cfg).init, jax.random.PRNGKey(0),
                            jnp.zeros((1, 256, 192, 3)))
    assert jax.tree_util.tree_structure(shapes) == jax.tree_util.tree_structure(variables)
    ok = jax.tree_util.tree_map(lambda a, b: a.shape == b.shape, shapes, variables)
    assert all(jax.tree_util.tree_leaves(ok))
    learnable = sum(v.size for k, v in out.items() if "running_" not in k)
    assert learnable == meta["learnable_params"]


def test_module_prefix_and_num_batches_tracked():
    cfg, _, sd = tiny()
    wrapped = {f"module.{k}": v for k, v in sd.items()}
    wrapped["module.bn1.num_batches_tracked"] = np.array(7, np.int64)
    a = weights.from_torch(wrapped, cfg)
    b = weights.from_torch(sd, cfg)
    jax.tree_util.tree_map(np.testing.assert_array_equal, a, b)


def test_mismatches_are_listed_with_shapes():
    cfg, _, sd = tiny()
    bad = dict(sd)
    del bad["stage3.0.fuse_layers.2.0.0.0.weight"]
    bad["stage5.0.conv.weight"] = np.zeros((3, 3), np.float32)
    bad["final_layer.weight"] = np.zeros((16, 8, 1, 1), np.float32)
    with pytest.raises(weights.WeightsMismatchError) as err:
        weights.from_torch(bad, cfg)
    msg = str(err.value)
    assert "missing 1 key(s)" in msg and "stage3.0.fuse_layers.2.0.0.0.weight (8, 8, 3, 3)" in msg
    assert "unexpected 1 key(s)" in msg and "stage5.0.conv.weight (3, 3)" in msg
    assert "final_layer.weight: (16, 8, 1, 1) vs (17, 8, 1, 1)" in msg


def test_generator_weights_do_not_fit_the_discriminator():
    cfg, _, sd = tiny()
    with pytest.raises(weights.WeightsMismatchError, match="discriminator"):
        weights.from_torch(sd, cfg, net="discriminator")
    with pytest.raises(ValueError, match="net must be one of"):
        weights.from_torch(sd, cfg, net="critic")


def test_non_float_values_are_rejected():
    cfg, _, sd = tiny()
    bad = dict(sd, **{"conv1.weight": sd["conv1.weight"].astype(np.int32)})
    with pytest.raises(weights.WeightsMismatchError, match="conv1.weight: expected floating"):
        weights.from_torch(bad, cfg)


def test_to_torch_reports_missing_variables():
    cfg, _, sd = tiny()
    variables = weights.from_torch(sd, cfg)
    del variables["batch_stats"]["bn1"]
    with pytest.raises(weights.WeightsMismatchError, match="bn1.running_mean"):
        weights.to_torch(variables, cfg)


def _imagenet_like(sd):
    """What an ImageNet HRNet file looks like to the pose net: no pose head, a last
    stage-4 module that keeps all its fuse layers, and a classification head."""
    out = {k: v for k, v in sd.items() if not k.startswith("final_layer")}
    out["stage4.1.fuse_layers.1.0.0.weight"] = np.ones((16, 8, 3, 3), np.float32)
    out["incre_modules.0.0.conv1.weight"] = np.ones((32, 8, 1, 1), np.float32)
    out["final_layer.0.weight"] = np.ones((2048, 1024, 1, 1), np.float32)
    out["classifier.weight"] = np.ones((1000, 2048), np.float32)
    return out


def _other_variables(cfg, sd):
    """Stands in for a fresh initialisation: same layout, different values."""
    return weights.from_torch({k: v + 1.0 for k, v in sd.items()}, cfg)


def test_load_pretrained_official_rule():
    cfg, _, sd = tiny()
    init = _other_variables(cfg, sd)
    loaded, report = weights.load_pretrained(init, _imagenet_like(sd), cfg,
                                             layers=models.IMAGENET_LAYERS)
    out = weights.to_torch(loaded, cfg)
    fresh = weights.to_torch(init, cfg)
    for key in out:
        expected = fresh[key] if key.startswith("final_layer") else sd[key]
        np.testing.assert_array_equal(out[key], expected, err_msg=key)
    assert report.kept_init == ("final_layer.weight", "final_layer.bias")
    assert set(report.dropped) == {"stage4.1.fuse_layers.1.0.0.weight", "incre_modules.0.0.conv1.weight",
                                   "final_layer.0.weight", "classifier.weight"}
    assert len(report.loaded) == len(out) - 2


def test_load_pretrained_layer_subset_and_errors():
    cfg, _, sd = tiny()
    init = _other_variables(cfg, sd)
    loaded, report = weights.load_pretrained(init, sd, cfg, layers=["conv1", "bn1"])
    assert set(report.loaded) == {k for k in sd if k.split(".")[0] in ("conv1", "bn1")}
    out = weights.to_torch(loaded, cfg)
    np.testing.assert_array_equal(out["conv1.weight"], sd["conv1.weight"])
    np.testing.assert_array_equal(out["conv2.weight"], weights.to_torch(init, cfg)["conv2.weight"])

    partial = {k: v for k, v in sd.items() if k != "stage2.0.branches.1.0.conv1.weight"}
    with pytest.raises(weights.WeightsMismatchError, match="stage2.0.branches.1.0.conv1.weight"):
        weights.load_pretrained(init, partial, cfg)
    wrong = dict(sd, **{"conv1.weight": np.zeros((64, 4, 3, 3), np.float32)})
    with pytest.raises(weights.WeightsMismatchError, match="conv1.weight: \\(64, 4, 3, 3\\)"):
        weights.load_pretrained(init, wrong, cfg)
    with pytest.raises(weights.WeightsMismatchError, match="no key of the checkpoint"):
        weights.load_pretrained(init, {"classifier.weight": np.zeros(3, np.float32)}, cfg,
                                layers=models.IMAGENET_LAYERS)
    # "*" first takes every key: the pose head too
    _, report = weights.load_pretrained(init, sd, cfg, layers=["*"])
    assert report.kept_init == () and report.dropped == ()


@pytest.mark.parametrize("ext", ["safetensors", "npz"])
def test_files_round_trip_without_torch(tmp_path, ext, monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)  # these formats must not need torch
    cfg, _, sd = tiny()
    path = tmp_path / f"w.{ext}"
    weights.save_file(weights.to_torch(weights.from_torch(sd, cfg), cfg), path)
    back = weights.load_file(path)
    assert sorted(back) == sorted(sd)
    for k in sd:
        np.testing.assert_array_equal(back[k], sd[k])


def test_pth_without_torch_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)
    path = tmp_path / "w.pth"
    path.write_bytes(b"not read")
    with pytest.raises(ImportError, match="w.pth needs PyTorch"):
        weights.load_file(path)


def test_bad_files_name_the_file(tmp_path):
    with pytest.raises(weights.WeightsFileError, match="nope.safetensors: weights file not found"):
        weights.load_file(tmp_path / "nope.safetensors")
    with pytest.raises(weights.WeightsFileError, match="a directory, not a weights file"):
        weights.load_file(tmp_path)
    (tmp_path / "empty.safetensors").write_bytes(b"")
    with pytest.raises(weights.WeightsFileError, match="empty.safetensors: the file is empty"):
        weights.load_file(tmp_path / "empty.safetensors")
    corrupt = tmp_path / "corrupt.safetensors"
    corrupt.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{garbage")
    with pytest.raises(ValueError, match="corrupt.safetensors"):
        weights.load_file(corrupt)
    odd = tmp_path / "w.bin"
    odd.write_bytes(b"\0")
    with pytest.raises(ValueError, match="unknown extension"):
        weights.load_file(odd)


@pytest.mark.parametrize("ext", ["safetensors", "npz"])
def test_truncated_file_names_the_file(tmp_path, ext):
    _, _, sd = tiny()
    path = tmp_path / f"cut.{ext}"
    weights.save_file(sd, path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])  # a copy or download that stopped half-way
    with pytest.raises(ValueError, match=f"cannot read weights from .*cut.{ext}"):
        weights.load_file(path)


@requires_torch
def test_pth_official_checkpoint_formats(tmp_path):
    import torch
    cfg, _, sd = tiny()
    tensors = {f"module.{k}": torch.from_numpy(v) for k, v in sd.items()}
    tensors["module.bn1.num_batches_tracked"] = torch.tensor(5)
    torch.save(tensors, tmp_path / "final_state.pth")
    # the official trainer's checkpoint.pth: a dict around the state_dict
    torch.save({"epoch": 3, "model": "pose_hrnet", "state_dict": tensors, "perf": 0.7},
               tmp_path / "checkpoint.pth")
    for name in ("final_state.pth", "checkpoint.pth"):
        variables = weights.from_torch(weights.load_file(tmp_path / name), cfg, what=name)
        out = weights.to_torch(variables, cfg)
        for k, v in sd.items():
            np.testing.assert_array_equal(out[k], v)
    weights.save_file(out, tmp_path / "export.pth")
    again = torch.load(tmp_path / "export.pth", weights_only=True)
    assert list(again) == list(out)


@requires_torch
def test_pth_with_arbitrary_objects_is_refused(tmp_path):
    import torch

    class Payload:
        def __reduce__(self):
            return (print, ("unpickled!",))

    path = tmp_path / "evil.pth"
    torch.save({"state_dict": {}, "x": Payload()}, path)
    with pytest.raises(weights.WeightsFileError, match="evil.pth: not a plain state_dict: it "
                       "pickles other objects") as e:
        weights.load_file(path)
    assert "\n" not in str(e.value)
    torch.save([torch.zeros(2)], path)  # tensors, but no state_dict
    with pytest.raises(weights.WeightsFileError, match="evil.pth: holds a list, not a state_dict"):
        weights.load_file(path)


def test_pickle_is_never_used_for_npz(tmp_path):
    path = tmp_path / "objects.npz"
    np.savez(path, a=np.array([{"x": 1}], dtype=object))
    with pytest.raises(ValueError, match="objects.npz"):
        weights.load_file(path)


def test_long_mismatch_lists_are_capped_but_kept_whole():
    cfg, _, sd = tiny()
    with pytest.raises(weights.WeightsMismatchError) as err:
        weights.from_torch({}, cfg)
    assert len(err.value.missing) == len(sd)
    assert f"... and {len(sd) - weights.WeightsMismatchError.MAX_LISTED} more" in str(err.value)
