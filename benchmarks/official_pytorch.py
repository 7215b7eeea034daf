"""Side by side with the official PyTorch HRNet: same weights, same outputs, speed.

    python benchmarks/official_pytorch.py --hrnet-repo ~/src/deep-high-resolution-net.pytorch
    python benchmarks/official_pytorch.py --hrnet-repo REPO \
        --yaml experiments/coco/hrnet/w48_256x192_adam_lr1e-3.yaml --batch 16

Needs PyTorch and a checkout of leoxiaobin/deep-high-resolution-net.pytorch (its
``lib/models/pose_hrnet.py`` is imported from there; nothing of it is part of this
project).  Random weights at a trained network's scale are made in the official
layout and loaded into both networks (``load_state_dict(strict=True)`` on the PyTorch
side, ``weights.from_torch`` here); the heatmaps of the same images are compared in
eval and train mode.  Then one forward pass in eval mode (no flip test) of every
runtime is timed, one after the other within each of ``--rounds`` rounds (each round
starting with the next runtime), so that all see the same machine load; the table gives each runtime's median over rounds of the
per-round median images/s, its ratio to PyTorch and its heatmaps' relative error:

    official PyTorch float32   the official module under torch.no_grad(), float input
    JAX float32 / bfloat16     hrgan-jax's generator, jitted, float input
    JAX folded float32         the same with BatchNorm folded into the convs
    ONNX Runtime               export's generator_heatmaps.onnx (uint8 crops in)
    TF SavedModel              export's SavedModel, heatmaps only (uint8 crops in)

The exported runtimes take uint8 crops and normalise them inside (the others get the
normalised floats): they do a little more work than the rest.  A runtime whose package
is missing (onnxruntime/jax2onnx, tensorflow) is left out with a note.
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


def official_model(repo: str, model_cfg: dict):
    path = os.path.join(repo, "lib", "models", "pose_hrnet.py")
    if not os.path.isfile(path):
        raise SystemExit(f"--hrnet-repo: {path} not found; point it at a checkout of "
                         "deep-high-resolution-net.pytorch")
    spec = importlib.util.spec_from_file_location("official_pose_hrnet", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.PoseHighResolutionNet({"MODEL": model_cfg})


def _timed(fn, arg, iters: int, warmup: int = 2) -> float:
    """Median seconds of ``iters`` calls of fn(arg) after ``warmup`` calls."""
    for _ in range(warmup):
        fn(arg)
    times = []
    for _ in range(iters):
        t0 = time.perf_counter()
        fn(arg)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def runtimes(cfg, variables, images_u8: np.ndarray, tmp: str):
    """{name: (callable, its input, heatmaps as NCHW numpy from it)} for this project's
    runtimes; missing packages print a note and are skipped."""
    import jax
    import ml_collections

    from hrgan_jax import images, inference, models, weights

    _, _, height, width = images_u8.transpose(0, 3, 1, 2).shape
    config = ml_collections.ConfigDict({"model": cfg, "data": {"image_size": (width, height),
                                        "heatmap_size": (width // 4, height // 4),
                                        "name": "coco"},
                                        "eval": {"flip_test": False, "shift_heatmap": True,
                                                 "post_process": True, "decode": "official"}})
    x = np.asarray(images.normalize_images(images_u8))
    out = {}
    for dtype in ("float32", "bfloat16"):
        c = cfg.copy_and_resolve_references()
        c.dtype = dtype
        net = models.generator(c)
        f = jax.jit(lambda v, x, net=net: net.apply(v, x, train=False))
        out[f"JAX {dtype}"] = (lambda x, f=f: jax.block_until_ready(f(variables, x)), x,
                               lambda x, f=f: np.asarray(f(variables, x)))
    folded = weights.fold_batch_norm(variables, cfg)
    f = jax.jit(inference.apply_fn(config, folded=True))
    out["JAX folded float32"] = (lambda x: jax.block_until_ready(f(folded, x)), x,
                                 lambda x: np.asarray(f(folded, x)))
    from hrgan_jax import onnx_export
    missing = onnx_export.available()
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        missing = missing or "onnxruntime is not installed"
    if missing:
        print(f"ONNX Runtime left out: {missing}")
    else:
        t0 = time.perf_counter()
        path = onnx_export.write(config, variables, os.path.join(tmp, onnx_export.HEATMAPS_NAME),
                                 heatmaps_only=True)
        run = onnx_export.session_fn(path)
        print(f"exported {path} in {time.perf_counter() - t0:.0f} s")
        out["ONNX Runtime (exported)"] = (run, images_u8, lambda x: run(x)["heatmaps"])
    try:
        import tensorflow as tf
    except ImportError:
        print("TF SavedModel left out: tensorflow is not installed")
    else:
        from hrgan_jax import saved_model
        tf.config.set_visible_devices([], "GPU")
        t0 = time.perf_counter()
        path = saved_model.write(config, variables, os.path.join(tmp, "savedmodel"),
                                 heatmaps_only=True)
        run_tf = saved_model.session_fn(path)
        print(f"exported {path} in {time.perf_counter() - t0:.0f} s")
        out["TF SavedModel (exported)"] = (run_tf, images_u8, lambda x: run_tf(x)["heatmaps"])
    return {k: (fn, arg, lambda a=arg, g=get: g(a).transpose(0, 3, 1, 2))
            for k, (fn, arg, get) in out.items()}


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--hrnet-repo", required=True, help="checkout of deep-high-resolution-net.pytorch")
    p.add_argument("--yaml", default="experiments/coco/hrnet/w32_256x192_adam_lr1e-3.yaml",
                   help="official experiment yaml, relative to --hrnet-repo (default: COCO W32 256x192)")
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--iters", type=int, default=10, help="timed calls per round")
    p.add_argument("--rounds", type=int, default=2, help="rounds, every runtime once in each")
    args = p.parse_args(argv)

    import tempfile

    import jax
    import torch
    import yaml

    from hrgan_jax import models, weights
    from hrgan_jax.images import normalize_images

    with open(os.path.join(args.hrnet_repo, args.yaml)) as f:
        model_cfg = yaml.safe_load(f)["MODEL"]
    width, height = model_cfg["IMAGE_SIZE"]
    cfg = models.config_from_official(model_cfg["EXTRA"], model_cfg["NUM_JOINTS"])
    state_dict = weights.trained_scale_state_dict(cfg)

    theirs = official_model(args.hrnet_repo, model_cfg)
    theirs.load_state_dict({k: torch.from_numpy(v) for k, v in state_dict.items()}, strict=True)
    ours = models.generator(cfg)
    variables = weights.from_torch(state_dict, cfg)

    images_u8 = np.random.default_rng(1).integers(0, 256, (args.batch, height, width, 3),
                                                  dtype=np.uint8)
    x = np.asarray(normalize_images(images_u8))  # NHWC float32
    images = np.ascontiguousarray(x.transpose(0, 3, 1, 2))  # NCHW for PyTorch
    apply = jax.jit(ours.apply, static_argnames=("train", "mutable"))
    print(f"PyTorch {torch.__version__} ({torch.get_num_threads()} threads), jax {jax.__version__} "
          f"on {jax.devices()[0].device_kind}, {os.cpu_count()} CPUs; {args.yaml}")
    with torch.no_grad():
        theirs.eval()
        ref = theirs(torch.from_numpy(images)).numpy()
        theirs.train()
        ref_train = theirs(torch.from_numpy(images)).numpy()
        theirs.eval()
    got_train = np.asarray(apply(variables, x, train=True, mutable="batch_stats")[0]).transpose(0, 3, 1, 2)
    err = np.linalg.norm(got_train - ref_train) / np.linalg.norm(ref_train)
    print(f"heatmaps, train mode: JAX float32 vs PyTorch relative error {err:.2e}")

    def torch_forward(t):
        with torch.no_grad():
            return theirs(t)

    with tempfile.TemporaryDirectory() as tmp:
        rows = {"official PyTorch float32": (torch_forward, torch.from_numpy(images), lambda: ref)}
        rows.update(runtimes(cfg, variables, images_u8, tmp))
        errors = {name: np.linalg.norm(get() - ref) / np.linalg.norm(ref)
                  for name, (_, _, get) in rows.items()}
        print(f"\nimages/s, eval mode, {height}x{width}, batch {args.batch}, median of "
              f"{args.iters} calls per round, {args.rounds} rounds in turn")
        speeds: dict[str, list[float]] = {name: [] for name in rows}
        for r in range(args.rounds):
            load = os.getloadavg()[0]
            names = list(rows)
            names = names[r % len(names):] + names[:r % len(names)]  # each round starts elsewhere
            for name in names:
                fn, arg, _ = rows[name]
                speeds[name].append(args.batch / _timed(fn, arg, args.iters))
            print(f"round {r + 1} (load average {load:.1f} -> {os.getloadavg()[0]:.1f}): "
                  + ", ".join(f"{n} {v[-1]:.2f}" for n, v in speeds.items()), flush=True)
    base = statistics.median(speeds["official PyTorch float32"])
    print("\n| runtime | images/s (median of rounds) | rounds | vs PyTorch | heatmaps rel. error vs PyTorch |")
    print("| --- | --- | --- | --- | --- |")
    for name, v in speeds.items():
        med = statistics.median(v)
        print(f"| {name} | {med:.2f} | {', '.join(f'{s:.2f}' for s in v)} | {med / base:.2f}x "
              f"| {errors[name]:.1e} |")


if __name__ == "__main__":
    main()
