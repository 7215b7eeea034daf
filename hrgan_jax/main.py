"""hrgan-jax: one entry point (the installed `hrgan-jax` command; `python launch.py` in the
repository).  Pick a mode with --mode, a config with --config: a shipped config by name
(default, synthetic, coco_w32_256x192, mpii_w32_256x256, ablation; a variant after ':',
e.g. coco_w32_256x192:paper) or a config file's path.  Override any config field with
--config.<path>=<value> (an unknown path is an error).

Modes:
  train     Train HRGAN (or the HRNet baseline: --config.adversarial.enabled=false) in
            --workdir: checkpoints/, TensorBoard events, metrics.jsonl, config.json
            (configs/ keeps every start's) and, at the end, curves.png.  Rerunning with
            the same --workdir resumes from the newest verified checkpoint, says from
            which step and which config fields changed, and first runs the evaluations
            left undone (a finished run's rerun runs only those); a change of what the
            run means (image size, dataset, keypoint set, the adversarial switch) is
            refused unless --allow_changed_meaning.  One trainer per workdir
            (WORKDIR/trainer.lock).  SIGTERM/Ctrl-C save a
            checkpoint and exit with status 0.  Multi-process jobs start jax.distributed
            by themselves under SLURM, Open MPI, Kubernetes or Cloud TPU, or with
            --coordinator/--num_processes/--process_id.
  evaluate  Evaluate a generator on config.data.val_split (COCO AP with OKS-NMS, or MPII
            PCKh) and print the official table; it is also written as JSON, with the COCO
            results file or pred.mat, into --out (default WORKDIR/evaluate/ or
            WEIGHTS.evaluate/: never the training's own eval/).  Weights: the best (or,
            without evaluations, the latest) checkpoint of --workdir, or --weights=FILE
            (official .pth/.safetensors/.npz, or generator.msgpack, or an exported
            generator.onnx / generator_savedmodel, run as deployed).
  export    Write network weights: generator.msgpack (Flax variables) + config.json and
            generator.safetensors in the official PyTorch key layout,
            generator.onnx (ONNX Runtime; generator_heatmaps.onnx: one pass, heatmaps
            only) and generator_savedmodel/ (a TensorFlow SavedModel), each uint8 crops
            in, heatmaps, keypoints and scores out, BatchNorm folded, into --out (a
            directory), from --workdir's best/latest checkpoint or from --weights; or, with
            --out=FILE.{safetensors,npz,pth}, one file in the official layout (--net picks
            generator or discriminator; without --workdir/--weights a fresh init).
  check     Read --weights and check it against the configured network: prints what fits
            and every missing, unexpected or mis-shaped key.  Exit status 1 on mismatch.
  synth     Write the synthetic dataset under --config.data.root: DIR/coco and DIR/mpii,
            each laid out as the official dataset (config.synth sets the sizes and,
            with config.synth.datasets, which of the two).  With
            --config.data.keypoints=FILE, DIR/coco labels that keypoint set's joints
            under its own categories entry (docs/keypoints.md).
  predict   Keypoints for --input (an image or a directory of images) with the generator
            of --workdir (best/latest checkpoint) or --weights (give the --config it was
            trained with).  Person boxes come from --boxes (COCO results-format
            detections naming each image by file_name, or by image_id for COCO-style
            numeric file names; a detector makes them: the README says how; boxes
            scoring below config.predict.box_threshold, 0.5, are dropped); without
            --boxes each image is one person, the whole image its box.
            Boxes follow the rules of the dataset reader (bbox [x, y, w, h] with w, h > 0,
            numeric score).  Each box is cropped as in evaluation (flip test included).
            Images are turned upright by their EXIF orientation first (the training and
            evaluation pipelines ignore it, as the official code does).  Writes
            keypoints.pose.json (COCO keypoint results, plus file_name and bbox) and
            <image name>.pose.png with each person's box and skeleton (joints scoring at least
            config.eval.draw_threshold, 0.2), into --out or beside the input, and says how
            many joints it drew.  Images are decoded as the pipelines decode them (a
            16-bit PNG included).  A missing, undecodable or too large image, or a box
            naming an image that is not among the inputs, stops with an error naming
            the file.
  compare   Compare training runs (--workdirs=A,B,...; finished or still running): writes
            compare.md (one row per run: variant from its config.json and the workdir's
            name, seed, best and
            final AP or PCKh with their steps, the per-part figures, k_t and the
            adversary's share of G's gradient) and compare.png (the evaluation metric
            against steps, one line per run) into --out (default: the current directory).

A refusal is one line on stderr, "error: ..." naming the flag, field or file and the fix:
exit status 2 for a command-line mistake, 1 for bad input (a file, record or weights).
--mode=MODE --help shows what that mode takes.

Examples:
  hrgan-jax --mode=synth --config=synthetic --config.data.root=/tmp/synth
  hrgan-jax --mode=train --config=synthetic --config.data.root=/tmp/synth/coco --workdir=/tmp/run
  hrgan-jax --mode=train --config=coco_w32_256x192:paper --config.data.root=/data/coco --workdir=/runs/coco
  hrgan-jax --mode=evaluate --config=synthetic --config.data.root=/tmp/synth/coco --workdir=/tmp/run
  hrgan-jax --mode=export --config=synthetic --workdir=/tmp/run --out=/tmp/export
  hrgan-jax --mode=check --config=default:w48 --weights=g.safetensors
  hrgan-jax --mode=predict --config=synthetic --workdir=/tmp/run --input=/tmp/synth/coco/images/val2017 --boxes=/tmp/synth/coco/person_detection_results/COCO_val2017_detections_AP_H_56_person.json --out=/tmp/predictions
  hrgan-jax --mode=predict --config=my_config.py --weights=/tmp/export/generator.msgpack --input=photo.jpg
"""
from __future__ import annotations

