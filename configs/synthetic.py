"""The built-in demo: HRGAN on rendered figures, a small HRNet, minutes on a CPU.

    python launch.py --mode=synth --config=configs/synthetic.py --config.data.root=demo_out/data
    python launch.py --mode=train --config=configs/synthetic.py \
        --config.data.root=demo_out/data/coco --workdir=demo_out/run

(`make demo` runs these, then evaluates, exports and draws.)  The figures are drawn so
that every keypoint is determined by the image, with left and right told apart by cues
that survive mirroring (face and hair, the shirt's buttons, feet pointing forward).

Chosen for a short run on a 2-core CPU, measured there (AP on the 60 validation images
with the detector's boxes); the adversarial term stays on, as in HRGAN:
  * data: config.synth.scene = "plain" (smooth backgrounds, upright figures side by
    side, no occluders), 1000 training images (about 1500 people), 60 validation
    images, COCO only.  On the cluttered scenes the same 600 steps reached AP 0.03.
  * network: the 'small' preset for G and D (official stem, one 16-plane Bottleneck as
    layer1, stages 2-4 at 16/32/64/128 channels, one block per branch).  The official
    layer1 (4 Bottlenecks to 256 channels, in G and again in D) made the tiny preset's
    GAN step ~3x slower at batch 32 (182 vs 54 GFLOP; 5.5 vs 1.8 s).
  * G's convolutions start He-normal (model.kernel_init = "he"; the head keeps
    N(0, 0.001)).  With the official N(0, 0.001) everywhere, BatchNorm makes the tiny
    weights' effective step huge, and G sat on the all-zero-heatmap plateau for ~400
    steps (AP 0.000 at step 185, 0.005 at 300 with "he", cluttered scenes).
  * G trains with Adam 1e-3 (the HRNet baseline's optimiser) instead of the public
    code's RMSprop: at the same steps, plain scenes, He init, RMSprop 2e-3 gave AP 0.128
    at step 372 and 0.325 at 558 (after a x0.1 step), Adam 1e-3 gave 0.302 at 279 and
    0.500 at 558 (before any decay).  D: Adam 1e-3 (the paper's text says 1e-3).
    Both x0.1 at 6.5 and 9.5 epochs (93 steps each); 1000 steps.
  * batch 16: the step takes 0.64 s at batch 16 against 1.83 s at 32 (the smaller
    working set suits the CPU caches), so more updates fit in the time.
  * sigma 2, the official value: with Adam and He init the start is fast anyway, and
    the sharper peaks localise better.  Same run otherwise: sigma 3 gave AP 0.358 /
    0.534 / 0.557 at steps 372 / 744 / 1000, sigma 2 gave 0.426 / 0.624 at 372 / 744.
  * milder augmentation (rotation 20, scale 0.25): the validation figures are upright.
  * k_t stays near 0 here: D reconstructs G's heatmaps better than the real ones, so
    the equilibrium term keeps L_adv's weight at its floor (see curves.png).
"""
from configs import default


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
    config.train.steps = 1000
    config.train.log_every = 25
    config.optim.g_name = "adam"
    config.optim.g_lr = 1e-3
    config.optim.d_lr = 1e-3
    config.optim.lr_steps = (6.5, 9.5)  # epochs (93 steps each with 1000 plain images)
    config.eval.every_epochs = 4
    config.eval.batch_size = 64
    config.checkpoint.every_steps = 200
    config.synth.num_train = 1000
    config.synth.num_val = 60
    config.synth.datasets = ("coco",)
    config.synth.scene = "plain"
    config.synth.workers = 2
    return config
