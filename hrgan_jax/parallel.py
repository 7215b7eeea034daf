"""Devices: the mesh, shardings, multi-process start-up, host batch -> global array.

One mesh axis, ``data``, over every device of every process: the batch is split along
it and the train state is replicated.  jax.jit with these shardings does the rest (no
pmap, no pjit).
"""
from __future__ import annotations

import os
from typing import Any

import jax
import numpy as np
from absl import logging
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from hrgan_jax.config_checks import ConfigError, batch_split_problem

DATA_AXIS = "data"

# Environment variables by which a cluster launcher announces a multi-process job;
# jax.distributed.initialize() reads the details itself.
_CLUSTER_HINTS = {
    "SLURM": lambda e: int(e.get("SLURM_NTASKS", "1")) > 1,
    "Open MPI": lambda e: int(e.get("OMPI_COMM_WORLD_SIZE", "1")) > 1,
    "Kubernetes / JAX env": lambda e: "JAX_COORDINATOR_ADDRESS" in e,
    "Cloud TPU": lambda e: "TPU_WORKER_HOSTNAMES" in e and "," in e["TPU_WORKER_HOSTNAMES"],
}


# How long the coordination service waits for a process's heartbeat before it declares
# the process dead and ends every other process with an error naming it.  This bounds
# how long survivors of a crashed, killed or frozen process can hang (JAX's default is
# 100 s); a process busy computing still sends heartbeats from its own thread.
HEARTBEAT_TIMEOUT_S = 60


# XLA flags for training on NVIDIA GPUs: the latency-hiding scheduler overlaps the
# gradient all-reduces with the rest of the backward instead of running them after it,
# and a combine threshold large enough that the ~5,500 gradient leaves of W32 go as a
# few large all-reduces.  Both flags exist in XLA's DebugOptions (an unknown flag in
# XLA_FLAGS aborts the process); a value the user already set in XLA_FLAGS wins.
GPU_XLA_FLAGS = ("--xla_gpu_enable_latency_hiding_scheduler=true",
                 "--xla_gpu_all_reduce_combine_threshold_bytes=134217728")


def _gpu_present(environ) -> bool:
    """Whether JAX will run on an NVIDIA GPU, judged without starting a JAX backend (the
    flags must be in place before one starts)."""
    import glob
    import importlib.util
    platforms = environ.get("JAX_PLATFORMS", environ.get("JAX_PLATFORM_NAME", ""))
    if platforms and not any(p in platforms.lower() for p in ("cuda", "gpu")):
        return False
    def installed(module: str) -> bool:
        try:
            return importlib.util.find_spec(module) is not None
        except ModuleNotFoundError:  # its parent package (jax_plugins) is not installed
            return False

    plugin = any(installed(m) for m in ("jax_cuda12_plugin", "jax_cuda13_plugin",
                                        "jax_plugins.xla_cuda12", "jax_plugins.xla_cuda13"))
    return plugin and bool(glob.glob("/dev/nvidia[0-9]*"))


def set_gpu_xla_flags(environ=os.environ) -> list[str]:
    """Add GPU_XLA_FLAGS to XLA_FLAGS when this process will train on a GPU (only then);
    call before JAX starts its backend.  Returns the flags added."""
    if not _gpu_present(environ):
        return []
    current = environ.get("XLA_FLAGS", "")
    added = [f for f in GPU_XLA_FLAGS if f.split("=")[0] not in current]
    if added:
        environ["XLA_FLAGS"] = " ".join([current] + added).strip()
        logging.info("GPU: added XLA flags %s", " ".join(added))
    return added


def _jax_env_processes(environ) -> dict:
    """Process count and id for a job announced by JAX_COORDINATOR_ADDRESS (e.g. a
    Kubernetes indexed Job, cluster/kubernetes-job.yaml): JAX_NUM_PROCESSES, and
    JAX_PROCESS_ID or the Job's JOB_COMPLETION_INDEX.  Empty otherwise (jax.distributed
    then detects SLURM, Open MPI, Cloud TPU by itself)."""
    if "JAX_COORDINATOR_ADDRESS" not in environ or "JAX_NUM_PROCESSES" not in environ:
        return {}
    index = environ.get("JAX_PROCESS_ID", environ.get("JOB_COMPLETION_INDEX"))
    if index is None:
        raise ValueError("JAX_COORDINATOR_ADDRESS and JAX_NUM_PROCESSES are set but neither "
                         "JAX_PROCESS_ID nor JOB_COMPLETION_INDEX: set this process's index")
    return {"num_processes": int(environ["JAX_NUM_PROCESSES"]), "process_id": int(index)}


