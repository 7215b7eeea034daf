"""Where a generator comes from: a weights file (official .pth/.safetensors/.npz, or
generator.msgpack), a training run's best or latest checkpoint, or an exported model
(ONNX, SavedModel) run by its own runtime.  Above inference.py (which computes) and
checkpoints.py (which restores a train state); predict, evaluate, export and compare
load through here.

* ``load_generator``: variables from a weights file, checked against the configured
  network (a mismatch names the settings the file was exported with).
* ``restore_generator`` / ``generator_variables``: variables from a workdir or a file.
* ``load_predictor``: a predictor from anything ``--weights`` may name, the exported
  models included, for predict and evaluate; ``is_exported_model`` tells them apart.
"""
from __future__ import annotations

import json
import os
from typing import Any

import jax
import ml_collections
import numpy as np
from flax import serialization

from hrgan_jax import (checkpoints, evaluation, inference, models, onnx_export, parallel,
                       saved_model, weights)
from hrgan_jax import state as state_lib


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
        state, _ = ckpt.restore(step, state_lib.abstract_state(config, g_tx, d_tx, mesh))
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
        stride = inference.heatmap_stride(config)
        if weights_path.lower().endswith(".onnx"):
            run = onnx_export.session_fn(weights_path)
        else:
            run = saved_model.session_fn(weights_path)

        def predict_exported(images):
            out = run(np.asarray(images, np.uint8))
            return out["keypoints"] / stride, out["scores"][..., None]

        return predict_exported, f"{weights_path} (exported model)", None
    variables, source, step = generator_variables(config, workdir, weights_path, which)
    folded = inference.fold(config, variables)
    jitted = jax.jit(inference.predict_fn(config, folded=True))

    def predict_jax(images):
        coords, maxvals = jitted(folded, images)
        return np.asarray(coords), np.asarray(maxvals)

    return predict_jax, source, step
