"""The one inference path: uint8 crops -> normalised input -> G (eval mode, flip test) ->
heatmaps -> keypoints, all jnp and jit-able.  Evaluation, predict and export compute
with it; where the variables come from (weights files, checkpoints, exported models)
is loader.py's job, one floor up.

    variables, source, step = loader.generator_variables(config, workdir, weights, "best")
    predict = jax.jit(inference.predict_fn(config))
    coords, maxvals = predict(variables, crops)   # crops: uint8 (B, H, W, 3)

* ``apply_fn`` / ``heatmaps_fn`` / ``predict_fn``: G in eval mode in config.eval.dtype
  (float32 by default, whatever dtype it trained in: ``deploy_network``), the flip test
  (config.eval.flip_test), and the peaks (config.eval.decode: the official argmax +
  quarter offset, or DARK); ``folded=True`` runs the BatchNorm-folded variables of
  ``weights.fold_batch_norm``.
* ``crop_outputs_fn``: what the exported models (SavedModel, ONNX) compute: heatmaps,
  keypoints in crop pixels and scores; ``forward_fn``: one pass, heatmaps only.
* ``export_metadata``: what every exported file records about itself.
"""
from __future__ import annotations

from typing import Any, Callable

import jax
import ml_collections
import numpy as np
from flax import linen as nn

from data_pipeline import keypoint_sets
from hrgan_jax import keypoints, models, weights
from hrgan_jax.images import normalize_images
from hrgan_jax.models.hrnet import BatchNorm

DECODERS = ("official", "dark")

def _folded_interceptor(next_fun, args, kwargs, context):
    """Runs ``weights.fold_batch_norm`` variables in the unchanged network: a BatchNorm
    that holds only the folded bias adds it to its input (the conv's output, whose
    kernel is already scaled)."""
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
