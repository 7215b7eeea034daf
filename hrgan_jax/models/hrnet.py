"""HRNet pose network (the generator), NHWC, module names equal to the official keys.

Every submodule is named after its path in the official PyTorch ``pose_hrnet.py``
(``layer1.0``, ``transition2.2.0.0``, ``stage3.1``, ``fuse_layers.2.0.1.0``, ...), so a
Flax variable path joined with dots *is* the official state_dict key, up to the leaf
name (``kernel`` <-> ``weight``, ``scale`` <-> ``weight``, ``mean`` <-> ``running_mean``).

Parameters and BatchNorm statistics are float32; ``NetSpec.dtype`` sets the dtype of
the convolutions (bfloat16 for speed).  Normalisation always runs in float32, and so do
the parts ``NetSpec.float32`` names (the mixed-precision policy, models/config.py).
"""
from __future__ import annotations

import dataclasses
import functools
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


@dataclasses.dataclass(frozen=True)
class Norm:
    """How train-mode BatchNorm groups the batch for its statistics.

    group: images per statistics group; 0: the whole batch (synchronised BatchNorm:
      under jit with the batch sharded, every BatchNorm reduces across devices).  With
      a group that divides the per-device batch each group lies on one device, so the
      forward and backward need no communication and the result does not depend on the
      device count.
    passes: the batch holds this many independent passes interleaved group by group
      (group k belongs to pass k % passes; with group 0 the batch is ``passes`` equal
      consecutive parts).  Each pass is normalised on its own, and the running
      statistics take the passes in turn, as separate calls would (D's real and fake
      passes in one call).
    """
    group: int = 0
    passes: int = 1

    def group_size(self, batch: int) -> int:
        """Images per group for a batch of ``batch``; ValueError if it does not split."""
        if self.group < 0 or self.passes < 1:
            raise ValueError(f"BatchNorm group must be >= 0 and passes >= 1, got {self}")
        size = self.group or batch // self.passes
        if size < 1 or batch % (size * self.passes):
            what = (f"model.bn_group = {self.group}" if self.group
                    else f"{self.passes} passes")
            raise ValueError(f"BatchNorm: a batch of {batch} images does not split into "
                             f"groups for {what}; use a batch that is a multiple of "
                             f"{(self.group or 1) * self.passes}")
        return size


GLOBAL = Norm()


