"""GPU XLA flags (only on a GPU) and the example SLURM / Kubernetes launch files, which
must announce the job the way hrgan_jax.parallel.initialize detects it."""
import pathlib
import re

import pytest

from hrgan_jax import parallel

CLUSTER = pathlib.Path(__file__).resolve().parent.parent / "cluster"


def test_gpu_flags_only_on_a_gpu_and_the_users_value_wins(monkeypatch):
    env = {"XLA_FLAGS": "--xla_gpu_all_reduce_combine_threshold_bytes=1"}
    monkeypatch.setattr(parallel, "_gpu_present", lambda environ: False)
    assert parallel.set_gpu_xla_flags(env) == [] and env["XLA_FLAGS"].count("--") == 1
    monkeypatch.setattr(parallel, "_gpu_present", lambda environ: True)
    assert parallel.set_gpu_xla_flags(env) == ["--xla_gpu_enable_latency_hiding_scheduler=true"]
    assert "combine_threshold_bytes=1" in env["XLA_FLAGS"]
    assert parallel.set_gpu_xla_flags(env) == []  # idempotent


def test_cpu_platform_is_not_a_gpu():
    assert not parallel._gpu_present({"JAX_PLATFORMS": "cpu"})


def test_gpu_probe_without_any_jax_plugins_package(monkeypatch):
    import importlib.util

    def find_spec(name):  # as on a CPU machine: no jax_plugins package at all
        if name.startswith("jax_plugins."):
            raise ModuleNotFoundError("No module named 'jax_plugins'")
        return None

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)
    assert parallel._gpu_present({}) is False


def test_kubernetes_job_matches_the_env_detection():
    text = (CLUSTER / "kubernetes-job.yaml").read_text()
    completions = int(re.search(r"completions: (\d+)", text).group(1))
    assert "completionMode: Indexed" in text
    env = dict(re.findall(r"\{name: (JAX_\w+), value: \"([^\"]+)\"\}", text))
    assert int(env["JAX_NUM_PROCESSES"]) == completions
    host = env["JAX_COORDINATOR_ADDRESS"].split(":")[0]
    assert host == "hrgan-0.hrgan"  # pod 0 of Job hrgan, through the headless Service hrgan
    env["JOB_COMPLETION_INDEX"] = "1"
    assert parallel._jax_env_processes(env) == {"num_processes": completions, "process_id": 1}
    assert any(hint(env) for hint in parallel._CLUSTER_HINTS.values())
    del env["JOB_COMPLETION_INDEX"]
    with pytest.raises(ValueError, match="JOB_COMPLETION_INDEX"):
        parallel._jax_env_processes(env)


def test_slurm_file_one_process_per_gpu_and_batch_splits():
    text = (CLUSTER / "slurm.sbatch").read_text()
    opt = dict(re.findall(r"--([\w-]+)=(\w+)", text))
    # JAX's SLURM detection gives each process the GPU of its SLURM_LOCALID
    assert opt["ntasks-per-node"] == opt["gpus-per-node"]
    gpus = int(opt["nodes"]) * int(opt["gpus-per-node"])
    batch = int(re.search(r"batch_size=(\d+)", text).group(1))
    assert batch % (gpus * 16) == 0  # 16: the COCO config's bn_group
    assert "srun python launch.py --mode=train" in text
    assert parallel._CLUSTER_HINTS["SLURM"]({"SLURM_NTASKS": str(gpus)})


def test_prefetch_to_mesh_keeps_order_and_reads_ahead_by_size():
    import jax
    import numpy as np
    mesh = parallel.make_mesh(jax.devices()[:1])
    read = []

    def host():
        for i in range(5):
            read.append(i)
            yield {"x": np.full((2, 3), i, np.float32)}
    it = parallel.prefetch_to_mesh(host(), mesh, size=2)
    first = next(it)
    assert float(first["x"][0, 0]) == 0 and read == [0, 1, 2]  # batches 1, 2 already sent
    assert [float(b["x"][0, 0]) for b in it] == [1, 2, 3, 4]


def test_tf_data_leaves_the_launching_thread_a_core():
    import os
    pipeline = pytest.importorskip("data_pipeline.pipeline")
    from hrgan_jax.configs.default import get_config
    opts = pipeline._options(get_config("tiny").data)
    assert opts.threading.private_threadpool_size == max(1, len(os.sched_getaffinity(0)) - 1)
