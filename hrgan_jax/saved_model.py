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
import ml_collections
import numpy as np

from hrgan_jax import keypoints


def inference_fn(config: ml_collections.ConfigDict, variables: Any):
    """images uint8 (B, H, W, 3) -> dict(heatmaps, keypoints, scores); pure JAX, the
    evaluation's own heatmaps and peaks."""
    from hrgan_jax.evaluation import runner
    heatmaps_of = runner.heatmaps_fn(config)
    width, height = config.data.image_size
    hm_width, hm_height = config.data.heatmap_size
    stride = np.asarray([width / hm_width, height / hm_height], np.float32)

    def fn(images):
        heatmaps = heatmaps_of(variables, images)
        coords, maxvals = keypoints.heatmap_peaks(heatmaps, config.eval.post_process)
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
