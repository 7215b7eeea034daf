"""Default config: every field, its default and what it means.

The defaults are HRGAN on COCO keypoints with HRNet-W32 at 256x192, trained with the
public code's optimisers (RMSprop for G, Adam for D).

    python launch.py --mode=train --config=configs/default.py --workdir=/tmp/run \
        --config.data.root=/data/coco
    python launch.py --mode=export --config=configs/default.py:w48 --config.data.name=mpii \
        --config.model.num_joints=16 ...

The argument after ':' picks the network preset: w32 (default), w48, small, tiny or micro.  Any
field can be overridden on the command line as --config.<path>=<value>; an unknown path
is an error.  This file is the one place defaults live: the other configs start from it
and change fields.
"""
from ml_collections import ConfigDict

from hrgan_jax.models import hrnet_config


def get_config(preset: str = "w32") -> ConfigDict:
    config = ConfigDict()
    config.seed = 0  # PRNG seed: parameter initialisation, augmentation order, dropout-free step rng

    # ---- networks --------------------------------------------------------------------
    # G and D share this stage config (D is HRNet without the stem; adversarial.d_network
    # may give D another preset's stages).  Fields are the official MODEL.EXTRA's, lower
    # case: num_joints, final_conv_kernel (1 or 3),
    # stage2..stage4 (num_modules, num_branches, block, num_blocks, num_channels,
    # fuse_method), pretrained_layers, dtype (float32 | bfloat16: the training compute
    # dtype; evaluation, export and predict compute in eval.dtype), float32 (the
    # mixed-precision policy: the parts that compute in float32 under bfloat16, see
    # below), kernel_init
    # (official: N(0, 0.001) as init_weights; he: He-normal, for short runs from scratch),
    # bn_group (images per train-mode BatchNorm statistics group, dividing the per-device
    # batch: no communication in BatchNorm; 0 = the whole batch, synchronised; the COCO
    # and MPII configs use the public code's per-GPU 16 and 8).
    config.model = hrnet_config(preset or "w32", num_joints=17)
    # The mixed-precision policy under model.dtype=bfloat16, in one place.  Always float32:
    # parameters, BatchNorm statistics and the normalisation arithmetic, the losses, k_t,
    # gradients' accumulation into the optimiser and its states.  model.float32 names
    # what else stays float32: "head" (G's and D's final conv computes and returns float32:
    # heatmap MSEs are ~1e-3 and D's errors drive k_t), "d_input" (D reads the image and
    # the heatmaps, real and fake, in float32: bfloat16 would round a heatmap's peak by
    # up to 0.4%), optionally "stem" (G's conv1/conv2) and "sums" (residual and fuse-layer
    # sums).  The default ("head", "d_input") keeps only what measured to pay
    # (benchmarks/NOTES.md, "Mixed precision"; docs/speed.md).  Under float32 it changes nothing.
    config.model.init = ""  # G's initial weights: '' (N(0,0.001)), or an official .pth/.safetensors/.npz
    config.model.init_full = False  # True: load every key of model.init (a full pose model), strictly

    # ---- data ------------------------------------------------------------------------
    config.data = ConfigDict()
    config.data.name = "coco"  # coco | mpii: the annotation layout, joints and flip pairs
    config.data.keypoints = ""  # '' = data.name's joints (COCO 17, MPII 16); FILE = your own: a keypoints JSON or a COCO annotation file (its categories entry), COCO layout (docs/keypoints.md)
    config.data.category_id = 1  # the COCO category read: annotations, evaluation, and keypoints=FILE's categories entry (1 = person)
    config.data.root = ""  # dataset directory, laid out as the official dataset
    config.data.source = "files"  # files (read root directly) | tfds (prepared TFDS dataset)
    config.data.tfds_dir = ""  # TFDS data_dir when source=tfds ('' = TFDS default)
    config.data.train_split = ""  # '' = the dataset's official name (COCO train2017, MPII train)
    config.data.val_split = ""  # '' = the dataset's official name (COCO val2017, MPII valid)
    config.data.image_size = (192, 256)  # network input (width, height)
    config.data.heatmap_size = (48, 64)  # heatmap (width, height) = input / 4
    config.data.sigma = 2.0  # Gaussian target standard deviation in heatmap pixels
    config.data.scale_factor = 0.35  # scale augmentation: s * clip(1 + sf * randn, 1 - sf, 1 + sf)
    config.data.rotation_factor = 45.0  # rotation: clip(rf * randn, -2 rf, 2 rf) degrees
    config.data.rotation_prob = 0.6  # probability of applying the rotation
    config.data.flip = True  # horizontal flip with probability 0.5
    config.data.half_body_prob = 0.3  # probability of the half-body crop
    config.data.half_body_min_joints = 8  # half-body needs more than this many visible joints
    config.data.use_gt_boxes = False  # evaluation: ground-truth boxes instead of the detections
    config.data.detection_file = ""  # COCO results-format person boxes ('' = the official name under root)
    config.data.image_threshold = 0.0  # evaluation: minimum detection score (predict: predict.box_threshold)
    config.data.skip_bad_records = False  # True: skip and count bad annotations; False: stop with an error
    config.data.crop_decode = True  # decode only the JPEG region a crop reads (same pixels, faster; damage elsewhere in the file goes unseen)
    config.data.num_parallel_calls = -1  # tf.data decode/augment parallelism (-1 = one per tf.data thread: all cores but one)

    # ---- training --------------------------------------------------------------------
    config.train = ConfigDict()
    config.train.batch_size = 64  # global batch: split over all devices of all processes
    config.train.epochs = 210  # training length in epochs
    config.train.steps = 0  # when > 0, training length in steps (overrides epochs)
    config.train.log_every = 50  # steps between metric lines / TensorBoard points
    config.train.nan_policy = "stop"  # stop (error naming the step) | skip (skip the update, count it)
    config.train.flat_state = "auto"  # the jitted step takes the state as one buffer per dtype: on | off | auto (on for GPU/TPU: host dispatch; off on the CPU: compile time)

    # ---- optimisers (the public HRGAN code's values; variant 'paper': the paper's) ------
    config.optim = ConfigDict()
    config.optim.g_name = "rmsprop"  # G optimiser: rmsprop | adam
    config.optim.g_lr = 2.5e-4  # G learning rate
    config.optim.d_name = "adam"  # D optimiser: adam | rmsprop
    config.optim.d_lr = 8e-5  # D learning rate
    config.optim.rmsprop_decay = 0.99  # RMSprop alpha (PyTorch's default)
    config.optim.adam_b1 = 0.9  # Adam beta1
    config.optim.adam_b2 = 0.999  # Adam beta2
    config.optim.eps = 1e-8  # epsilon of both optimisers
    config.optim.lr_steps = (170, 200)  # epochs at which both learning rates are multiplied by lr_factor
    config.optim.lr_factor = 0.1  # learning-rate decay factor

    # ---- adversarial term (HRGAN) ----------------------------------------------------
    config.adversarial = ConfigDict()
    config.adversarial.enabled = True  # False: plain HRNet training (D and k_t untouched)
    config.adversarial.equilibrium = True  # False: ablation L_D = (L_real + L_fake) / 2
    config.adversarial.beta_g = 1e-4  # weight of L_adv in G's loss (eq. 1)
    config.adversarial.gamma = 0.5  # equilibrium ratio (eq. 5, 6)
    config.adversarial.lambda_k = 1e-3  # k_t learning rate (eq. 5)
    config.adversarial.k0 = 0.0  # initial k_t
    config.adversarial.target_weight_in_d = False  # ablation: weight D's errors by the target weights
    config.adversarial.adv_grad_through_target = True  # L_adv's gradient also through its target H_hat (public code)
    config.adversarial.d_network = ""  # D's layer1 and stages 2-4: '' = G's (the paper, the public code), or a preset (w32, w48, tiny, small, micro)
    # D's output (issue 24): 'reconstruct' = HRGAN's D, which reconstructs the heatmaps (the
    # paper's); 'image' = one real/fake logit per input (D's trunk, global average pooling, a
    # linear layer: Goodfellow et al.'s D); 'joint' = one logit per heatmap channel (D's
    # trunk, final_layer, global average pooling: Chen et al.'s per-joint fidelity).  The
    # last two are the paper's rejected "conventional GAN approach" and need
    # equilibrium=False (k_t is BEGAN's) and target_weight_in_d=False.
    config.adversarial.d_output = "reconstruct"
    # The two classifiers' losses: 'bce' = the standard GAN's binary cross-entropy (D: real 1,
    # fake 0; G: non-saturating -log D(x_s, H_hat)), the loss of the Goodfellow et al. GAN the
    # paper cites; 'lsgan' = least squares (Mao et al.; not in the paper).  Ignored by
    # 'reconstruct', whose losses are eq. (3)-(4), so only 'bce' is accepted there.
    config.adversarial.gan_loss = "bce"

    # ---- evaluation ------------------------------------------------------------------
    config.eval = ConfigDict()
    config.eval.every_epochs = 1  # evaluate every this many epochs (0 = only at the end, -1 = never)
    config.eval.batch_size = 64  # global evaluation batch
    config.eval.flip_test = True  # average with the mirrored image's heatmaps
    config.eval.shift_heatmap = True  # flip test: shift the flipped-back heatmaps one pixel right
    config.eval.post_process = True  # quarter-pixel offset toward the higher neighbour
    config.eval.decode = "official"  # official (argmax + quarter offset) | dark (Taylor step on blurred log heatmaps)
    config.eval.dark_kernel = 11  # dark: Gaussian blur window (cv2 rule: sigma 2 for 11)
    config.eval.in_vis_thre = 0.2  # COCO rescoring: joints above this score count
    config.eval.oks_thre = 0.9  # COCO OKS-NMS threshold
    config.eval.max_images = 0  # when > 0, evaluate on the first this many images only
    config.eval.dtype = "float32"  # deployment precision: evaluation, export (ONNX, SavedModel) and predict compute in this, whatever model.dtype trained in (bfloat16 ONNX files do not run in ONNX Runtime)
    config.eval.draw_threshold = 0.2  # pictures (predict, TensorBoard crops): joints scoring below this are not drawn

    # ---- predict (launch.py --mode=predict) -------------------------------------------
    config.predict = ConfigDict()
    # --boxes: people whose detector score is below this are not predicted or drawn.  The
    # evaluation keeps every box (data.image_threshold 0.0, as the official code: COCO AP
    # rewards low-score guesses), which on photos draws dozens of false people; detector
    # demos keep 0.3 (MMPose's --bbox-thr) to 0.9 (the official HRNet demo).
    config.predict.box_threshold = 0.5

    # ---- synthetic dataset (launch.py --mode=synth writes DIR/coco and DIR/mpii, DIR = data.root) ----
    config.synth = ConfigDict()
    config.synth.num_train = 2000  # training images per dataset
    config.synth.num_val = 100  # validation images per dataset
    config.synth.image_size = (320, 240)  # rendered image (width, height)
    config.synth.max_people = 2  # people per image: 1 .. max_people
    config.synth.scene = "cluttered"  # cluttered (textures, occluders, overlaps) | plain
    config.synth.workers = 0  # processes rendering in parallel (0 = this process only)
    config.synth.datasets = ("coco", "mpii")  # which formats to write (DIR/coco, DIR/mpii)

    # ---- checkpoints -----------------------------------------------------------------
    config.checkpoint = ConfigDict()
    config.checkpoint.every_steps = 1000  # steps between checkpoints (also saved at the end and on SIGTERM)
    config.checkpoint.keep = 3  # most recent checkpoints kept (plus the best)
    config.checkpoint.best_metric = ""  # evaluation metric that picks the best checkpoint ('' = COCO AP, MPII Mean)
    return config


def apply_variant(config: ConfigDict, variant: str) -> ConfigDict:
    """The training recipe: 'hrgan' (the public code: these defaults), 'paper' (the
    paper's text) or 'hrnet' (the baseline: HRNet alone with its own optimiser)."""
    if variant in ("", "hrgan"):
        return config
    if variant == "paper":
        config.optim.g_lr = 1e-3
        config.optim.d_lr = 1e-3
        config.optim.lr_steps = (70, 120)
        config.train.epochs = 140
        return config
    if variant == "hrnet":
        config.adversarial.enabled = False
        config.optim.g_name = "adam"
        config.optim.g_lr = 1e-3
        config.train.batch_size = 128
        return config
    raise ValueError(f"unknown variant {variant!r}: choose hrgan, paper or hrnet")
