"""Every check of a run's config, in one place: the command line and the Python API both
end here before anything expensive starts.

``check(config)`` names every field whose value the code would otherwise misread
silently, or fail on far from the command line (the keypoint set included: its file
read and model.num_joints checked against it); ``unknown_override(config, overrides)``
names a ``--config.<path>`` that is not a field, with the closest field's name.  The
defaults and the meaning of each field live in configs/default.py.
"""
from __future__ import annotations

import difflib
from typing import Iterable

from hrgan_jax.models.config import D_OUTPUTS, KERNEL_INITS, PRESET_WIDTHS

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
    if not problems:
        problems += keypoint_problems(config)
    if problems:
        raise ValueError("; ".join(problems))


def keypoint_problems(config) -> list[str]:
    """The keypoint set (data_pipeline/keypoint_sets.py) against the rest of the config:
    a keypoints file that cannot be read as one (its DataError, naming the file and the
    field), one given for a layout or source that has fixed joints, and model.num_joints
    not the set's number of joints."""
    from data_pipeline import keypoint_sets
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
