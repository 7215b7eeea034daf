"""The generator as a TensorFlow SavedModel: inference without this package.

``jax2tf`` serialises the jitted JAX function as StableHLO inside the SavedModel, so
TensorFlow (Python, C++, TF Serving) runs exactly the computation that JAX runs here.
The exported function takes person crops as the pipeline makes them and does the
whole device part of evaluation:

    serving_default(images: uint8 [B, H, W, 3] RGB crops of config.data.image_size)
      -> heatmaps  float32 [B, h, w, J]   (flip-tested when config.eval.flip_test)
         keypoints float32 [B, J, 2]      (x, y) in crop pixels
         scores    float32 [B, J]         heatmap maxima

The batch size is free; the model carries programs for CPU and CUDA GPUs.  Keypoints are the official decoding (argmax, the quarter-pixel
step with config.eval.post_process) mapped from heatmap to crop pixels; the caller maps
crop pixels back to the image with the affine it cropped with.
"""
from __future__ import annotations

import os
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from hrgan_jax import keypoints, models
from hrgan_jax.step import normalize_images


def inference_fn(config: ml_collections.ConfigDict, variables: Any):
    """images uint8 (B, H, W, 3) -> dict(heatmaps, keypoints, scores); pure JAX."""
    from data_pipeline.joints import FLIP_PAIRS
    module = models.generator(config.model)
    flip_pairs = FLIP_PAIRS[config.data.name]
    width, height = config.data.image_size
    hm_width, hm_height = config.data.heatmap_size

    def apply(x):
        return module.apply(variables, x, train=False)

    def fn(images):
        x = normalize_images(images)
        if config.eval.flip_test:
            heatmaps = keypoints.flip_test_heatmaps(apply, x, flip_pairs,
                                                    config.eval.shift_heatmap)
        else:
            heatmaps = apply(x)
        coords, maxvals = keypoints.heatmap_peaks(heatmaps, config.eval.post_process)
        stride = jnp.asarray([width / hm_width, height / hm_height], jnp.float32)
        return {"heatmaps": heatmaps, "keypoints": coords * stride, "scores": maxvals[..., 0]}

    return fn


def write(config: ml_collections.ConfigDict, variables: Any, out_dir: str) -> str:
    """Writes the SavedModel directory ``out_dir`` (atomically: a temporary sibling is
    renamed into place) and returns it."""
    import shutil

    import tensorflow as tf
    from jax.experimental import jax2tf

    width, height = config.data.image_size
    variables = jax.tree.map(np.asarray, variables)
    converted = jax2tf.convert(inference_fn(config, variables),
                               polymorphic_shapes=[f"(b, {height}, {width}, 3)"],
                               with_gradient=False,
                               native_serialization_platforms=("cpu", "cuda"))
    signature = tf.TensorSpec([None, height, width, 3], tf.uint8, name="images")
    serve = tf.function(converted, input_signature=[signature], autograph=False)
    module = tf.Module()
    module.serve = serve
    tmp = out_dir.rstrip("/") + ".tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tf.saved_model.save(module, tmp, signatures={"serving_default": serve})
    shutil.rmtree(out_dir, ignore_errors=True)
    os.replace(tmp, out_dir)
    return out_dir
