"""The prepared GPU benchmark: one run on a lent H100/H200 measures what issue 13 asks.

    python benchmarks/gpu.py --out $OUT                      # <= 8 minutes on one H100/H200
    python benchmarks/gpu.py --out /tmp/smoke --smoke        # the CPU smoke test (micro preset)

Rows, most important first, each in its own process (a fresh allocator, so its peak
memory is its own; an out-of-memory row fails alone):
  peak      bf16 matmul (8192^3 on GPU): the measured ceiling MFU is quoted against
  gan/hrnet W32 256x192 train step, bf16, 64 images per device (the issue's goals:
            >= 1500 and >= 3000 images/s), then inference (G forward, batch 256, >= 15000),
            then 128 and 256 per device in bf16, then float32 at 64
A row records compile time, XLA's compiled cost analysis (FLOPs and bytes accessed per
image), ms per step back to back (the device never idle: the training loop's case) and
blocked (one step at a time), host dispatch time per step, images/s, MFU against the
measured peak, and the allocator's peak memory per image.  results.json is rewritten
after every row; the first GAN row also writes a profile trace of 3 steps (trace/).
The whole run stops by --deadline (470 s): a row still running then is stopped and
recorded as such, and later rows as skipped.

The GPU image has jax, flax, optax, orbax and numpy but not ml-collections: this
script then gives the project's configs a small ConfigDict stand-in (attribute
access over a dict, all the train step needs).  It imports nothing else the image lacks.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
import types

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

# Modules the GPU image lacks: --block makes them unimportable (the smoke test proves
# the benchmark does not need them).
ABSENT_ON_GPU = ("ml_collections", "tensorflow", "clu", "pycocotools")


class _ConfigDict(dict):
    """ml_collections.ConfigDict's attribute access, for an image without ml-collections."""

    def __init__(self, initial=None, **kwargs):
        super().__init__()
        for k, v in dict(initial or {}, **kwargs).items():
            self[k] = v

    def __setitem__(self, key, value):
        if isinstance(value, dict) and not isinstance(value, _ConfigDict):
            value = _ConfigDict(value)
        super().__setitem__(key, value)

    def __getattr__(self, key):
        try:
            return self[key]
        except KeyError:
            raise AttributeError(key) from None

    def __setattr__(self, key, value):
        self[key] = value


def _block_imports(names) -> None:
    class Blocker:
        def find_spec(self, fullname, path=None, target=None):
            if fullname.split(".")[0] in names:
                raise ImportError(f"{fullname} is blocked (not in the GPU image)")
            return None
    sys.meta_path.insert(0, Blocker())
    for name in list(sys.modules):
        if name.split(".")[0] in names:
            del sys.modules[name]


def _ensure_config_dict() -> None:
    try:
        import ml_collections  # noqa: F401
    except ImportError:
        module = types.ModuleType("ml_collections")
        module.ConfigDict = _ConfigDict
        module.FrozenConfigDict = _ConfigDict
        sys.modules["ml_collections"] = module


# ---- one row, in a child process ------------------------------------------------------

def _cost(compiled) -> tuple[float, float]:
    cost = compiled.cost_analysis()
    cost = cost[0] if isinstance(cost, (list, tuple)) else cost
    if not cost:
        return float("nan"), float("nan")
    return float(cost.get("flops", float("nan"))), float(cost.get("bytes accessed", float("nan")))


def _peak_bytes(device) -> int | None:
    stats = device.memory_stats() if hasattr(device, "memory_stats") else None
    return int(stats["peak_bytes_in_use"]) if stats and "peak_bytes_in_use" in stats else None


