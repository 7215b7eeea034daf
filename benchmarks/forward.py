"""Generator inference throughput and memory: images/s and peak memory, one table.

    python benchmarks/forward.py                              # W32, 256x192, batch 8, float32
    python benchmarks/forward.py --dtype bfloat16 --batch 32
    python benchmarks/forward.py --dtype float32,bfloat16 --preset w48

Times a jitted ``g.apply(variables, images, train=False)`` on whatever device JAX
sees, after warm-up (compilation excluded), each call ended with block_until_ready;
reports the median over ``--iters`` calls.  Weights are random at the scale of a
trained network (see ``trained_scale_state_dict``).  Memory: the compiled program's arguments +
outputs + temporaries (XLA's memory analysis), and the device allocator's peak where
the backend reports one (GPU), else the process's peak resident set (CPU).
"""
from __future__ import annotations

import argparse
import os
import resource
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402

from hrgan_jax import models, weights  # noqa: E402


def _mib(n: float | None) -> str:
    return "-" if n is None else f"{n / 2**20:,.0f} MiB"


def device_line() -> str:
    dev = jax.devices()[0]
    return (f"device: {dev.platform} {dev.device_kind} x{jax.device_count()}, jax {jax.__version__}, "
            f"{os.cpu_count()} host cores")


def peak_memory() -> tuple[int, str]:
    """The device allocator's peak where the backend reports one, else the host's peak RSS."""
    stats = jax.devices()[0].memory_stats() or {}
    if "peak_bytes_in_use" in stats:
        return stats["peak_bytes_in_use"], "device peak"
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024, "host RSS peak"


def bench(preset: str, dtype: str, batch: int, height: int, width: int, joints: int,
          iters: int, warmup: int, cfg=None) -> dict:
    """Times one network config; ``cfg`` (a network ConfigDict) replaces the preset."""
    if cfg is None:
        cfg = models.hrnet_config(preset, num_joints=joints, dtype=dtype)
    else:
        cfg = cfg.copy_and_resolve_references()
        cfg.dtype = dtype
    net = models.generator(cfg)
    images = jax.random.normal(jax.random.PRNGKey(0), (batch, height, width, 3), jnp.float32)
    variables = weights.from_torch(weights.trained_scale_state_dict(cfg), cfg)
    forward = jax.jit(lambda v, x: net.apply(v, x, train=False))
    compiled = forward.lower(variables, images).compile()
    analysis = compiled.memory_analysis()
    program_bytes = None
    if analysis is not None:
        program_bytes = (analysis.argument_size_in_bytes + analysis.output_size_in_bytes
                         + analysis.temp_size_in_bytes)
    for _ in range(warmup):
        compiled(variables, images).block_until_ready()
    times = []
    for _ in range(iters):
        t0 = time.perf_counter()
        compiled(variables, images).block_until_ready()
        times.append(time.perf_counter() - t0)
    median = statistics.median(times)
    peak, peak_kind = peak_memory()
    return dict(preset=preset, dtype=dtype, batch=batch, ms=median * 1e3,
                ips=batch / median, program=program_bytes, peak=peak, peak_kind=peak_kind)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--preset", default="w32", help="w32, w48, small, tiny or micro (default w32)")
    p.add_argument("--batch", type=int, default=8, help="images per call (default 8)")
    p.add_argument("--dtype", default="float32",
                   help="compute dtype(s), comma-separated: float32, bfloat16 (default float32)")
    p.add_argument("--height", type=int, default=256)
    p.add_argument("--width", type=int, default=192)
    p.add_argument("--joints", type=int, default=17)
    p.add_argument("--iters", type=int, default=10, help="timed calls (default 10)")
    p.add_argument("--warmup", type=int, default=2, help="untimed calls after compiling (default 2)")
    args = p.parse_args(argv)

    print(device_line())
    print(f"HRNet-{args.preset.upper()} inference, {args.height}x{args.width}, median of {args.iters}")
    header = f"{'dtype':<9} {'batch':>5} {'ms/batch':>10} {'images/s':>9} {'program mem':>12}  peak mem"
    print(header)
    print("-" * len(header))
    for dtype in args.dtype.split(","):
        r = bench(args.preset, dtype.strip(), args.batch, args.height, args.width, args.joints,
                  args.iters, args.warmup)
        print(f"{r['dtype']:<9} {r['batch']:>5} {r['ms']:>10.1f} {r['ips']:>9.2f} "
              f"{_mib(r['program']):>12}  {_mib(r['peak'])} ({r['peak_kind']})", flush=True)


if __name__ == "__main__":
    main()