import os
import re
import sys
import textwrap
from typing import NoReturn

from absl import app, flags, logging
from ml_collections import config_flags

from data_pipeline.records import DataError
from hrgan_jax import compare, config_checks, configs, parallel
from hrgan_jax.compare import CompareError
from hrgan_jax.weights import WeightsFileError, WeightsMismatchError
from hrgan_jax.workdir import WorkdirError

MODES = ("train", "evaluate", "export", "check", "synth", "predict", "compare")

def _usage_error(message: str) -> NoReturn:
    """A command-line mistake (a flag, a config field or file): one line on stderr, exit
    status 2; --help (with --mode=MODE: that mode's part) says what each mode takes."""
    sys.stderr.write(f"error: {' '.join(str(message).split())}\n")
    sys.exit(2)


def _data_error(error: Exception) -> NoReturn:
    """Bad input (a file, record, checkpoint or weights): 'error: ' and the message, naming
    it, on stderr, exit status 1; weights that do not fit keep their key list below."""
    if isinstance(error, WeightsMismatchError):
        first, *rest = str(error).splitlines()
        sys.stderr.write("\n".join([f"error: {first}"] + rest) + "\n")
    else:
        sys.stderr.write(f"error: {' '.join(str(error).split())}\n")
    sys.exit(1)


def shipped_configs() -> dict[str, str]:
    """The configs that ship with the package (the repository's configs/, installed as
    hrgan_jax.configs): name -> file."""
    directory = list(configs.__path__)[0]
    return {name[:-3]: os.path.join(directory, name) for name in sorted(os.listdir(directory))
            if name.endswith(".py") and not name.startswith("_")}


DEFAULT_CONFIG = shipped_configs()["default"]


def config_file(spec: str) -> str:
    """--config's value as ml_collections reads it, FILE[:ARGUMENT]: a config file's path
    stays as it is; a shipped config's name (synthetic, coco_w32_256x192:paper) becomes its
    file, wherever the command runs."""
    path, colon, argument = spec.partition(":")
    if os.path.isfile(path):
        return spec
    shipped = shipped_configs()
    if path in shipped:
        return shipped[path] + colon + argument
    raise ValueError(f"--config={spec}: no config file {path!r} and no shipped config of that "
                     f"name (shipped: {', '.join(shipped)})")


def _config_index(argv) -> int | None:
    """The position in argv of --config's value (--config=SPEC or --config SPEC), if any."""
    index = None
    for i, arg in enumerate(argv[1:], start=1):
        if arg.startswith("--config="):
            index = i
        elif arg == "--config" and i + 1 < len(argv):
            index = i + 1
    return index


def _with_config_file(argv) -> list[str]:
    """argv with --config's value as a file (config_file); a bad one is a usage error."""
    argv = list(argv)
    i = _config_index(argv)
    if i is not None:
        prefix = "--config=" if argv[i].startswith("--config=") else ""
        try:
            argv[i] = prefix + config_file(argv[i][len(prefix):])
        except ValueError as e:
            _usage_error(str(e))
    return argv


