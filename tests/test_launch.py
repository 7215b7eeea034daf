"""The command line and the benchmark scripts.

launch.py's flag parsing and modes run here, in this process (``launch_here``: the
functions absl's app.run calls, with its exit codes); a few runs in a fresh interpreter
check what only a real start shows: --help, a run from another directory, and a usage
error's exit status.
"""
import contextlib
import io
import pathlib
import subprocess
import sys

import numpy as np
import pytest
from absl import app, flags

from conftest import load_reference, subprocess_env

ROOT = pathlib.Path(__file__).resolve().parent.parent


def run(*args, cwd=ROOT):
    """A fresh interpreter: ``python *args`` in ``cwd``, on one CPU device."""
    return subprocess.run([sys.executable, *args], cwd=cwd, capture_output=True, text=True,
                          timeout=600, env=subprocess_env(1))


def launch_here(monkeypatch, *args) -> tuple[int, str, str]:
    """(exit status, stdout, stderr) of ``python launch.py *args``, run in this process:
    launch's flag parser, then main, as app.run calls them.  Flags are reset after."""
    import launch
    argv = ["launch.py", *args]
    monkeypatch.setattr(sys, "argv", argv)  # ml_collections reads the overrides from here
    out, err = io.StringIO(), io.StringIO()
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                launch.main(launch._parse_flags(argv))
                status = 0
            except app.UsageError as e:
                err.write(f"FATAL {e}\n")
                status = e.exitcode
            except SystemExit as e:
                if isinstance(e.code, str):  # sys.exit(message): the message, status 1
                    err.write(e.code + "\n")
                status = 1 if isinstance(e.code, str) else int(e.code or 0)
    finally:
        flags.FLAGS.unparse_flags()
        for name in [n for n in flags.FLAGS if n.startswith("config.")]:
            delattr(flags.FLAGS, name)  # ml_collections defines one flag per override
    return status, out.getvalue(), err.getvalue()


