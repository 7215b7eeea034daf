import json
import os
import pathlib

# Tests compile many small programs and run each a few times: compile them with less
# optimisation (a GAN step compiles ~1.5x faster; results agree to float32 rounding),
# with XLA CPU's older loop emitters and one LLVM module per program (the micro GAN
# step's compilation: 8.6 s of CPU -> 4.2 s, the same losses to the last digit; the
# test processes fill every core, so CPU time, not one compile's wall time, counts).
# XLA aborts on a flag it does not know, so the CPU flags go in only where this jaxlib
# has them (jaxlib's range reaches 0.11, whose flags we cannot check here).
FAST_COMPILE = "--xla_backend_optimization_level=0 --xla_llvm_disable_expensive_passes=true"
CPU_FAST_COMPILE = ("xla_cpu_use_fusion_emitters=false", "xla_cpu_parallel_codegen_split_count=1")


def _jaxlib_knows(flags) -> bool:
    """Whether this jaxlib's XLA has these flags (their names are in its library)."""
    import importlib.util
    import mmap
    library = pathlib.Path(importlib.util.find_spec("jaxlib").origin).parent / "libjax_common.so"
    if not library.is_file():
        return False
    with open(library, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as m:
        return all(m.find(flag.split("=")[0].encode()) >= 0 for flag in flags)


if _jaxlib_knows(CPU_FAST_COMPILE):
    FAST_COMPILE += "".join(f" --{flag}" for flag in CPU_FAST_COMPILE)


def xla_flags(devices: int) -> str:
    """XLA_FLAGS for a test process: ``devices`` fake CPU devices, quick compilation."""
    return f"--xla_force_host_platform_device_count={devices} {FAST_COMPILE}"


def subprocess_env(devices: int = 1) -> dict:
    """The environment of a test's subprocess (launch.py, a worker): this one's, with
    ``devices`` fake CPU devices and the same compiler flags and compilation cache."""
    return {**os.environ, "XLA_FLAGS": xla_flags(devices)}


# Multi-device tests run on fake CPU devices; the flag must be set before JAX starts.
if "xla_force_host_platform_device_count" not in os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " " + xla_flags(8)).strip()

import jax
import numpy as np
import pytest

# Many tests compile the same small programs (in this process and in subprocesses they
# start): share compiled programs through JAX's persistent cache, down to those that
# take a quarter of a second (each network's init, the evaluation's and the export's
# forward passes: most of them are compiled again and again by the tests).
CACHE_DIR = os.environ.setdefault(
    "JAX_COMPILATION_CACHE_DIR", str(pathlib.Path(__file__).resolve().parent.parent
                                     / ".pytest_cache" / "jax"))
MIN_COMPILE_SECS = 0.25
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", str(MIN_COMPILE_SECS))
jax.config.update("jax_compilation_cache_dir", CACHE_DIR)
jax.config.update("jax_persistent_cache_min_compile_time_secs", MIN_COMPILE_SECS)

FIXTURES = pathlib.Path(__file__).parent / "fixtures"


def load_reference(name: str):
    """(meta json, npz dict, official state_dict) of a network fixture."""
    meta = json.loads((FIXTURES / f"{name}.json").read_text())
    with np.load(FIXTURES / f"{name}.npz") as z:
        arrays = {k: z[k] for k in z.files}
    state_dict = {k[len("state_dict/"):]: v for k, v in arrays.items() if k.startswith("state_dict/")}
    return meta, arrays, state_dict


def relative_error(a, b) -> float:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


def nchw(x):
    return np.asarray(x).transpose(0, 3, 1, 2)


def nhwc(x):
    return np.asarray(x).transpose(0, 2, 3, 1)


@pytest.fixture(scope="session")
def fixtures_dir():
    return FIXTURES


try:
    import torch  # noqa: F401
    HAVE_TORCH = True
except ImportError:
    HAVE_TORCH = False

requires_torch = pytest.mark.skipif(
    not HAVE_TORCH, reason="PyTorch is not installed: `make test` installs the CPU wheel when "
                           "the machine has it; these tests read and write real .pth files")


@pytest.fixture(scope="session")
def train_coco_root(tmp_path_factory):
    """A small synthetic COCO dataset for training runs (24 train, 4 val images)."""
    from data_pipeline import synthetic
    root = tmp_path_factory.mktemp("synthetic") / "coco"
    synthetic.write_coco(str(root), {"train2017": 24, "val2017": 4}, seed=0,
                         image_size=(160, 120), people=(1, 2))
    return str(root)


