"""Official PyTorch state_dicts <-> Flax variables, for both networks.

A state_dict here is a plain ``{official key: numpy array}`` in PyTorch layouts (conv
weights OIHW).  Module names in the Flax networks are the official key paths, so the
mapping is a renaming of leaves and a transpose of conv kernels:

    <path>.weight (O, I, kh, kw)   <->  params[<path>]["kernel"] (kh, kw, I, O)
    <path>.weight (O, I) (Linear)  <->  params[<path>]["kernel"] (I, O)
    <path>.bias                    <->  params[<path>]["bias"]
    <path>.weight (BN, 1-D)        <->  params[<path>]["scale"]
    <path>.running_mean / _var     <->  batch_stats[<path>]["mean"] / ["var"]

The conventional-GAN discriminator with ``d_output`` 'image' adds one nn.Linear,
``classifier.weight`` (1, C) and ``classifier.bias`` (1,), in place of HRGAN's
``final_layer`` (models/discriminator.py); 'joint' has HRGAN's keys.

Every load checks names and shapes against the network built from the config and
raises ``WeightsMismatchError`` listing each missing, unexpected or mis-shaped key.
"""
from __future__ import annotations

import dataclasses
import functools
import os
import pickle
from typing import Any, Iterable, Mapping

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from hrgan_jax import models
from hrgan_jax.models.hrnet import BN_EPS, BatchNorm

_IGNORED_SUFFIXES = (".num_batches_tracked",)  # PyTorch bookkeeping; unused with a fixed momentum


class WeightsMismatchError(ValueError):
    """A state_dict does not fit the network.

    The message lists the offending keys with their shapes (the first
    ``MAX_LISTED`` of each kind); ``missing``, ``unexpected`` and ``wrong_shape``
    hold them all.
    """
    MAX_LISTED = 40

    def __init__(self, message: str, missing=(), unexpected=(), wrong_shape=()):
        super().__init__(message)
        self.missing = tuple(missing)
        self.unexpected = tuple(unexpected)
        self.wrong_shape = tuple(wrong_shape)


class WeightsFileError(ValueError):
    """A weights file that cannot be read as a state_dict (missing, a directory, empty,
    truncated, of an unknown kind, or a pickle that is not a state_dict); the message
    names the file, on one line."""


@dataclasses.dataclass(frozen=True)
class _Slot:
    collection: str        # "params" or "batch_stats"
    path: tuple[str, ...]  # Flax path, leaf name last
    shape: tuple[int, ...]  # PyTorch shape


@dataclasses.dataclass(frozen=True)
class PretrainedReport:
    """What ``load_pretrained`` did: keys loaded, file keys dropped, model keys left at init."""
    loaded: tuple[str, ...]
    dropped: tuple[str, ...]
    kept_init: tuple[str, ...]


def _torch_shape(leaf: str, shape: tuple[int, ...]) -> tuple[int, ...]:
    if leaf == "kernel" and len(shape) == 2:  # nn.Dense (I, O) -> nn.Linear (O, I)
        return (shape[1], shape[0])
    if leaf == "kernel":
        kh, kw, i, o = shape
        return (o, i, kh, kw)
    return tuple(shape)


def layout(cfg: ml_collections.ConfigDict, net: str = "generator") -> dict[str, _Slot]:
    """Official key -> where it lives in the Flax variables, in the official key order.

    The order is the order in which the network calls its convs and BatchNorms, which
    is the order the official modules are registered in.
    """
    if net not in models.NETS:
        raise ValueError(f"net must be one of {models.NETS}, got {net!r}")
    return dict(_layout(models.validate(cfg), net))


