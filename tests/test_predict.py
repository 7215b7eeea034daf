"""launch.py --mode=predict, the demo's 'small' network and export -> import."""
import json
import os
import pathlib
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from PIL import Image

from conftest import small_config
from hrgan_jax import cli, inference, loader, models, predict, weights
from hrgan_jax.images import normalize_images

ROOT = pathlib.Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """(config, export directory, the variables exported): random weights at a trained
    network's scale (the N(0, 0.001) init gives near-zero heatmaps)."""
    config = small_config()
    tmp = tmp_path_factory.mktemp("export")
    src = tmp / "g.safetensors"
    weights.save_file(weights.trained_scale_state_dict(config.model, "generator", seed=3), src)
    out = tmp / "export"
    cli.export(config, "generator", None, str(src), str(out))
    variables = weights.from_torch(weights.load_file(src), config.model, "generator")
    return config, out, variables


@pytest.fixture(scope="module")
def images_dir(tmp_path_factory):
    """Three rendered scenes of different sizes, two with COCO-style numeric names."""
    from data_pipeline import synthetic
    d = tmp_path_factory.mktemp("images")
    for name, size in (("000000000007.jpg", (160, 120)), ("000000000012.png", (120, 160)),
                       ("street.jpg", (96, 96))):
        image, _ = synthetic.render_scene(np.random.default_rng(len(name) + size[0]), size, (1, 1))
        Image.fromarray(image).save(d / name)
    return d


def test_small_preset_shapes_and_layer1():
    cfg = models.hrnet_config("small", num_joints=17)
    g, d = models.generator(cfg), models.discriminator(cfg)
    x = jax.random.normal(jax.random.PRNGKey(0), (2, 128, 96, 3))
    gv = models.init(g, jax.random.PRNGKey(1), x)
    h = jax.eval_shape(g.apply, gv, x)  # shapes only: nothing to compile
    assert h.shape == (2, 32, 24, 17) and h.dtype == np.float32
    d_in = jax.eval_shape(models.discriminator_input, x, h)
    dv = models.init(d, jax.random.PRNGKey(2), jnp.zeros(d_in.shape, d_in.dtype))
    assert jax.eval_shape(d.apply, dv, d_in).shape == (2, 32, 24, 17)
    g_keys, d_keys = weights.layout(cfg, "generator"), weights.layout(cfg, "discriminator")
    # one Bottleneck of 16 planes (-> 64 channels) after the official 64-channel stem
    assert {k.split(".")[1] for k in g_keys if k.startswith("layer1.")} == {"0"}
    assert g_keys["layer1.0.conv1.weight"].shape == (16, 64, 1, 1)
    assert g_keys["layer1.0.conv3.weight"].shape == (64, 16, 1, 1)
    assert "layer1.0.downsample.0.weight" not in g_keys  # 64 in, 64 out: none (official rule)
    assert d_keys["layer1.0.downsample.0.weight"].shape == (64, 20, 1, 1)
    assert g_keys["conv2.weight"].shape == (64, 64, 3, 3)
    assert d_keys["layer1.0.conv1.weight"].shape == (16, 20, 1, 1)
    assert g_keys["transition1.0.0.weight"].shape == (16, 64, 3, 3)


@pytest.mark.parametrize("net", ["generator", "discriminator"])
def test_small_preset_official_layout_round_trip(net):
    cfg = models.hrnet_config("small", num_joints=17)
    sd = weights.trained_scale_state_dict(cfg, net, seed=1)
    variables = weights.from_torch(sd, cfg, net)
    back = weights.to_torch(variables, cfg, net)
    assert list(back) == list(weights.layout(cfg, net)) == list(sd)
    assert all(np.array_equal(back[k], v) for k, v in sd.items())


