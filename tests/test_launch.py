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
    r = run("launch.py", "--help")  # the module docstring and every flag, status 0
    assert r.returncode == 0, r.stderr
    for word in ("Modes:", "train", "evaluate", "export", "synth", "--weights", "--config",
                 "--workdir", "--coordinator", "--boxes", "--workdirs", "--config.<path>"):
        assert word in r.stdout, word
    r = run("launch.py", "--mode=train")  # one line, not the whole help; status 2
    assert r.returncode == 2 and r.stderr.startswith("error: --mode=train needs --workdir=")
    assert len(r.stderr.splitlines()) == 1, r.stderr
    # Without --config=, the overrides meet the default file while launch.py is imported.
    r = run("launch.py", "--mode=check", "--config.model.num_jionts=3", "--weights=x")
    assert r.returncode == 2 and "Traceback" not in r.stderr
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
        assert status == 2 and "Traceback" not in stderr, stderr
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
    assert status == 2 and "Traceback" not in stderr
    assert ("error: --config.model.num_jionts: no such config field 'num_jionts' in "
            "config.model; did you mean 'num_joints'?") in stderr
    status, _, stderr = launch_here(monkeypatch, "--mode=train")
    assert status == 2 and "--mode=train needs --workdir" in stderr
    status, _, stderr = launch_here(monkeypatch, "train")
    assert status == 2 and "--mode=" in stderr
    status, _, stderr = launch_here(monkeypatch, "--mode=check",
                                    f"--weights={tmp_path / 'missing.npz'}")
    assert status == 1 and stderr == f"error: {tmp_path / 'missing.npz'}: weights file not found\n"


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
        assert status == 2 and "Traceback" not in stderr, (arg, stderr)
        assert stderr.startswith("error: ") and message in stderr, (arg, stderr)
        assert len(stderr.splitlines()) == 1, (arg, stderr)


# ---- every refusal launch can foresee: one line, the right status, no traceback -------------

def _small_export(directory):
    """generator.msgpack + config.json of the 'small' net at 64x64, as export writes them
    (numpy weights, nothing compiled)."""
    import jax
    from flax import serialization
    from conftest import small_config
    from hrgan_jax import cli, weights
    config = small_config()
    variables = weights.from_torch(weights.trained_scale_state_dict(config.model, "generator"),
                                   config.model, "generator")
    directory.mkdir()
    (directory / "generator.msgpack").write_bytes(
        serialization.msgpack_serialize(jax.tree.map(np.asarray, variables)))
    (directory / "config.json").write_text(cli.config_json(config))
    return directory


def _photo(path):
    from PIL import Image
    Image.fromarray(np.full((32, 24, 3), 90, np.uint8)).save(path)
    return path


@pytest.fixture(scope="module")
def refusals(tmp_path_factory):
    return _refusal_cases(tmp_path_factory.mktemp("refusals"))