def small_config(size=(64, 64)):
    """The default config with the small network on size (w, h) inputs, eval batch 4."""
    from hrgan_jax.configs.default import get_config
    config = get_config("small")
    config.data.image_size = size
    config.data.heatmap_size = (size[0] // 4, size[1] // 4)
    config.eval.batch_size = 4
    return config


def train_config(preset: str = "micro", **overrides):
    """The default config with the micro network on 64x64 inputs, global batch 8: a GAN
    step that compiles in seconds, for tests of the training machinery."""
    from hrgan_jax.configs.default import get_config
    config = get_config(preset)
    config.data.image_size = (64, 64)
    config.data.heatmap_size = (16, 16)
    config.train.batch_size = 8
    config.optim.lr_steps = (2, 3)
    for path, value in overrides.items():
        node = config
        *parents, leaf = path.split(".")
        for p in parents:
            node = node[p]
        node[leaf] = value
    return config


def metric_rtol(name: str) -> float:
    """How far a train-step metric may move when the same step runs in another reduction
    order (other devices, processes or a batched pass).  L_adv's gradient is taken
    through the *updated* D, whose first Adam update is +-lr sign(g): elements whose
    gradient is at rounding level can flip, which moves that gradient's norm by ~3e-4
    relative (measured); other gradient norms sum ~5,000 leaves in another order."""
    if name.split("/")[-1].startswith("adv_grad"):
        return 2e-3
    return 1e-4 if "grad" in name else 1e-5


def random_batch(seed: int, batch: int = 8, joints: int = 17, size=(64, 64)):
    """A host batch as the pipeline yields it: uint8 images, joints in input pixels."""
    rng = np.random.default_rng(seed)
    w, h = size
    return {"image": rng.integers(0, 256, (batch, h, w, 3), dtype=np.uint8),
            "joints": rng.uniform([-4, -4], [w + 4, h + 4], (batch, joints, 2)).astype(np.float32),
            "joints_vis": (rng.uniform(size=(batch, joints)) < 0.8).astype(np.float32)}


def trained_scale_start(config, g_tx, d_tx):
    """A GAN state whose generator has weights at a trained network's scale.

    HRNet's N(0, 0.001) init drives the tiny net's activations toward float32 denormals,
    and RMSprop's first updates are +-10 lr sign(g): gradients at rounding level would
    then decide whole updates, and two correct programs (other reduction orders) part
    ways.  Equality tests of the train step start from here instead.
    """
    from hrgan_jax import state as state_lib, weights
    state = state_lib.create(config, g_tx, d_tx)
    g_vars = weights.from_torch(weights.trained_scale_state_dict(config.model), config.model)
    return state.replace(g_params=g_vars["params"], g_stats=g_vars["batch_stats"],
                         g_opt=g_tx.init(g_vars["params"]))


def free_port() -> int:
    """A TCP port free on localhost now, for a jax.distributed coordinator."""
    import socket
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


def saved_states(config, workdir, steps=None) -> dict:
    """{step: (state on the host, meta)} of the checkpoints in ``workdir``/checkpoints
    (``steps``: those steps; default: all), restored for one device."""
    from hrgan_jax import checkpoints, parallel, state as state_lib
    g_tx, d_tx, _, _ = state_lib.optimizers(config, steps_per_epoch=1)
    target = state_lib.abstract_state(config, g_tx, d_tx, parallel.make_mesh(jax.devices()[:1]))
    ckpt = checkpoints.Checkpoints(os.path.join(workdir, "checkpoints"), every_steps=1,
                                   keep=100, async_save=False)
    try:
        states = {}
        for step in (ckpt.all_steps() if steps is None else steps):
            state, meta = ckpt.restore(step, target)
            states[step] = (jax.device_get(state), meta)
        return states
    finally:
        ckpt.close()


def latest_state(config, workdir):
    """(step, state on the host, meta) of the newest checkpoint in ``workdir``."""
    from hrgan_jax import checkpoints
    ckpt = checkpoints.Checkpoints(os.path.join(workdir, "checkpoints"), every_steps=1,
                                   keep=100, async_save=False)
    step = ckpt.latest_step()
    ckpt.close()
    return (step, *saved_states(config, workdir, [step])[step])


def edit_train_batches(monkeypatch, edit) -> None:
    """Run every batch of the training stream (pipeline.train) through
    ``edit(index, batch) -> batch`` as the trainer takes it: faults at a known step."""
    from data_pipeline import pipeline
    clean = pipeline.train

    def train(*args, start_step=0, **kwargs):
        batches = clean(*args, start_step=start_step, **kwargs)
        try:
            for index, batch in enumerate(batches, start=start_step):
                yield edit(index, batch)
        finally:
            getattr(batches, "close", lambda: None)()
    monkeypatch.setattr(pipeline, "train", train)
