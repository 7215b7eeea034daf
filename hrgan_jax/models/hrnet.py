"""HRNet pose network (the generator), NHWC, module names equal to the official keys.

Every submodule is named after its path in the official PyTorch ``pose_hrnet.py``
(``layer1.0``, ``transition2.2.0.0``, ``stage3.1``, ``fuse_layers.2.0.1.0``, ...), so a
Flax variable path joined with dots *is* the official state_dict key, up to the leaf
name (``kernel`` <-> ``weight``, ``scale`` <-> ``weight``, ``mean`` <-> ``running_mean``).

Parameters and BatchNorm statistics are float32; ``NetSpec.dtype`` sets the dtype of
the convolutions (bfloat16 for speed).  Normalisation always runs in float32.
"""
from __future__ import annotations

from typing import Any, Callable, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from hrgan_jax.models.config import NetSpec

Initializer = Callable[..., jax.Array]

# The official init_weights: conv weights N(0, 0.001), biases 0, BN (1, 0).
hrnet_kernel_init = nn.initializers.normal(stddev=0.001)
he_kernel_init = nn.initializers.variance_scaling(2.0, "fan_out", "normal")
KERNEL_INITS = {"official": hrnet_kernel_init, "he": he_kernel_init}

BN_MOMENTUM = 0.1  # PyTorch convention: new = (1 - m) * old + m * batch
BN_EPS = 1e-5


class BatchNorm(nn.Module):
    """PyTorch BatchNorm2d semantics over NHWC.

    Train mode normalises with the biased batch variance and updates the running
    variance with the *unbiased* one, as PyTorch does (flax.linen.BatchNorm uses the
    biased one).  Under jit with a batch sharded across devices the statistics are
    those of the global batch.
    """
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array, train: bool) -> jax.Array:
        c = x.shape[-1]
        scale = self.param("scale", nn.initializers.ones, (c,), jnp.float32)
        bias = self.param("bias", nn.initializers.zeros, (c,), jnp.float32)
        ra_mean = self.variable("batch_stats", "mean", lambda: jnp.zeros((c,), jnp.float32))
        ra_var = self.variable("batch_stats", "var", lambda: jnp.ones((c,), jnp.float32))
        xf = x.astype(jnp.float32)
        if train:
            axes = tuple(range(x.ndim - 1))
            mean = jnp.mean(xf, axis=axes)
            var = jnp.mean(jnp.square(xf - mean), axis=axes)
            if not self.is_initializing():
                n = x.size // c
                unbiased = var * (n / max(n - 1, 1))
                ra_mean.value = (1 - BN_MOMENTUM) * ra_mean.value + BN_MOMENTUM * mean
                ra_var.value = (1 - BN_MOMENTUM) * ra_var.value + BN_MOMENTUM * unbiased
        else:
            mean, var = ra_mean.value, ra_var.value
        y = (xf - mean) * (scale * jax.lax.rsqrt(var + BN_EPS)) + bias
        return y.astype(self.dtype)


def conv(features: int, kernel: int, stride: int, name: str, dtype: Any,
         kernel_init: Initializer, use_bias: bool = False,
         bias_init: Initializer = nn.initializers.zeros) -> nn.Conv:
    """Conv with PyTorch's symmetric padding (kernel // 2); 'SAME' would pad stride 2 unevenly."""
    p = kernel // 2
    return nn.Conv(features, (kernel, kernel), (stride, stride), padding=((p, p), (p, p)),
                   use_bias=use_bias, dtype=dtype, param_dtype=jnp.float32,
                   kernel_init=kernel_init, bias_init=bias_init, name=name)


