"""hrgan-jax command line.

Modes:
  export  Write network weights in the official PyTorch layout (.safetensors, .npz, or
          .pth when torch is installed).  With --weights, the file is read (official
          .pth/.safetensors/.npz, `module.` prefixes stripped), checked key by key
          against the configured network and written back out; without it, a freshly
          initialised network (seed --config.seed) is written.
  check   Read a weights file and check it against the configured network: prints what
          fits, and every missing, unexpected or mis-shaped key.  Exit code 1 on mismatch.

Examples:
  python launch.py export --config=configs/default.py:w32 --out=/tmp/g.safetensors
  python launch.py export --weights=pose_hrnet_w32_256x192.pth --out=g.safetensors
  python launch.py check --config=configs/default.py:w48 --weights=g.safetensors --net=generator
  python launch.py export --config=configs/default.py --config.model.num_joints=16 --out=mpii.npz
"""
from __future__ import annotations

import os
import sys

from absl import app, flags, logging
from ml_collections import config_flags

MODES = ("export", "check")

config_flags.DEFINE_config_file("config", os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                                       "configs", "default.py"),
                                "Config file (':' then a preset: w32, w48, tiny); override any "
                                "field with --config.<path>=<value>.", lock_config=True)
flags.DEFINE_enum("net", "generator", ["generator", "discriminator"], "Which network.")
flags.DEFINE_string("weights", None, "Official-layout weights to read (.pth, .safetensors, .npz).")
flags.DEFINE_string("out", None, "export: the file to write (.safetensors, .npz or .pth).")
FLAGS = flags.FLAGS


def _mode(argv) -> str:
    if len(argv) != 2 or argv[1] not in MODES:
        raise app.UsageError(f"give exactly one mode: {' | '.join(MODES)} (see --help)")
    return argv[1]


def export(config, net: str, weights_path: str | None, out: str) -> None:
    import jax

    from hrgan_jax import models, weights
    if weights_path:
        variables = weights.from_torch(weights.load_file(weights_path), config.model, net,
                                       what=weights_path)
        source = weights_path
    else:
        module, sample = models.network(config.model, net)
        variables = models.init(module, jax.random.PRNGKey(config.seed), sample)
        source = f"a fresh initialisation (seed {config.seed})"
    state_dict = weights.to_torch(variables, config.model, net)
    weights.save_file(state_dict, out)
    count = sum(v.size for k, v in state_dict.items() if "running_" not in k)
    print(f"wrote {out}: {net} from {source}, {len(state_dict)} tensors, {count:,} parameters")


def check(config, net: str, weights_path: str) -> int:
    from hrgan_jax import weights
    state_dict = weights.load_file(weights_path)
    try:
        weights.from_torch(state_dict, config.model, net, what=weights_path)
    except weights.WeightsMismatchError as e:
        print(e)
        return 1
    count = sum(v.size for k, v in state_dict.items() if "running_" not in k)
    print(f"{weights_path}: fits the {net} ({len(state_dict)} tensors, {count:,} parameters)")
    return 0


def main(argv) -> None:
    mode = _mode(argv)
    logging.set_verbosity(logging.WARNING)  # absl's INFO default echoes JAX's backend probing
    config = FLAGS.config
    if mode == "export":
        if not FLAGS.out:
            raise app.UsageError("export needs --out")
        export(config, FLAGS.net, FLAGS.weights, FLAGS.out)
    elif mode == "check":
        if not FLAGS.weights:
            raise app.UsageError("check needs --weights")
        sys.exit(check(config, FLAGS.net, FLAGS.weights))


if __name__ == "__main__":
    app.run(main)