def test_stage1_config_official_default_and_yaml():
    w32 = models.hrnet_config("w32")
    assert models.validate(w32).stage1 == models.NetSpec.__dataclass_fields__["stage1"].default
    extra = {s.upper(): {k.upper(): v for k, v in w32[s].items()}
             for s in ("stage2", "stage3", "stage4")}
    no_stage1 = models.config_from_official(extra, 17)
    assert models.validate(no_stage1) == models.validate(w32)
    extra["STAGE1"] = dict(NUM_MODULES=1, NUM_BRANCHES=1, BLOCK="BASIC", NUM_BLOCKS=[2],
                           NUM_CHANNELS=[32], FUSE_METHOD="SUM")
    keys = weights.layout(models.config_from_official(extra, 17))
    assert "layer1.1.conv2.weight" in keys and "layer1.2.conv1.weight" not in keys
    assert keys["layer1.0.conv1.weight"].shape == (32, 64, 3, 3)
    assert "transition1.0.0.weight" not in keys  # layer1's 32 channels are branch 0's
    assert keys["transition1.1.0.0.weight"].shape == (64, 32, 3, 3)
    extra["STAGE1"]["NUM_BRANCHES"], extra["STAGE1"]["NUM_CHANNELS"] = 2, [32, 64]
    extra["STAGE1"]["NUM_BLOCKS"] = [2, 2]
    with pytest.raises(ValueError, match="stage1"):
        models.config_from_official(extra, 17)


def test_export_then_import_gives_identical_heatmaps(exported):
    config, out, variables = exported
    from hrgan_jax import onnx_export
    onnx_files = [] if onnx_export.available() else ["generator.onnx", "generator_heatmaps.onnx"]
    assert sorted(p.name for p in out.iterdir()) == sorted(
        ["config.json", "generator.msgpack", "generator.safetensors", "generator_savedmodel"]
        + onnx_files)
    assert json.loads((out / "config.json").read_text())["model"]["name"] == "small"
    # Every exported file gets the mode open() gives (safetensors' own writer made 0600).
    umask = os.umask(0)
    os.umask(umask)
    modes = {p.name: oct(p.stat().st_mode & 0o777) for p in out.iterdir() if p.is_file()}
    assert set(modes.values()) == {oct(0o666 & ~umask)}, modes
    g = models.generator(config.model)
    x = jax.random.normal(jax.random.PRNGKey(5), (2, 64, 64, 3))
    want = np.asarray(g.apply(variables, x))
    assert np.abs(want).max() > 1e-2  # not a degenerate all-zero comparison
    for name in ("generator.msgpack", "generator.safetensors"):
        loaded = loader.load_generator(config, str(out / name))
        assert np.array_equal(np.asarray(g.apply(loaded, x)), want), name


_RUN_SAVED_MODEL = """
import sys, numpy as np, tensorflow as tf
model = tf.saved_model.load(sys.argv[1])
out = model.signatures["serving_default"](images=tf.constant(np.load(sys.argv[2])))
np.savez(sys.argv[3], **{k: v.numpy() for k, v in out.items()})
assert not any(m.split(".")[0] in ("flax", "hrgan_jax") for m in sys.modules)
"""


@pytest.mark.slow  # compiles a train step or starts a fresh interpreter
def test_saved_model_runs_without_the_package_and_matches(exported, tmp_path):
    config, out, variables = exported
    images = np.random.default_rng(0).integers(0, 256, (3, 64, 64, 3), dtype=np.uint8)
    np.save(tmp_path / "images.npy", images)
    script = tmp_path / "run.py"
    script.write_text(_RUN_SAVED_MODEL)
    # a fresh interpreter outside the repository: the SavedModel needs TensorFlow only
    r = subprocess.run([sys.executable, str(script), str(out / "generator_savedmodel"),
                        str(tmp_path / "images.npy"), str(tmp_path / "out.npz")],
                       cwd=tmp_path, capture_output=True, text=True, env={"PATH": "/usr/bin:/bin"})
    assert r.returncode == 0, r.stderr[-3000:]
    got = np.load(tmp_path / "out.npz")
    want = jax.jit(inference.crop_outputs_fn(config, variables))(images)  # BatchNorm not folded
    assert got["heatmaps"].shape == (3, 16, 16, 17) and got["keypoints"].shape == (3, 17, 2)
    scale = np.abs(want["heatmaps"]).max()
    assert scale > 1e-2
    np.testing.assert_allclose(got["heatmaps"], want["heatmaps"], rtol=0, atol=1e-5 * scale)
    np.testing.assert_allclose(got["scores"], want["scores"], rtol=0, atol=1e-5 * scale)
    # peaks are discrete: equal wherever the top two heatmap values are not a rounding tie
    agree = np.isclose(got["keypoints"], want["keypoints"]).all(-1).mean()
    assert agree > 0.95, agree
    assert got["keypoints"].max() <= 64 and got["keypoints"].min() >= 0