class BasicBlock(nn.Module):
    planes: int
    stride: int = 1
    downsample: bool = False
    dtype: Any = jnp.float32
    kernel_init: Initializer = hrnet_kernel_init
    expansion = 1

    @nn.compact
    def __call__(self, x, train):
        c = dict(dtype=self.dtype, kernel_init=self.kernel_init)
        bn = lambda name: BatchNorm(self.dtype, name=name)  # noqa: E731
        y = nn.relu(bn("bn1")(conv(self.planes, 3, self.stride, "conv1", **c)(x), train))
        y = bn("bn2")(conv(self.planes, 3, 1, "conv2", **c)(y), train)
        if self.downsample:
            x = bn("downsample.1")(conv(self.planes, 1, self.stride, "downsample.0", **c)(x), train)
        return nn.relu(y + x)


class Bottleneck(nn.Module):
    planes: int
    stride: int = 1
    downsample: bool = False
    dtype: Any = jnp.float32
    kernel_init: Initializer = hrnet_kernel_init
    expansion = 4

    @nn.compact
    def __call__(self, x, train):
        c = dict(dtype=self.dtype, kernel_init=self.kernel_init)
        bn = lambda name: BatchNorm(self.dtype, name=name)  # noqa: E731
        out = self.planes * self.expansion
        y = nn.relu(bn("bn1")(conv(self.planes, 1, 1, "conv1", **c)(x), train))
        y = nn.relu(bn("bn2")(conv(self.planes, 3, self.stride, "conv2", **c)(y), train))
        y = bn("bn3")(conv(out, 1, 1, "conv3", **c)(y), train)
        if self.downsample:
            x = bn("downsample.1")(conv(out, 1, self.stride, "downsample.0", **c)(x), train)
        return nn.relu(y + x)


BLOCKS = {"BASIC": BasicBlock, "BOTTLENECK": Bottleneck}


def upsample_nearest(x: jax.Array, factor: int) -> jax.Array:
    """nn.Upsample(scale_factor=factor, mode='nearest') on NHWC."""
    b, h, w, c = x.shape
    x = jnp.broadcast_to(x[:, :, None, :, None, :], (b, h, factor, w, factor, c))
    return x.reshape(b, h * factor, w * factor, c)


class HighResolutionModule(nn.Module):
    """Parallel branches of residual blocks, then SUM fusion across resolutions.

    Output i sums, over inputs j: x_j (j == i); conv1x1 + BN + nearest upsample
    (j > i); (i - j) stride-2 conv3x3 + BN, ReLU between them (j < i); then ReLU.
    With ``multi_scale_output`` False only the highest resolution is produced.
    """
    block: str
    num_blocks: Sequence[int]
    in_channels: Sequence[int]
    num_channels: Sequence[int]
    multi_scale_output: bool = True
    dtype: Any = jnp.float32
    kernel_init: Initializer = hrnet_kernel_init

    @nn.compact
    def __call__(self, xs: Sequence[jax.Array], train: bool) -> list[jax.Array]:
        block = BLOCKS[self.block]
        kw = dict(dtype=self.dtype, kernel_init=self.kernel_init)
        n = len(self.num_channels)
        out_ch = [c * block.expansion for c in self.num_channels]
        xs = list(xs)
        for i in range(n):
            for k in range(self.num_blocks[i]):
                downsample = k == 0 and self.in_channels[i] != out_ch[i]
                xs[i] = block(self.num_channels[i], downsample=downsample,
                              name=f"branches.{i}.{k}", **kw)(xs[i], train)
        if n == 1:
            return xs

        def bn(name):
            return BatchNorm(self.dtype, name=name)

        fused = []
        for i in range(n if self.multi_scale_output else 1):
            y = None
            for j in range(n):
                z = xs[j]
                pre = f"fuse_layers.{i}.{j}"
                if j > i:
                    z = bn(f"{pre}.1")(conv(out_ch[i], 1, 1, f"{pre}.0", **kw)(z), train)
                    z = upsample_nearest(z, 2 ** (j - i))
                elif j < i:
                    for k in range(i - j):
                        last = k == i - j - 1
                        z = conv(out_ch[i] if last else out_ch[j], 3, 2, f"{pre}.{k}.0", **kw)(z)
                        z = bn(f"{pre}.{k}.1")(z, train)
                        if not last:
                            z = nn.relu(z)
                y = z if y is None else y + z
            fused.append(nn.relu(y))
        return fused