@pytest.mark.slow  # compiles a train step or starts a fresh interpreter
def test_export_from_another_directory(tmp_path):
    out = tmp_path / "d.npz"
    r = run(str(ROOT / "launch.py"), "--mode=export",
            "--config=" + str(ROOT / "configs/default.py") + ":tiny",
            "--net=discriminator", f"--out={out}", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "discriminator from a fresh initialisation (seed 0)" in r.stdout
    assert np.load(out)["final_layer.weight"].shape == (17, 8, 1, 1)


def test_export_then_check(tmp_path, monkeypatch):
    out = tmp_path / "d.npz"
    status, stdout, stderr = launch_here(
        monkeypatch, "--mode=export", "--config=configs/default.py:tiny", "--net=discriminator",
        f"--out={out}")
    assert status == 0, stderr
    assert np.load(out)["final_layer.weight"].shape == (17, 8, 1, 1)

    status, stdout, stderr = launch_here(
        monkeypatch, "--mode=check", "--config=configs/default.py:tiny", "--net=discriminator",
        f"--weights={out}")
    assert status == 0, stderr
    assert "fits the discriminator" in stdout

    status, stdout, _ = launch_here(
        monkeypatch, "--mode=check", "--config=configs/default.py:tiny", "--net=generator",
        f"--weights={out}")
    assert status == 1
    assert "does not fit" in stdout and "conv1.weight (64, 3, 3, 3)" in stdout

    # D with another preset's stages (config.adversarial.d_network): its own layout.
    status, stdout, _ = launch_here(
        monkeypatch, "--mode=check", "--config=configs/default.py:tiny", "--net=discriminator",
        "--config.adversarial.d_network=micro", f"--weights={out}")
    assert status == 1 and "does not fit" in stdout
    micro = tmp_path / "d_micro.safetensors"
    for mode, path in (("export", f"--out={micro}"), ("check", f"--weights={micro}")):
        status, stdout, stderr = launch_here(
            monkeypatch, f"--mode={mode}", "--config=configs/default.py:tiny",
            "--net=discriminator", "--config.adversarial.d_network=micro", path)
        assert status == 0, stderr
    assert "fits the discriminator" in stdout


def test_export_converts_official_weights(tmp_path, monkeypatch):
    _, _, sd = load_reference("hrnet_tiny_k3_17j_128x96")
    src = tmp_path / "official.npz"
    np.savez(src, **{f"module.{k}": v for k, v in sd.items()})
    out = tmp_path / "g.safetensors"
    status, _, stderr = launch_here(
        monkeypatch, "--mode=export", "--config=configs/default.py:tiny",
        "--config.model.final_conv_kernel=3", f"--weights={src}", f"--out={out}")
    assert status == 0, stderr
    from safetensors.numpy import load_file
    back = load_file(str(out))
    assert sorted(back) == sorted(sd)
    assert all(np.array_equal(back[k], v) for k, v in sd.items())


def test_help_and_a_usage_error_in_a_fresh_interpreter():
    r = run("launch.py", "--help")  # absl prints the module docstring and the flags
    for word in ("Modes:", "train", "evaluate", "export", "synth", "--weights", "--config",
                 "--workdir"):
        assert word in r.stdout, word
    r = run("launch.py", "--mode=train")  # app.run turns a UsageError into status 1
    assert r.returncode == 1 and "--mode=train needs --workdir" in r.stderr
    assert "Traceback" not in r.stderr
    # Without --config=, the overrides meet the default file while launch.py is imported.
    r = run("launch.py", "--mode=check", "--config.model.num_jionts=3", "--weights=x")
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert "--config.model.num_jionts: no such config field 'num_jionts' in config.model; " \
           "did you mean 'num_joints'?" in r.stderr


def test_the_installed_command_is_launch_py():
    """pyproject.toml's `hrgan-jax` runs what `python launch.py` runs (`pip install .`
    in a fresh venv and `hrgan-jax --help` were checked by hand: see the commit)."""
    import importlib
    import tomllib
    import launch
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    module, _, name = project["scripts"]["hrgan-jax"].partition(":")
    assert getattr(importlib.import_module(module), name) is launch.run


def test_bad_command_lines_say_what_is_wrong(tmp_path, monkeypatch):
    status, _, stderr = launch_here(
        monkeypatch, "--mode=check", "--config=configs/default.py:tiny",
        "--config.model.num_jionts=3", f"--weights={tmp_path / 'x.npz'}")
    assert status == 1 and "Traceback" not in stderr
    assert ("--config.model.num_jionts: no such config field 'num_jionts' in config.model; "
            "did you mean 'num_joints'?") in stderr
    status, _, stderr = launch_here(monkeypatch, "--mode=train")
    assert status != 0 and "--mode=train needs --workdir" in stderr
    status, _, stderr = launch_here(monkeypatch, "train")
    assert status != 0 and "--mode=" in stderr
    with pytest.raises(FileNotFoundError, match="missing.npz"):
        launch_here(monkeypatch, "--mode=check", f"--weights={tmp_path / 'missing.npz'}")


def test_config_values_of_the_wrong_type_or_shape_are_one_line_errors(tmp_path, monkeypatch):
    cases = {"--config.train.steps=abc": "flag --config.train.steps=abc: invalid literal for int()",
             "--config.data.image_size=64": "config.data.image_size = (64,): give (width, height)",
             "--config.train.nan_policy=skp": "config.train.nan_policy = 'skp': choose one of stop, skip",
             "--config.adversarial.d_network=w40":
                 "config.adversarial.d_network = 'w40': choose one of '', w32, w48, tiny, small, micro"}
    for arg, message in cases.items():
        status, _, stderr = launch_here(monkeypatch, "--mode=check",
                                        "--config=configs/default.py:tiny", arg,
                                        f"--weights={tmp_path / 'x.npz'}")
        assert status == 1 and "Traceback" not in stderr, (arg, stderr)
        assert message in stderr and len(stderr.splitlines()) == 2, (arg, stderr)


@pytest.mark.slow  # compiles two networks in a subprocess: ~20 s on a CPU
def test_forward_benchmark_prints_a_table():
    r = run("benchmarks/forward.py", "--preset=micro", "--batch=2", "--height=64", "--width=64",
            "--iters=2", "--warmup=1", "--dtype=float32,bfloat16")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].startswith("device: cpu")
    rows = [line.split() for line in lines if line.startswith(("float32", "bfloat16"))]
    assert [row[0] for row in rows] == ["float32", "bfloat16"]
    assert all(float(row[3]) > 0 for row in rows)  # images/s
    assert all("MiB" in line for line in lines if line.startswith(("float32", "bfloat16")))


@pytest.mark.slow  # compiles the GAN and HRNet steps of the micro net in a subprocess
def test_train_step_benchmark_prints_a_table():
    r = run("benchmarks/train_step.py", "--preset=micro", "--batch=2", "--height=64", "--width=64",
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
