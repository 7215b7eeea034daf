"""The train step's memory as XLA plans it, compiled for this CPU (no GPU needed): the
COCO config's step (W32, 256x192, bfloat16 under model.float32's policy) at a
per-device batch, as one device runs it (the state as one buffer per dtype, donated).

    nice -n 10 python benchmarks/step_memory.py --batch 64            # HRGAN step
    nice -n 10 python benchmarks/step_memory.py --batch 64 --steps hrnet

Prints compiled.memory_analysis(): arguments (the state and the batch), outputs,
temporaries (activations kept for the backward, workspace) and their sum (aliased
(donated) bytes counted once).  A GPU's XLA plans its own buffers (other fusions, cuDNN
workspaces): read the CPU figure as an estimate of the GPU's, not a measurement.
"""
from __future__ import annotations

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax  # noqa: E402
import numpy as np  # noqa: E402

from hrgan_jax import parallel, state as state_lib, step as step_lib  # noqa: E402


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--batch", type=int, default=64, help="images per device")
    p.add_argument("--steps", default="hrgan", choices=("hrgan", "hrnet"))
    p.add_argument("--dtype", default="", help="model.dtype (default: the config's)")
    args = p.parse_args(argv)

    from hrgan_jax.configs import coco_w32_256x192
    config = coco_w32_256x192.get_config("hrgan" if args.steps == "hrgan" else "hrnet")
    config.train.batch_size = args.batch
    config.model.bn_group = min(config.model.bn_group, args.batch)
    if args.dtype:
        config.model.dtype = args.dtype
    g_tx, d_tx, g_lr, d_lr = state_lib.optimizers(config, steps_per_epoch=1000)
    state = state_lib.abstract(config, g_tx, d_tx)
    layout = state_lib.FlatLayout(state)
    buffers = jax.eval_shape(layout.ravel, state)
    (w, h), j = config.data.image_size, config.model.num_joints
    batch = {"image": jax.ShapeDtypeStruct((args.batch, h, w, 3), np.uint8),
             "joints": jax.ShapeDtypeStruct((args.batch, j, 2), np.float32),
             "joints_vis": jax.ShapeDtypeStruct((args.batch, j), np.float32)}
    mesh = parallel.make_mesh(jax.devices()[:1])
    rep = parallel.replicated(mesh)
    step = jax.jit(layout.step(step_lib.make_train_step(config, g_tx, d_tx, g_lr, d_lr)),
                   in_shardings=(rep, parallel.data_sharded(mesh)), out_shardings=(rep, rep),
                   donate_argnums=0)
    t0 = time.perf_counter()
    compiled = step.trace(buffers, batch).lower().compile()
    m = compiled.memory_analysis()
    gib = 2.0 ** 30
    total = (m.argument_size_in_bytes + m.output_size_in_bytes + m.temp_size_in_bytes
             - m.alias_size_in_bytes)
    print(f"{args.steps} step, W32 256x192, {config.model.dtype} (float32 parts: "
          f"{', '.join(config.model.float32)}), {args.batch} images per device, bn_group "
          f"{config.model.bn_group}; compiled for {jax.devices()[0].platform} in "
          f"{time.perf_counter() - t0:.0f} s")
    print(f"arguments {m.argument_size_in_bytes / gib:.2f} GiB, outputs "
          f"{m.output_size_in_bytes / gib:.2f} GiB (aliased {m.alias_size_in_bytes / gib:.2f}), "
          f"temporaries {m.temp_size_in_bytes / gib:.2f} GiB, generated code "
          f"{m.generated_code_size_in_bytes / 2 ** 20:.1f} MiB; total {total / gib:.2f} GiB "
          f"(H100 80 GB: {total / 80e9:.0%}, H200 141 GB: {total / 141e9:.0%})")


if __name__ == "__main__":
    main()
