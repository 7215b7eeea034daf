"""The generator as a TensorFlow SavedModel: inference without this package.

``jax2tf`` serialises the jitted JAX function as StableHLO inside the SavedModel, so
TensorFlow (Python, C++, TF Serving) runs exactly the computation that JAX runs here.
The exported function takes person crops as the pipeline makes them and does the
whole device part of evaluation:

    serving_default(images: uint8 [B, H, W, 3] RGB crops of config.data.image_size)
      -> heatmaps  float32 [B, h, w, J]   (flip-tested when config.eval.flip_test)
         keypoints float32 [B, J, 2]      (x, y) in crop pixels
         scores    float32 [B, J]         heatmap maxima

The heatmaps are NHWC (channels last), where the official PyTorch model's are NCHW
[B, J, h, w]; the loaded model's ``metadata`` (JSON: ``heatmaps_layout``) says so.  The
batch size is free; the model carries programs for CPU and CUDA GPUs.  It is
``inference.crop_outputs_fn`` over the BatchNorm-folded generator: keypoints are the
configured decoding (config.eval.decode; the official one by default) mapped from
heatmap to crop pixels; the caller maps crop pixels back to the image with the affine
it cropped with.  It computes in config.eval.dtype (float32 by default) and carries
``metadata``, a JSON string variable: {"dtype", "trained_dtype", "network",
"images_layout", "heatmaps_layout"}
(``inference.export_metadata``).
"""
from __future__ import annotations

import os
from typing import Any

import ml_collections

from hrgan_jax import inference


def write(config: ml_collections.ConfigDict, variables: Any, out_dir: str,
          heatmaps_only: bool = False) -> str:
    """Writes the SavedModel directory ``out_dir`` (atomically: a temporary sibling is
    renamed into place) and returns it.  ``heatmaps_only``: one pass of G, heatmaps
    only (``inference.forward_fn``; for benchmarks against other runtimes' forward)."""
    import shutil

    import tensorflow as tf
    from jax.experimental import jax2tf

    width, height = config.data.image_size
    folded = inference.fold(config, variables)
    fn = (inference.forward_fn if heatmaps_only else inference.crop_outputs_fn)(
        config, folded, folded=True)
    converted = jax2tf.convert(fn,
                               polymorphic_shapes=[f"(b, {height}, {width}, 3)"],
                               with_gradient=False,
                               native_serialization_platforms=("cpu", "cuda"))
    signature = tf.TensorSpec([None, height, width, 3], tf.uint8, name="images")
    serve = tf.function(converted, input_signature=[signature], autograph=False)
    import json

    module = tf.Module()
    module.serve = serve
    module.metadata = tf.Variable(json.dumps(inference.export_metadata(config), sort_keys=True),
                                  trainable=False, name="metadata")
    tmp = out_dir.rstrip("/") + ".tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tf.saved_model.save(module, tmp, signatures={"serving_default": serve})
    shutil.rmtree(out_dir, ignore_errors=True)
    os.replace(tmp, out_dir)
    return out_dir


def session_fn(path: str):
    """``run(images uint8 (B,H,W,3) numpy) -> {heatmaps, keypoints, scores}`` numpy, by
    TensorFlow from the SavedModel directory ``path`` (see the module docstring)."""
    try:
        import tensorflow as tf
    except ImportError as e:
        raise ImportError(f"running the SavedModel {path} needs TensorFlow "
                          "(pip install tensorflow-cpu)") from e
    serve = tf.saved_model.load(path).signatures["serving_default"]

    def run(images):
        return {k: v.numpy() for k, v in serve(images=tf.constant(images)).items()}

    return run
