"""Training input pipeline throughput (images/s, in total and per core) on COCO-layout data.

    python benchmarks/input_pipeline.py                       # generates 640x480 synthetic COCO
    python benchmarks/input_pipeline.py --root=/data/coco     # an existing COCO-layout dataset

Generated data comes from data_pipeline.synthetic.write_coco (the synthetic renderer).
"""
from __future__ import annotations

import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from absl import app, flags  # noqa: E402

flags.DEFINE_string("root", "", "COCO-layout dataset (default: generate a synthetic one)")
flags.DEFINE_integer("num_images", 256, "images to generate when --root is not given")
flags.DEFINE_integer("batch", 64, "global batch")
flags.DEFINE_integer("steps", 20, "timed steps (after warm-up)")
flags.DEFINE_integer("warmup", 3, "untimed steps")
flags.DEFINE_bool("crop_decode", True, "config.data.crop_decode")
flags.DEFINE_integer("parallel", -1, "num_parallel_calls (-1 = one per tf.data thread)")
FLAGS = flags.FLAGS


def main(_):
    from hrgan_jax.configs.default import get_config
    from data_pipeline import pipeline
    root = FLAGS.root
    if not root:
        try:
            from data_pipeline import synthetic
        except ImportError:
            raise SystemExit("data_pipeline.synthetic is not available: pass --root=<a COCO-layout "
                             "dataset> (images/train2017, annotations/person_keypoints_train2017.json)")
        root = tempfile.mkdtemp(prefix="hrgan_bench_coco_")
        synthetic.write_coco(root, splits={"train2017": FLAGS.num_images}, seed=0,
                             image_size=(640, 480))
    cfg = get_config().data
    cfg.root = root
    cfg.num_parallel_calls = FLAGS.parallel
    cfg.crop_decode = FLAGS.crop_decode
    it = pipeline.train(cfg, num_joints=17, global_batch=FLAGS.batch, seed=0)
    for _ in range(FLAGS.warmup):
        next(it)
    t = time.perf_counter()
    for _ in range(FLAGS.steps):
        next(it)
    dt = time.perf_counter() - t
    cores = len(os.sched_getaffinity(0))
    total = FLAGS.steps * FLAGS.batch / dt
    print("| records | batch | cores | images/s | images/s per core |")
    print("| --- | --- | --- | --- | --- |")
    print(f"| {it.info.num_records} | {FLAGS.batch} | {cores} | {total:.0f} | {total / cores:.0f} |")


if __name__ == "__main__":
    app.run(main)
