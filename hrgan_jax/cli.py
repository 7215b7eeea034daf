"""The work behind the command line's modes other than train (which is trainer.train_and_evaluate)."""
from __future__ import annotations

import json
import os
import time
from typing import Any

import jax
import ml_collections
import numpy as np
from flax import serialization

from data_pipeline import keypoint_sets, synthetic
from data_pipeline.records import split_names
from hrgan_jax import inference, loader, models, onnx_export, parallel, saved_model, weights
from hrgan_jax.evaluation import inputs, runner


def synth(config: ml_collections.ConfigDict) -> dict:
    """Write the synthetic COCO- and MPII-format datasets under config.data.root; with
    config.data.keypoints, the COCO-format one labels that keypoint set's joints."""
    root = config.data.root
    if not root:
        raise ValueError("--mode=synth needs --config.data.root=DIR (DIR/coco and DIR/mpii are written)")
    s = config.synth
    datasets = tuple(s.get("datasets", ("coco", "mpii")))
    unknown = sorted(set(datasets) - {"coco", "mpii"})
    if unknown or not datasets:
        raise ValueError(f"config.synth.datasets: {unknown or 'empty'}; choose from coco, mpii")
    writers = {"coco": (synthetic.write_coco, "train2017", "val2017"),
               "mpii": (synthetic.write_mpii, "train", "valid")}
    # Your own keypoint set (config.data.keypoints): the COCO-format dataset labels its
    # joints, under its own categories entry; its names are checked before any rendering.
    own = {}
    if config.data.get("keypoints", ""):
        kset = keypoint_sets.of_config(config.data)
        synthetic.figure_points_of(kset)
        own = {"keypoint_set": kset, "category_id": int(config.data.get("category_id", 1))}
    start = time.perf_counter()
    summary = {}
    for name in datasets:
        write, train_split, val_split = writers[name]
        summary[name] = write(os.path.join(root, name),
                              {train_split: int(s.num_train), val_split: int(s.num_val)},
                              int(config.seed), tuple(s.image_size), (1, int(s.max_people)),
                              int(s.workers), s.get("scene", "cluttered"),
                              **(own if name == "coco" else {}))
    joints = f" (COCO format: {own['keypoint_set'].describe()}, {own['keypoint_set'].num_joints} joints)" if own else ""
    print(f"wrote the synthetic datasets under {root} in {time.perf_counter() - start:.0f} s{joints}:")
    for name, splits in summary.items():
        for split, counts in splits.items():
            print(f"  {name}/{split}: " + ", ".join(f"{v} {k}" for k, v in counts.items()))
    return summary


def check(config: ml_collections.ConfigDict, net: str, weights_path: str) -> int:
    """0 when the file fits the configured network, else 1 (the mismatch printed)."""
    state_dict = weights.load_file(weights_path)
    try:
        weights.from_torch(state_dict, models.network_config(config, net), net,
                           what=weights_path)
    except weights.WeightsMismatchError as e:
        print(e)
        return 1
    count = sum(v.size for k, v in state_dict.items() if "running_" not in k)
    joints = ""
    if net == "generator":
        kset = keypoint_sets.of_config(config.data)
        joints = f", {kset.num_joints} heatmaps: the keypoint set {kset.describe()}"
    print(f"{weights_path}: fits the {net} ({len(state_dict)} tensors, {count:,} parameters"
          f"{joints})")
    return 0


def evaluation_dir(workdir: str | None, weights_path: str | None, out: str | None) -> str:
    """Where --mode=evaluate writes: --out, else WORKDIR/evaluate/ or WEIGHTS.evaluate/;
    never the training's own eval/ directory."""
    if out:
        return out
    if weights_path:
        return os.path.abspath(weights_path) + ".evaluate"
    if workdir:
        return os.path.join(workdir, "evaluate")
    raise ValueError("give --workdir (a training run) or --weights (a weights file)")


def evaluate(config: ml_collections.ConfigDict, workdir: str | None, weights_path: str | None,
             which: str = "best", out: str | None = None) -> dict:
    """Evaluate a generator; results (table JSON, COCO results / pred.mat) go to
    ``evaluation_dir(workdir, weights_path, out)``."""
    out_dir = evaluation_dir(workdir, weights_path, out)
    if workdir and os.path.abspath(out_dir) == os.path.abspath(os.path.join(workdir, "eval")):
        raise ValueError(f"--out={out}: that is the training's own evaluation directory; "
                         f"give another")
    inputs.check(config)
    predictor = None
    if weights_path and loader.is_exported_model(weights_path):  # as it will be deployed
        predictor, source, step = loader.load_predictor(config, None, weights_path)
        variables = None
    else:
        variables, source, step = loader.generator_variables(config, workdir, weights_path,
                                                             which)
    evaluator = runner.make_evaluator(config, parallel.make_mesh(), out_dir=out_dir,
                                      predictor=predictor)
    print(f"evaluating {source} on {config.data.name} {split_names(config.data)[1]}; "
          f"results into {out_dir}", flush=True)
    return evaluator(variables, step or 0)


