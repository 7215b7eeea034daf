"""The paper configs' own path, as a user runs it: configs/coco_w32_256x192.py and
configs/mpii_w32_256x256.py with only sizes, steps and batch overridden (so their
bfloat16 training, BatchNorm groups and every other default stay), through launch.py's
command line, run in this process as tests/test_launch.py runs it (training on one of
its devices): train (which evaluates), export, the ONNX files in ONNX Runtime in a fresh
interpreter with nothing else, and evaluate / predict with --weights=generator.onnx."""
import functools
import json
import math
import subprocess
import sys

import pytest

from test_launch import launch_here


# The micro network's sizes (models.hrnet_config("micro")): the paper configs' W32 would
# compile for minutes here.  Sizes only: dtype, bn_group, init and the rest stay.
MICRO_SIZES = ["--config.model.stage1.num_channels=(8,)", "--config.model.stage1.num_blocks=(1,)"] + [
    f"--config.model.stage{s}.{k}" for s in (2, 3, 4)
    for k in ("num_modules=1", "num_branches=2", "num_blocks=(1,1)", "num_channels=(4,8)")]

_RUN_ONNX = """
import json, sys, numpy as np, onnxruntime as ort
for name in ("generator.onnx", "generator_heatmaps.onnx"):
    session = ort.InferenceSession(sys.argv[1] + "/" + name, providers=["CPUExecutionProvider"])
    assert dict(session.get_modelmeta().custom_metadata_map) == json.loads(sys.argv[2]), name
    images = np.zeros((2, int(sys.argv[4]), int(sys.argv[3]), 3), np.uint8)
    out = session.run(None, {"images": images})
    assert out[0].dtype == np.float32 and np.isfinite(out[0]).all(), name
assert "jax" not in sys.modules
"""


@pytest.mark.slow  # trains, evaluates and exports: compiles G and D per config
@pytest.mark.parametrize("config_file,dataset,batch", [
    ("configs/coco_w32_256x192.py", "coco", 16), ("configs/mpii_w32_256x256.py", "mpii", 8)])
def test_paper_config_path_trains_in_bfloat16_and_exports_float32(config_file, dataset, batch,
                                                                     tmp_path, monkeypatch):
    import jax

    from data_pipeline.synthetic import writers
    from hrgan_jax import inference, onnx_export, trainer

    # Training on one device (this process has 8), so that the batch is one BN group.
    one_device = functools.partial(trainer.train_and_evaluate, devices=jax.devices()[:1])
    monkeypatch.setattr(trainer, "train_and_evaluate", one_device)

    def launch(*args):
        status, out, err = launch_here(monkeypatch, *args)
        assert status == 0, (args[0], err[-3000:])
        return out

    root = tmp_path / dataset
    val = "val2017" if dataset == "coco" else "valid"
    write = writers.write_coco if dataset == "coco" else writers.write_mpii
    write(str(root), {"train": batch, val: 2} if dataset == "mpii" else
          {"train2017": batch, val: 2}, seed=0, image_size=(96, 72), people=(1, 1))
    # one device: batch = the config's bn_group (16 COCO, 8 MPII), so both stay as set
    sized = [f"--config={config_file}", f"--config.data.root={root}",
             "--config.data.image_size=(48,64)", "--config.data.heatmap_size=(12,16)",
             *MICRO_SIZES, f"--config.eval.batch_size={batch}"]
    work, out = tmp_path / "run", tmp_path / "export"
    printed = launch("--mode=train", *sized, f"--config.train.batch_size={batch}",
                     "--config.train.steps=2", f"--workdir={work}")
    assert "w32 step 2" in printed  # the evaluation at the end of training
    record = json.loads((work / "metrics.jsonl").read_text().splitlines()[-1])
    assert record["step"] == 2 and math.isfinite(record["content_loss"]), record
    printed = launch("--mode=export", *sized, f"--workdir={work}", f"--out={out}")
    exported = json.loads((out / "config.json").read_text())
    assert exported["model"]["dtype"] == "bfloat16"  # trained in bfloat16 ...
    meta = {"dtype": "float32", "trained_dtype": "bfloat16", "network": "w32",
            **inference.EXPORT_LAYOUT}  # and the NHWC layouts
    assert exported["export"] == dict(meta, weights_dtype="float32")  # ... deployed in float32
    if onnx_export.available() is not None:
        pytest.skip(onnx_export.available())
    assert "checked in ONNX Runtime" in printed
    script = tmp_path / "run_onnx.py"
    script.write_text(_RUN_ONNX)
    # a fresh interpreter with ONNX Runtime only, outside the repository
    r = subprocess.run([sys.executable, str(script), str(out), json.dumps(meta), "48", "64"],
                       cwd=tmp_path, capture_output=True, text=True, env={"PATH": "/usr/bin:/bin"})
    assert r.returncode == 0, r.stderr[-3000:]
    onnx = f"--weights={out / 'generator.onnx'}"
    launch("--mode=evaluate", *sized, onnx)
    image = sorted((root / "images").rglob("*.jpg"))[-1]  # a validation image
    launch("--mode=predict", *sized, onnx, f"--input={image}", f"--out={tmp_path / 'pred'}")
    predictions = json.loads(next((tmp_path / "pred").glob("*.json")).read_text())
    assert len(predictions) == 1 and all(len(p["keypoints"]) == 3 * (17 if dataset == "coco" else 16)
                                         for p in predictions)
