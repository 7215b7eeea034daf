"""The one inference path: images -> normalised input -> G (eval mode, flip test) ->
heatmaps -> keypoints.  Training, evaluation, predict, export and the CLI all use it.

    variables, source, step = inference.generator_variables(config, workdir, weights, "best")
    predict = jax.jit(inference.predict_fn(config))
    coords, maxvals = predict(variables, crops)   # crops: uint8 (B, H, W, 3)

* ``normalize_images``: uint8 RGB -> ImageNet mean/std float32 (torchvision's
  ToTensor + Normalize), for training and inference alike.
* ``generator_variables``: a generator from a weights file (official .pth/.safetensors/
  .npz, or generator.msgpack) or a training workdir's best/latest checkpoint.
* ``apply_fn`` / ``heatmaps_fn`` / ``predict_fn``: G in eval mode in config.eval.dtype
  (float32 by default, whatever dtype it trained in: ``deploy_network``), the flip test
  (config.eval.flip_test), and the peaks (config.eval.decode: the official argmax +
  quarter offset, or DARK), all jnp and jit-able; ``folded=True`` runs the
  BatchNorm-folded variables of ``weights.fold_batch_norm``.
* ``crop_outputs_fn``: what the exported models (SavedModel, ONNX) compute: heatmaps,
  keypoints in crop pixels and scores; ``forward_fn``: one pass, heatmaps only.
* ``load_predictor``: a predictor from anything ``--weights`` may name, the exported
  models included, for predict and evaluate.
"""
from __future__ import annotations

import os
from typing import Any, Callable

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from flax import serialization

from hrgan_jax import keypoints, models, weights

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
DECODERS = ("official", "dark")


def normalize_images(images: jax.Array) -> jax.Array:
    """uint8 RGB (B, H, W, 3) -> float32, ImageNet mean/std (torchvision ToTensor + Normalize)."""
    x = images.astype(jnp.float32) / 255.0
    return (x - jnp.asarray(IMAGENET_MEAN, jnp.float32)) / jnp.asarray(IMAGENET_STD, jnp.float32)


# ---------------------------------------------------------------------------------------
# Loading a generator


def load_generator(config: ml_collections.ConfigDict, weights_path: str) -> dict:
    """Generator variables from generator.msgpack or an official-layout file.  A file that
    cannot be read is a weights.WeightsFileError naming it; weights of another network a
    WeightsMismatchError whose first line names the file and, when an export's
    config.json lies beside it, the settings it was made with."""
    try:
        if weights_path.endswith(".msgpack"):
            # Through the official layout and back: every key and shape is checked.
            state_dict = weights.to_torch(_read_msgpack(weights_path), config.model, "generator")
        else:
            state_dict = weights.load_file(weights_path)
        return weights.from_torch(state_dict, config.model, "generator", what=weights_path)
    except weights.WeightsMismatchError as e:
        lines = str(e).splitlines()
        first = f"{weights_path} does not fit the configured generator (model {config.model.name!r})"
        made = export_settings(config, weights_path)
        first += f": {made}" if made else ": give the --config it was trained with"
        raise weights.WeightsMismatchError("\n".join([first] + lines[1:]), e.missing,
                                           e.unexpected, e.wrong_shape) from None


def _read_msgpack(path: str) -> dict:
    weights.check_readable(path)
    with open(path, "rb") as f:
        data = f.read()
    try:
        variables = serialization.msgpack_restore(data)
    except Exception as e:  # noqa: BLE001 - msgpack's errors for a truncated or foreign file
        raise weights.WeightsFileError(f"cannot read weights from {path}: not Flax msgpack "
                                       f"variables ({type(e).__name__}: {e})") from e
    if not isinstance(variables, dict) or "params" not in variables:
        raise weights.WeightsFileError(f"cannot read weights from {path}: not Flax variables "
                                       f"(no 'params')")
    return variables


# The config fields outside config.model that decide which generator a file fits, and
# the config.model fields that do not (they matter to training only).
_NETWORK_DATA_FIELDS = ("image_size", "heatmap_size", "name", "keypoints")
_TRAINING_ONLY = ("name", "pretrained_layers", "bn_group", "kernel_init", "init", "init_full")


