"""Collectives in the compiled train step: all-reduce (and other) ops in the HLO that
XLA compiles for a mesh of fake CPU devices (issue 13: 991 all-reduces with synchronised
BatchNorm for the tiny preset at 128x96, 4 images per device on 8 devices).

    python benchmarks/collectives.py --bn-group 4                # GAN step
    python benchmarks/collectives.py --bn-group 0 --step hrnet

Compiles only (no step runs); a few minutes on a 2-core CPU.
"""
from __future__ import annotations

import argparse
import collections
import os
import re
import sys
import time

N_DEVICES = 8
if "xla_force_host_platform_device_count" not in os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "")
                               + f" --xla_force_host_platform_device_count={N_DEVICES}").strip()
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax  # noqa: E402
import numpy as np  # noqa: E402

from hrgan_jax import parallel, state as state_lib, step as step_lib  # noqa: E402

COLLECTIVES = r"\b(all-reduce|all-reduce-start|all-gather|all-gather-start|collective-permute|all-to-all|reduce-scatter)\("


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--bn-group", type=int, default=4)
    p.add_argument("--step", default="gan", choices=("gan", "hrnet"))
    p.add_argument("--per-device", type=int, default=4)
    p.add_argument("--preset", default="tiny")
    args = p.parse_args(argv)
    from hrgan_jax.configs.default import get_config
    config = get_config(args.preset)
    config.data.image_size, config.data.heatmap_size = (96, 128), (24, 32)
    config.model.bn_group = args.bn_group
    config.adversarial.enabled = args.step == "gan"
    mesh = parallel.make_mesh()
    batch = args.per_device * mesh.devices.size
    config.train.batch_size = batch
    parallel.check_batch_size(batch, mesh, args.bn_group)
    g_tx, d_tx, g_lr, d_lr = state_lib.optimizers(config, 100)
    rep, ds = parallel.replicated(mesh), parallel.data_sharded(mesh)
    state = jax.tree.map(lambda s: jax.ShapeDtypeStruct(s.shape, s.dtype, sharding=rep),
                         state_lib.abstract(config, g_tx, d_tx))
    j = config.model.num_joints
    host = {"image": ((batch, 128, 96, 3), np.uint8), "joints": ((batch, j, 2), np.float32),
            "joints_vis": ((batch, j), np.float32)}
    spec = {k: jax.ShapeDtypeStruct(s, d, sharding=ds) for k, (s, d) in host.items()}
    f = jax.jit(step_lib.make_train_step(config, g_tx, d_tx, g_lr, d_lr),
                in_shardings=(rep, ds), out_shardings=(rep, rep))
    t0 = time.perf_counter()
    text = f.lower(state, spec).compile().as_text()
    counts = collections.Counter(re.findall(COLLECTIVES, text))
    print(f"{args.step} step, {args.preset}, 128x96, {args.per_device} per device on "
          f"{mesh.devices.size} devices, bn_group {args.bn_group}: {dict(counts) or 'no collectives'} "
          f"(compiled in {time.perf_counter() - t0:.0f} s)")


if __name__ == "__main__":
    main()
