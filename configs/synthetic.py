"""The built-in demo: HRGAN on rendered figures, a small HRNet, minutes on a CPU.

    python launch.py --mode=synth --config=configs/synthetic.py --config.data.root=demo_out/data
    python launch.py --mode=train --config=configs/synthetic.py \
        --config.data.root=demo_out/data/coco --workdir=demo_out/run

(`make demo` runs these, then evaluates, exports and draws.)  The figures are drawn so
that every keypoint is determined by the image, with left and right told apart by cues
that survive mirroring (face and hair, the shirt's buttons, feet pointing forward).
"""
from configs import default


def get_config(preset: str = "tiny"):
    config = default.get_config(preset or "tiny")
    config.data.name = "coco"
    config.data.image_size = (96, 128)
    config.data.heatmap_size = (24, 32)
    config.data.rotation_factor = 30.0
    config.train.batch_size = 32
    config.train.epochs = 20
    config.train.log_every = 20
    config.optim.lr_steps = (15, 18)
    config.eval.every_epochs = 5
    config.eval.batch_size = 64
    config.checkpoint.every_steps = 200
    return config
