"""Train-step throughput, memory and model FLOPs utilisation: the HRGAN step and the
HRNet-only step (the baseline), one table.

    python benchmarks/train_step.py                          # W32, 256x192, batch 8 per device, float32
    python benchmarks/train_step.py --batch 64 --dtype bfloat16 --iters 20   # on a GPU
    python benchmarks/train_step.py --preset tiny --height 64 --width 64 --steps gan,hrnet
    python benchmarks/train_step.py --preset small --d-network micro --batch 16 --height 128 --width 96   # the demo's
    python benchmarks/train_step.py --dtype float32,bfloat16:none,bfloat16,bfloat16:head+d_input+stem+sums

A --dtype entry is model.dtype, optionally ':' and the mixed-precision policy under it
(model.float32: parts joined by '+', or 'none'; no ':' keeps the config's default).

Synthetic batches (uint8 images, random joints), so no dataset is needed.  The step is
the trainer's: jitted over a mesh of every device with the batch split on it and the
state donated.  Times are medians over --iters calls after --warmup calls (compilation
excluded), each ended with block_until_ready.  FLOPs and bytes accessed (GB/img) come
from XLA's cost analysis of the compiled step; MFU = FLOPs / time / the device's dense peak for the dtype (known
for recent NVIDIA GPUs; '-' elsewhere).  Memory: XLA's memory analysis of the program
(arguments + outputs + temporaries, per device), and the allocator's peak where the
backend reports one (GPU), else the host's peak resident set (CPU).
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax  # noqa: E402
import numpy as np  # noqa: E402

from benchmarks.forward import _mib, device_line, peak_memory  # noqa: E402
from hrgan_jax import parallel, state as state_lib, step as step_lib  # noqa: E402

# Dense (no sparsity) peak FLOP/s per device, by device_kind substring.
PEAK_FLOPS = {
    "H200": {"bfloat16": 989e12, "float32": 67e12},
    "H100": {"bfloat16": 989e12, "float32": 67e12},
    "A100": {"bfloat16": 312e12, "float32": 19.5e12},
    "L4": {"bfloat16": 121e12, "float32": 30e12},
    "V100": {"bfloat16": 125e12, "float32": 15.7e12},
}


def _peak(device, dtype: str) -> float | None:
    for name, peaks in PEAK_FLOPS.items():
        if name in device.device_kind:
            return peaks.get(dtype)
    return None


def make_config(preset: str, dtype: str, height: int, width: int, batch: int, adversarial: bool,
                d_network: str = ""):
    from hrgan_jax.configs.default import get_config
    config = get_config(preset)
    config.model.dtype, colon, parts = dtype.partition(":")
    if colon:  # model.float32 from the entry: 'none' or parts joined by '+'
        config.model.float32 = () if parts == "none" else tuple(parts.split("+"))
    config.data.image_size = (width, height)
    config.data.heatmap_size = (width // 4, height // 4)
    config.train.batch_size = batch
    config.adversarial.enabled = adversarial
    config.adversarial.d_network = d_network
    return config


def synthetic_batch(rng: np.random.Generator, batch: int, height: int, width: int, joints: int):
    return {"image": rng.integers(0, 256, (batch, height, width, 3), dtype=np.uint8),
            "joints": rng.uniform([0, 0], [width, height], (batch, joints, 2)).astype(np.float32),
            "joints_vis": np.ones((batch, joints), np.float32)}


def bench(preset: str, dtype: str, per_device: int, height: int, width: int, adversarial: bool,
          iters: int, warmup: int, d_network: str = "") -> dict:
    mesh = parallel.make_mesh()
    global_batch = per_device * mesh.devices.size
    config = make_config(preset, dtype, height, width, global_batch, adversarial, d_network)
    g_tx, d_tx, g_lr, d_lr = state_lib.optimizers(config, steps_per_epoch=1000)
    # Weights at a trained network's scale, made in numpy (no Flax init to compile).
    state = state_lib.at_trained_scale(config, g_tx, d_tx)
    state = parallel.replicate(state, mesh)
    rep = parallel.replicated(mesh)
    step = jax.jit(step_lib.make_train_step(config, g_tx, d_tx, g_lr, d_lr),
                   in_shardings=(rep, parallel.data_sharded(mesh)), out_shardings=(rep, rep),
                   donate_argnums=0)
    rng = np.random.default_rng(0)
    host = synthetic_batch(rng, global_batch // jax.process_count(), height, width,
                           int(config.model.num_joints))
    batch = parallel.global_batch(host, mesh)
    compiled = step.lower(state, batch).compile()
    cost = compiled.cost_analysis()
    cost = cost[0] if isinstance(cost, (list, tuple)) else cost
    flops = float(cost.get("flops", 0.0)) if cost else 0.0
    bytes_accessed = float(cost.get("bytes accessed", 0.0)) if cost else 0.0
    analysis = compiled.memory_analysis()
    program = None
    if analysis is not None:
        program = (analysis.argument_size_in_bytes + analysis.output_size_in_bytes
                   + analysis.temp_size_in_bytes)
    for _ in range(warmup):
        state, metrics = compiled(state, batch)
    jax.block_until_ready(state)
    times = []
    for _ in range(iters):
        t0 = time.perf_counter()
        state, metrics = compiled(state, batch)
        jax.block_until_ready((state, metrics))
        times.append(time.perf_counter() - t0)
    median = statistics.median(times)
    device = jax.devices()[0]
    peak, peak_kind = peak_memory()
    # cost_analysis is of the per-device program: scale by the devices to get the step's FLOPs.
    step_flops = flops * mesh.devices.size
    peak_flops = _peak(device, config.model.dtype)
    mfu = (step_flops / median / (peak_flops * mesh.devices.size)) if peak_flops and flops else None
    return dict(step="hrgan" if adversarial else "hrnet", dtype=dtype, batch=global_batch,
                ms=median * 1e3, ips=global_batch / median, gflop_per_image=step_flops / global_batch / 1e9,
                gb_per_image=bytes_accessed * mesh.devices.size / global_batch / 1e9,
                mfu=mfu, program=program, program_per_image=(program or 0) / per_device,
                peak=peak, peak_kind=peak_kind, finite=bool(np.asarray(metrics["finite"]) > 0))


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--preset", default="w32", help="network preset: w32, w48, small, tiny, micro (default w32)")
    p.add_argument("--d-network", default="", help="D's preset (config.adversarial.d_network; "
                   "default: the same as --preset)")
    p.add_argument("--batch", type=int, default=8, help="images per device (default 8)")
    p.add_argument("--dtype", default="float32", help="compute dtype(s), comma-separated: float32, bfloat16, bfloat16:POLICY (see above)")
    p.add_argument("--steps", default="hrgan,hrnet", help="which steps: hrgan, hrnet (default both)")
    p.add_argument("--height", type=int, default=256)
    p.add_argument("--width", type=int, default=192)
    p.add_argument("--iters", type=int, default=5, help="timed steps (default 5)")
    p.add_argument("--warmup", type=int, default=2, help="untimed steps after compiling (default 2)")
    args = p.parse_args(argv)

    print(device_line())
    width = max(9, *(len(d.strip()) for d in args.dtype.split(",")))
    d = f" (D: {args.d_network})" if args.d_network else ""
    print(f"HRNet-{args.preset.upper()}{d} train step, {args.height}x{args.width}, "
          f"{args.batch} per device, median of {args.iters}")
    header = (f"{'step':<6} {'dtype':<{width}} {'batch':>5} {'ms/step':>9} {'images/s':>9} "
              f"{'GFLOP/img':>9} {'GB/img':>7} {'MFU':>6} {'program mem':>12} {'per image':>10}  peak mem")
    print(header)
    print("-" * len(header))
    for which in args.steps.split(","):
        for dtype in args.dtype.split(","):
            r = bench(args.preset, dtype.strip(), args.batch, args.height, args.width,
                      which.strip() == "hrgan", args.iters, args.warmup, args.d_network)
            mfu = "-" if r["mfu"] is None else f"{100 * r['mfu']:.1f}%"
            print(f"{r['step']:<6} {r['dtype']:<{width}} {r['batch']:>5} {r['ms']:>9.1f} {r['ips']:>9.1f} "
                  f"{r['gflop_per_image']:>9.2f} {r['gb_per_image']:>7.3f} {mfu:>6} {_mib(r['program']):>12} "
                  f"{_mib(r['program_per_image']):>10}  {_mib(r['peak'])} ({r['peak_kind']})"
                  + ("" if r["finite"] else "  NON-FINITE"), flush=True)


if __name__ == "__main__":
    main()
