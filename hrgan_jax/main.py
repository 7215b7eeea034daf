"""hrgan-jax: one entry point (the installed `hrgan-jax` command; `python launch.py` in the
repository).  Pick a mode with --mode, a config with --config: a shipped config by name
(default, synthetic, coco_w32_256x192, mpii_w32_256x256, ablation; a variant after ':',
e.g. coco_w32_256x192:paper) or a config file's path.  Override any config field with
--config.<path>=<value> (an unknown path is an error).

Modes:
  train     Train HRGAN (or the HRNet baseline: --config.adversarial.enabled=false) in
            --workdir: checkpoints/, TensorBoard events, metrics.jsonl, config.json and,
            at the end, curves.png.  Rerunning with the same --workdir resumes from the
            latest complete checkpoint and says from which step.  SIGTERM/Ctrl-C save a
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
            numeric file names; boxes scoring below config.data.image_threshold are
            dropped); without --boxes each image is one person, the whole image its box.
            Boxes follow the rules of the dataset reader (bbox [x, y, w, h] with w, h > 0,
            numeric score).  Each box is cropped as in evaluation (flip test included).
            Images are turned upright by their EXIF orientation first (the training and
            evaluation pipelines ignore it, as the official code does).  Writes
            keypoints.pose.json (COCO keypoint results, plus file_name and bbox) and
            <image name>.pose.png with the skeletons drawn (joints scoring at least
            config.eval.draw_threshold, 0.2), into --out or beside the input, and says how
            many joints it drew.  A missing or undecodable image, or a box naming an image
            that is not among the inputs, stops with an error naming the file.

  compare   Compare training runs (--workdirs=A,B,...; finished or still running): writes
            compare.md (one row per run: variant from its config.json, seed, best and
            final AP or PCKh with their steps, the per-part figures, k_t and the
            adversary's share of G's gradient) and compare.png (the evaluation metric
            against steps, one line per run) into --out (default: the current directory).

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

import importlib.util
import os
import sys

from absl import app, flags, logging
from ml_collections import config_flags

from hrgan_jax import configs

MODES = ("train", "evaluate", "export", "check", "synth", "predict", "compare")

def _usage_error(message: str) -> None:
    sys.stderr.write(f"FATAL Flags parsing error: {message}\n"
                     "Pass --helpshort or --helpfull to see help on flags.\n")
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


def _check_overrides(argv) -> None:
    """An unknown --config.<path> as one line, before ml_collections applies the overrides
    (it raises AttributeError/KeyError, which absl would show as a traceback).  The config
    file is loaded here the way ml_collections does: FILE[:ARGUMENT], get_config(ARGUMENT)."""
    overrides = [a for a in argv[1:] if a.startswith("--config.")]
    if not overrides:
        return
    i = _config_index(argv)
    try:
        spec = config_file(argv[i].removeprefix("--config=")) if i is not None else DEFAULT_CONFIG
        path, _, argument = spec.partition(":")
        module_spec = importlib.util.spec_from_file_location("_hrgan_config_file", path)
        module = importlib.util.module_from_spec(module_spec)
        module_spec.loader.exec_module(module)
        config = module.get_config(argument) if argument else module.get_config()
    except Exception:  # noqa: BLE001 - a bad name or broken file: reported by the parser, as usual
        return
    from hrgan_jax.config_checks import unknown_override
    message = unknown_override(config, overrides)
    if message:
        _usage_error(message)


_check_overrides(sys.argv)  # without --config=, ml_collections applies them at import
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
                    "holds checkpoints). evaluate/export: the run whose checkpoint to use.")
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
flags.DEFINE_integer("heartbeat_timeout_s", 60, "train, multi-process: seconds without a "
                     "heartbeat after which a process counts as dead and every other process "
                     "stops with an error naming it.")
FLAGS = flags.FLAGS


def _require(name: str, mode: str) -> str:
    value = getattr(FLAGS, name)
    if not value:
        raise app.UsageError(f"--mode={mode} needs --{name}")
    return value


def main(argv) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments {argv[1:]}: give the mode as --mode=...")
    if FLAGS.mode is None:
        raise app.UsageError(f"give --mode: one of {', '.join(MODES)} (see --help)")
    try:
        _run(FLAGS.config, FLAGS.mode)
    except _user_errors() as e:
        # Bad input the message already explains (file, record, field): one line, no traceback.
        sys.exit(f"error: {' '.join(str(e).split())}")


def _user_errors() -> tuple[type, ...]:
    from data_pipeline.records import DataError
    from hrgan_jax.checkpoints import CheckpointError
    from hrgan_jax.compare import CompareError
    from hrgan_jax.predict import PredictError
    return DataError, CheckpointError, PredictError, CompareError


def _run(config, mode: str) -> None:
    if mode == "synth":
        from hrgan_jax import cli
        cli.synth(config)
    elif mode == "check":
        from hrgan_jax import cli
        sys.exit(cli.check(config, FLAGS.net, _require("weights", mode)))
    elif mode == "train":
        from hrgan_jax import parallel
        parallel.initialize(FLAGS.coordinator, FLAGS.num_processes, FLAGS.process_id,
                            FLAGS.heartbeat_timeout_s)
        from hrgan_jax import trainer
        trainer.train_and_evaluate(config, _require("workdir", mode))
    elif mode == "evaluate":
        from hrgan_jax import cli
        cli.evaluate(config, FLAGS.workdir, FLAGS.weights, FLAGS.checkpoint, FLAGS.out)
    elif mode == "export":
        from hrgan_jax import cli
        cli.export(config, FLAGS.net, FLAGS.workdir, FLAGS.weights, _require("out", mode),
                   FLAGS.checkpoint)
    elif mode == "compare":
        from hrgan_jax import compare
        md, png = compare.compare(FLAGS.workdirs or [], FLAGS.out or ".")
        print(open(md).read(), end="")
        print(f"wrote {md} and {png}")
    elif mode == "predict":
        from hrgan_jax import predict
        predict.predict(config, _require("input", mode), FLAGS.boxes, FLAGS.workdir,
                        FLAGS.weights, FLAGS.out, FLAGS.checkpoint)


def _parse_flags(argv):
    """absl's parser, with every command-line mistake as one line on stderr and exit
    status 1: a flag value of the wrong type, an unknown --config.<path> and a config
    value outside what the code accepts (hrgan_jax/config_checks.py).  --config's value is
    made a file first (config_file)."""
    argv = _with_config_file(argv)
    _check_overrides(argv)
    try:
        argv = FLAGS(argv)
        from hrgan_jax import config_checks
        config_checks.check(FLAGS.config)
    except flags.Error as e:
        _usage_error(str(e))
    except (AttributeError, KeyError) as e:  # an override _check_overrides could not judge
        _usage_error(f"a --config override: {e}")
    except ValueError as e:
        _usage_error(str(e))
    return _quiet_libraries(argv)


def _quiet_libraries(argv):
    """Orbax and JAX log every save and device probe at INFO: show warnings only unless
    --verbosity (-v 0) asks for more.  Progress and results are printed to stdout."""
    if not FLAGS["verbosity"].present:
        logging.set_verbosity(logging.WARNING)
    return argv


def run() -> None:
    """The installed `hrgan-jax` command (pyproject.toml) and `python launch.py`."""
    # absl's --help prints the __main__ module's docstring: the console script's wrapper
    # and launch.py have none of their own.
    sys.modules["__main__"].__doc__ = __doc__
    app.run(main, flags_parser=_parse_flags)