_RUN_ONNX = """
import sys, numpy as np, onnxruntime as ort
images = np.load(sys.argv[2])
out = {}
for name in ("generator.onnx", "generator_heatmaps.onnx"):
    session = ort.InferenceSession(sys.argv[1] + "/" + name, providers=["CPUExecutionProvider"])
    for o, v in zip(session.get_outputs(), session.run(None, {"images": images})):
        out[name.split(".")[0] + "/" + o.name] = v
np.savez(sys.argv[3], **out)
assert not any(m.split(".")[0] in ("jax", "flax", "hrgan_jax", "tensorflow") for m in sys.modules)
"""


def test_onnx_runs_without_jax_or_the_package_and_matches(exported, tmp_path):
    from hrgan_jax import onnx_export
    if onnx_export.available():
        pytest.skip(onnx_export.available())
    pytest.importorskip("onnxruntime")
    config, out, variables = exported
    images = np.random.default_rng(1).integers(0, 256, (5, 64, 64, 3), dtype=np.uint8)
    np.save(tmp_path / "images.npy", images)
    script = tmp_path / "run.py"
    script.write_text(_RUN_ONNX)
    # a fresh interpreter outside the repository: ONNX Runtime and numpy only
    r = subprocess.run([sys.executable, str(script), str(out), str(tmp_path / "images.npy"),
                        str(tmp_path / "out.npz")],
                       cwd=tmp_path, capture_output=True, text=True, env={"PATH": "/usr/bin:/bin"})
    assert r.returncode == 0, r.stderr[-3000:]
    got = np.load(tmp_path / "out.npz")
    # the reference: JAX, BatchNorm not folded, a batch size the export never saw
    want = jax.jit(inference.crop_outputs_fn(config, variables))(images)
    plain = jax.jit(inference.apply_fn(config))(variables, normalize_images(images))
    assert got["generator/heatmaps"].shape == (5, 16, 16, 17)
    assert got["generator/keypoints"].shape == (5, 17, 2) and got["generator/scores"].shape == (5, 17)
    for key, ref in (("generator/heatmaps", want["heatmaps"]), ("generator/scores", want["scores"]),
                     ("generator_heatmaps/heatmaps", plain)):
        ref = np.asarray(ref)
        scale = np.abs(ref).max()
        assert scale > 1e-1
        rel = np.abs(got[key] - ref).max() / scale
        assert rel < 1e-4, (key, rel)
    # keypoints: equal but where the top two heatmap values tie within rounding
    same = (got["generator/keypoints"] == np.asarray(want["keypoints"])).all(-1)
    assert same.mean() > 0.95, same.mean()
    assert not np.allclose(got["generator_heatmaps/heatmaps"], got["generator/heatmaps"])


def _check_coco_results(results, image_ids, num_joints=17):
    from pycocotools.coco import COCO
    gt = COCO()
    gt.dataset = {"images": [{"id": i} for i in image_ids], "annotations": [],
                  "categories": [{"id": 1, "name": "person"}]}
    gt.createIndex()
    res = gt.loadRes(results)  # pycocotools accepts it as keypoint results
    assert len(res.getAnnIds()) == len(results)
    for r in results:
        assert r["category_id"] == 1 and isinstance(r["image_id"], int)
        assert len(r["keypoints"]) == 3 * num_joints and np.isfinite(r["keypoints"]).all()
        assert isinstance(r["score"], float)


def test_predict_whole_images_writes_results_and_pictures(exported, images_dir, tmp_path):
    config, out, _ = exported
    out_dir = tmp_path / "pred"
    path = predict.predict(config, str(images_dir), weights_path=str(out / "generator.msgpack"),
                           out=str(out_dir))
    results = json.loads(pathlib.Path(path).read_text())
    assert [r["file_name"] for r in results] == ["000000000007.jpg", "000000000012.png",
                                                 "street.jpg"]
    assert [r["image_id"] for r in results] == [7, 12, 3]
    _check_coco_results(results, [7, 12, 3])
    # the whole image is the box: centre/scale by the official rule (aspect 1, x1.25)
    assert results[0]["bbox"] == [0.0, 0.0, 159.0, 119.0]
    np.testing.assert_allclose(results[0]["center"], [79.5, 59.5])
    np.testing.assert_allclose(results[0]["scale"], [159 / 200 * 1.25] * 2, rtol=1e-6)
    for name, size in (("000000000007", (160, 120)), ("000000000012", (120, 160)),
                       ("street", (96, 96))):
        drawn = Image.open(out_dir / f"{name}.pose.png")
        assert drawn.size == size
    # a second run over the same directory with output beside the inputs ignores *.pose.*
    predict.predict(config, str(out_dir / "000000000007.pose.png"),
                    weights_path=str(out / "generator.safetensors"))
    assert (out_dir / "000000000007.pose.pose.png").exists()
    with pytest.raises(predict.PredictError, match="no images"):  # outputs are never inputs
        predict.list_images(str(out_dir))