def export(config: ml_collections.ConfigDict, net: str, workdir: str | None,
           weights_path: str | None, out: str, which: str = "best") -> None:
    """Into a directory: generator.msgpack + config.json + generator.safetensors +
    generator.onnx and generator_heatmaps.onnx (ONNX Runtime; skipped without
    jax2onnx) + generator_savedmodel/ (TensorFlow; skipped without it), both running
    without this package; or
    one official-layout file (.safetensors/.npz/.pth) of either network."""
    single_file = out.lower().endswith((".safetensors", ".npz", ".pth"))
    if net == "discriminator" or (single_file and not (workdir or weights_path)):
        if not single_file:
            raise ValueError("export of a fresh or discriminator network needs --out=FILE.safetensors|.npz|.pth")
        if weights_path:
            variables = weights.from_torch(weights.load_file(weights_path),
                                           models.network_config(config, net), net,
                                           what=weights_path)
            source = weights_path
        else:
            module, sample = models.network(models.network_config(config, net), net)
            variables = models.init(module, jax.random.PRNGKey(config.seed), sample)
            source = f"a fresh initialisation (seed {config.seed})"
        _write_official(variables, config, net, out, source)
        return
    variables, source, _ = loader.generator_variables(config, workdir, weights_path, which)
    if single_file:
        _write_official(variables, config, "generator", out, source)
        return
    os.makedirs(out, exist_ok=True)
    msgpack_path = os.path.join(out, "generator.msgpack")
    tmp = msgpack_path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(serialization.msgpack_serialize(jax.tree.map(np.asarray, variables)))
    os.replace(tmp, msgpack_path)
    with open(os.path.join(out, "config.json"), "w") as f:
        f.write(config_json(config))
    _write_official(variables, config, "generator", os.path.join(out, "generator.safetensors"),
                    source, metadata={"weights_dtype": "float32", **inference.export_metadata(config)})
    print(f"wrote {msgpack_path} and {os.path.join(out, 'config.json')}")
    _write_onnx(config, variables, out)
    try:
        import tensorflow  # noqa: F401  (optional: only the SavedModel needs it)
    except ImportError:
        print("skipped generator_savedmodel/: TensorFlow is not installed here")
        return
    sm = saved_model.write(config, variables, os.path.join(out, "generator_savedmodel"))
    print(f"wrote {sm}: TensorFlow SavedModel, uint8 crops -> heatmaps, keypoints, scores")


def config_json(config: ml_collections.ConfigDict) -> str:
    """The config as JSON plus ``keypoint_set``: the joints the heatmaps are, in order, with
    their flip pairs, limbs, upper body, OKS sigmas and weights, so that an exported model
    describes its outputs without the keypoints file it was trained with
    (--config.data.keypoints=EXPORT/config.json reads the set back); and ``export``: what
    the exported files compute in (eval.dtype; their weights are float32)."""
    out = json.loads(config.to_json_best_effort())
    out["keypoint_set"] = keypoint_sets.of_config(config.data).to_json()
    out["export"] = dict(inference.export_metadata(config), weights_dtype="float32")
    return json.dumps(out, indent=2, sort_keys=True)


def _write_onnx(config, variables, out: str) -> None:
    missing = onnx_export.available()
    if missing:
        print(f"skipped {onnx_export.FULL_NAME} and {onnx_export.HEATMAPS_NAME}: {missing}")
        return
    full = onnx_export.write(config, variables, os.path.join(out, onnx_export.FULL_NAME))
    plain = onnx_export.write(config, variables, os.path.join(out, onnx_export.HEATMAPS_NAME),
                              heatmaps_only=True)
    print(f"wrote {full} (uint8 crops -> heatmaps, keypoints, scores) and {plain} "
          f"(uint8 crops -> heatmaps, one pass): ONNX, {inference.deploy_dtype(config)}, "
          f"checked in ONNX Runtime")


def _write_official(variables: Any, config, net: str, path: str, source: str,
                    metadata: dict | None = None) -> None:
    state_dict = weights.to_torch(variables, models.network_config(config, net), net)
    weights.save_file(state_dict, path, metadata)
    count = sum(v.size for k, v in state_dict.items() if "running_" not in k)
    print(f"wrote {path}: {net} from {source}, {len(state_dict)} tensors, {count:,} parameters "
          f"(official PyTorch layout)")

