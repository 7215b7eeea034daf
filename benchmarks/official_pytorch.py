"""Side by side with the official PyTorch HRNet: same weights, same outputs, speed.

    python benchmarks/official_pytorch.py --hrnet-repo ~/src/deep-high-resolution-net.pytorch
    python benchmarks/official_pytorch.py --hrnet-repo REPO \
        --yaml experiments/coco/hrnet/w48_256x192_adam_lr1e-3.yaml --batch 16

Needs PyTorch and a checkout of leoxiaobin/deep-high-resolution-net.pytorch (its
``lib/models/pose_hrnet.py`` is imported from there; nothing of it is part of this
project).  Random weights at a trained network's scale are made in the official
layout and loaded into both networks (``load_state_dict(strict=True)`` on the PyTorch
side, ``weights.from_torch`` here); the heatmaps of the same images are compared in
eval and train mode, then both networks are timed in eval mode (PyTorch under
``torch.no_grad()``), alternating for ``--rounds`` rounds so that both see the same
machine load.
"""
from __future__ import annotations

import argparse
import importlib.util
import os
import statistics
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import forward  # noqa: E402  (this folder's JAX benchmark)


def official_model(repo: str, model_cfg: dict):
    path = os.path.join(repo, "lib", "models", "pose_hrnet.py")
    if not os.path.isfile(path):
        raise SystemExit(f"--hrnet-repo: {path} not found; point it at a checkout of "
                         "deep-high-resolution-net.pytorch")
    spec = importlib.util.spec_from_file_location("official_pose_hrnet", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.PoseHighResolutionNet({"MODEL": model_cfg})


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--hrnet-repo", required=True, help="checkout of deep-high-resolution-net.pytorch")
    p.add_argument("--yaml", default="experiments/coco/hrnet/w32_256x192_adam_lr1e-3.yaml",
                   help="official experiment yaml, relative to --hrnet-repo (default: COCO W32 256x192)")
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--iters", type=int, default=10, help="timed calls per round")
    p.add_argument("--rounds", type=int, default=2, help="alternating PyTorch/JAX rounds")
    args = p.parse_args(argv)

    import jax
    import torch
    import yaml

    from hrgan_jax import models, weights

    with open(os.path.join(args.hrnet_repo, args.yaml)) as f:
        model_cfg = yaml.safe_load(f)["MODEL"]
    width, height = model_cfg["IMAGE_SIZE"]
    cfg = models.config_from_official(model_cfg["EXTRA"], model_cfg["NUM_JOINTS"])
    state_dict = weights.trained_scale_state_dict(cfg)

    theirs = official_model(args.hrnet_repo, model_cfg)
    theirs.load_state_dict({k: torch.from_numpy(v) for k, v in state_dict.items()}, strict=True)
    ours = models.generator(cfg)
    variables = weights.from_torch(state_dict, cfg)

    images = np.random.default_rng(1).normal(size=(args.batch, 3, height, width)).astype(np.float32)
    x = images.transpose(0, 2, 3, 1)
    apply = jax.jit(ours.apply, static_argnames=("train", "mutable"))
    print(f"PyTorch {torch.__version__} ({torch.get_num_threads()} threads), jax {jax.__version__} "
          f"on {jax.devices()[0].device_kind}; {args.yaml}")
    with torch.no_grad():
        theirs.eval()
        ref = theirs(torch.from_numpy(images)).numpy()
        theirs.train()
        ref_train = theirs(torch.from_numpy(images)).numpy()
        theirs.eval()
    got = np.asarray(apply(variables, x)).transpose(0, 3, 1, 2)
    got_train = np.asarray(apply(variables, x, train=True, mutable="batch_stats")[0]).transpose(0, 3, 1, 2)
    for mode, a, b in (("eval", got, ref), ("train", got_train, ref_train)):
        err = np.linalg.norm(a - b) / np.linalg.norm(b)
        print(f"heatmaps, {mode} mode: relative error {err:.2e}")

    print(f"\nimages/s, {height}x{width}, batch {args.batch}, median of {args.iters}")
    for r in range(args.rounds):
        with torch.no_grad():
            t_in = torch.from_numpy(images)
            for _ in range(2):
                theirs(t_in)
            times = []
            for _ in range(args.iters):
                t0 = time.perf_counter()
                theirs(t_in)
                times.append(time.perf_counter() - t0)
        pt = args.batch / statistics.median(times)
        jx = {d: forward.bench("custom", d, args.batch, height, width, model_cfg["NUM_JOINTS"],
                               args.iters, 2, cfg=cfg)["ips"] for d in ("float32", "bfloat16")}
        print(f"round {r + 1}: official PyTorch float32 {pt:6.2f} | hrgan-jax float32 "
              f"{jx['float32']:6.2f}, bfloat16 {jx['bfloat16']:6.2f}", flush=True)


if __name__ == "__main__":
    main()