def test_predict_with_boxes(exported, images_dir, tmp_path, capsys):
    config, out, _ = exported
    boxes = tmp_path / "boxes.json"
    boxes.write_text(json.dumps([
        {"image_id": 7, "category_id": 1, "bbox": [10, 5, 60, 100], "score": 0.9},
        {"file_name": "street.jpg", "bbox": [20, 10, 40, 80], "score": 0.8},
        {"file_name": "street.jpg", "bbox": [0, 0, 30, 30], "score": 0.1},  # below threshold
        {"image_id": 12, "category_id": 2, "bbox": [0, 0, 50, 50], "score": 0.9},  # not a person
    ]))
    # predict's own threshold (0.5), not the evaluation's data.image_threshold (0.0)
    assert (config.predict.box_threshold, config.data.image_threshold) == (0.5, 0.0)
    out_dir = tmp_path / "pred"
    path = predict.predict(config, str(images_dir), str(boxes),
                           weights_path=str(out / "generator.msgpack"), out=str(out_dir))
    assert ("2 of the 3 box(es) in " + str(boxes) + " (those scoring >= "
            "config.predict.box_threshold = 0.5)") in capsys.readouterr().out
    results = json.loads(pathlib.Path(path).read_text())
    assert [(r["file_name"], r["bbox"]) for r in results] == [
        ("000000000007.jpg", [10.0, 5.0, 60.0, 100.0]), ("street.jpg", [20.0, 10.0, 40.0, 80.0])]
    # each person's box is drawn: its left edge (x = 10, y 5..105) in the box colour
    from hrgan_jax.draw import BOX_COLOR
    picture = np.asarray(Image.open(out_dir / "000000000007.pose.png"))
    edge = picture[20:100, 10]
    assert (edge == BOX_COLOR).all(axis=-1).mean() > 0.8
    _check_coco_results(results, [7, 12, 3])
    for r in results:  # the keypoints lie around the box they were cropped from
        k = np.asarray(r["keypoints"]).reshape(-1, 3)
        x, y, w, h = r["bbox"]
        assert (k[:, 0] > x - w).all() and (k[:, 0] < x + 2 * w).all()
        assert (k[:, 1] > y - h).all() and (k[:, 1] < y + 2 * h).all()
    assert (out_dir / "000000000012.pose.png").exists()  # no boxes: drawn without people


def test_predict_bad_inputs_name_the_file(exported, images_dir, tmp_path):
    config, out, _ = exported
    msgpack = str(out / "generator.msgpack")
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "good.jpg").write_bytes((images_dir / "street.jpg").read_bytes())
    (bad / "broken.jpg").write_bytes((images_dir / "street.jpg").read_bytes()[:200])
    with pytest.raises(predict.PredictError, match="broken.jpg"):
        predict.predict(config, str(bad), weights_path=msgpack)
    (bad / "broken.jpg").write_bytes(b"not an image at all")
    with pytest.raises(predict.PredictError, match="broken.jpg"):
        predict.predict(config, str(bad), weights_path=msgpack)
    with pytest.raises(predict.PredictError, match="missing.jpg"):
        predict.predict(config, str(tmp_path / "missing.jpg"), weights_path=msgpack)
    boxes = tmp_path / "boxes.json"
    boxes.write_text(json.dumps([{"image_id": 99, "bbox": [0, 0, 10, 10], "score": 1.0}]))
    with pytest.raises(predict.PredictError, match=r"boxes.json: \[0\]: image_id 99 is not"):
        predict.predict(config, str(images_dir), str(boxes), weights_path=msgpack)
    boxes.write_text(json.dumps([{"file_name": "other.jpg", "bbox": [0, 0, 10, 10]}]))
    with pytest.raises(predict.PredictError, match="'other.jpg' is not among the input"):
        predict.predict(config, str(images_dir), str(boxes), weights_path=msgpack)
    boxes.write_text(json.dumps([{"image_id": 7, "bbox": [500, 500, 10, 10]}]))
    with pytest.raises(predict.PredictError, match=r"\[0\]: 'bbox' \[500.0, 500.0, 10.0, 10.0\] lies outside"):
        predict.predict(config, str(images_dir), str(boxes), weights_path=msgpack)
    boxes.write_text("{broken")
    with pytest.raises(predict.PredictError, match="boxes.json: not JSON"):
        predict.predict(config, str(images_dir), str(boxes), weights_path=msgpack)