def transition(xs: Sequence[jax.Array], pre: Sequence[int], cur: Sequence[int], name: str,
               train: bool, dtype: Any, kernel_init: Initializer) -> list[jax.Array]:
    """Between stages: re-width changed branches (conv3x3 s1), open new ones from the last.

    A new branch is opened from the lowest-resolution input, as in the official code.
    A re-widened existing branch takes its own input; the official forward would feed
    it the lowest-resolution input too, which only runs when there is one branch
    (transition1), so no official config can tell the two apart.
    Creates submodules in the calling module's compact scope.
    """
    kw = dict(dtype=dtype, kernel_init=kernel_init)
    out = []
    for i, c in enumerate(cur):
        if i < len(pre):
            y = xs[i]
            if c != pre[i]:
                y = conv(c, 3, 1, f"{name}.{i}.0", **kw)(y)
                y = nn.relu(BatchNorm(dtype, name=f"{name}.{i}.1")(y, train))
        else:
            y = xs[-1]
            steps = i + 1 - len(pre)
            for k in range(steps):
                y = conv(c if k == steps - 1 else pre[-1], 3, 2, f"{name}.{i}.{k}.0", **kw)(y)
                y = nn.relu(BatchNorm(dtype, name=f"{name}.{i}.{k}.1")(y, train))
        out.append(y)
    return out


def high_resolution_trunk(x: jax.Array, spec: NetSpec, train: bool, dtype: Any,
                          kernel_init: Initializer) -> jax.Array:
    """layer1 (``spec.stage1``; officially 4 Bottlenecks of 64 planes), then
    transition/stage 2..4; returns the highest-resolution branch.  Shared by generator
    and discriminator; creates its submodules in the calling module's compact scope.
    """
    kw = dict(dtype=dtype, kernel_init=kernel_init)
    block, planes = BLOCKS[spec.stage1.block], spec.stage1.num_channels[0]
    width = planes * block.expansion
    for k in range(spec.stage1.num_blocks[0]):
        x = block(planes, downsample=(k == 0 and x.shape[-1] != width),
                  name=f"layer1.{k}", **kw)(x, train)
    xs, channels = [x], (width,)
    for s, stage in enumerate(spec.stages, start=2):
        expansion = BLOCKS[stage.block].expansion
        cur = tuple(c * expansion for c in stage.num_channels)
        xs = transition(xs, channels, cur, f"transition{s - 1}", train, **kw)
        channels = cur
        for m in range(stage.num_modules):
            last = s == len(spec.stages) + 1 and m == stage.num_modules - 1
            xs = HighResolutionModule(stage.block, stage.num_blocks, channels, stage.num_channels,
                                      multi_scale_output=not last, name=f"stage{s}.{m}",
                                      **kw)(xs, train)
    return xs[0]


class PoseHighResolutionNet(nn.Module):
    """The generator: images (B, H, W, 3) normalised -> heatmaps (B, H/4, W/4, J) float32."""
    spec: NetSpec

    @nn.compact
    def __call__(self, images: jax.Array, train: bool = False) -> jax.Array:
        dtype = jnp.dtype(self.spec.dtype)
        kw = dict(dtype=dtype, kernel_init=KERNEL_INITS[self.spec.kernel_init])
        x = images.astype(dtype)
        x = nn.relu(BatchNorm(dtype, name="bn1")(conv(64, 3, 2, "conv1", **kw)(x), train))
        x = nn.relu(BatchNorm(dtype, name="bn2")(conv(64, 3, 2, "conv2", **kw)(x), train))
        x = high_resolution_trunk(x, self.spec, train, **kw)
        # The head keeps N(0, 0.001) under either init: heatmaps start near zero.
        x = conv(self.spec.num_joints, self.spec.final_conv_kernel, 1, "final_layer",
                 use_bias=True, dtype=dtype, kernel_init=hrnet_kernel_init)(x)
        return x.astype(jnp.float32)
