"""Host-side cost of launching the train step: how long a jitted call over the whole
GANState takes to return (asynchronous dispatch), with a program that does almost no
work, so the time is the host's argument and result handling of the state's leaves.

    python benchmarks/dispatch.py                 # W32 (~5,500 state leaves), 1 device
    python benchmarks/dispatch.py --preset tiny

It also times the same call with the state flattened to one buffer per dtype, the
alternative if dispatch were a noticeable part of a GPU step (10% of a 43 ms step,
1500 images/s at 64 per device, is 4.3 ms).
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402


def _state(preset: str):
    from hrgan_jax.configs.default import get_config
    from hrgan_jax import state as state_lib
    config = get_config(preset)
    g_tx, d_tx, _, _ = state_lib.optimizers(config, steps_per_epoch=1000)
    return jax.device_put(state_lib.at_trained_scale(config, g_tx, d_tx))


def _median_call(f, x, iters: int) -> tuple[float, float]:
    """Median times for ``f(x)`` to return and to finish; each call takes the last output
    (x may be donated)."""
    x = f(x)
    jax.block_until_ready(x)
    returned, finished = [], []
    for _ in range(iters):
        t0 = time.perf_counter()
        x = f(x)
        returned.append(time.perf_counter() - t0)
        jax.block_until_ready(x)
        finished.append(time.perf_counter() - t0)
    return statistics.median(returned), statistics.median(finished)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--preset", default="w32")
    p.add_argument("--iters", type=int, default=50)
    args = p.parse_args(argv)
    state = _state(args.preset)
    leaves = jax.tree.leaves(state)
    n_leaves, n_values = len(leaves), sum(x.size for x in leaves)

    # The same leaves as one flat buffer per dtype.
    flat = {str(d): jnp.concatenate([jnp.ravel(x) for x in leaves if x.dtype == d])
            for d in {x.dtype for x in leaves}}
    flat_fn = jax.jit(lambda f: {k: v.at[0].add(1) for k, v in f.items()}, donate_argnums=0)

    # The step's shape of call: the state in (donated), every leaf out, updated in place
    # (one element each, so the device work is negligible and the time is the host's).
    def tree_step(state):
        return jax.tree.map(lambda x: x.at[(0,) * x.ndim].add(1) if x.ndim else x + 1, state)

    rows = []
    reads = jax.jit(lambda state: state.step + 1)  # every leaf in, one scalar out
    returned, finished = [], []
    for _ in range(args.iters + 1):
        t0 = time.perf_counter()
        out = reads(state)
        returned.append(time.perf_counter() - t0)
        out.block_until_ready()
        finished.append(time.perf_counter() - t0)
    rows.append(("state as a pytree in, a scalar out", statistics.median(returned[1:]),
                 statistics.median(finished[1:])))
    for name, fn, x in (("state as a pytree, donated", jax.jit(tree_step, donate_argnums=0), state),
                        ("state as a pytree, not donated", jax.jit(tree_step), None),
                        (f"state flattened to {len(flat)} buffers, donated", flat_fn, flat)):
        if x is None:  # the donated run consumed the state: make it again
            x = _state(args.preset)
        rows.append((name,) + _median_call(fn, x, args.iters))
        del x
    print(f"{jax.devices()[0].device_kind}, jax {jax.__version__}")
    print(f"{args.preset}: {n_leaves} state leaves, {n_values / 1e6:.1f}M values")
    for name, returned, finished in rows:
        print(f"{name}: call returns after {returned * 1e3:.3f} ms "
              f"({returned / n_leaves * 1e6:.2f} us per state leaf), finished after "
              f"{finished * 1e3:.3f} ms")
    print(f"median of {args.iters}, returns of the call (asynchronous dispatch), "
          f"load: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