def test_predict_reads_images_as_the_pipelines_do(exported, tmp_path):
    """The pipelines' decoder (data_pipeline.pipeline.read_image): a 16-bit greyscale PNG
    scaled to 8 bits as cv2.imread reads it (PIL clipped it to white), a 1x1 image
    predicted (its whole-image box was of no size: a singular affine), and an image too
    large refused from its header, naming the file."""
    import cv2
    config, out, _ = exported
    photos = tmp_path / "photos"
    photos.mkdir()
    grey = (np.arange(48 * 64).reshape(48, 64) * 21).astype(np.uint16)
    Image.fromarray(grey).save(photos / "deep.png")
    Image.fromarray(np.full((1, 1, 3), 128, np.uint8)).save(photos / "dot.png")
    read = predict.read_image(str(photos / "deep.png"))
    np.testing.assert_array_equal(read, cv2.imread(str(photos / "deep.png"))[:, :, ::-1])
    assert read.max() < 255 and read[..., 0].std() > 50  # not white
    path = predict.predict(config, str(photos), weights_path=str(out / "generator.msgpack"))
    results = json.loads(pathlib.Path(path).read_text())
    assert [r["file_name"] for r in results] == ["deep.png", "dot.png"]
    assert results[1]["bbox"] == [0.0, 0.0, 1.0, 1.0]
    # A PNG whose header says 30000 x 30000: refused before any pixel is decoded.
    import struct
    import zlib
    ihdr = struct.pack(">IIBBBBB", 30000, 30000, 8, 0, 0, 0, 0)
    chunk = struct.pack(">I", 13) + b"IHDR" + ihdr + struct.pack(">I", zlib.crc32(b"IHDR" + ihdr))
    (photos / "huge.png").write_bytes(b"\x89PNG\r\n\x1a\n" + chunk + b"\0" * 64)
    with pytest.raises(predict.PredictError) as e:
        predict.read_image(str(photos / "huge.png"))
    assert str(e.value) == (f"{photos / 'huge.png'}: image too large to decode safely: 30000 x "
                            f"30000 px (at most 16384 px a side and 100,000,000 pixels in all, "
                            f"a decompression-bomb guard); make it smaller")


