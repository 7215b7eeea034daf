"""One process of the multi-process train-step test (tests/test_multiprocess.py).

    python tests/multiprocess_worker.py --devices=2 --num_processes=2 --process_id=0 \
        --coordinator=localhost:PORT --steps=3 --out=state.npz

Runs ``steps`` GAN train steps of the micro config on a mesh over every device of every
process, each process feeding its rows of the same global batches; process 0 writes
the final state's leaves to ``out``.
"""
import argparse
import os
import sys

parser = argparse.ArgumentParser()
parser.add_argument("--devices", type=int, required=True, help="fake CPU devices in this process")
parser.add_argument("--num_processes", type=int, default=1)
parser.add_argument("--process_id", type=int, default=0)
parser.add_argument("--coordinator", default=None)
parser.add_argument("--steps", type=int, default=3)
parser.add_argument("--out", required=True)
args = parser.parse_args()
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from conftest import xla_flags  # noqa: E402  (imports JAX, which reads XLA_FLAGS later)

os.environ["XLA_FLAGS"] = xla_flags(args.devices)

import jax  # noqa: E402
import numpy as np  # noqa: E402

from hrgan_jax import parallel, state as state_lib, step as step_lib  # noqa: E402

if args.num_processes > 1:
    parallel.initialize(args.coordinator, args.num_processes, args.process_id)
from conftest import random_batch, train_config, trained_scale_start  # noqa: E402

# Small learning rates: RMSprop's and Adam's first updates are +-lr-sized whatever the
# gradient's size, so gradients at float32-rounding level (which two correct reduction
# orders disagree on) would otherwise decide whole updates and the runs would part ways.
config = train_config(**{"optim.g_lr": 1e-6, "optim.d_lr": 1e-6})
g_tx, d_tx, g_lr, d_lr = state_lib.optimizers(config, steps_per_epoch=2)
mesh = parallel.make_mesh()
assert mesh.devices.size == args.devices * args.num_processes
rep = parallel.replicated(mesh)
train_step = jax.jit(step_lib.make_train_step(config, g_tx, d_tx, g_lr, d_lr),
                     in_shardings=(rep, parallel.data_sharded(mesh)), out_shardings=(rep, rep),
                     donate_argnums=0)
state = parallel.replicate(trained_scale_start(config, g_tx, d_tx), mesh)
per_process = config.train.batch_size // jax.process_count()
rows = slice(jax.process_index() * per_process, (jax.process_index() + 1) * per_process)
batches = [parallel.global_batch({k: v[rows] for k, v in random_batch(i, config.train.batch_size).items()},
                                 mesh) for i in range(args.steps)]
train_step = train_step.lower(state, batches[0]).compile()
parallel.barrier("compiled")
out = {}
for i, batch in enumerate(batches):
    state, metrics = train_step(state, batch)
    out.update({f"metric{i}/{k}": v for k, v in parallel.to_host(metrics).items()})
state = parallel.to_host(state)
for field in ("g_params", "g_stats", "g_opt", "d_params", "d_stats", "d_opt", "k", "step"):
    out[field] = np.concatenate([np.ravel(np.asarray(x, np.float64))
                                 for x in jax.tree.leaves(getattr(state, field))])
if jax.process_index() == 0:
    np.savez(args.out, **out)
print(f"process {jax.process_index()}: done, k = {float(state.k)}", flush=True)