@functools.lru_cache(maxsize=16)
def _layout(spec: models.NetSpec, net: str) -> tuple[tuple[str, _Slot], ...]:
    model, x = models.network(spec, net)
    order: list[tuple[str, ...]] = []

    def record(next_fun, args, kwargs, context):
        if context.method_name == "__call__" and isinstance(context.module,
                                                            (nn.Conv, nn.Dense, BatchNorm)):
            path = tuple(context.module.scope.path)
            if path not in order:
                order.append(path)
        return next_fun(*args, **kwargs)

    with nn.intercept_methods(record):
        shapes = jax.eval_shape(model.init, jax.random.PRNGKey(0), x)
    params, stats = shapes["params"], shapes["batch_stats"]

    def sub(tree, path):
        for p in path:
            tree = tree[p]
        return tree

    slots: dict[str, _Slot] = {}
    for path in order:
        prefix = ".".join(path)
        p = sub(params, path)
        if "kernel" in p:
            names = [("weight", "params", "kernel"), ("bias", "params", "bias")]
        else:
            names = [("weight", "params", "scale"), ("bias", "params", "bias"),
                     ("running_mean", "batch_stats", "mean"), ("running_var", "batch_stats", "var")]
        for torch_leaf, col, leaf in names:
            tree = p if col == "params" else sub(stats, path)
            if leaf in tree:
                slots[f"{prefix}.{torch_leaf}"] = _Slot(col, path + (leaf,),
                                                        _torch_shape(leaf, tree[leaf].shape))
    return tuple(slots.items())


def _to_numpy(value: Any, key: str) -> np.ndarray:
    if hasattr(value, "detach"):  # a torch.Tensor
        value = value.detach().cpu()
        if str(value.dtype) == "torch.bfloat16":
            value = value.float()
        value = value.numpy()
    arr = np.asarray(value)
    if not (np.issubdtype(arr.dtype, np.floating) or arr.dtype == jnp.bfloat16):
        raise WeightsMismatchError(f"{key}: expected floating-point values, got dtype {arr.dtype}")
    return arr


