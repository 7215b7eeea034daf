"""Every check of a run's config, in one place: the command line and the Python API both
end here before anything expensive starts.

``check(config)`` names every field whose value the code would otherwise misread
silently, or fail on far from the command line (the keypoint set included: its file
read and model.num_joints checked against it); ``unknown_override(config, overrides)`` names a
``--config.<path>`` that is not a field, with the closest field's name, and
``repeated_override`` a tuple field given twice; ``load_config_file(spec)`` reads
``--config=FILE[:ARGUMENT]``, naming the file or the argument when it cannot, and
``batch_split_problem`` a batch that does not split over the devices (parallel.py).  Each
raises or returns one line; ``ConfigError`` is a usage error (launch.py: exit status 2).
The defaults and the meaning of each field live in configs/default.py.
"""
from __future__ import annotations

import difflib
import glob
import math
import os
from typing import Iterable

from data_pipeline import keypoint_sets
from hrgan_jax import models
from hrgan_jax.models.config import D_OUTPUTS, KERNEL_INITS, PRESET_WIDTHS


class ConfigError(ValueError):
    """A config value, override or config file the code cannot use; the message names the
    field (or file) and the fix."""

# A string that must be one of a few.
CHOICES = {"data.name": ("coco", "mpii"), "data.source": ("files", "tfds"),
           "train.nan_policy": ("stop", "skip"), "train.flat_state": ("auto", "on", "off"),
           "optim.g_name": ("rmsprop", "adam"),
           "optim.d_name": ("rmsprop", "adam"), "model.dtype": ("float32", "bfloat16"),
           "model.kernel_init": KERNEL_INITS, "synth.scene": ("cluttered", "plain"),
           "eval.decode": ("official", "dark"), "eval.dtype": ("float32", "bfloat16"),
           "adversarial.d_network": ("",) + tuple(PRESET_WIDTHS),
           "adversarial.d_output": D_OUTPUTS, "adversarial.gan_loss": ("bce", "lsgan")}
# A (width, height) pair of positive integers.
PAIRS = ("data.image_size", "data.heatmap_size", "synth.image_size")


def _get(config, path: str):
    node = config
    for part in path.split("."):
        node = node[part]
    return node


def check(config) -> None:
    """Raise ValueError naming every field of ``config`` whose value the code cannot use
    (every problem at once, joined by '; ').  Fields a partial config lacks are skipped."""
    problems = []
    for path, allowed in CHOICES.items():
        try:
            value = _get(config, path)
        except (KeyError, AttributeError):
            continue
        if value not in allowed:
            names = ", ".join(a or "''" for a in allowed)
            problems.append(f"config.{path} = {value!r}: choose one of {names}")
    for path in PAIRS:
        try:
            value = _get(config, path)
        except (KeyError, AttributeError):
            continue
        if len(value) != 2 or not all(isinstance(v, int) and v > 0 for v in value):
            problems.append(f"config.{path} = {tuple(value)!r}: give (width, height), two "
                            f"positive integers, e.g. --config.{path}='(192, 256)'")
    problems += _adversarial_combinations(config)
    problems += _value_problems(config)
    if not problems:
        problems += _size_problems(config)
    if not problems:
        problems += keypoint_problems(config)
    if problems:
        raise ConfigError("; ".join(problems))


def _value_problems(config) -> list[str]:
    """Batch sizes, BatchNorm groups, learning rates and the training length: values of
    the right type that mean nothing (and would fail far from the command line, or
    train on NaN)."""
    problems = []
    for path in ("train.batch_size", "eval.batch_size"):
        value = _maybe(config, path)
        if value is not None and value <= 0:
            problems.append(f"config.{path} = {value}: give a positive batch size, e.g. "
                            f"--config.{path}=16")
    batch, bn_group = _maybe(config, "train.batch_size"), _maybe(config, "model.bn_group")
    if isinstance(bn_group, int) and bn_group < 0:
        problems.append(f"config.model.bn_group = {bn_group}: give the images per BatchNorm "
                        f"group (> 0) or 0 for the whole batch")
    elif batch and batch > 0 and bn_group and batch % bn_group:
        problems.append(f"config.model.bn_group = {bn_group} does not divide "
                        f"config.train.batch_size = {batch}: give a batch of a multiple of "
                        f"{bn_group} per device, or --config.model.bn_group=0 (one group per "
                        f"batch)")
    for path in ("optim.g_lr", "optim.d_lr"):
        value = _maybe(config, path)
        if value is not None and not (math.isfinite(value) and value >= 0):
            problems.append(f"config.{path} = {value}: a learning rate is a finite number "
                            f">= 0, e.g. --config.{path}=1e-3")
    for path in ("adversarial.beta_g", "adversarial.gamma", "adversarial.lambda_k",
                 "adversarial.k0", "optim.lr_factor", "optim.eps", "predict.box_threshold",
                 "data.image_threshold"):
        value = _maybe(config, path)
        if value is not None and not math.isfinite(value):
            problems.append(f"config.{path} = {value}: give a finite number")
    steps, epochs = _maybe(config, "train.steps"), _maybe(config, "train.epochs")
    if steps is not None and epochs is not None and steps <= 0 and epochs <= 0:
        problems.append(f"config.train.steps = {steps} and config.train.epochs = {epochs}: "
                        f"nothing to train; set --config.train.steps=N or "
                        f"--config.train.epochs=N")
    return problems