def export_settings(config: ml_collections.ConfigDict, weights_path: str) -> str:
    """What the export's config.json beside ``weights_path`` says its network is, as the
    --config flags that build it ('' when there is no readable config.json there): the
    model preset, then each model or data field (image and heatmap size, dataset,
    keypoints) the preset does not set that differs from ``config``."""
    import json
    path = os.path.join(os.path.dirname(os.path.abspath(weights_path)), "config.json")
    try:
        with open(path) as f:
            saved = json.load(f)
        model, data = dict(saved["model"]), dict(saved["data"])
    except (OSError, ValueError, KeyError, TypeError):
        return ""
    preset = model.get("name")
    flags = []
    base = json.loads(config.model.to_json_best_effort())
    if preset != config.model.name and preset in models.PRESET_WIDTHS:
        flags.append(f"--config=default:{preset}")
        base = json.loads(models.hrnet_config(preset).to_json_best_effort())
    here_data = json.loads(config.data.to_json_best_effort())
    differ = _differences(model, base, "model", skip=_TRAINING_ONLY)
    differ += _differences({k: data[k] for k in _NETWORK_DATA_FIELDS if k in data},
                           here_data, "data")
    flags += [f"--config.{name}=" + (f"'{tuple(v)}'" if isinstance(v, list) else f"{v}")
              for name, v in differ]
    if not flags:
        return f"{path} describes this very network"
    return f"{path} says it holds model {preset!r}: rerun with {' '.join(flags)}"


def _differences(saved: dict, here: dict, prefix: str, skip=()) -> list[tuple[str, Any]]:
    """(dotted field, saved value) of every leaf of ``saved`` that ``here`` lacks or holds
    otherwise."""
    out = []
    for key, value in saved.items():
        if key in skip:
            continue
        other = here.get(key) if isinstance(here, dict) else None
        if isinstance(value, dict):
            out += _differences(value, other if isinstance(other, dict) else {}, f"{prefix}.{key}")
        elif value != other:
            out.append((f"{prefix}.{key}", value))
    return out


def restore_generator(config: ml_collections.ConfigDict, workdir: str,
                      which: str = "best") -> tuple[dict, int]:
    """(generator variables as numpy, step) from a run's best or latest checkpoint."""
    from hrgan_jax import checkpoints, evaluation, parallel, state as state_lib, trainer
    directory = os.path.join(workdir, "checkpoints")
    if not os.path.isdir(directory):
        raise checkpoints.CheckpointError(
            f"{workdir} has no checkpoints/ directory, so it is not a training run: give the "
            f"--workdir of a training run, or --weights=FILE")
    ckpt = checkpoints.Checkpoints(directory, every_steps=1, keep=1 << 30,
                                   best_metric=evaluation.best_metric(config) or None,
                                   async_save=False)
    try:
        step = ckpt.best_step() if which == "best" else None
        step = ckpt.latest_step() if step is None else step
        if step is None:
            raise checkpoints.CheckpointError(
                f"{ckpt.directory}: no complete checkpoint yet (the run saves one every "
                f"config.checkpoint.every_steps steps and at its end): train longer, or give "
                f"--weights=FILE")
        g_tx, d_tx, _, _ = state_lib.optimizers(config, steps_per_epoch=1)
        mesh = parallel.make_mesh(jax.local_devices()[:1])
        state, _ = ckpt.restore(step, trainer.abstract_state(config, g_tx, d_tx, mesh))
    finally:
        ckpt.close()
    return jax.tree.map(np.asarray, state.generator_variables()), step


def generator_variables(config: ml_collections.ConfigDict, workdir: str | None,
                        weights_path: str | None, which: str = "best"):
    """(variables, where they came from (for messages), checkpoint step or None) from
    ``weights_path`` if given, else ``workdir``'s best/latest checkpoint."""
    if weights_path:
        if is_exported_model(weights_path):
            raise ValueError(f"{weights_path} is an exported model, not weights: it runs as it "
                             "is (predict, evaluate) but its variables cannot be read back")
        return load_generator(config, weights_path), weights_path, None
    if workdir:
        variables, step = restore_generator(config, workdir, which)
        return variables, f"{workdir} step {step}", step
    raise ValueError("give --workdir (a training run) or --weights (a weights file)")