def _check_overrides(argv, strict: bool = True) -> None:
    """The config file and its argument (an unknown preset or variant), an unknown
    --config.<path> and a tuple field given twice, each as one line, before ml_collections
    reads them (it raises AttributeError/KeyError or joins the tuples).  strict=False (at
    import, where the overrides meet the default file): a file or argument that cannot be
    loaded is left to _parse_flags."""
    overrides = [a for a in argv[1:] if a.startswith("--config.")]
    i = _config_index(argv)
    try:
        spec = config_file(argv[i].removeprefix("--config=")) if i is not None else DEFAULT_CONFIG
        config = config_checks.load_config_file(spec)
    except ValueError as e:  # config_file's unknown name, or a config_checks.ConfigError
        if strict:
            _usage_error(str(e))
        return
    message = (config_checks.unknown_override(config, overrides)
               or config_checks.repeated_override(config, overrides))
    if message:
        _usage_error(message)


_check_overrides(sys.argv, strict=False)  # without --config=, they meet the default at import
try:
    config_flags.DEFINE_config_file(
        "config", DEFAULT_CONFIG,
        "A shipped config by name (" + ", ".join(shipped_configs()) + ") or a config "
        "file's path, optionally ':' and its argument (default:w48, coco_w32_256x192:paper, "
        "my_config.py); override any field with --config.<path>=<value>.",
        lock_config=True)
except (AttributeError, KeyError) as e:  # an override _check_overrides could not judge
    _usage_error(f"a --config override: {e}")
flags.DEFINE_enum("mode", None, MODES, "What to do; see the modes above.")
flags.DEFINE_string("workdir", None, "train: the run's directory (created; resumed when it "
                    "holds checkpoints). evaluate/export/predict: the run whose checkpoint to use.")
flags.DEFINE_enum("net", "generator", ["generator", "discriminator"],
                  "export to one file / check: which network.")
flags.DEFINE_string("weights", None, "evaluate/export/check/predict: a weights file instead of a "
                    "workdir checkpoint (.pth, .safetensors, .npz, generator.msgpack); "
                    "evaluate/predict also take an exported generator.onnx or generator_savedmodel.")
flags.DEFINE_string("out", None, "export: a directory (generator.msgpack, "
                    "generator.safetensors, config.json, generator_savedmodel/) or one .safetensors/.npz/.pth file. "
                    "predict: the directory for keypoints.pose.json and the drawn images "
                    "(default: beside the input). evaluate: the directory for the results "
                    "(default: WORKDIR/evaluate/ or WEIGHTS.evaluate/; never the training's eval/).")
flags.DEFINE_list("workdirs", None, "compare: the training workdirs to compare, comma-separated.")
flags.DEFINE_string("input", None, "predict: an image file or a directory of images.")
flags.DEFINE_string("boxes", None, "predict: person boxes, a COCO results-format detection "
                    "JSON (default: the whole image is one person).")
flags.DEFINE_enum("checkpoint", "best", ["best", "latest"],
                  "evaluate/export/predict from --workdir: which checkpoint (best falls back to latest "
                  "when the run has no evaluation yet).")
flags.DEFINE_string("coordinator", None, "train: host:port of process 0, for a multi-process "
                    "job without a cluster launcher (with --num_processes, --process_id).")
flags.DEFINE_integer("num_processes", None, "train: number of processes (with --coordinator).")
flags.DEFINE_integer("process_id", None, "train: this process's index (with --coordinator).")
flags.DEFINE_bool("allow_changed_meaning", False, "train: resume although the config changes "
                  "what the run means since its last start (data.name, data.image_size, "
                  "data.heatmap_size, data.keypoints, data.category_id, adversarial.enabled), "
                  "which is refused otherwise; every changed field is printed and each "
                  "accepted start's config is kept in WORKDIR/configs/.")
flags.DEFINE_integer("heartbeat_timeout_s", 60, "train, multi-process: seconds without a "
                     "heartbeat after which a process counts as dead and every other process "
                     "stops with an error naming it.")
FLAGS = flags.FLAGS


# What a missing flag's value is, for the one line that asks for it.
_WANTED = {"workdir": "DIR (the training run's directory)", "weights": "FILE",
           "out": "DIR or FILE", "input": "IMAGE_OR_DIR (an image or a directory of images)"}


def _require(name: str, mode: str) -> str:
    value = getattr(FLAGS, name)
    if not value:
        raise app.UsageError(f"--mode={mode} needs --{name}={_WANTED.get(name, 'VALUE')} "
                             f"(--mode={mode} --help: what it takes)")
    return value


def _generator_source(mode: str) -> None:
    if not (FLAGS.workdir or FLAGS.weights):
        raise app.UsageError(f"--mode={mode} needs --workdir=RUN (a training run's directory) "
                             f"or --weights=FILE (weights, or an exported generator.onnx / "
                             f"generator_savedmodel)")


