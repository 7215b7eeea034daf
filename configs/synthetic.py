"""The built-in demo: HRGAN on rendered figures, a small HRNet, minutes on a CPU.

    python launch.py --mode=synth --config=configs/synthetic.py --config.data.root=demo_out/data
    python launch.py --mode=train --config=configs/synthetic.py \
        --config.data.root=demo_out/data/coco --workdir=demo_out/run

(`make demo` runs these, then evaluates, exports and draws.)  The figures are drawn so
that every keypoint is determined by the image, with left and right told apart by cues
that survive mirroring (face and hair, the shirt's buttons, feet pointing forward).

Chosen for a short run on a 2-core CPU: plain scenes, the 'small' preset for G and
the 'micro' one for D (adversarial.d_network: D's passes were 60% of the step), He-normal
init, Adam for G, batch 16, sigma 2, milder augmentation, 1300 steps, DARK decoding in
the evaluation, float32.  It reached AP 0.674 at 1300 steps; with D as large as G,
1000 steps reached 0.651 in twice the time per step.  The runs behind each choice:
benchmarks/NOTES.md, "The demo config".
"""
from hrgan_jax.configs import default


def get_config(preset: str = "small"):
    config = default.get_config(preset or "small")
    config.data.name = "coco"
    config.data.image_size = (96, 128)
    config.data.heatmap_size = (24, 32)
    config.data.sigma = 2.0
    config.data.rotation_factor = 20.0
    config.data.scale_factor = 0.25
    config.train.batch_size = 16
    config.model.kernel_init = "he"
    config.adversarial.d_network = "micro"
    config.train.steps = 1300
    config.train.log_every = 25
    config.optim.g_name = "adam"
    config.optim.g_lr = 1e-3
    config.optim.d_lr = 1e-3
    config.optim.lr_steps = (8.45, 12.35)  # epochs (93 steps each with 1000 plain images)
    config.eval.every_epochs = 4
    config.eval.batch_size = 64
    config.eval.decode = "dark"
    config.synth.num_train = 1000
    config.synth.num_val = 60
    config.synth.datasets = ("coco",)
    config.synth.scene = "plain"
    config.synth.workers = 2
    return config
