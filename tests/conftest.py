import json
import pathlib

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