def test_launch_predict_error_is_one_clear_line(tmp_path):
    (tmp_path / "x.jpg").write_bytes(b"\xff\xd8garbage")
    r = subprocess.run([sys.executable, "launch.py", "--mode=predict",
                        "--config=configs/default.py:small", f"--input={tmp_path / 'x.jpg'}",
                        "--weights=unused.msgpack"], cwd=ROOT, capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 1
    assert r.stderr.strip().splitlines()[-1].startswith(f"error: {tmp_path / 'x.jpg'}: cannot decode")


def test_export_without_tensorflow_or_jax2onnx_skips_those_files(tmp_path, monkeypatch, capsys):
    config = small_config()
    src = tmp_path / "g.safetensors"
    weights.save_file(weights.trained_scale_state_dict(config.model, "generator", seed=3), src)
    monkeypatch.setitem(sys.modules, "tensorflow", None)  # import tensorflow -> ImportError
    monkeypatch.setitem(sys.modules, "jax2onnx", None)  # and no ONNX converter
    cli.export(config, "generator", None, str(src), str(tmp_path / "export"))
    assert sorted(p.name for p in (tmp_path / "export").iterdir()) == [
        "config.json", "generator.msgpack", "generator.safetensors"]
    printed = capsys.readouterr().out
    assert "TensorFlow is not installed" in printed
    assert "skipped generator.onnx and generator_heatmaps.onnx: jax2onnx is not installed" in printed


@pytest.mark.slow
def test_evaluate_an_exported_model_as_deployed(exported, train_coco_root):
    """--mode=evaluate --weights=generator.onnx / generator_savedmodel: the exported file
    itself runs (its own runtime) and scores as the weights it came from."""
    from hrgan_jax import onnx_export
    config, out, _ = exported
    config = small_config()
    config.data.root = train_coco_root
    config.eval.batch_size = 8  # the tests' 8 fake CPU devices
    results = {name: cli.evaluate(config, None, str(out / name))
               for name in ("generator.msgpack", "generator_savedmodel", "generator.onnx")
               if (out / name).exists()}
    if onnx_export.available() is None:
        assert "generator.onnx" in results
    want = results.pop("generator.msgpack")
    assert results and set(want) == {k for r in results.values() for k in r}
    for name, got in results.items():
        for k, v in want.items():
            assert abs(got[k] - v) < 0.02, (name, k, got[k], v)
    # random weights score near 0 AP, so compare what was scored: the predictors themselves
    crops = np.random.default_rng(4).integers(0, 256, (8, 64, 64, 3), dtype=np.uint8)
    jax_coords, jax_scores = loader.load_predictor(config, None, str(out / "generator.msgpack"))[0](crops)
    for name in results:
        coords, scores = loader.load_predictor(config, None, str(out / name))[0](crops)
        assert coords.shape == jax_coords.shape and scores.shape == jax_scores.shape
        np.testing.assert_allclose(scores, jax_scores, rtol=0, atol=1e-5 * np.abs(jax_scores).max())
        assert (coords == jax_coords).all(-1).mean() > 0.95, name


def test_predict_with_an_exported_model(exported, images_dir, tmp_path):
    from hrgan_jax import onnx_export
    if onnx_export.available():
        pytest.skip(onnx_export.available())
    config, out, _ = exported
    runs = {}
    for name in ("generator.msgpack", "generator.onnx"):
        path = predict.predict(config, str(images_dir), weights_path=str(out / name),
                               out=str(tmp_path / name))
        runs[name] = json.loads(pathlib.Path(path).read_text())
    want, got = runs["generator.msgpack"], runs["generator.onnx"]
    assert [r["file_name"] for r in got] == [r["file_name"] for r in want]
    k_want = np.array([r["keypoints"] for r in want]).reshape(len(want), -1, 3)
    k_got = np.array([r["keypoints"] for r in got]).reshape(len(got), -1, 3)
    np.testing.assert_allclose(k_got[..., 2], k_want[..., 2], atol=1e-3)  # scores (3 decimals)
    assert (np.abs(k_got[..., :2] - k_want[..., :2]) < 1e-2).all(-1).mean() > 0.95


def test_weights_of_another_network_name_what_the_export_holds(exported, tmp_path):
    """The export's own config.json beside the weights names the network they hold, as the
    --config flags that build it; a cut-short or empty msgpack is named as unreadable."""
    from hrgan_jax.configs import default
    config, out, _ = exported
    for name in ("generator.msgpack", "generator.safetensors"):
        with pytest.raises(weights.WeightsMismatchError) as e:
            loader.load_generator(default.get_config("micro"), str(out / name))
        assert str(e.value).splitlines()[0] == (
            f"{out / name} does not fit the configured generator (model 'micro'): "
            f"{out / 'config.json'} says it holds model 'small': rerun with "
            f"--config=default:small --config.data.image_size='(64, 64)' "
            f"--config.data.heatmap_size='(16, 16)'")
    lone = tmp_path / "g.msgpack"  # no config.json beside it
    lone.write_bytes((out / "generator.msgpack").read_bytes())
    with pytest.raises(weights.WeightsMismatchError, match="g.msgpack does not fit the "
                       "configured generator \\(model 'micro'\\): give the --config it was "
                       "trained with\n"):
        loader.load_generator(default.get_config("micro"), str(lone))
    lone.write_bytes((out / "generator.msgpack").read_bytes()[:1000])
    with pytest.raises(weights.WeightsFileError, match=f"cannot read weights from {lone}: not "
                       f"Flax msgpack variables"):
        loader.load_generator(config, str(lone))
    lone.write_bytes(b"")
    with pytest.raises(weights.WeightsFileError, match="g.msgpack: the file is empty"):
        loader.load_generator(config, str(lone))
