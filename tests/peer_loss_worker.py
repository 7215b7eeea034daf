"""One process of the lost-process test (tests/test_faults.py).

    python tests/peer_loss_worker.py --process_id=0 --coordinator=localhost:PORT \
        --heartbeat_timeout_s=10

Joins a two-process job the way launch.py does (hrgan_jax.parallel.initialize, one CPU
device per process) and sums an array sharded over both processes (a gloo all-reduce,
as in every train step) every 0.1 s, printing each round, until it is killed or the
distributed runtime ends it.
"""
import argparse
import itertools
import os
import sys
import time

parser = argparse.ArgumentParser()
parser.add_argument("--process_id", type=int, required=True)
parser.add_argument("--coordinator", required=True)
parser.add_argument("--heartbeat_timeout_s", type=int, required=True)
args = parser.parse_args()
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from conftest import xla_flags  # noqa: E402  (imports JAX, which reads XLA_FLAGS later)

os.environ["XLA_FLAGS"] = xla_flags(1)

import jax  # noqa: E402
import numpy as np  # noqa: E402

from hrgan_jax import parallel  # noqa: E402

parallel.initialize(args.coordinator, 2, args.process_id, args.heartbeat_timeout_s)
mesh = parallel.make_mesh()
total = jax.jit(lambda x: x.sum(), out_shardings=parallel.replicated(mesh))
rows = parallel.global_batch({"x": np.full((1, 4), args.process_id + 1, np.float32)}, mesh)["x"]
total = total.lower(rows).compile()
parallel.barrier("compiled")
for i in itertools.count():
    value = float(parallel.to_host(total(rows)))
    print(f"process {args.process_id}: round {i}, sum {value}", flush=True)
    time.sleep(0.1)
