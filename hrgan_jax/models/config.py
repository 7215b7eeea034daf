"""Network configurations: the official HRNet yaml's MODEL.EXTRA as an ml_collections ConfigDict.

A network config holds the stage layout (``stage1``, the single-branch ``layer1``;
``stage2``..``stage4``: modules, branches, block type, blocks per branch, channels per
branch), the head's kernel size, the
number of joints, the layers an ImageNet checkpoint initialises, the compute
dtype, and the images per train-mode BatchNorm statistics group (``bn_group``).  Field names are the official yaml names in lower case, so
``--config.model.stage4.num_channels=(48,96,192,384)`` reads like the yaml.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Mapping, Sequence

import ml_collections

STAGES = ("stage2", "stage3", "stage4")
# The pose net hard-codes layer1 as 4 Bottlenecks of 64 planes; the official HRNet
# classification yamls spell the same thing out as STAGE1.  Configs without stage1 get it.
OFFICIAL_STAGE1 = dict(num_modules=1, num_branches=1, block="BOTTLENECK", num_blocks=(4,),
                       num_channels=(64,), fuse_method="SUM")
BLOCKS = ("BASIC", "BOTTLENECK")
DTYPES = ("float32", "bfloat16", "float16")
# The mixed-precision policy under a bfloat16/float16 ``dtype``: the parts of the networks
# that compute in float32 anyway (parameters, BatchNorm statistics and normalisation,
# losses and optimiser states are float32 always).  "head": G's and D's final conv computes
# and returns float32; "d_input": D reads its input (image and heatmaps) in float32 (its
# first convolutions); "stem": G's conv1/bn1/conv2/bn2; "sums": the residual and
# fuse-layer sums and the BatchNorms feeding them.  The default keeps only what
# benchmarks/NOTES.md ("Mixed precision") measured to pay.
FLOAT32_PARTS = ("head", "d_input", "stem", "sums")
DEFAULT_FLOAT32 = ("head", "d_input")
# G's convolution init: "official" is init_weights of pose_hrnet.py, N(0, 0.001);
# "he" is He-normal (fan_out, gain sqrt(2), torchvision ResNet's), an option for
# training from scratch in few steps (the synthetic demo).
KERNEL_INITS = ("official", "he")
# D's output (config.adversarial.d_output): HRGAN's heatmap reconstruction, or one of the
# conventional GAN discriminators the paper rejects (discriminator.HRDiscriminator).
D_OUTPUTS = ("reconstruct", "image", "joint")
# hrnet_config's presets and their base width (the first branch's channels).
PRESET_WIDTHS = {"w32": 32, "w48": 48, "tiny": 8, "small": 16, "micro": 4}

# The official HRNet yamls initialise these from ImageNet (everything but the head).
IMAGENET_LAYERS = ("conv1", "bn1", "conv2", "bn2", "layer1", "transition1", "stage2",
                   "transition2", "stage3", "transition3", "stage4")


def _stage(num_modules: int, channels: Sequence[int], blocks: int = 4,
           block: str = "BASIC") -> ml_collections.ConfigDict:
    return ml_collections.ConfigDict(dict(
        num_modules=num_modules,
        num_branches=len(channels),
        block=block,
        num_blocks=tuple([blocks] * len(channels)),
        num_channels=tuple(channels),
        fuse_method="SUM",
    ))


def hrnet_config(name: str = "w32", num_joints: int = 17, *, final_conv_kernel: int = 1,
                 dtype: str = "float32") -> ml_collections.ConfigDict:
    """Preset network config.

    name: "w32" or "w48" (the official pose_hrnet yamls); "tiny" (8/16/32/64
      channels, one block per branch, two stage-4 modules: the reference fixtures'
      network, for tests), with the official layer1; or "small", the synthetic demo's
      network: tiny's stages 2-4 at 16/32/64/128 channels after a one-Bottleneck layer1
      of 16 planes (64 channels).  The official layer1 is most of a small HRNet's work,
      in G and again in D: a GAN step at 96x128, batch 32 costs 54 GFLOP with small
      against 182 with tiny (1.8 s against 5.5 s on a 2-core CPU); or "micro", for
      tests of the training machinery (checkpoints, faults, devices, the loop): one
      Bottleneck of 8 planes, then two branches (4 and 8 channels) in each of stages
      2-4, one module and one block each.  Its GAN step compiles in 9 s against tiny's
      50 s (64x64, batch 8, a quiet 2-core CPU, the tests' compiler flags).
    """
    if name not in PRESET_WIDTHS:
        raise ValueError(f"unknown HRNet preset {name!r}: choose one of {sorted(PRESET_WIDTHS)}")
    w = PRESET_WIDTHS[name]
    c = (w, 2 * w, 4 * w, 8 * w)
    stage1 = ml_collections.ConfigDict(OFFICIAL_STAGE1)
    if name in ("tiny", "small"):
        stages = (_stage(1, c[:2], 1), _stage(1, c[:3], 1), _stage(2, c, 1))
    elif name == "micro":
        stages = (_stage(1, c[:2], 1), _stage(1, c[:2], 1), _stage(1, c[:2], 1))
    else:
        stages = (_stage(1, c[:2]), _stage(4, c[:3]), _stage(3, c))
    if name == "small":
        stage1 = _stage(1, (16,), 1, "BOTTLENECK")
    elif name == "micro":
        stage1 = _stage(1, (8,), 1, "BOTTLENECK")
    cfg = ml_collections.ConfigDict()
    cfg.name = name
    cfg.num_joints = num_joints
    cfg.final_conv_kernel = final_conv_kernel
    cfg.stage1 = stage1
    cfg.stage2, cfg.stage3, cfg.stage4 = stages
    cfg.pretrained_layers = IMAGENET_LAYERS
    cfg.dtype = dtype
    cfg.float32 = DEFAULT_FLOAT32
    cfg.kernel_init = "official"
    # Train-mode BatchNorm statistics over groups of this many images (0: the whole,
    # synchronised batch); see hrnet.Norm.  The public code's DataParallel: per GPU.
    cfg.bn_group = 0
    validate(cfg)
    return cfg


_OFFICIAL_STAGE_KEYS = {"NUM_MODULES": "num_modules", "NUM_BRANCHES": "num_branches",
                        "BLOCK": "block", "NUM_BLOCKS": "num_blocks",
                        "NUM_CHANNELS": "num_channels", "FUSE_METHOD": "fuse_method"}


def config_from_official(extra: Mapping[str, Any], num_joints: int, *,
                         dtype: str = "float32") -> ml_collections.ConfigDict:
    """Config from MODEL.EXTRA of an official HRNet yaml, given as a (nested) dict.

    STAGE1 is optional (the pose yamls leave it out: 4 Bottlenecks of 64 planes)."""
    known = {"PRETRAINED_LAYERS", "FINAL_CONV_KERNEL", "STAGE1", "STAGE2", "STAGE3", "STAGE4"}
    unknown = sorted(set(extra) - known)
    if unknown:
        raise ValueError(f"MODEL.EXTRA has keys this HRNet does not know: {unknown} "
                         f"(known: {sorted(known)})")
    missing = sorted({"STAGE2", "STAGE3", "STAGE4"} - set(extra))
    if missing:
        raise ValueError(f"MODEL.EXTRA lacks {missing}")
    cfg = ml_collections.ConfigDict()
    cfg.name = "custom"
    cfg.num_joints = int(num_joints)
    cfg.final_conv_kernel = int(extra.get("FINAL_CONV_KERNEL", 1))
    cfg.stage1 = ml_collections.ConfigDict(OFFICIAL_STAGE1)
    for stage in ("stage1",) + STAGES:
        if stage.upper() not in extra:
            continue
        src = extra[stage.upper()]
        bad = sorted(set(src) - set(_OFFICIAL_STAGE_KEYS))
        if bad:
            raise ValueError(f"MODEL.EXTRA.{stage.upper()} has unknown keys {bad}")
        absent = sorted(set(_OFFICIAL_STAGE_KEYS) - set(src) - {"FUSE_METHOD"})
        if absent:
            raise ValueError(f"MODEL.EXTRA.{stage.upper()} lacks {absent}")
        d = {ours: src[theirs] for theirs, ours in _OFFICIAL_STAGE_KEYS.items() if theirs in src}
        d.setdefault("fuse_method", "SUM")
        d["num_blocks"] = tuple(int(b) for b in d["num_blocks"])
        d["num_channels"] = tuple(int(b) for b in d["num_channels"])
        cfg[stage] = ml_collections.ConfigDict(d)
    cfg.pretrained_layers = tuple(extra.get("PRETRAINED_LAYERS", IMAGENET_LAYERS))
    cfg.dtype = dtype
    cfg.float32 = DEFAULT_FLOAT32
    cfg.bn_group = 0
    validate(cfg)
    return cfg


@dataclasses.dataclass(frozen=True)
class StageSpec:
    num_modules: int
    block: str
    num_blocks: tuple[int, ...]
    num_channels: tuple[int, ...]


@dataclasses.dataclass(frozen=True)
class NetSpec:
    """The hashable, validated form of a network config that the modules take.

    stages: stage2..stage4; stage1: layer1 (one branch, one module); bn_group: images
    per train-mode BatchNorm statistics group, 0 for the whole batch (hrnet.Norm);
    float32: the parts that compute in float32 under a lower ``dtype`` (FLOAT32_PARTS)."""
    stages: tuple[StageSpec, ...]
    num_joints: int
    final_conv_kernel: int
    dtype: str
    stage1: StageSpec = StageSpec(1, "BOTTLENECK", (4,), (64,))
    kernel_init: str = "official"
    bn_group: int = 0
    d_output: str = "reconstruct"  # the discriminator's head (D_OUTPUTS); G ignores it
    float32: tuple[str, ...] = DEFAULT_FLOAT32

    def part_dtype(self, part: str) -> str:
        """The dtype ``part`` (one of FLOAT32_PARTS) computes in: float32 when the policy
        keeps it there, else the compute dtype."""
        return "float32" if part in self.float32 else self.dtype


def validate(cfg: ml_collections.ConfigDict) -> NetSpec:
    """Checks a network config and returns its NetSpec; errors name the field."""
    def fail(field, msg):
        raise ValueError(f"model config field {field}: {msg}")

    if not isinstance(cfg.get("num_joints"), int) or cfg.num_joints < 1:
        fail("num_joints", f"must be a positive int, got {cfg.get('num_joints')!r}")
    if cfg.get("final_conv_kernel") not in (1, 3):
        fail("final_conv_kernel", f"must be 1 or 3, got {cfg.get('final_conv_kernel')!r}")
    if cfg.get("dtype") not in DTYPES:
        fail("dtype", f"must be one of {DTYPES}, got {cfg.get('dtype')!r}")
    if cfg.get("kernel_init", "official") not in KERNEL_INITS:
        fail("kernel_init", f"must be one of {KERNEL_INITS}, got {cfg.get('kernel_init')!r}")
    bn_group = cfg.get("bn_group", 0)
    if not isinstance(bn_group, int) or isinstance(bn_group, bool) or bn_group < 0:
        fail("bn_group", f"must be an int >= 0 (images per BatchNorm statistics group; 0: the "
                         f"whole batch), got {bn_group!r}")
    float32 = cfg.get("float32", DEFAULT_FLOAT32)
    if isinstance(float32, str) or not all(p in FLOAT32_PARTS for p in float32):
        fail("float32", f"must be a tuple of parts from {FLOAT32_PARTS}, got {float32!r}")
    stages = []
    prev_branches = 1
    stage1 = None
    for name in ("stage1",) + STAGES:
        if name not in cfg:
            if name == "stage1":  # a config written before stage1 existed: the official layer1
                stage1 = StageSpec(1, "BOTTLENECK", (4,), (64,))
                continue
            fail(name, "missing")
        s = cfg[name]
        nb = s.num_branches
        if s.block not in BLOCKS:
            fail(f"{name}.block", f"must be one of {BLOCKS}, got {s.block!r}")
        if s.get("fuse_method", "SUM") != "SUM":
            fail(f"{name}.fuse_method", f"only SUM exists in HRNet, got {s.fuse_method!r}")
        if len(s.num_blocks) != nb:
            fail(f"{name}.num_blocks", f"has {len(s.num_blocks)} entries for {nb} branches")
        if len(s.num_channels) != nb:
            fail(f"{name}.num_channels", f"has {len(s.num_channels)} entries for {nb} branches")
        if s.num_modules < 1:
            fail(f"{name}.num_modules", f"must be >= 1, got {s.num_modules}")
        if nb < prev_branches:
            fail(f"{name}.num_branches", f"{nb} is fewer than the previous stage's {prev_branches}")
        if any(c < 1 for c in s.num_channels) or any(b < 1 for b in s.num_blocks):
            fail(name, "channels and blocks must be positive")
        spec = StageSpec(int(s.num_modules), s.block, tuple(int(b) for b in s.num_blocks),
                         tuple(int(c) for c in s.num_channels))
        if name == "stage1":
            if nb != 1 or s.num_modules != 1:
                fail(name, f"layer1 is one branch and one module, got num_branches {nb}, "
                           f"num_modules {s.num_modules}")
            stage1 = spec
            continue
        prev_branches = nb
        stages.append(spec)
    d_output = cfg.get("d_output", "reconstruct")
    if d_output not in D_OUTPUTS:
        fail("d_output", f"must be one of {D_OUTPUTS}, got {d_output!r}")
    return NetSpec(tuple(stages), cfg.num_joints, cfg.final_conv_kernel, cfg.dtype, stage1,
                   cfg.get("kernel_init", "official"), bn_group, d_output, tuple(float32))
