"""The command line and the benchmark script, run as a user runs them."""
import pathlib
import subprocess
import sys

import numpy as np
import pytest

from conftest import load_reference

ROOT = pathlib.Path(__file__).resolve().parent.parent


def run(*args, cwd=ROOT):
    return subprocess.run([sys.executable, *args], cwd=cwd, capture_output=True, text=True,
                          timeout=600)


def test_export_then_check(tmp_path):
    out = tmp_path / "d.npz"
    # run from elsewhere: the default config is found next to launch.py
    r = run(str(ROOT / "launch.py"), "--mode=export", "--config=" + str(ROOT / "configs/default.py") + ":tiny",
            "--net=discriminator", f"--out={out}", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "discriminator from a fresh initialisation (seed 0)" in r.stdout
    assert np.load(out)["final_layer.weight"].shape == (17, 8, 1, 1)

    r = run("launch.py", "--mode=check", "--config=configs/default.py:tiny", "--net=discriminator",
            f"--weights={out}")
    assert r.returncode == 0, r.stderr
    assert "fits the discriminator" in r.stdout

    r = run("launch.py", "--mode=check", "--config=configs/default.py:tiny", "--net=generator",
            f"--weights={out}")
    assert r.returncode == 1
    assert "does not fit" in r.stdout and "conv1.weight (64, 3, 3, 3)" in r.stdout


def test_export_converts_official_weights(tmp_path):
    _, _, sd = load_reference("hrnet_tiny_k3_17j_128x96")
    src = tmp_path / "official.npz"
    np.savez(src, **{f"module.{k}": v for k, v in sd.items()})
    out = tmp_path / "g.safetensors"
    r = run("launch.py", "--mode=export", "--config=configs/default.py:tiny",
            "--config.model.final_conv_kernel=3", f"--weights={src}", f"--out={out}")
    assert r.returncode == 0, r.stderr
    from safetensors.numpy import load_file
    back = load_file(str(out))
    assert sorted(back) == sorted(sd)
    assert all(np.array_equal(back[k], v) for k, v in sd.items())


def test_bad_command_lines_say_what_is_wrong(tmp_path):
    r = run("launch.py", "--mode=check", "--config=configs/default.py:tiny",
            "--config.model.num_jionts=3", f"--weights={tmp_path / 'x.npz'}")
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert ("--config.model.num_jionts: no such config field 'num_jionts'; did you mean "
            "'num_joints'?") in r.stderr
    r = run("launch.py", "--mode=train")
    assert r.returncode != 0 and "--mode=train needs --workdir" in r.stderr
    r = run("launch.py", "train")
    assert r.returncode != 0 and "--mode=" in r.stderr
    r = run("launch.py", "--mode=check", f"--weights={tmp_path / 'missing.npz'}")
    assert r.returncode != 0 and "missing.npz" in r.stderr
    r = run("launch.py", "--help")  # absl prints the module docstring and the flags
    for word in ("Modes:", "train", "evaluate", "export", "synth", "--weights", "--config",
                 "--workdir"):
        assert word in r.stdout, word


def test_config_values_of_the_wrong_type_or_shape_are_one_line_errors(tmp_path):
    cases = {"--config.train.steps=abc": "flag --config.train.steps=abc: invalid literal for int()",
             "--config.data.image_size=64": "config.data.image_size = (64,): give (width, height)",
             "--config.train.nan_policy=skp": "config.train.nan_policy = 'skp': choose one of stop, skip"}
    for arg, message in cases.items():
        r = run("launch.py", "--mode=check", "--config=configs/default.py:tiny", arg,
                f"--weights={tmp_path / 'x.npz'}")
        assert r.returncode == 1 and "Traceback" not in r.stderr, (arg, r.stderr)
        assert message in r.stderr, (arg, r.stderr)


@pytest.mark.slow  # compiles two networks in a subprocess: ~20 s on a CPU
def test_forward_benchmark_prints_a_table():
    r = run("benchmarks/forward.py", "--preset=tiny", "--batch=2", "--height=64", "--width=64",
            "--iters=2", "--warmup=1", "--dtype=float32,bfloat16")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].startswith("device: cpu")
    rows = [line.split() for line in lines if line.startswith(("float32", "bfloat16"))]
    assert [row[0] for row in rows] == ["float32", "bfloat16"]
    assert all(float(row[3]) > 0 for row in rows)  # images/s
    assert all("MiB" in line for line in lines if line.startswith(("float32", "bfloat16")))


@pytest.mark.slow  # compiles the GAN and HRNet steps of the tiny net in a subprocess
def test_train_step_benchmark_prints_a_table():
    r = run("benchmarks/train_step.py", "--preset=tiny", "--batch=2", "--height=64", "--width=64",
            "--iters=1", "--warmup=0")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].startswith("device: cpu")
    rows = [line.split() for line in lines if line.startswith(("hrgan", "hrnet"))]
    assert [row[0] for row in rows] == ["hrgan", "hrnet"]
    for row in rows:
        assert float(row[4]) > 0 and float(row[5]) > 0  # images/s, GFLOP per image
    assert "NON-FINITE" not in r.stdout
    # The GAN step costs more than HRNet's: D's three passes on top of G's.
    assert float(rows[0][5]) > float(rows[1][5])
