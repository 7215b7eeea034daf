"""The generator as ONNX: inference without JAX, TensorFlow or this package.

``jax2onnx`` (an ONNX converter that reads the JAX program itself, no TensorFlow in
between) converts ``inference.crop_outputs_fn`` over the BatchNorm-folded generator:

    generator.onnx
      images    uint8   [B, H, W, 3]  RGB crops of config.data.image_size (B is free)
      -> heatmaps  float32 [B, h, w, J]  flip-tested when config.eval.flip_test
         keypoints float32 [B, J, 2]     (x, y) in crop pixels, config.eval.decode
         scores    float32 [B, J]        heatmap maxima
    generator_heatmaps.onnx
      images uint8 [B, H, W, 3] -> heatmaps float32 [B, h, w, J]: one forward pass,
      no flip test, no decoding (plain convolutions, for runtimes and compilers that
      want nothing else; and the one to time against other runtimes' forward pass).

The heatmaps are NHWC (channels last), where the official PyTorch model's are NCHW
[B, J, h, w]; the metadata_props say so (``heatmaps_layout``).  Both compute in
config.eval.dtype (float32 by default, whatever config.model.dtype
trained in), say so in their metadata_props (``inference.export_metadata``), and are run once in ONNX
Runtime before they are written: a file ONNX Runtime cannot run (bfloat16 convolutions
have no CPU kernel) is an error, never a silent file.  ``session_fn`` runs them; the
caller maps crop pixels back to the image with the affine it cropped with.  jax2onnx is optional
(``pip install '.[onnx]'`` and ``pip install --no-deps jax2onnx``): export skips the ONNX files without it.
"""
from __future__ import annotations

import logging
import os
from typing import Any

import ml_collections

from hrgan_jax import inference

FULL_NAME = "generator.onnx"
HEATMAPS_NAME = "generator_heatmaps.onnx"


class ExportError(RuntimeError):
    """An exported file that its runtime cannot run; nothing was written."""


def available() -> str | None:
    """None when the converter is importable, else why not (for export's message)."""
    try:
        import jax2onnx  # noqa: F401
        import onnx  # noqa: F401
    except ImportError as e:
        return f"{e.name or e} is not installed (pip install '.[onnx]' && pip install --no-deps jax2onnx)"
    return None


def write(config: ml_collections.ConfigDict, variables: Any, path: str,
          heatmaps_only: bool = False) -> str:
    """Writes ``path`` (atomically) and returns it; see the module docstring."""
    import jax
    import jax.numpy as jnp
    # jax2onnx logs every optional plugin it cannot import (equinox, dm_pix), and onnx_ir
    # every shape-only helper value it leaves untyped: noise here.
    for name in ("jax2onnx", "onnx_ir"):
        logging.getLogger(name).setLevel(logging.ERROR)
    from jax2onnx import to_onnx

    width, height = (int(v) for v in config.data.image_size)
    folded = inference.fold(config, variables)
    if heatmaps_only:
        fn, outputs = inference.forward_fn(config, folded, folded=True), ["heatmaps"]
    else:
        fn = inference.crop_outputs_fn(config, folded, folded=True)
        outputs = ["heatmaps", "keypoints", "scores"]
    spec = jax.ShapeDtypeStruct(jax.export.symbolic_shape(f"B, {height}, {width}, 3"),
                                jnp.uint8)
    model = to_onnx(fn, [spec], return_mode="proto", model_name="hrgan_generator",
                    input_names=["images"], output_names=outputs)
    import onnx
    onnx.helper.set_model_props(model, inference.export_metadata(config))
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(model.SerializeToString())
    try:
        _check_runs(tmp, config, path)
    except BaseException:
        os.remove(tmp)
        raise
    os.replace(tmp, path)
    return path


def _check_runs(tmp: str, config: ml_collections.ConfigDict, path: str) -> None:
    """Runs the file at ``tmp`` on one black crop in ONNX Runtime; ExportError naming
    ``path`` if it does not load or run.  Without ONNX Runtime, says it is unchecked."""
    import numpy as np
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        print(f"{path}: not checked (ONNX Runtime is not installed here)")
        return
    width, height = (int(v) for v in config.data.image_size)
    try:
        out = session_fn(tmp, threads=1)(np.zeros((1, height, width, 3), np.uint8))
    except Exception as e:  # noqa: BLE001 - onnxruntime raises its own exception types
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ExportError(
            f"{path}: ONNX Runtime cannot run the exported model, so it was not written "
            f"(config.eval.dtype={inference.deploy_dtype(config)}: {reason[:300]}); export in "
            f"float32 (--config.eval.dtype=float32)") from None
    if not all(np.all(np.isfinite(v)) for v in out.values()):
        raise ExportError(f"{path}: ONNX Runtime's outputs on a black crop are not finite; "
                          f"not written")


def session_fn(path: str, threads: int = 0):
    """``run(images uint8 (B,H,W,3) numpy) -> {output name: numpy}`` by ONNX Runtime
    (CPU) from ``path``; ``threads`` 0 lets ONNX Runtime choose."""
    try:
        import onnxruntime as ort
    except ImportError as e:
        raise ImportError(f"running {path} needs ONNX Runtime (pip install onnxruntime)") from e
    options = ort.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
    session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]

    def run(images):
        return dict(zip(names, session.run(None, {"images": images})))

    return run
