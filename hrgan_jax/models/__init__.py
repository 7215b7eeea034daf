"""The two networks of HRGAN and their configs.

    cfg = models.hrnet_config("w32", num_joints=17)
    g, d = models.generator(cfg), models.discriminator(cfg)

In a run's config, G is ``config.model`` and D is ``network_config(config, "discriminator")``:
the same network (the paper's and the official code's D) unless
``config.adversarial.d_network`` names another preset's layer1 and stages 2-4.
"""
from __future__ import annotations

import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections

from hrgan_jax.models.config import (IMAGENET_LAYERS, PRESET_WIDTHS, STAGES, NetSpec,
                                     config_from_official, hrnet_config, validate)
from hrgan_jax.models.discriminator import (HRDiscriminator, discriminator_input,
                                            resize_to_heatmap)
from hrgan_jax.models.hrnet import PoseHighResolutionNet


def generator(cfg: ml_collections.ConfigDict) -> PoseHighResolutionNet:
    """The HRNet pose estimator G: images (B, H, W, 3) -> heatmaps (B, H/4, W/4, J)."""
    return PoseHighResolutionNet(validate(cfg))


def discriminator(cfg: ml_collections.ConfigDict) -> HRDiscriminator:
    """HRGAN's D: (B, h, w, 3 + J) -> reconstructed heatmaps (B, h, w, J), or with
    ``cfg.d_output`` 'image' / 'joint' logits (B, 1) / (B, J)."""
    return HRDiscriminator(validate(cfg))


NETS = ("generator", "discriminator")


def network_config(config: ml_collections.ConfigDict, net: str = "generator"
                   ) -> ml_collections.ConfigDict:
    """The network config of G or D in a run's ``config``.

    G: ``config.model``.  D: the same, or, when ``config.adversarial.d_network`` names a
    preset, ``config.model`` with that preset's layer1 and stages 2-4 (a cheaper D for
    short runs; the demo's).  D's joint count, dtype and BatchNorm groups always follow
    ``config.model``; its head is ``config.adversarial.d_output`` (field ``d_output``,
    absent for HRGAN's reconstructing D).
    """
    if net not in NETS:
        raise ValueError(f"net must be one of {NETS}, got {net!r}")
    adversarial = config.get("adversarial", {})
    name = adversarial.get("d_network", "")
    d_output = adversarial.get("d_output", "reconstruct")
    if net == "generator" or (not name and d_output == "reconstruct"):
        return config.model
    cfg = ml_collections.ConfigDict(config.model.to_dict())
    if name:
        preset = hrnet_config(name, int(config.model.num_joints))
        cfg.name = name
        for stage in ("stage1",) + STAGES:
            cfg[stage] = preset[stage]
    if d_output != "reconstruct":
        cfg.d_output = d_output
    return cfg


def network(cfg: ml_collections.ConfigDict | NetSpec,
            net: str = "generator") -> tuple[nn.Module, jax.Array]:
    """The named network and a small input for ``init`` (parameter shapes do not
    depend on the input's spatial size)."""
    spec = cfg if isinstance(cfg, NetSpec) else validate(cfg)
    if net == "generator":
        return PoseHighResolutionNet(spec), jnp.zeros((1, 128, 128, 3), jnp.float32)
    if net == "discriminator":
        return HRDiscriminator(spec), jnp.zeros((1, 32, 32, 3 + spec.num_joints), jnp.float32)
    raise ValueError(f"net must be one of {NETS}, got {net!r}")


# Compiling Flax init spends most of its time optimising one RNG draw per parameter; the
# program runs once, so optimise it less.  Values agree with a plain jax.jit(init) to
# float32 rounding (the compiler may fuse multiply-adds differently).
_INIT_COMPILER_OPTIONS = {"xla_backend_optimization_level": 0,
                          "xla_llvm_disable_expensive_passes": True}


def init(module, key: jax.Array, *inputs: jax.Array) -> dict:
    """``module.init(key, *inputs)`` (eval mode), compiled for a quick start.

    Faster to compile than ``jax.jit(module.init)`` (on a 2-core CPU: HRNet-W32
    45 s -> 27 s, the tiny preset 19 s -> 6 s), and compiled once per network and input
    shapes in a process (several runs in one process: a notebook, the tests).
    Parameter shapes do not depend on the inputs' spatial size, so small inputs do.
    """
    avals = tuple(jax.ShapeDtypeStruct(x.shape, x.dtype) for x in (key, *inputs))
    return _compiled_init(module, avals)(key, *inputs)


@functools.lru_cache(maxsize=8)
def _compiled_init(module, avals: tuple):
    lowered = jax.jit(module.init).lower(*avals)
    try:
        return lowered.compile(compiler_options=_INIT_COMPILER_OPTIONS)
    except Exception:  # noqa: BLE001 - a backend without these options: compile as usual
        return lowered.compile()


__all__ = ["NETS", "PRESET_WIDTHS", "network", "network_config", "init", "IMAGENET_LAYERS", "NetSpec", "config_from_official", "hrnet_config", "validate",
           "generator", "discriminator", "discriminator_input", "resize_to_heatmap",
           "PoseHighResolutionNet", "HRDiscriminator"]