def _time(fn, args_fn, iters: int, warmup: int) -> dict:
    """fn(*args) -> new args; back-to-back and blocked timings, dispatch time."""
    import jax
    args = args_fn()
    for _ in range(warmup):
        args = fn(*args)
    jax.block_until_ready(args)
    t0 = time.perf_counter()
    dispatch = []
    for _ in range(iters):
        t1 = time.perf_counter()
        args = fn(*args)
        dispatch.append(time.perf_counter() - t1)
    jax.block_until_ready(args)
    back_to_back = (time.perf_counter() - t0) / iters
    blocked = []
    for _ in range(max(3, iters // 2)):
        t1 = time.perf_counter()
        args = fn(*args)
        jax.block_until_ready(args)
        blocked.append(time.perf_counter() - t1)
    return dict(ms_back_to_back=back_to_back * 1e3, ms_blocked=statistics.median(blocked) * 1e3,
                ms_dispatch=statistics.median(dispatch) * 1e3), args


def row_peak(smoke: bool) -> dict:
    import jax
    import jax.numpy as jnp
    n = 1024 if smoke else 8192
    a = jax.random.normal(jax.random.PRNGKey(0), (n, n), jnp.bfloat16)
    b = jax.random.normal(jax.random.PRNGKey(1), (n, n), jnp.bfloat16)
    f = jax.jit(lambda a, b: (a @ b).astype(jnp.bfloat16))
    f(a, b).block_until_ready()
    times = []
    for _ in range(3 if smoke else 20):
        t0 = time.perf_counter()
        f(a, b).block_until_ready()
        times.append(time.perf_counter() - t0)
    t = min(times)
    return dict(row="peak", n=n, ms=t * 1e3, tflops=2 * n ** 3 / t / 1e12)


def _config(preset, dtype, size, global_batch, adversarial, bn_group):
    from hrgan_jax.configs.default import get_config
    config = get_config(preset)
    config.model.dtype = dtype
    config.model.bn_group = bn_group
    w, h = size
    config.data.image_size = (w, h)
    config.data.heatmap_size = (w // 4, h // 4)
    config.train.batch_size = global_batch
    config.adversarial.enabled = adversarial
    return config


def row_step(kind: str, dtype: str, per_device: int, preset: str, size, bn_group: int,
             iters: int, warmup: int, trace_dir: str | None) -> dict:
    import jax
    import numpy as np
    from hrgan_jax import parallel, state as state_lib, step as step_lib
    mesh = parallel.make_mesh()
    n_dev = mesh.devices.size
    global_batch = per_device * n_dev
    group = min(bn_group, per_device)
    config = _config(preset, dtype, size, global_batch, kind == "gan", group)
    g_tx, d_tx, g_lr, d_lr = state_lib.optimizers(config, steps_per_epoch=1000)
    state = parallel.replicate(state_lib.at_trained_scale(config, g_tx, d_tx), mesh)
    rep = parallel.replicated(mesh)
    # As the trainer runs it: the state as one buffer per dtype (state_lib.FlatLayout).
    layout = state_lib.FlatLayout(state)
    leaves = len(jax.tree.leaves(state))
    state = jax.jit(layout.ravel, out_shardings=rep)(state)
    step = jax.jit(layout.step(step_lib.make_train_step(config, g_tx, d_tx, g_lr, d_lr)),
                   in_shardings=(rep, parallel.data_sharded(mesh)), out_shardings=(rep, rep),
                   donate_argnums=0)
    rng = np.random.default_rng(0)
    w, h = size
    host = {"image": rng.integers(0, 256, (global_batch, h, w, 3), dtype=np.uint8),
            "joints": rng.uniform([0, 0], [w, h], (global_batch, config.model.num_joints, 2)
                                  ).astype(np.float32),
            "joints_vis": np.ones((global_batch, config.model.num_joints), np.float32)}
    batch = parallel.global_batch(host, mesh)
    t0 = time.perf_counter()
    lowered = step.lower(state, batch)
    t1 = time.perf_counter()
    compiled = lowered.compile()
    t2 = time.perf_counter()
    flops, bytes_accessed = _cost(compiled)

    def one(state):
        state, metrics = compiled(state, batch)
        return (state,)
    timing, (state,) = _time(one, lambda: (state,), iters, warmup)
    state, metrics = compiled(state, batch)  # the state is donated: always carry the new one
    finite = bool(np.asarray(metrics["finite"]) > 0)
    if trace_dir:
        os.makedirs(trace_dir, exist_ok=True)
        with jax.profiler.trace(trace_dir):
            for _ in range(3):
                state, metrics = compiled(state, batch)
            jax.block_until_ready(metrics)
    return _finish(dict(row=f"{kind}:{dtype}:{per_device}", kind=kind, dtype=dtype,
                        per_device=per_device, devices=n_dev, bn_group=group,
                        state_leaves=leaves, state_buffers=len(state),
                        lower_s=t1 - t0, compile_s=t2 - t1, finite=finite, **timing),
                   flops, bytes_accessed, global_batch, n_dev)


def row_inference(dtype: str, batch: int, preset: str, size, iters: int, warmup: int) -> dict:
    import jax
    import numpy as np
    from hrgan_jax import models, weights
    config = _config(preset, dtype, size, batch, False, 0)
    module = models.generator(config.model)
    variables = weights.from_torch(weights.trained_scale_state_dict(config.model), config.model)
    variables = jax.device_put(variables)
    w, h = size
    x = jax.device_put(np.random.default_rng(0).normal(size=(batch, h, w, 3)).astype(np.float32))
    f = jax.jit(lambda v, x: module.apply(v, x, train=False))
    t0 = time.perf_counter()
    compiled = f.lower(variables, x).compile()
    t1 = time.perf_counter()
    flops, bytes_accessed = _cost(compiled)

    def one(out):
        return (compiled(variables, x),)
    timing, _ = _time(one, lambda: (None,), iters, warmup)
    return _finish(dict(row=f"inference:{dtype}:{batch}", kind="inference", dtype=dtype,
                        per_device=batch, devices=1, compile_s=t1 - t0, **timing),
                   flops, bytes_accessed, batch, 1)


def _finish(r: dict, flops: float, bytes_accessed: float, global_batch: int, n_dev: int) -> dict:
    import jax
    # cost analysis is of the per-device program
    r["gflop_per_image"] = flops * n_dev / global_batch / 1e9
    r["gb_accessed_per_image"] = bytes_accessed * n_dev / global_batch / 1e9
    r["images_per_s"] = global_batch / (r["ms_back_to_back"] / 1e3)
    r["images_per_s_blocked"] = global_batch / (r["ms_blocked"] / 1e3)
    r["tflops_achieved"] = flops / (r["ms_back_to_back"] / 1e3) / 1e12
    peak = _peak_bytes(jax.devices()[0])
    r["peak_bytes"] = peak
    r["peak_bytes_per_image"] = None if peak is None else peak / (global_batch / n_dev)
    r["device"] = jax.devices()[0].device_kind
    return r


# ---- the parent: plan, run each row in a child, write JSON ------------------------------

def plan(smoke: bool) -> list[str]:
    if smoke:
        return ["peak", "gan:float32:2", "hrnet:float32:2", "inference:float32:4"]
    return ["peak", "gan:bfloat16:64", "hrnet:bfloat16:64", "inference:bfloat16:256",
            "gan:bfloat16:128", "hrnet:bfloat16:128", "gan:float32:64", "hrnet:float32:64",
            "gan:bfloat16:256", "hrnet:bfloat16:256"]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", required=True, help="directory for results.json and trace/")
    p.add_argument("--smoke", action="store_true", help="micro preset, 64x64, small batches (CPU)")
    p.add_argument("--rows", default="", help="comma-separated rows instead of the plan")
    p.add_argument("--deadline", type=float, default=470.0,
                   help="seconds for the whole run: a row is stopped at the deadline, and no row "
                        "starts with less than 30 s left (default 470: under 8 minutes)")
    p.add_argument("--iters", type=int, default=0, help="timed steps per row (default 20; smoke 2)")
    p.add_argument("--block", action="store_true", help=f"make {', '.join(ABSENT_ON_GPU)} unimportable")
    p.add_argument("--child", default="", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.block:
        _block_imports(ABSENT_ON_GPU)
    _ensure_config_dict()
    preset, size, bn_group = ("micro", (64, 64), 2) if args.smoke else ("w32", (192, 256), 16)
    iters = args.iters or (2 if args.smoke else 20)
    warmup = 1 if args.smoke else 3

    if args.child:
        kind, *rest = args.child.split(":")
        if kind == "peak":
            r = row_peak(args.smoke)
        elif kind == "inference":
            r = row_inference(rest[0], int(rest[1]), preset, size, iters, warmup)
        else:
            trace = os.path.join(args.out, "trace") if args.child == plan(args.smoke)[1] else None
            r = row_step(kind, rest[0], int(rest[1]), preset, size, bn_group, iters, warmup, trace)
        print("RESULT " + json.dumps(r), flush=True)
        return 0

    os.makedirs(args.out, exist_ok=True)
    out_path = os.path.join(args.out, "results.json")
    rows = args.rows.split(",") if args.rows else plan(args.smoke)
    results = {"started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
               "xla_flags": os.environ.get("XLA_FLAGS", ""), "rows": []}
    start = time.perf_counter()
    peak_tflops = None
    for row in rows:
        elapsed = time.perf_counter() - start
        left = args.deadline - elapsed
        if left < 30:
            results["rows"].append({"row": row, "skipped": f"deadline: {elapsed:.0f} s elapsed"})
        else:
            cmd = [sys.executable, os.path.abspath(__file__), "--out", args.out, "--child", row,
                   "--iters", str(iters)] + (["--smoke"] if args.smoke else []) + (
                       ["--block"] if args.block else [])
            t0 = time.perf_counter()
            try:
                proc = subprocess.run(cmd, capture_output=True, text=True, timeout=left)
                lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
                if lines:
                    r = json.loads(lines[-1][len("RESULT "):])
                else:
                    r = {"row": row, "error": (proc.stderr or proc.stdout)[-2000:]}
            except subprocess.TimeoutExpired:
                r = {"row": row, "error": f"stopped at the deadline after {left:.0f} s"}
            r["wall_s"] = time.perf_counter() - t0
            if row == "peak" and "tflops" in r:
                peak_tflops = r["tflops"]
            if peak_tflops and "tflops_achieved" in r:
                # MFU of the whole step (per device) against the matmul peak measured here
                r["mfu_vs_measured_peak"] = r["tflops_achieved"] / peak_tflops
            results["rows"].append(r)
        with open(out_path + ".tmp", "w") as f:
            json.dump(results, f, indent=1)
        os.replace(out_path + ".tmp", out_path)
        print(json.dumps(results["rows"][-1]), flush=True)
    return 0 if all("error" not in r for r in results["rows"]) else 1


if __name__ == "__main__":
    sys.exit(main())