def _maybe(config, path: str):
    try:
        return _get(config, path)
    except (KeyError, AttributeError):
        return None


def _size_problems(config) -> list[str]:
    """The heatmap is the input at stride 4 (G's stem), and every branch of G and of D
    (which runs at heatmap resolution) halves it again, its fusion upsampling back: the
    input must be a multiple of 4 * 2^(branches - 1), the heatmap exactly input / 4."""
    try:
        (w, h), (hw, hh) = config.data.image_size, config.data.heatmap_size
        nets = [models.network_config(config, "generator")]
        if config.adversarial.get("enabled", True):
            nets.append(models.network_config(config, "discriminator"))
        for net in nets:
            models.config.validate(net)
    except (KeyError, AttributeError):
        return []
    except ValueError as e:  # models.config.validate: "model config field F: ..."
        return [f"config.model: {e}"]
    branches = max(int(net.stage4.num_branches) for net in nets)
    multiple = 4 * 2 ** (branches - 1)
    problems = []
    if w % multiple or h % multiple:
        fit = tuple(max(multiple, round(v / multiple) * multiple) for v in (w, h))
        problems.append(f"config.data.image_size = {(w, h)}: the network's {branches} "
                        f"branches need a width and height that are multiples of {multiple}, "
                        f"e.g. --config.data.image_size='{fit}'")
    elif (hw, hh) != (w // 4, h // 4):
        problems.append(f"config.data.heatmap_size = {(hw, hh)}: the heatmaps are the input "
                        f"{(w, h)} at stride 4: set --config.data.heatmap_size="
                        f"'{(w // 4, h // 4)}'")
    return problems


def batch_split_problem(global_batch: int, num_devices: int, bn_group: int = 0,
                        field: str = "config.train.batch_size") -> str | None:
    """A global batch (``field``) that does not split evenly over the devices, or whose
    per-device part does not split into BatchNorm groups of ``bn_group`` images
    (config.model.bn_group; 0: no groups), as one line; None when it does."""
    if global_batch % num_devices:
        return (f"{field} = {global_batch} does not split over {num_devices} devices; use a "
                f"multiple of {num_devices}")
    per_device = global_batch // num_devices
    if bn_group and per_device % bn_group:
        return (f"config.model.bn_group = {bn_group} does not divide the per-device batch "
                f"{per_device} ({field} = {global_batch} on {num_devices} devices); use a "
                f"batch of a multiple of {bn_group * num_devices} or a bn_group that divides "
                f"{per_device}")
    return None


def keypoint_problems(config) -> list[str]:
    """The keypoint set (data_pipeline/keypoint_sets.py) against the rest of the config:
    a keypoints file that cannot be read as one (its DataError, naming the file and the
    field), one given for a layout or source that has fixed joints, and model.num_joints
    not the set's number of joints."""
    try:
        data = config.data
        num_joints = int(config.model.num_joints)
    except (KeyError, AttributeError):
        return []
    custom = data.get("keypoints", "")
    if custom and data.name != "coco":
        return [f"config.data.keypoints = {custom!r} needs the COCO layout: set "
                f"--config.data.name=coco (MPII's layout and PCKh have its 16 joints)"]
    if custom and data.get("source", "files") != "files":
        return [f"config.data.keypoints = {custom!r}: the TFDS builders hold COCO's and "
                f"MPII's joints only; set --config.data.source=files"]
    kset = keypoint_sets.of_config(data)  # a DataError (a ValueError) for a bad file
    if kset.num_joints != num_joints:
        return [f"config.model.num_joints = {num_joints} but the keypoint set "
                f"{kset.describe()} has {kset.num_joints}: set "
                f"--config.model.num_joints={kset.num_joints}"
                + ("" if custom else ", or --config.data.keypoints=FILE for your own joints")]
    return []


def _adversarial_combinations(config) -> list[str]:
    """The adversarial settings that mean nothing together: BEGAN's k_t and HRGAN's
    reconstruction-error options with a conventional (classifying) D, a classifier's
    loss with HRGAN's reconstructing D."""
    try:
        adv = config.adversarial
        d_output, enabled = adv.d_output, adv.enabled
    except (KeyError, AttributeError):
        return []
    if not enabled:
        return []
    if d_output == "reconstruct":
        if adv.get("gan_loss", "bce") != "bce":
            return [f"config.adversarial.gan_loss = {adv.gan_loss!r} is a loss of the "
                    f"conventional discriminators (d_output image or joint); HRGAN's "
                    f"d_output='reconstruct' uses eq. (3)-(4)"]
        return []
    problems = []
    if adv.get("equilibrium", False):
        problems.append(f"config.adversarial.d_output = {d_output!r} has no boundary "
                        f"equilibrium (k_t weighs reconstruction errors): set "
                        f"--config.adversarial.equilibrium=False")
    if adv.get("target_weight_in_d", False):
        problems.append(f"config.adversarial.target_weight_in_d weights D's reconstruction "
                        f"errors, which d_output = {d_output!r} does not have: set it False")
    return problems


def unknown_override(config, overrides: Iterable[str]) -> str | None:
    """The first ``--config.<path>[=value]`` in ``overrides`` whose path is not a field of
    ``config``, as a one-line message with the closest existing name; None if all are."""
    for arg in overrides:
        if not arg.startswith("--config."):
            continue
        path = arg.split("=", 1)[0][len("--config."):]
        node, walked = config, []
        for part in path.split("."):
            fields = list(node.keys()) if hasattr(node, "keys") else []
            if part not in fields:
                where = "config" + "".join(f".{p}" for p in walked)
                close = difflib.get_close_matches(part, fields, n=1)
                hint = (f"did you mean {close[0]!r}?" if close else
                        "configs/default.py lists every field")
                return (f"{arg.split('=', 1)[0]}: no such config field {part!r} in {where}; "
                        f"{hint}")
            node, walked = node[part], walked + [part]
    return None


def repeated_override(config, overrides: Iterable[str]) -> str | None:
    """A tuple field given more than once, one of them with more than one element
    (``--config.data.image_size='(64, 64)' --config.data.image_size='(96, 96)'``, which
    ml_collections would join into (64, 64, 96, 96)), as one line; None otherwise.
    ml_collections' own spelling, one element per repetition (``--config.x=1
    --config.x=2`` for (1, 2)), stays allowed."""
    given: dict[str, list[str]] = {}
    for arg in overrides:
        if arg.startswith("--config.") and "=" in arg:
            path, value = arg[len("--config."):].split("=", 1)
            given.setdefault(path, []).append(value)
    for path, values in given.items():
        try:
            default = _get(config, path)
        except (KeyError, AttributeError, TypeError):
            continue
        if (isinstance(default, tuple) and len(values) > 1
                and any("," in v for v in values)):
            return (f"--config.{path} is given {len(values)} times ({', '.join(values)}), "
                    f"which would join them into one tuple: give it once, e.g. "
                    f"--config.{path}='{values[-1]}'")
    return None


def load_config_file(spec: str):
    """``--config=FILE[:ARGUMENT]`` read as ml_collections reads it, ``get_config(ARGUMENT)``;
    a missing file or an argument its ``get_config`` refuses (an unknown preset or
    variant) is a ConfigError naming the file, the argument and the config files beside it."""
    import importlib.util
    import inspect
    path, colon, argument = spec.partition(":")
    if not os.path.isfile(path):
        directory = os.path.dirname(path) or "."
        known = sorted(os.path.relpath(p) for p in glob.glob(os.path.join(directory, "*.py"))
                       if not os.path.basename(p).startswith("_"))
        beside = f"; the config files in {directory}/: {', '.join(known)}" if known else ""
        raise ConfigError(f"--config={spec}: no such config file {path!r}{beside}")
    module_spec = importlib.util.spec_from_file_location("_hrgan_config_file", path)
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    if not colon:
        return module.get_config()
    if not inspect.signature(module.get_config).parameters:
        raise ConfigError(f"--config={spec}: {path}'s get_config takes no argument; give "
                          f"--config={path}")
    try:
        return module.get_config(argument)
    except ValueError as e:  # an unknown preset or variant: the message names the choices
        raise ConfigError(f"--config={spec}: {e}") from e
