"""The cost of checkpoint integrity (hrgan_jax/checkpoints.py): the CRC-32 of every array
computed on save (``array_checksums``) and verified on restore (``_verify``), for the
train state of the COCO W32 config (G, D and both optimisers' moments), built on the
CPU; with one orbax save and restore of the same state to a local directory beside it
for scale.  Prints the median of --repeats runs.

    python benchmarks/checksums.py --repeats 5
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax  # noqa: E402

from hrgan_jax.configs import coco_w32_256x192  # noqa: E402
from hrgan_jax import checkpoints, parallel, state as state_lib  # noqa: E402


def _median(f, repeats: int) -> tuple[float, list[float]]:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        f()
        times.append(time.perf_counter() - start)
    return statistics.median(times), times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--dir", default=None, help="where the save goes (default: a temp dir)")
    args = parser.parse_args()
    config = coco_w32_256x192.get_config()
    mesh = parallel.make_mesh(jax.devices()[:1])
    g_tx, d_tx, _, _ = state_lib.optimizers(config, steps_per_epoch=1)
    state = jax.block_until_ready(parallel.replicate(state_lib.create(config, g_tx, d_tx), mesh))
    leaves = jax.tree.leaves(state)
    size = sum(x.nbytes for x in leaves)
    print(f"W32 train state: {len(leaves)} arrays, {size / 1e6:.0f} MB; {os.cpu_count()} CPUs, "
          f"load {os.getloadavg()[0]:.1f}")
    crc, crcs = _median(lambda: checkpoints.array_checksums(state), args.repeats)
    print(f"array_checksums (save): median {crc:.3f} s of {[round(t, 3) for t in crcs]} "
          f"({size / 1e9 / crc:.2f} GB/s)")
    with tempfile.TemporaryDirectory(dir=args.dir) as where:
        ckpt = checkpoints.Checkpoints(where, every_steps=1, keep=1, async_save=False)
        start = time.perf_counter()
        ckpt.save(1, state, {"step": 1}, force=True)
        ckpt.wait()
        saved = time.perf_counter() - start
        saved_sums = {"meta": checkpoints._meta_checksum({"step": 1, "checksums": "crc32"}),
                      "arrays": checkpoints.array_checksums(state)}
        verify, verifies = _median(lambda: checkpoints._verify(
            where, state, {"step": 1, "checksums": "crc32"}, saved_sums), args.repeats)
        print(f"_verify (restore): median {verify:.3f} s of {[round(t, 3) for t in verifies]}")
        target = state_lib.abstract_state(config, g_tx, d_tx, mesh)
        start = time.perf_counter()
        ckpt.restore(1, target)  # verifies too
        restored = time.perf_counter() - start
        ckpt.close()
    print(f"for scale, once: orbax save with checksums {saved:.2f} s (checksums ~{crc / saved:.0%}"
          f" of it), restore with verification {restored:.2f} s (~{verify / restored:.0%})")


if __name__ == "__main__":
    main()
