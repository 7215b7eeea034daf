"""benchmarks/gpu.py on the CPU (micro preset), so the prepared GPU run never rots.

--block makes ml_collections, tensorflow, clu and pycocotools unimportable, as on the
GPU image: the benchmark must run without them."""
import json
import os
import subprocess
import sys

import pytest

from conftest import subprocess_env

SCRIPT = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                      "benchmarks", "gpu.py")


def _run(out):
    cmd = [sys.executable, SCRIPT, "--out", str(out), "--smoke", "--block", "--deadline", "1800"]
    env = subprocess_env(1)  # one CPU device, as on one GPU
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=1900, env=env)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return json.loads((out / "results.json").read_text())["rows"]


@pytest.mark.slow  # compiles the micro GAN and HRNet steps: minutes on a 2-core CPU
def test_smoke_full_plan(tmp_path):
    """The whole smoke plan (peak, GAN and HRNet steps, inference) without the modules the
    GPU image lacks."""
    rows = {r["row"]: r for r in _run(tmp_path)}
    peak, inference = rows["peak"], rows["inference:float32:4"]
    assert peak["tflops"] > 0
    assert inference["images_per_s"] > 0 and inference["gflop_per_image"] > 0
    assert 0 < inference["mfu_vs_measured_peak"]
    for name in ("gan:float32:2", "hrnet:float32:2"):
        r = rows[name]
        assert r["finite"] and r["images_per_s"] > 0 and r["compile_s"] > 0, r
        assert r["gflop_per_image"] > 0 and r["gb_accessed_per_image"] > 0
    assert rows["gan:float32:2"]["gflop_per_image"] > rows["hrnet:float32:2"]["gflop_per_image"]
    assert os.listdir(tmp_path / "trace")  # the profile of the first GAN row