def _check_writable(path: str, flag: str) -> None:
    """A usage error for an output directory that cannot be one: a file, a path under a
    file, or in a directory this user may not write (read-only); before any work."""
    target = os.path.abspath(path)
    existing = target
    while not os.path.exists(existing):
        existing = os.path.dirname(existing)
    if not os.path.isdir(existing):
        where = "is a file" if existing == target else f"lies under {existing}, a file"
        raise app.UsageError(f"{flag}={path} {where}, not a directory: give a directory")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise app.UsageError(f"{flag}={path}: {existing} is read-only for this user: give a "
                             f"directory you can write")


def main(argv) -> None:
    if len(argv) > 1:
        _usage_error(f"unexpected arguments {argv[1:]}: give the mode as --mode=...")
    if FLAGS.mode is None:
        _usage_error(f"give --mode: one of {', '.join(MODES)} (--help explains each)")
    usage, data = _user_errors()
    try:
        _run(FLAGS.config, FLAGS.mode)
    except usage as e:
        _usage_error(str(e))
    except data as e:  # bad input the message explains (file, record, field): no traceback
        _data_error(e)


def _user_errors() -> tuple[tuple[type, ...], tuple[type, ...]]:
    """(the usage errors: exit status 2, the data errors: 1) that main reports in one line;
    any other exception is a bug and keeps its traceback."""
    from hrgan_jax.checkpoints import CheckpointError  # deferred: orbax loads only for the mode run
    from hrgan_jax.predict import PredictError  # deferred: orbax, TF load only for the mode run
    return ((app.UsageError, config_checks.ConfigError),
            (DataError, CheckpointError, PredictError, CompareError, WeightsFileError,
             WeightsMismatchError, WorkdirError))


def _run(config, mode: str) -> None:
    if mode == "synth":
        from hrgan_jax import cli  # deferred: orbax, TF load only for the mode run
        if config.data.root:
            _check_writable(config.data.root, "--config.data.root")
        cli.synth(config)
    elif mode == "check":
        from hrgan_jax import cli  # deferred: orbax, TF load only for the mode run
        sys.exit(cli.check(config, FLAGS.net, _require("weights", mode)))
    elif mode == "train":
        workdir = _require("workdir", mode)
        _check_writable(workdir, "--workdir")
        parallel.initialize(FLAGS.coordinator, FLAGS.num_processes, FLAGS.process_id,
                            FLAGS.heartbeat_timeout_s)
        from hrgan_jax import trainer  # deferred: orbax, TF load only for the mode run
        trainer.train_and_evaluate(config, workdir,
                                   allow_changed_meaning=FLAGS.allow_changed_meaning)
    elif mode == "evaluate":
        from hrgan_jax import cli  # deferred: orbax, TF load only for the mode run
        _generator_source(mode)
        if FLAGS.out:
            _check_writable(FLAGS.out, "--out")
        cli.evaluate(config, FLAGS.workdir, FLAGS.weights, FLAGS.checkpoint, FLAGS.out)
    elif mode == "export":
        from hrgan_jax import cli  # deferred: orbax, TF load only for the mode run
        out = _require("out", mode)
        one_file = out.lower().endswith((".safetensors", ".npz", ".pth"))
        _check_writable(os.path.dirname(os.path.abspath(out)) if one_file else out, "--out")
        cli.export(config, FLAGS.net, FLAGS.workdir, FLAGS.weights, out, FLAGS.checkpoint)
    elif mode == "compare":
        _check_writable(FLAGS.out or ".", "--out")
        md, png = compare.compare(FLAGS.workdirs or [], FLAGS.out or ".")
        print(open(md).read(), end="")
        print(f"wrote {md} and {png}")
    elif mode == "predict":
        from hrgan_jax import predict  # deferred: orbax, TF load only for the mode run
        input_path = _require("input", mode)
        _generator_source(mode)
        _check_writable(predict.output_dir(input_path, FLAGS.out), "--out")
        predict.predict(config, input_path, FLAGS.boxes, FLAGS.workdir, FLAGS.weights,
                        FLAGS.out, FLAGS.checkpoint)


def _parse_flags(argv):
    """absl's parser, with every command-line mistake as one line on stderr (exit status
    2): a flag value of the wrong type, an unknown --config name, file, argument or
    --config.<path>, and a config value outside what the code accepts
    (hrgan_jax/config_checks.py; a keypoints file it cannot read is bad data: 1).  --help
    prints help_text and exits 0.  --config's value is made a file first (config_file)."""
    _help_and_exit(argv)
    argv = _with_config_file(argv)
    _check_overrides(argv)
    try:
        argv = FLAGS(argv)
        config_checks.check(FLAGS.config)
    except flags.Error as e:
        _usage_error(str(e))
    except (AttributeError, KeyError) as e:  # an override _check_overrides could not judge
        _usage_error(f"a --config override: {e}")
    except DataError as e:
        _data_error(e)
    except ValueError as e:  # config_checks.ConfigError
        _usage_error(str(e))
    return _quiet_libraries(argv)


