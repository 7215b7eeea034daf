"""The command line (hrgan_jax/main.py: `hrgan-jax`, `python launch.py`), the installed
package and the benchmark scripts.

The command line's flag parsing and modes run here, in this process (``launch_here``: the
functions absl's app.run calls, with its exit codes); a few runs in a fresh interpreter
check what only a real start shows: --help, a run from another directory, a usage
error's exit status, and the package installed into a fresh venv.
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
    the command line's flag parser, then main, as app.run calls them.  Flags are reset after."""
    from hrgan_jax import main as launch
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


def test_the_installed_command_is_python_launch_py():
    """pyproject.toml's `hrgan-jax` runs what `python launch.py` runs, and installs every
    package of the repository, the configs as hrgan_jax.configs (test_installed_package)."""
    import importlib
    import tomllib

    import launch
    from hrgan_jax import main
    setuptools = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    module, _, name = project["scripts"]["hrgan-jax"].partition(":")
    assert getattr(importlib.import_module(module), name) is main.run is launch.run
    packages = {".".join(p.parent.relative_to(ROOT).parts)
                for top in ("hrgan_jax", "data_pipeline") for p in (ROOT / top).rglob("__init__.py")}
    assert set(setuptools["packages"]) == packages | {"hrgan_jax.configs"}
    assert setuptools["package-dir"] == {"hrgan_jax.configs": "configs"}
    assert "py-modules" not in setuptools


def test_a_shipped_config_by_name_and_a_bad_name(tmp_path, monkeypatch):
    from hrgan_jax import main
    shipped = main.shipped_configs()
    assert sorted(shipped) == ["ablation", "coco_w32_256x192", "default", "mpii_w32_256x256",
                               "synthetic"]
    assert main.config_file("coco_w32_256x192:paper") == shipped["coco_w32_256x192"] + ":paper"
    assert main.config_file("configs/default.py:tiny") == "configs/default.py:tiny"  # a path
    monkeypatch.chdir(tmp_path)  # a name means the same from any directory
    out = tmp_path / "d.npz"
    status, stdout, stderr = launch_here(monkeypatch, "--mode=export", "--config=default:tiny",
                                         "--net=discriminator", f"--out={out}")
    assert status == 0, stderr
    assert np.load(out)["final_layer.weight"].shape == (17, 8, 1, 1)
    for spec in ("synthetc", "configs/default.py"):  # an unknown name; a path not here
        status, _, stderr = launch_here(monkeypatch, "--mode=check", f"--config={spec}",
                                        "--weights=x.npz")
        assert status == 1 and "Traceback" not in stderr, stderr
        assert (f"--config={spec}: no config file '{spec}' and no shipped config of that name "
                "(shipped: ablation, coco_w32_256x192, default, mpii_w32_256x256, synthetic)"
                in stderr.splitlines()[0]), stderr


@pytest.mark.slow  # builds and installs the package into a fresh venv: ~30 s
def test_installed_package(tmp_path):
    """`pip install` of the repository into a fresh venv, then, from another directory:
    `hrgan-jax --mode=synth --config=synthetic` works, and `configs` and `launch` are not
    importable (no generic top-level names in site-packages).  The venv reaches the
    dependencies through a path to this venv's site-packages, whose .pth files (this
    venv's own editable install of the repository) it does not run."""
    import shutil
    import sysconfig
    src = tmp_path / "src"  # pip builds in the source tree: a copy of the repository's files
    tracked = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=ROOT,
                             capture_output=True, text=True, check=True).stdout.split()
    for name in tracked:
        if (ROOT / name).is_file() and not name.startswith("tests/"):
            (src / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, src / name)
    env = {k: v for k, v in subprocess_env(1).items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    wheels = tmp_path / "wheels"

    def pip(*args):
        r = subprocess.run([sys.executable, "-m", "pip", "-q", "--disable-pip-version-check",
                            *args], capture_output=True, text=True, env=env, timeout=300)
        assert r.returncode == 0, r.stderr

    pip("wheel", "--no-deps", "--no-build-isolation", "-w", str(wheels), str(src))
    pip("--python", str(python), "install", "--no-deps", "--no-index",
        *map(str, wheels.glob("*.whl")))
    purelib = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                             capture_output=True, text=True, check=True).stdout.strip()
    assert sorted(p.name for p in pathlib.Path(purelib).iterdir()
                  if not p.name.endswith(".dist-info")) == ["data_pipeline", "hrgan_jax"]
    pathlib.Path(purelib, "dependencies.pth").write_text(sysconfig.get_path("purelib") + "\n")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    r = subprocess.run([str(venv / "bin" / "hrgan-jax"), "--mode=synth", "--config=synthetic",
                        f"--config.data.root={tmp_path / 'data'}", "--config.synth.num_train=2",
                        "--config.synth.num_val=1", "--config.synth.image_size=(64,48)",
                        "--config.synth.datasets=('coco',)"],
                       cwd=elsewhere, capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "data" / "coco" / "annotations" / "person_keypoints_val2017.json").is_file()
    for module in ("configs", "launch"):
        r = subprocess.run([str(python), "-c", f"import {module}"], cwd=elsewhere,
                           capture_output=True, text=True, env=env)
        assert r.returncode == 1 and f"No module named '{module}'" in r.stderr, r.stderr
    r = subprocess.run([str(python), "-c", "import hrgan_jax.configs as c; print(c.__file__)"],
                       cwd=elsewhere, capture_output=True, text=True, env=env)
    assert r.stdout.strip() == str(pathlib.Path(purelib, "hrgan_jax", "configs", "__init__.py"))


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
    from hrgan_jax.weights import WeightsFileError
    with pytest.raises(WeightsFileError, match="missing.npz"):
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