def _grouped(x: jax.Array, size: int) -> jax.Array:
    """(B, H, W, C) -> (B // size, size, H, W, C): only the batch axis is split, so a batch
    sharded over devices in multiples of ``size`` stays where it is."""
    return x.reshape((x.shape[0] // size, size) + x.shape[1:])


_AXES = (1, 2, 3)  # reduced axes of a grouped (G, size, H, W, C) array


def _bn_forward(x, scale, bias, size):
    xg = _grouped(x, size).astype(jnp.float32)
    n = xg.shape[1] * xg.shape[2] * xg.shape[3]
    # One read of x for both moments, shifted by one sample of each group and channel
    # (its value is near the mean), so s2 / n - m1^2 does not cancel catastrophically
    # when |mean| >> std.
    shift = jax.lax.stop_gradient(xg[:, 0, 0, 0, :])
    d = xg - shift[:, None, None, None, :]
    m1 = jnp.sum(d, _AXES) / n
    m2 = jnp.sum(jnp.square(d), _AXES) / n
    mean = shift + m1
    var = jnp.maximum(m2 - jnp.square(m1), 0.0)
    rstd = jax.lax.rsqrt(var + BN_EPS)
    a = (scale * rstd)[:, None, None, None, :]
    y = (xg - mean[:, None, None, None, :]) * a + bias
    return y.reshape(x.shape).astype(x.dtype), mean, var, rstd


@functools.partial(jax.custom_vjp, nondiff_argnums=(3,))
def batch_norm_train(x: jax.Array, scale: jax.Array, bias: jax.Array,
                     size: int) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Train-mode BatchNorm over groups of ``size`` images: (y, mean, var).

    x: (B, H, W, C) in the compute dtype; scale, bias: (C,) float32.  y: like x;
    mean, var: (B // size, C) float32, each group's mean and biased variance.
    Statistics are accumulated in float32 in one pass over x; the backward is the
    closed form (a custom VJP: one pass for the two sums it needs, one for dx) instead
    of autodiff through the reductions.  mean and var are constants to autodiff (they
    only feed the running averages): their cotangents are ignored.
    """
    y, mean, var, _ = _bn_forward(x, scale, bias, size)
    return y, mean, var


def _bn_fwd(x, scale, bias, size):
    y, mean, var, rstd = _bn_forward(x, scale, bias, size)
    return (y, mean, var), (x, scale, mean, rstd)


def _bn_bwd(size, residuals, cotangents):
    x, scale, mean, rstd = residuals
    dy = cotangents[0]
    xg = _grouped(x, size).astype(jnp.float32)
    dyg = _grouped(dy, size).astype(jnp.float32)
    n = xg.shape[1] * xg.shape[2] * xg.shape[3]
    xhat = (xg - mean[:, None, None, None, :]) * rstd[:, None, None, None, :]
    sum_dy = jnp.sum(dyg, _AXES)  # (G, C)
    sum_dy_xhat = jnp.sum(dyg * xhat, _AXES)
    k = (scale * rstd)[:, None, None, None, :]
    dx = k * (dyg - (sum_dy[:, None, None, None, :] + xhat * sum_dy_xhat[:, None, None, None, :]) / n)
    return dx.reshape(x.shape).astype(x.dtype), jnp.sum(sum_dy_xhat, 0), jnp.sum(sum_dy, 0)


batch_norm_train.defvjp(_bn_fwd, _bn_bwd)


class BatchNorm(nn.Module):
    """PyTorch BatchNorm2d semantics over NHWC, statistics over groups (``norm``).

    Train mode normalises each group with its biased variance and updates the running
    variance with the *unbiased* one, as PyTorch does (flax.linen.BatchNorm uses the
    biased one).  Running statistics: the average over a pass's groups of their means
    and of their unbiased variances (DataParallel keeps the first replica's instead:
    the average estimates the same quantities with less noise, and does not depend on
    which device is first); with ``norm.passes`` > 1 each pass updates them in turn.
    With one group (``norm.group`` 0) this is exactly PyTorch's update.
    """
    dtype: Any = jnp.float32
    norm: Norm = GLOBAL

    @nn.compact
    def __call__(self, x: jax.Array, train: bool) -> jax.Array:
        c = x.shape[-1]
        scale = self.param("scale", nn.initializers.ones, (c,), jnp.float32)
        bias = self.param("bias", nn.initializers.zeros, (c,), jnp.float32)
        ra_mean = self.variable("batch_stats", "mean", lambda: jnp.zeros((c,), jnp.float32))
        ra_var = self.variable("batch_stats", "var", lambda: jnp.ones((c,), jnp.float32))
        x = x.astype(self.dtype)
        if not train:
            return _batch_norm_eval(x, scale, bias, ra_mean.value, ra_var.value)
        size = self.norm.group_size(x.shape[0])
        y, m, v = _batch_norm_update(x, scale, bias, ra_mean.value, ra_var.value, size,
                                     self.norm.passes)
        if not self.is_initializing():
            ra_mean.value, ra_var.value = m, v
        return y


# The two BatchNorm computations as jitted functions: a network calls them hundreds of
# times with few distinct shapes, and jit traces (and differentiates) each shape once, so
# tracing a W32 train step takes a fraction of the time it takes op by op.  XLA inlines
# the calls: the compiled program is the same.
@jax.jit
def _batch_norm_eval(x, scale, bias, ra_mean, ra_var):
    """Eval-mode BatchNorm with the running statistics, computed in float32."""
    a = scale * jax.lax.rsqrt(ra_var + BN_EPS)
    y = (x.astype(jnp.float32) - ra_mean) * a + bias
    return y.astype(x.dtype)


@functools.partial(jax.jit, static_argnums=(5, 6))
def _batch_norm_update(x, scale, bias, ra_mean, ra_var, size: int, passes: int):
    """Train-mode BatchNorm over groups of ``size`` images (y), and the running mean and
    (unbiased) variance after ``passes`` updates, one per pass's groups."""
    c = x.shape[-1]
    y, mean, var = batch_norm_train(x, scale, bias, size)
    n = size * x.shape[1] * x.shape[2]
    unbiased = var * (n / max(n - 1, 1))
    mean = jnp.mean(mean.reshape(-1, passes, c), axis=0)
    unbiased = jnp.mean(unbiased.reshape(-1, passes, c), axis=0)
    m, v = ra_mean, ra_var
    for k in range(passes):
        m = (1 - BN_MOMENTUM) * m + BN_MOMENTUM * mean[k]
        v = (1 - BN_MOMENTUM) * v + BN_MOMENTUM * unbiased[k]
    return y, m, v


def conv(features: int, kernel: int, stride: int, name: str, dtype: Any,
         kernel_init: Initializer, use_bias: bool = False,
         bias_init: Initializer = nn.initializers.zeros) -> nn.Conv:
    """Conv with PyTorch's symmetric padding (kernel // 2); 'SAME' would pad stride 2 unevenly."""
    p = kernel // 2
    return nn.Conv(features, (kernel, kernel), (stride, stride), padding=((p, p), (p, p)),
                   use_bias=use_bias, dtype=dtype, param_dtype=jnp.float32,
                   kernel_init=kernel_init, bias_init=bias_init, name=name)


class BasicBlock(nn.Module):
    """sum_dtype: the dtype of the BatchNorms before the residual sum, and so of the sum;
    in_dtype: the dtype of the convolutions that read the block's input (None: dtype)."""
    planes: int
    stride: int = 1
    downsample: bool = False
    dtype: Any = jnp.float32
    kernel_init: Initializer = hrnet_kernel_init
    norm: Norm = GLOBAL
    sum_dtype: Any = None
    in_dtype: Any = None
    expansion = 1

    @nn.compact
    def __call__(self, x, train):
        c = dict(dtype=self.dtype, kernel_init=self.kernel_init)
        c_in = dict(c, dtype=self.in_dtype or self.dtype)
        bn = lambda name: BatchNorm(self.dtype, self.norm, name=name)  # noqa: E731
        bn_sum = lambda name: BatchNorm(self.sum_dtype or self.dtype, self.norm, name=name)  # noqa: E731
        y = nn.relu(bn("bn1")(conv(self.planes, 3, self.stride, "conv1", **c_in)(x), train))
        y = bn_sum("bn2")(conv(self.planes, 3, 1, "conv2", **c)(y), train)
        if self.downsample:
            x = bn_sum("downsample.1")(conv(self.planes, 1, self.stride, "downsample.0", **c_in)(x),
                                       train)
        return nn.relu(y + x)


class Bottleneck(nn.Module):
    """sum_dtype, in_dtype: as BasicBlock's."""
    planes: int
    stride: int = 1
    downsample: bool = False
    dtype: Any = jnp.float32
    kernel_init: Initializer = hrnet_kernel_init
    norm: Norm = GLOBAL
    sum_dtype: Any = None
    in_dtype: Any = None
    expansion = 4

    @nn.compact
    def __call__(self, x, train):
        c = dict(dtype=self.dtype, kernel_init=self.kernel_init)
        c_in = dict(c, dtype=self.in_dtype or self.dtype)
        bn = lambda name: BatchNorm(self.dtype, self.norm, name=name)  # noqa: E731
        bn_sum = lambda name: BatchNorm(self.sum_dtype or self.dtype, self.norm, name=name)  # noqa: E731
        out = self.planes * self.expansion
        y = nn.relu(bn("bn1")(conv(self.planes, 1, 1, "conv1", **c_in)(x), train))
        y = nn.relu(bn("bn2")(conv(self.planes, 3, self.stride, "conv2", **c)(y), train))
        y = bn_sum("bn3")(conv(out, 1, 1, "conv3", **c)(y), train)
        if self.downsample:
            x = bn_sum("downsample.1")(conv(out, 1, self.stride, "downsample.0", **c_in)(x), train)
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
    norm: Norm = GLOBAL
    sum_dtype: Any = None  # the BatchNorms before every sum, and the sums (None: dtype)

    @nn.compact
    def __call__(self, xs: Sequence[jax.Array], train: bool) -> list[jax.Array]:
        block = BLOCKS[self.block]
        kw = dict(dtype=self.dtype, kernel_init=self.kernel_init, norm=self.norm,
                  sum_dtype=self.sum_dtype)
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

        def bn(name, last=True):
            return BatchNorm((self.sum_dtype or self.dtype) if last else self.dtype, self.norm,
                             name=name)

        ckw = dict(dtype=self.dtype, kernel_init=self.kernel_init)
        fused = []
        for i in range(n if self.multi_scale_output else 1):
            y = None
            for j in range(n):
                z = xs[j]
                pre = f"fuse_layers.{i}.{j}"
                if j > i:
                    z = bn(f"{pre}.1")(conv(out_ch[i], 1, 1, f"{pre}.0", **ckw)(z), train)
                    z = upsample_nearest(z, 2 ** (j - i))
                elif j < i:
                    for k in range(i - j):
                        last = k == i - j - 1
                        z = conv(out_ch[i] if last else out_ch[j], 3, 2, f"{pre}.{k}.0", **ckw)(z)
                        z = bn(f"{pre}.{k}.1", last)(z, train)
                        if not last:
                            z = nn.relu(z)
                y = z if y is None else y + z
            fused.append(nn.relu(y))
        return fused


def transition(xs: Sequence[jax.Array], pre: Sequence[int], cur: Sequence[int], name: str,
               train: bool, dtype: Any, kernel_init: Initializer,
               norm: Norm = GLOBAL) -> list[jax.Array]:
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
                y = nn.relu(BatchNorm(dtype, norm, name=f"{name}.{i}.1")(y, train))
        else:
            y = xs[-1]
            steps = i + 1 - len(pre)
            for k in range(steps):
                y = conv(c if k == steps - 1 else pre[-1], 3, 2, f"{name}.{i}.{k}.0", **kw)(y)
                y = nn.relu(BatchNorm(dtype, norm, name=f"{name}.{i}.{k}.1")(y, train))
        out.append(y)
    return out


def high_resolution_trunk(x: jax.Array, spec: NetSpec, train: bool, dtype: Any,
                          kernel_init: Initializer, norm: Norm = GLOBAL,
                          in_dtype: Any = None) -> jax.Array:
    """layer1 (``spec.stage1``; officially 4 Bottlenecks of 64 planes), then
    transition/stage 2..4; returns the highest-resolution branch.  Shared by generator
    and discriminator; creates its submodules in the calling module's compact scope.
    in_dtype: the dtype of the convolutions that read ``x`` (None: dtype).
    """
    sum_dtype = jnp.dtype(spec.part_dtype("sums"))
    kw = dict(dtype=dtype, kernel_init=kernel_init, norm=norm)
    block, planes = BLOCKS[spec.stage1.block], spec.stage1.num_channels[0]
    width = planes * block.expansion
    for k in range(spec.stage1.num_blocks[0]):
        x = block(planes, downsample=(k == 0 and x.shape[-1] != width), sum_dtype=sum_dtype,
                  in_dtype=in_dtype if k == 0 else None, name=f"layer1.{k}", **kw)(x, train)
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
                                      sum_dtype=sum_dtype, **kw)(xs, train)
    return xs[0]


class PoseHighResolutionNet(nn.Module):
    """The generator: images (B, H, W, 3) normalised -> heatmaps (B, H/4, W/4, J) float32."""
    spec: NetSpec

    @nn.compact
    def __call__(self, images: jax.Array, train: bool = False) -> jax.Array:
        dtype = jnp.dtype(self.spec.dtype)
        init = KERNEL_INITS[self.spec.kernel_init]
        norm = Norm(self.spec.bn_group)
        stem = jnp.dtype(self.spec.part_dtype("stem"))
        x = images.astype(stem)
        for i in (1, 2):
            x = conv(64, 3, 2, f"conv{i}", stem, init)(x)
            x = nn.relu(BatchNorm(stem, norm, name=f"bn{i}")(x, train))
        x = high_resolution_trunk(x, self.spec, train, dtype, init, norm)
        # The head keeps N(0, 0.001) under either init: heatmaps start near zero.
        x = conv(self.spec.num_joints, self.spec.final_conv_kernel, 1, "final_layer",
                 jnp.dtype(self.spec.part_dtype("head")), hrnet_kernel_init, use_bias=True)(x)
        return x.astype(jnp.float32)