# ---------------------------------------------------------------------------------------
# The network, the flip test and the peaks


def _folded_interceptor(next_fun, args, kwargs, context):
    """Runs ``weights.fold_batch_norm`` variables in the unchanged network: a BatchNorm
    that holds only the folded bias adds it to its input (the conv's output, whose
    kernel is already scaled)."""
    from hrgan_jax.models.hrnet import BatchNorm
    module = context.module
    if (context.method_name == "__call__" and isinstance(module, BatchNorm)
            and not module.has_variable("params", "scale")):
        x = args[0]
        return x + module.get_variable("params", "bias").astype(x.dtype)
    return next_fun(*args, **kwargs)


def deploy_dtype(config: ml_collections.ConfigDict) -> str:
    """config.eval.dtype: the compute dtype of evaluation, export and predict (float32
    unless asked otherwise), whatever config.model.dtype trained in."""
    return str(config.get("eval", {}).get("dtype", "float32"))


def deploy_network(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
    """G's network config as it is deployed: config.model computing in ``deploy_dtype``."""
    cfg = ml_collections.ConfigDict(config.model.to_dict())
    cfg.dtype = deploy_dtype(config)
    return cfg


# The layouts every exported model records (export_metadata): JAX's NHWC, where the
# official PyTorch model's heatmaps are NCHW.
EXPORT_LAYOUT = {
    "images_layout": "uint8 RGB [B, H, W, 3] (NHWC), (W, H) = config.data.image_size",
    "heatmaps_layout": "[B, h, w, J] (NHWC, channels last); the official PyTorch "
                       "PoseHighResolutionNet's are NCHW [B, J, h, w]: "
                       "heatmaps.transpose(0, 3, 1, 2)",
}


def export_metadata(config: ml_collections.ConfigDict) -> dict[str, str]:
    """What every exported file records about itself: ``dtype`` (it computes in:
    ``deploy_dtype``), ``trained_dtype`` (config.model.dtype), ``network``, and the
    layouts of its input and heatmaps (EXPORT_LAYOUT)."""
    return {"dtype": deploy_dtype(config), "trained_dtype": str(config.model.dtype),
            "network": str(config.model.name), **EXPORT_LAYOUT}


def apply_fn(config: ml_collections.ConfigDict, folded: bool = False) -> Callable:
    """``apply(variables, x float32 (B,H,W,3) normalised) -> heatmaps (B,h,w,J)``: G in eval
    mode, computing in config.eval.dtype (``deploy_network``); ``folded``: variables from
    ``weights.fold_batch_norm``."""
    generator = models.generator(deploy_network(config))
    if not folded:
        return lambda variables, x: generator.apply(variables, x, train=False)

    def apply(variables, x):
        from flax import linen as nn
        with nn.intercept_methods(_folded_interceptor):
            return generator.apply(variables, x, train=False)

    return apply


def fold(config: ml_collections.ConfigDict, variables: Any) -> dict:
    """The generator's variables with BatchNorm folded into the convolutions (for
    ``folded=True``)."""
    return weights.fold_batch_norm(variables, config.model, "generator")


def heatmaps_fn(config: ml_collections.ConfigDict, folded: bool = False) -> Callable:
    """``heatmaps(variables, images uint8 (B,H,W,3)) -> (B,h,w,J)``: G in eval mode; with
    config.eval.flip_test the mirrored crops are averaged in (flipped back, pairs
    swapped, shifted one pixel as the official flip test)."""
    from data_pipeline import keypoint_sets
    apply = apply_fn(config, folded)
    flip_pairs = keypoint_sets.of_config(config.data).flip_pairs
    flip, shift = bool(config.eval.flip_test), bool(config.eval.shift_heatmap)

    def heatmaps(variables, images):
        x = normalize_images(images)
        net = lambda im: apply(variables, im)  # noqa: E731
        return keypoints.flip_test_heatmaps(net, x, flip_pairs, shift) if flip else net(x)

    return heatmaps


def decoder(config: ml_collections.ConfigDict) -> str:
    """config.eval.decode, checked: "official" (argmax + quarter offset) or "dark"."""
    name = str(config.eval.get("decode", "official"))
    if name not in DECODERS:
        raise ValueError(f"config.eval.decode={name!r}: choose one of {', '.join(DECODERS)}")
    return name


def peaks(config: ml_collections.ConfigDict, heatmaps: jax.Array):
    """(coords (B,J,2) heatmap px, maxvals (B,J,1)) by config.eval.decode."""
    if decoder(config) == "dark":
        return keypoints.dark_peaks(heatmaps, int(config.eval.get("dark_kernel", 11)))
    return keypoints.heatmap_peaks(heatmaps, bool(config.eval.post_process))


def predict_fn(config: ml_collections.ConfigDict, folded: bool = False) -> Callable:
    """``predict(variables, images uint8 (B,H,W,3)) -> (coords (B,J,2) heatmap px, maxvals (B,J,1))``:
    the peaks of ``heatmaps_fn``'s heatmaps."""
    heatmaps = heatmaps_fn(config, folded)
    return lambda variables, images: peaks(config, heatmaps(variables, images))


def heatmap_stride(config: ml_collections.ConfigDict) -> np.ndarray:
    """(2,) float32: crop pixels per heatmap pixel, (x, y)."""
    (width, height), (hm_width, hm_height) = config.data.image_size, config.data.heatmap_size
    return np.asarray([width / hm_width, height / hm_height], np.float32)


def crop_outputs_fn(config: ml_collections.ConfigDict, variables: Any,
                    folded: bool = False) -> Callable:
    """``fn(images uint8 (B,H,W,3)) -> {heatmaps (B,h,w,J), keypoints (B,J,2) crop px (x, y),
    scores (B,J)}`` with the variables built in: what the exported models compute."""
    heatmaps_of = heatmaps_fn(config, folded)
    stride = heatmap_stride(config)

    def fn(images):
        heatmaps = heatmaps_of(variables, images)
        coords, maxvals = peaks(config, heatmaps)
        return {"heatmaps": heatmaps, "keypoints": coords * stride, "scores": maxvals[..., 0]}

    return fn


def forward_fn(config: ml_collections.ConfigDict, variables: Any,
               folded: bool = False) -> Callable:
    """``fn(images uint8 (B,H,W,3)) -> {heatmaps (B,h,w,J)}``: one pass of G, no flip
    test, no decoding (the exported heatmaps-only models)."""
    apply = apply_fn(config, folded)
    return lambda images: {"heatmaps": apply(variables, normalize_images(images))}


# ---------------------------------------------------------------------------------------
# Exported models as predictors


def is_exported_model(path: str) -> bool:
    """An exported generator (generator.onnx or a SavedModel directory), not weights."""
    return path.lower().endswith(".onnx") or os.path.isfile(os.path.join(path, "saved_model.pb"))


def load_predictor(config: ml_collections.ConfigDict, workdir: str | None,
                   weights_path: str | None, which: str = "best"):
    """(predict, source, step): ``predict(images uint8 (B,H,W,3)) -> (coords (B,J,2)
    heatmap px, maxvals (B,J,1))`` as numpy, from weights or a workdir (JAX, jitted,
    BatchNorm folded) or from an exported ONNX / SavedModel file, run by its own runtime.

    An exported model computes with the config it was exported with: its flip test and
    decoding are inside it, so config.eval.flip_test/decode do not apply to it.
    """
    if weights_path and is_exported_model(weights_path):
        stride = heatmap_stride(config)
        if weights_path.lower().endswith(".onnx"):
            from hrgan_jax import onnx_export
            run = onnx_export.session_fn(weights_path)
        else:
            from hrgan_jax import saved_model
            run = saved_model.session_fn(weights_path)

        def predict_exported(images):
            out = run(np.asarray(images, np.uint8))
            return out["keypoints"] / stride, out["scores"][..., None]

        return predict_exported, f"{weights_path} (exported model)", None
    variables, source, step = generator_variables(config, workdir, weights_path, which)
    folded = fold(config, variables)
    jitted = jax.jit(predict_fn(config, folded=True))

    def predict_jax(images):
        coords, maxvals = jitted(folded, images)
        return np.asarray(coords), np.asarray(maxvals)

    return predict_jax, source, step