def _refusal_cases(tmp):
    """name -> (arguments, exit status, the start of the one line on stderr); files made
    under tmp.  The docs/reliability.md table lists the same cases."""
    micro = "--config=configs/default.py:micro"
    export = _small_export(tmp / "export")
    photo = _photo(tmp / "photo.png")
    (tmp / "a_file").write_text("x")
    cut = tmp / "cut.safetensors"
    cut.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{garbage")
    (tmp / "empty.msgpack").write_bytes(b"")
    (tmp / "no_run").mkdir()
    (tmp / "broken_run").mkdir()
    (tmp / "broken_run" / "config.json").write_text('{"seed": 0, "adversarial": {')
    import torch
    torch.save([torch.zeros(2)], tmp / "list.pth")
    (tmp / "read_only").mkdir()
    work = f"--workdir={tmp / 'run'}"
    return {
        "bn_group": (["--mode=train", "--config=configs/coco_w32_256x192.py:paper",
                      "--config.train.batch_size=8", work], 2,
                     "error: config.model.bn_group = 16 does not divide config.train.batch_size = 8"),
        "batch over devices": (["--mode=train", micro, "--config.train.batch_size=12", work], 2,
                               "error: config.train.batch_size = 12 does not split over 8 devices"),
        "zero batch": (["--mode=train", micro, "--config.train.batch_size=0", work], 2,
                       "error: config.train.batch_size = 0: give a positive batch size"),
        "66x66": (["--mode=train", micro, "--config.data.image_size=(66, 66)", work], 2,
                  "error: config.data.image_size = (66, 66): the network's 2 branches need"),
        "heatmap 32x32": (["--mode=train", micro, "--config.data.image_size=(64, 64)",
                           "--config.data.heatmap_size=(32, 32)", work], 2,
                          "error: config.data.heatmap_size = (32, 32): the heatmaps are the input"),
        "NaN lr": (["--mode=train", micro, "--config.optim.g_lr=nan", work], 2,
                   "error: config.optim.g_lr = nan: a learning rate is a finite number >= 0"),
        "nothing to train": (["--mode=train", micro, "--config.train.steps=0",
                              "--config.train.epochs=0", work], 2,
                             "error: config.train.steps = 0 and config.train.epochs = 0"),
        "tuple twice": (["--mode=train", micro, "--config.data.image_size=(64, 64)",
                         "--config.data.image_size=(96, 96)", work], 2,
                        "error: --config.data.image_size is given 2 times"),
        "unknown preset": (["--mode=check", "--config=configs/default.py:w99", "--weights=x"], 2,
                           "error: --config=configs/default.py:w99: unknown HRNet preset 'w99'"),
        "unknown variant": (["--mode=check", "--config=configs/coco_w32_256x192.py:hrgn",
                             "--weights=x"], 2, "error: --config=configs/coco_w32_256x192.py:hrgn: "
                                                "unknown variant 'hrgn': choose hrgan, paper or hrnet"),
        "no config file": (["--mode=check", "--config=configs/nope.py", "--weights=x"], 2,
                           "error: --config=configs/nope.py: no config file"),
        "evaluate without weights": (["--mode=evaluate", micro], 2,
                                     "error: --mode=evaluate needs --workdir=RUN"),
        "train without workdir": (["--mode=train", micro], 2, "error: --mode=train needs --workdir="),
        "predict without input": (["--mode=predict", micro, f"--weights={export}/generator.msgpack"],
                                  2, "error: --mode=predict needs --input="),
        "weights of another network": (["--mode=predict", micro, f"--input={photo}",
                                        f"--weights={export / 'generator.msgpack'}",
                                        f"--out={tmp / 'pred'}"], 1,
                                       f"error: {export / 'generator.msgpack'} does not fit the "
                                       f"configured generator (model 'micro'): "
                                       f"{export / 'config.json'} says it holds model 'small': "
                                       f"rerun with --config=default:small"),
        "read-only workdir": (["--mode=train", micro, f"--workdir={tmp / 'read_only' / 'run'}"], 2,
                              f"error: --workdir={tmp / 'read_only' / 'run'}: "
                              f"{tmp / 'read_only'} is read-only"),
        "workdir is a file": (["--mode=train", micro, f"--workdir={tmp / 'a_file'}"], 2,
                              f"error: --workdir={tmp / 'a_file'} is a file, not a directory"),
        "truncated safetensors": (["--mode=check", micro, f"--weights={cut}"], 1,
                                  f"error: cannot read weights from {cut}: "),
        "empty msgpack": (["--mode=export", micro, f"--weights={tmp / 'empty.msgpack'}",
                           f"--out={tmp / 'exported'}"], 1,
                          f"error: {tmp / 'empty.msgpack'}: the file is empty"),
        "pth not a state_dict": (["--mode=check", micro, f"--weights={tmp / 'list.pth'}"], 1,
                                 f"error: {tmp / 'list.pth'}: holds a list, not a state_dict"),
        "directory as weights": (["--mode=check", micro, f"--weights={tmp}"], 1,
                                 f"error: {tmp}: a directory, not a weights file"),
        "predict from a workdir with no checkpoint": (
            ["--mode=predict", micro, f"--input={photo}", f"--workdir={tmp / 'no_run'}",
             f"--out={tmp / 'pred'}"], 1,
            f"error: {tmp / 'no_run'} has no checkpoints/ directory, so it is not a training run"),
        "compare with a broken config.json": (
            ["--mode=compare", f"--workdirs={tmp / 'broken_run'}", f"--out={tmp / 'cmp'}"], 1,
            f"error: {tmp / 'broken_run' / 'config.json'}: cannot read the run's config"),
    }



REFUSALS = ["bn_group", "batch over devices", "zero batch", "66x66", "heatmap 32x32", "NaN lr",
            "nothing to train", "tuple twice", "unknown preset", "unknown variant",
            "no config file", "evaluate without weights", "train without workdir",
            "predict without input", "weights of another network", "read-only workdir",
            "workdir is a file", "truncated safetensors", "empty msgpack",
            "pth not a state_dict", "directory as weights",
            "predict from a workdir with no checkpoint", "compare with a broken config.json"]
# Refused by the config checks before anything is imported or compiled for the work.
QUICK = {"bn_group", "zero batch", "66x66", "heatmap 32x32", "NaN lr", "nothing to train",
         "tuple twice"}


@pytest.mark.parametrize("case", REFUSALS)
def test_every_foreseeable_refusal_is_one_line(case, refusals, monkeypatch):
    """One line on stderr, "error: " naming the flag, field or file and the fix; status 2
    for a command-line mistake, 1 for bad input; no traceback, nothing written."""
    import os
    import time
    args, status, start = refusals[case]
    if case == "read-only workdir":  # as a user without write permission sees it (the
        access = os.access          # tests may run as root, whom permissions do not stop)
        monkeypatch.setattr(os, "access", lambda path, mode: not str(path).endswith(
            "read_only") and access(path, mode))
    began = time.perf_counter()
    got, _, stderr = launch_here(monkeypatch, *args)
    took = time.perf_counter() - began
    assert (got, stderr.splitlines()[0][:len(start)]) == (status, start), stderr
    if case != "weights of another network":  # which lists the keys that do not fit below
        assert len(stderr.splitlines()) == 1, stderr
    assert "Traceback" not in stderr
    workdirs = [a.split("=", 1)[1] for a in args if a.startswith("--workdir=")]
    if args[0] == "--mode=train" and workdirs and "a_file" not in workdirs[0]:
        assert not os.path.exists(workdirs[0]), "a refused run made its workdir"
    if case in QUICK:
        assert took < 5, took


def test_an_unexpected_exception_keeps_its_traceback(tmp_path, monkeypatch):
    from hrgan_jax import cli

    def broken(config):
        raise RuntimeError("a bug, not a user's mistake")

    monkeypatch.setattr(cli, "synth", broken)
    with pytest.raises(RuntimeError, match="a bug"):
        launch_here(monkeypatch, "--mode=synth", "--config=configs/default.py:micro",
                    f"--config.data.root={tmp_path}")


def test_help_per_mode_and_for_the_installed_command(monkeypatch, capsys):
    """--mode=predict --help: predict's part of the help and the flags it takes, status 0;
    the whole --help lists every flag wherever __main__ is (the installed command's
    wrapper defines none)."""
    from hrgan_jax import main
    for args, present, absent in (
            (["--mode=predict", "--help"], ["--mode=predict", "--input", "--boxes", "--weights",
                                            "box_threshold", "--config.<path>"],
             ["--coordinator", "--workdirs", "  train "]),
            (["--mode=compare", "-h"], ["--workdirs", "--out"], ["--input", "--config.<path>"]),
            (["--help"], ["Modes:", "--coordinator", "--input", "--workdirs", "--net"], [])):
        with pytest.raises(SystemExit) as e:
            main._parse_flags(["hrgan-jax", *args])
        out = capsys.readouterr().out
        assert e.value.code == 0
        assert all(p in out for p in present), (args, out)
        assert not any(a in out for a in absent), (args, out)


@pytest.mark.slow  # starts fresh interpreters
def test_the_installed_commands_help_lists_the_flags_and_a_refusal_is_quick(tmp_path):
    """The console script's wrapper as __main__ (what `hrgan-jax --help` runs): the flags
    are listed; a NaN learning rate is refused in a fresh interpreter, nothing written."""
    import time
    wrapper = "import sys; from hrgan_jax.main import run; sys.argv[0] = 'hrgan-jax'; run()"
    r = run("-c", wrapper, "--help")
    assert r.returncode == 0 and "--workdir" in r.stdout and "--mode" in r.stdout, r.stderr
    began = time.perf_counter()
    r = run("launch.py", "--mode=train", "--config=configs/default.py:micro",
            "--config.optim.g_lr=nan", f"--workdir={tmp_path / 'run'}")
    took = time.perf_counter() - began
    assert r.returncode == 2 and r.stderr.startswith("error: config.optim.g_lr = nan"), r.stderr
    assert not (tmp_path / "run").exists()
    # Nearly all of it is importing JAX and Flax: ~3 s on a quiet 2-core machine, 22-25 s at a
    # load average of 11; the check itself takes milliseconds (the in-process test: < 5 s).
    print(f"a NaN learning rate refused in {took:.1f} s (a fresh interpreter, imports included)")


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