# ---- help: the whole command, or one mode ---------------------------------------------------

# The flags each mode reads (--config and its overrides: every mode but compare).
MODE_FLAGS = {
    "train": ("config", "workdir", "coordinator", "num_processes", "process_id",
              "heartbeat_timeout_s"),
    "evaluate": ("config", "workdir", "weights", "checkpoint", "out"),
    "export": ("config", "workdir", "weights", "net", "checkpoint", "out"),
    "check": ("config", "weights", "net"),
    "synth": ("config",),
    "predict": ("config", "input", "boxes", "workdir", "weights", "checkpoint", "out"),
    "compare": ("workdirs", "out"),
}
HELP_FLAGS = ("--help", "-help", "-h", "--helpshort", "-helpshort", "--helpfull", "-helpfull",
              "-?")
_OVERRIDES_HELP = ("  --config.<path>=<value>: any field of the config, e.g. "
                   "--config.train.steps=100\n    (configs/default.py lists every field, "
                   "its default and its meaning)\n")


def _help_and_exit(argv) -> None:
    """--help, -h, --helpshort, --helpfull anywhere in argv: help_text (for --mode's mode,
    when one is given) on stdout, exit status 0; --helpfull adds absl's own flags."""
    given = [a for a in argv[1:] if a in HELP_FLAGS]
    if not given:
        return
    mode = None
    for i, arg in enumerate(argv[1:], start=1):
        if arg.startswith("--mode="):
            mode = arg.split("=", 1)[1]
        elif arg == "--mode" and i + 1 < len(argv):
            mode = argv[i + 1]
    text = help_text(mode)
    if any("full" in a for a in given):
        text += "\nEvery flag, absl's included:\n" + FLAGS.get_help()
    sys.stdout.write(text.rstrip("\n") + "\n")
    sys.exit(0)


def help_text(mode: str | None = None) -> str:
    """The whole command's help (this module's docstring and every flag) or, for a mode,
    that mode's part of the docstring, its examples and the flags it reads."""
    if mode not in MODE_FLAGS:
        names = ["mode"] + [n for n in FLAGS if n in sum(MODE_FLAGS.values(), ()) and n != "mode"]
        unknown = f"(--mode={mode}: not a mode; choose one of {', '.join(MODES)})\n\n" if mode else ""
        return (unknown + __doc__.rstrip() + "\n\nFlags:\n" + _flags_help(dict.fromkeys(names))
                + _OVERRIDES_HELP)
    modes, examples = __doc__.split("Modes:\n", 1)[1].split("\nA refusal is", 1)[0], \
        __doc__.split("Examples:\n", 1)[1]
    section = re.search(rf"^  {mode} .*?(?=^  [a-z]+  |\Z)", modes, re.S | re.M).group(0)
    shown = [line for line in examples.splitlines() if f"--mode={mode} " in line + " "]
    return (f"hrgan-jax --mode={mode}\n\n{section.rstrip()}\n\nExamples:\n"
            + "\n".join(shown) + "\n\nFlags:\n" + _flags_help(MODE_FLAGS[mode])
            + (_OVERRIDES_HELP if "config" in MODE_FLAGS[mode] else "")
            + "\n(--help without --mode: every mode and flag)\n")


def _flags_help(names) -> str:
    lines = []
    for name in names:
        flag = FLAGS[name]
        default = ("" if flag.default is None or name == "config"
                   else f" (default: {flag.default_as_str})")
        lines.append(f"  --{name}:{default}\n" + textwrap.fill(
            flag.help, width=88, initial_indent="    ", subsequent_indent="    "))
    return "\n".join(lines) + "\n"


def _quiet_libraries(argv):
    """Orbax and JAX log every save and device probe at INFO: show warnings only unless
    --verbosity (-v 0) asks for more.  Progress and results are printed to stdout."""
    if not FLAGS["verbosity"].present:
        logging.set_verbosity(logging.WARNING)
    return argv


def run() -> None:
    """The installed `hrgan-jax` command (pyproject.toml) and `python launch.py`."""
    # absl's usage messages print the __main__ module's docstring: the console script's
    # wrapper and launch.py have none of their own (--help itself is help_text's).
    sys.modules["__main__"].__doc__ = __doc__
    app.run(main, flags_parser=_parse_flags)