def initialize(coordinator: str | None = None, num_processes: int | None = None,
               process_id: int | None = None,
               heartbeat_timeout_s: int = HEARTBEAT_TIMEOUT_S) -> None:
    """Start jax.distributed when this is one process of many; call before any JAX work.

    On an NVIDIA GPU it first sets the training XLA flags (``set_gpu_xla_flags``).

    With an explicit ``coordinator`` (host:port) the process count and id are required;
    otherwise a known cluster launcher (SLURM, Open MPI, Kubernetes, Cloud TPU) is
    detected from the environment and JAX reads the rest.  A single process does nothing.

    When a process dies, the others stop with an error instead of waiting for it: at
    once when it was the coordinator (process 0) or when they were exchanging data with
    it (the collective fails), and otherwise within ``heartbeat_timeout_s``, when the
    coordination service reports "the following tasks are unhealthy (stopped sending
    heartbeats)" with the process's index and ends every process (status 134, SIGABRT).
    """
    set_gpu_xla_flags()
    timeouts = {"heartbeat_timeout_seconds": int(heartbeat_timeout_s)}
    if coordinator:
        if num_processes is None or process_id is None:
            raise ValueError("--coordinator needs --num_processes and --process_id")
        jax.distributed.initialize(coordinator_address=coordinator,
                                   num_processes=num_processes, process_id=process_id,
                                   **timeouts)
    else:
        launcher = next((n for n, hint in _CLUSTER_HINTS.items() if hint(os.environ)), None)
        if launcher is None:
            return
        logging.info("multi-process job under %s: starting jax.distributed", launcher)
        jax.distributed.initialize(**_jax_env_processes(os.environ), **timeouts)
    logging.info("process %d of %d, %d local / %d global devices", jax.process_index(),
                 jax.process_count(), jax.local_device_count(), jax.device_count())


def barrier(name: str, timeout_s: int = 1800) -> None:
    """Wait until every process gets here (no-op for one process).

    Call it after compiling and before the first collective: CPU (gloo) collectives give
    up if the processes arrive more than ~30 s apart, and compile times differ.  Uses the
    coordination service, not a device collective, so the wait may be long.
    """
    if jax.process_count() == 1:
        return
    from jax._src import distributed
    distributed.global_state.client.wait_at_barrier(name, timeout_in_ms=timeout_s * 1000)


def make_mesh(devices=None) -> Mesh:
    """A 1-D ``data`` mesh over all devices (all processes), in process order."""
    devices = jax.devices() if devices is None else devices
    return Mesh(np.asarray(devices), (DATA_AXIS,))


def replicated(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, P())


def data_sharded(mesh: Mesh) -> NamedSharding:
    """Leading (batch) axis split over ``data``."""
    return NamedSharding(mesh, P(DATA_AXIS))


def check_batch_size(global_batch: int, mesh: Mesh, bn_group: int = 0,
                     field: str = "config.train.batch_size") -> int:
    """The per-process batch; the global batch must split evenly over devices, and the
    per-device batch into BatchNorm groups of ``bn_group`` images (config.model.bn_group;
    0: no groups), so that no group straddles two devices (a ConfigError naming ``field``
    otherwise)."""
    problem = batch_split_problem(global_batch, mesh.devices.size, bn_group, field)
    if problem:
        raise ConfigError(problem)
    return global_batch // jax.process_count()


def global_batch(host_batch: dict[str, np.ndarray], mesh: Mesh) -> dict[str, jax.Array]:
    """This process's rows of a batch -> global arrays sharded on ``data``.

    Process p holds rows [p * b, (p + 1) * b) of the global batch (b = rows per process).
    """
    sharding = data_sharded(mesh)
    return {k: jax.make_array_from_process_local_data(sharding, np.asarray(v))
            for k, v in host_batch.items()}


def prefetch_to_mesh(host_batches, mesh: Mesh, size: int = 2):
    """Yield ``global_batch(b, mesh)`` for each host batch, ``size`` batches ahead: the
    next batch's transfer to the devices is issued before the current step is launched,
    so it overlaps the step instead of following it.  Same batches, same order."""
    import collections
    import itertools
    queue = collections.deque()
    host_batches = iter(host_batches)
    for b in itertools.islice(host_batches, size):
        queue.append(global_batch(b, mesh))
    while queue:
        batch = queue.popleft()
        for b in itertools.islice(host_batches, 1):
            queue.append(global_batch(b, mesh))
        yield batch


def replicate(tree: Any, mesh: Mesh) -> Any:
    """Place a host pytree (the same on every process) on every device of the mesh."""
    sharding = replicated(mesh)

    def put(x):
        x = np.asarray(x)
        return jax.make_array_from_callback(x.shape, sharding, lambda index: x[index])
    return jax.tree.map(put, tree)


def to_host(tree: Any) -> Any:
    """Fully replicated global arrays -> numpy on every process."""
    return jax.tree.map(lambda x: np.asarray(x.addressable_data(0)), tree)
