"""Where bfloat16 compute loses accuracy: each mixed-precision policy (model.float32)
against float32, on the same weights and inputs, G and D in train mode (what the train
step computes; evaluation and export compute in eval.dtype, float32 by default).

    python benchmarks/precision.py                      # the demo config's networks, 128x96
    python benchmarks/precision.py --config coco --batch 4   # HRNet-W32 at 256x192

For each policy: G's heatmaps' relative error (|H16 - H32| / |H32| over the batch), the
joints whose argmax moves; D's reconstructions' relative error on real (Gaussian targets)
and fake (the targets shifted and damped) heatmaps, the relative error of L_real and
L_fake (eq. 4, computed in float32 from each reconstruction), and the error of the
equilibrium gap gamma L_real - L_fake in units of L_real (the quantity k_t integrates).
Weights at a trained network's scale (weights.trained_scale_state_dict), random images.
"""
from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import ml_collections  # noqa: E402
import numpy as np  # noqa: E402

from hrgan_jax import losses, models, weights  # noqa: E402
from hrgan_jax.images import normalize_images  # noqa: E402
from hrgan_jax.models.discriminator import resize_to_heatmap  # noqa: E402
from hrgan_jax.targets import heatmap_targets  # noqa: E402

POLICIES = {"none": (), "head": ("head",), "head+d_input": ("head", "d_input"),
            "+stem": ("head", "d_input", "stem"), "+sums": ("head", "d_input", "sums"),
            "all": ("head", "d_input", "stem", "sums")}


def load_config(name: str) -> ml_collections.ConfigDict:
    if name == "demo":
        from hrgan_jax.configs import synthetic
        return synthetic.get_config()
    from hrgan_jax.configs import coco_w32_256x192
    return coco_w32_256x192.get_config()


def with_policy(cfg: ml_collections.ConfigDict, dtype: str, parts) -> ml_collections.ConfigDict:
    cfg = ml_collections.ConfigDict(cfg.to_dict())
    cfg.dtype, cfg.float32, cfg.bn_group = dtype, tuple(parts), 0
    return cfg


def relative(a, b) -> float:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", default="demo", choices=("demo", "coco"))
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)

    config = load_config(args.config)
    (width, height), hm = tuple(config.data.image_size), tuple(config.data.heatmap_size)
    g_cfg, d_cfg = config.model, models.network_config(config, "discriminator")
    g_vars = weights.from_torch(weights.trained_scale_state_dict(g_cfg, "generator", args.seed), g_cfg)
    d_vars = weights.from_torch(weights.trained_scale_state_dict(d_cfg, "discriminator", args.seed),
                                d_cfg, "discriminator")
    rng = np.random.default_rng(args.seed)
    b, j = args.batch, int(g_cfg.num_joints)
    images = normalize_images(rng.integers(0, 256, (b, height, width, 3), dtype=np.uint8))
    joints = rng.uniform([8, 8], [width - 8, height - 8], (b, j, 2)).astype(np.float32)
    vis = np.ones((b, j), np.float32)
    real, _ = heatmap_targets(joints, vis, (width, height), hm, float(config.data.sigma))
    fake, _ = heatmap_targets(joints + rng.normal(0, 3, joints.shape).astype(np.float32), vis,
                              (width, height), hm, float(config.data.sigma))
    fake = 0.8 * fake
    x_s = resize_to_heatmap(images, real.shape[1:3])
    d_in = jnp.concatenate([jnp.concatenate([x_s, real], -1), jnp.concatenate([x_s, fake], -1)])
    gamma = float(config.adversarial.gamma)

    def run(dtype, parts):
        g = models.generator(with_policy(g_cfg, dtype, parts))
        d = models.discriminator(with_policy(d_cfg, dtype, parts))
        h = jax.jit(lambda v, x: g.apply(v, x, train=True, mutable=["batch_stats"])[0])(g_vars, images)
        out = jax.jit(lambda v, x: d.apply(v, x, train=True, passes=2,
                                           mutable=["batch_stats"])[0])(d_vars, d_in)
        l_real = losses.reconstruction_error(out[:b], real)
        l_fake = losses.reconstruction_error(out[b:], fake)
        return h, out, float(l_real), float(l_fake)

    h32, out32, lr32, lf32 = run("float32", ())
    am32 = np.asarray(h32).reshape(b, -1, j).argmax(1)
    print(f"{args.config} config: G {g_cfg.name}, D {d_cfg.name}, {height}x{width}, batch {b}, "
          f"train-mode forward; float32 L_real {lr32:.4g}, L_fake {lf32:.4g}")
    header = (f"{'policy (float32 parts)':<24} {'G rel err':>10} {'argmax moved':>12} "
              f"{'D rel err':>10} {'L_real rel':>10} {'L_fake rel':>10} {'gap err / L_real':>16}")
    print(header)
    print("-" * len(header))
    for name, parts in POLICIES.items():
        h, out, lr, lf = run("bfloat16", parts)
        moved = float(np.mean(np.asarray(h).reshape(b, -1, j).argmax(1) != am32))
        gap_err = abs((gamma * lr - lf) - (gamma * lr32 - lf32)) / lr32
        print(f"{name:<24} {relative(h, h32):>10.2e} {moved:>12.1%} {relative(out, out32):>10.2e} "
              f"{abs(lr - lr32) / lr32:>10.2e} {abs(lf - lf32) / lf32:>10.2e} {gap_err:>16.2e}",
              flush=True)


if __name__ == "__main__":
    main()
