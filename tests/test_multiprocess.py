"""Two processes on localhost (2 fake CPU devices each, gloo collectives) end 3 train
steps with the state of one process with 4 devices."""
import os
import pathlib
import socket
import subprocess
import sys

import numpy as np
import pytest

from conftest import relative_error

WORKER = pathlib.Path(__file__).with_name("multiprocess_worker.py")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


def _start(out, devices, num_processes=1, process_id=0, port=None):
    cmd = [sys.executable, str(WORKER), f"--devices={devices}", f"--out={out}", "--steps=3",
           f"--num_processes={num_processes}", f"--process_id={process_id}"]
    if port:
        cmd.append(f"--coordinator=localhost:{port}")
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, "XLA_FLAGS": ""})


def _finish(proc, timeout=900):
    out, _ = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, out[-3000:]
    return out


@pytest.mark.slow
def test_two_processes_equal_one_process_with_four_devices(tmp_path):
    port = _free_port()
    procs = [_start(tmp_path / "multi.npz", 2, 2, i, port) for i in range(2)]
    try:
        for p in procs:
            _finish(p)
    finally:
        for p in procs:
            p.kill()
    _finish(_start(tmp_path / "single.npz", 4))
    with np.load(tmp_path / "multi.npz") as a, np.load(tmp_path / "single.npz") as b:
        assert a.files == b.files
        multi = np.concatenate([a[k].ravel().astype(np.float64) for k in a.files])
        single = np.concatenate([b[k].ravel().astype(np.float64) for k in b.files])
    assert relative_error(multi, single) < 1e-5
