import json
import os
import pathlib

# Multi-device tests run on fake CPU devices; the flag must be set before JAX starts.
if "xla_force_host_platform_device_count" not in os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "")
                               + " --xla_force_host_platform_device_count=8").strip()

import numpy as np
import pytest

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


def tiny_train_config(**overrides):
    """The default config with the tiny network on 64x64 inputs: a train step in seconds."""
    from configs.default import get_config
    config = get_config("tiny")
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


def random_batch(seed: int, batch: int = 8, joints: int = 17, size=(64, 64)):
    """A host batch as the pipeline yields it: uint8 images, joints in input pixels."""
    rng = np.random.default_rng(seed)
    w, h = size
    return {"image": rng.integers(0, 256, (batch, h, w, 3), dtype=np.uint8),
            "joints": rng.uniform([-4, -4], [w + 4, h + 4], (batch, joints, 2)).astype(np.float32),
            "joints_vis": (rng.uniform(size=(batch, joints)) < 0.8).astype(np.float32)}