def clean_state_dict(state_dict: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """Strips the ``module.`` prefix of (Distributed)DataParallel checkpoints and drops
    ``num_batches_tracked``; values become numpy arrays."""
    out: dict[str, np.ndarray] = {}
    for key, value in state_dict.items():
        if not isinstance(key, str):
            raise WeightsMismatchError(f"state_dict key {key!r} is not a string")
        if key.endswith(_IGNORED_SUFFIXES):
            continue
        name = key.removeprefix("module.")
        if name in out:
            raise WeightsMismatchError(f"state_dict has {name!r} both with and without 'module.'")
        out[name] = _to_numpy(value, key)
    return out


def _mismatch(what: str, slots: Mapping[str, _Slot], given: Mapping[str, np.ndarray],
              missing=(), unexpected=(), wrong=()) -> WeightsMismatchError:
    """The error for keys missing from ``given``, unexpected in it, or mis-shaped
    (``wrong``: (key, given shape, network shape))."""
    limit = WeightsMismatchError.MAX_LISTED
    lines = [f"{what} does not fit the network:"]

    def listing(title, items):
        if items:
            lines.append(f"  {title}:")
            lines.extend(f"    {item}" for item in items[:limit])
            if len(items) > limit:
                lines.append(f"    ... and {len(items) - limit} more")

    listing(f"missing {len(missing)} key(s)", [f"{k} {slots[k].shape}" for k in missing])
    listing(f"unexpected {len(unexpected)} key(s)",
            [f"{k} {tuple(given[k].shape)}" for k in unexpected])
    listing(f"{len(wrong)} key(s) with the wrong shape (file vs network)",
            [f"{k}: {a} vs {b}" for k, a, b in wrong])
    return WeightsMismatchError("\n".join(lines), missing, unexpected, wrong)


def _assemble(sd: Mapping[str, np.ndarray], slots: Mapping[str, _Slot],
              base: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Puts the state_dict's values at their Flax paths, in a copy of ``base`` (if any)."""
    def copy(tree):
        return {k: copy(v) for k, v in tree.items()} if isinstance(tree, Mapping) else np.asarray(tree)

    variables = copy(jax.device_get(base)) if base else {}
    for key, slot in slots.items():
        if key not in sd:
            continue
        value = sd[key].astype(np.float32)
        if slot.path[-1] == "kernel":
            value = value.transpose(2, 3, 1, 0) if value.ndim == 4 else value.T
        tree = variables.setdefault(slot.collection, {})
        for p in slot.path[:-1]:
            tree = tree.setdefault(p, {})
        tree[slot.path[-1]] = value
    return variables


def from_torch(state_dict: Mapping[str, Any], cfg: ml_collections.ConfigDict,
               net: str = "generator", *, what: str = "state_dict") -> dict[str, Any]:
    """Official state_dict -> Flax variables ``{"params", "batch_stats"}`` (float32 numpy).

    Exact: every key must be present with its shape, and no other key may be.
    """
    slots = layout(cfg, net)
    sd = clean_state_dict(state_dict)
    missing = [k for k in slots if k not in sd]
    unexpected = [k for k in sd if k not in slots]
    wrong = [(k, tuple(sd[k].shape), slots[k].shape) for k in slots
             if k in sd and tuple(sd[k].shape) != slots[k].shape]
    if missing or unexpected or wrong:
        raise _mismatch(f"{what} for the {net}", slots, sd, missing, unexpected, wrong)
    return _assemble(sd, slots)


def to_torch(variables: Mapping[str, Any], cfg: ml_collections.ConfigDict,
             net: str = "generator") -> dict[str, np.ndarray]:
    """Flax variables -> official state_dict (numpy, float32, official key order)."""
    slots = layout(cfg, net)
    out: dict[str, np.ndarray] = {}
    missing, wrong = [], []
    for key, slot in slots.items():
        tree = variables.get(slot.collection, {})
        try:
            for p in slot.path:
                tree = tree[p]
        except (KeyError, TypeError):
            missing.append(key)
            continue
        value = np.asarray(jax.device_get(tree), dtype=np.float32)
        if slot.path[-1] == "kernel":
            value = value.transpose(3, 2, 0, 1) if value.ndim == 4 else value.T
        if value.shape != slot.shape:
            wrong.append((key, value.shape, slot.shape))
        out[key] = np.ascontiguousarray(value)
    if missing or wrong:
        raise _mismatch(f"variables of the {net}", slots, {}, missing, (), wrong)
    return out


def load_pretrained(variables: Mapping[str, Any], state_dict: Mapping[str, Any],
                    cfg: ml_collections.ConfigDict, net: str = "generator",
                    layers: Iterable[str] | None = None) -> tuple[dict[str, Any], PretrainedReport]:
    """Initialise part of ``variables`` from a checkpoint, the official PRETRAINED_LAYERS rule.

    Keys of the file whose first component is in ``layers`` (default
    ``cfg.pretrained_layers``; ``"*"`` first means all) are loaded.  Of those, keys the
    network does not have are dropped (the ImageNet file's ``stage4.2.fuse_layers.{1,2,3}``);
    network keys under ``layers`` that the file lacks, and shape mismatches, are errors.
    Everything outside ``layers`` (the head) keeps its value from ``variables``.
    """
    layers = tuple(cfg.pretrained_layers if layers is None else layers)
    take_all = bool(layers) and layers[0] == "*"
    slots = layout(cfg, net)
    sd = clean_state_dict(state_dict)

    def selected(key):
        return take_all or key.split(".")[0] in layers

    chosen = {k: v for k, v in sd.items() if selected(k)}
    if not chosen:
        raise WeightsMismatchError(f"no key of the checkpoint is in PRETRAINED_LAYERS {list(layers)}")
    missing = [k for k in slots if selected(k) and k not in chosen]
    wrong = [(k, tuple(v.shape), slots[k].shape) for k, v in chosen.items()
             if k in slots and tuple(v.shape) != slots[k].shape]
    if missing or wrong:
        raise _mismatch("pretrained checkpoint", slots, chosen, missing, (), wrong)
    loaded = {k: v for k, v in chosen.items() if k in slots}
    result = _assemble(loaded, slots, base=variables)
    report = PretrainedReport(
        loaded=tuple(k for k in slots if k in loaded),
        dropped=tuple(sorted(k for k in sd if k not in loaded)),
        kept_init=tuple(k for k in slots if k not in loaded))
    return result, report


# ---------------------------------------------------------------------------------------
# BatchNorm folding (inference)


@functools.lru_cache(maxsize=16)
def _conv_bn_pairs(spec: models.NetSpec, net: str) -> tuple[tuple[tuple[str, ...], tuple[str, ...]], ...]:
    """(conv path, BatchNorm path) for every BatchNorm, found by tracing the network:
    the BatchNorm's input must be exactly the output of that convolution."""
    model, x = models.network(spec, net)
    conv_out: dict[int, tuple[tuple[str, ...], Any]] = {}  # the output kept alive: ids stay unique
    pairs: list[tuple[tuple[str, ...], tuple[str, ...]]] = []

    def record(next_fun, args, kwargs, context):
        out = next_fun(*args, **kwargs)
        if context.method_name == "__call__":
            path = tuple(context.module.scope.path)
            if isinstance(context.module, nn.Conv):
                conv_out[id(out)] = (path, out)
            elif isinstance(context.module, BatchNorm):
                source = conv_out.get(id(args[0]), (None,))[0]
                if source is None:
                    raise ValueError(f"{'.'.join(path)}: a BatchNorm whose input is not a "
                                     "convolution's output cannot be folded")
                if (source, path) not in pairs:
                    pairs.append((source, path))
        return out

    with nn.intercept_methods(record):
        jax.eval_shape(model.init, jax.random.PRNGKey(0), x)
    return tuple(pairs)


def fold_batch_norm(variables: Mapping[str, Any], cfg: ml_collections.ConfigDict,
                    net: str = "generator") -> dict[str, Any]:
    """Eval-mode variables with every conv + BatchNorm pair made one conv with a bias.

    For BN(conv(x)) = (conv(x) - mean) * s + beta with s = gamma / sqrt(var + eps):
    kernel' = kernel * s (per output channel), bias' = beta - mean * s.  Returns
    ``{"params"}`` only: each conv keeps its path with the scaled kernel, and each
    BatchNorm's path holds just ``bias'`` (the conv's new bias, added right after it):
    no scale, no batch statistics.  Run it with ``inference.apply_fn(config,
    folded=True)``, where the BatchNorm becomes that bias add; a converter or compiler
    sees conv + add, which ONNX Runtime and XLA fuse into one biased conv.  Computed in
    float64 and stored as float32, so the folded network equals the unfolded one to
    float32 rounding.
    """
    def copy(tree):
        return ({k: copy(v) for k, v in tree.items()} if isinstance(tree, Mapping)
                else np.asarray(jax.device_get(tree)))

    params, stats = copy(variables["params"]), variables["batch_stats"]

    def sub(tree, path):
        for p in path:
            tree = tree[p]
        return tree

    for conv_path, bn_path in _conv_bn_pairs(models.validate(cfg), net):
        conv, bn, st = sub(params, conv_path), sub(params, bn_path), sub(stats, bn_path)
        if "bias" in conv:
            raise ValueError(f"{'.'.join(conv_path)}: a conv with its own bias before a "
                             "BatchNorm (not in HRNet) is not folded")
        s = (np.asarray(bn["scale"], np.float64)
             / np.sqrt(np.asarray(st["var"], np.float64) + BN_EPS))
        conv["kernel"] = (np.asarray(conv["kernel"], np.float64) * s).astype(np.float32)
        sub(params, bn_path[:-1])[bn_path[-1]] = {
            "bias": (np.asarray(bn["bias"], np.float64)
                     - np.asarray(st["mean"], np.float64) * s).astype(np.float32)}
    return {"params": params}


# ---------------------------------------------------------------------------------------
# Files


def load_file(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Reads a state_dict from ``.safetensors`` (no torch needed), ``.npz``, or
    ``.pth``/``.pt``/``.pth.tar`` (needs torch; read with ``weights_only=True``, never
    unpickling arbitrary objects).  A training checkpoint holding ``state_dict`` is
    unwrapped.  A file that cannot be read so is a WeightsFileError naming it."""
    path = os.fspath(path)
    check_readable(path)
    name = path.lower()
    try:
        if name.endswith(".safetensors"):
            from safetensors.numpy import load_file as st_load
            raw: Mapping[str, Any] = st_load(path)
        elif name.endswith(".npz"):
            with np.load(path, allow_pickle=False) as z:
                raw = {k: z[k] for k in z.files}
        elif name.endswith((".pth", ".pt", ".pth.tar", ".ckpt")):
            raw = _load_torch(path)
        else:
            raise WeightsFileError(f"{path}: unknown extension: use .safetensors, .npz, .pth, "
                                   f".pt or .pth.tar")
    except (WeightsFileError, ImportError):
        raise
    except Exception as e:  # noqa: BLE001 - re-raised with the file named
        why = " ".join(f"{type(e).__name__}: {e}".split())
        raise WeightsFileError(f"cannot read weights from {path}: {why}") from e
    return clean_state_dict(raw)


def check_readable(path: str) -> None:
    """A WeightsFileError for a weights path that is a directory, missing or empty."""
    if os.path.isdir(path):
        raise WeightsFileError(f"{path}: a directory, not a weights file: give the file "
                               f"(.safetensors, .npz, .pth, generator.msgpack) itself")
    if not os.path.isfile(path):
        raise WeightsFileError(f"{path}: weights file not found")
    if os.path.getsize(path) == 0:
        raise WeightsFileError(f"{path}: the file is empty (a copy or download that failed?)")


def _load_torch(path: str) -> Mapping[str, Any]:
    try:
        import torch
    except ImportError as e:
        raise ImportError(f"reading {path} needs PyTorch (pip install torch), or convert it to "
                          ".safetensors where torch is installed") from e
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:  # weights_only refuses anything but tensors
        first = str(e).strip().splitlines()[0] if str(e).strip() else ""
        raise WeightsFileError(f"{path}: not a plain state_dict: it pickles other objects, "
                               f"which are never unpickled here (torch.load weights_only=True: "
                               f"{first}); save model.state_dict() instead") from e
    if isinstance(obj, Mapping) and obj and not all(hasattr(v, "shape") for v in obj.values()):
        for key in ("state_dict", "model", "best_state_dict"):
            if key in obj and isinstance(obj[key], Mapping):
                return obj[key]
        raise WeightsFileError(f"{path}: holds a dict with keys {sorted(obj)[:10]} but no "
                               f"tensor state_dict")
    if not isinstance(obj, Mapping):
        raise WeightsFileError(f"{path}: holds a {type(obj).__name__}, not a state_dict: save "
                               f"model.state_dict() instead")
    return obj


def save_file(state_dict: Mapping[str, np.ndarray], path: str | os.PathLike,
              metadata: Mapping[str, str] | None = None) -> None:
    """Writes a state_dict as ``.safetensors``, ``.npz`` or ``.pth`` (torch needed), atomically,
    with the mode every other file gets (0666 less the umask).
    ``metadata``: string pairs for a .safetensors header (the other formats have none)."""
    path = os.fspath(path)
    tmp = path + ".tmp"
    arrays = {k: np.ascontiguousarray(v) for k, v in state_dict.items()}
    name = path.lower()
    if name.endswith(".safetensors"):
        # safetensors' own save_file creates its file 0600: write its bytes ourselves.
        from safetensors.numpy import save as st_bytes
        with open(tmp, "wb") as f:
            f.write(st_bytes(arrays, metadata=dict(metadata) if metadata else None))
    elif name.endswith(".npz"):
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)
    elif name.endswith((".pth", ".pt")):
        try:
            import torch
        except ImportError as e:
            raise ImportError(f"writing {path} needs PyTorch; write .safetensors instead") from e
        torch.save({k: torch.from_numpy(v) for k, v in arrays.items()}, tmp)
    else:
        raise ValueError(f"{path}: unknown extension, use .safetensors, .npz or .pth")
    os.replace(tmp, path)


def trained_scale_state_dict(cfg, net: str = "generator", seed: int = 0) -> dict[str, np.ndarray]:
    """Random official-layout weights at a trained network's scale: conv kernels with
    std 1/sqrt(fan_in), BN statistics and affines near 1 and 0.

    The N(0, 0.001) initial kernels shrink activations layer after layer into float32
    denormals, which CPUs process many times slower: timings would depend on the
    weights.  Made in numpy, so no Flax init is compiled.
    """
    rng = np.random.default_rng(seed)
    out = {}
    for key, slot in layout(cfg, net).items():
        shape = slot.shape
        if len(shape) == 4:
            value = rng.normal(size=shape) / np.sqrt(np.prod(shape[1:]))
        elif key.endswith("running_var"):
            value = rng.uniform(0.5, 2.0, shape)
        elif key.endswith(("running_mean", "bias")):
            value = rng.normal(0.0, 0.1, shape)
        else:
            value = rng.uniform(0.5, 1.5, shape)
        out[key] = value.astype(np.float32)
    return out
