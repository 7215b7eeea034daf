"""Every config file loads, with each of its variants, into values the code accepts."""
import jax
import pytest

from hrgan_jax.configs import ablation, coco_w32_256x192, default, mpii_w32_256x256, synthetic
from hrgan_jax import config_checks

CASES = ([(default, p) for p in ("w32", "w48", "small", "tiny", "micro")]
         + [(coco_w32_256x192, v) for v in ("hrgan", "paper", "hrnet")]
         + [(mpii_w32_256x256, v) for v in ("hrgan", "paper", "hrnet")]
         + [(synthetic, "small")] + [(ablation, v) for v in ablation.VARIANTS])


@pytest.mark.parametrize("module,arg", CASES, ids=[f"{m.__name__}:{a}" for m, a in CASES])
def test_config_loads_and_validates(module, arg):
    config = module.get_config(arg)
    config_checks.check(config)
    assert set(config.keys()) == set(default.get_config().keys())


def test_the_ablation_variants_change_only_the_adversarial_term():
    base = ablation.get_config("hrgan")
    for variant in ablation.VARIANTS:
        config = ablation.get_config(variant)
        for section in base.keys():
            if section != "adversarial":
                assert str(config[section]) == str(base[section]), (variant, section)
    assert not ablation.get_config("hrnet").adversarial.enabled
    assert not ablation.get_config("no_equilibrium").adversarial.equilibrium
    assert ablation.get_config("tw_in_d").adversarial.target_weight_in_d
    with pytest.raises(ValueError, match="unknown ablation variant"):
        ablation.get_config("gan")


BAD_VALUES = {  # (field overrides on the micro train config, the start of the one line)
    "zero batch": ({"train.batch_size": 0}, "config.train.batch_size = 0: give a positive"),
    "negative eval batch": ({"eval.batch_size": -4}, "config.eval.batch_size = -4: give a positive"),
    "bn_group": ({"model.bn_group": 3}, "config.model.bn_group = 3 does not divide "
                                        "config.train.batch_size = 8"),
    "66x66": ({"data.image_size": (66, 66)}, "config.data.image_size = (66, 66): the network's 2 "
                                             "branches need a width and height that are multiples of 8"),
    "heatmap 32x32": ({"data.heatmap_size": (32, 32)},
                      "config.data.heatmap_size = (32, 32): the heatmaps are the input (64, 64) at "
                      "stride 4: set --config.data.heatmap_size='(16, 16)'"),
    "NaN lr": ({"optim.g_lr": float("nan")}, "config.optim.g_lr = nan: a learning rate is a finite"),
    "inf lr": ({"optim.d_lr": float("inf")}, "config.optim.d_lr = inf: a learning rate is a finite"),
    "negative lr": ({"optim.g_lr": -1e-3}, "config.optim.g_lr = -0.001: a learning rate"),
    "nothing to train": ({"train.steps": 0, "train.epochs": 0},
                         "config.train.steps = 0 and config.train.epochs = 0: nothing to train"),
}


@pytest.mark.parametrize("case", BAD_VALUES)
def test_values_that_mean_nothing_are_refused_before_a_workdir_is_made(case, tmp_path):
    """One line naming the field and the fix, from the check the command line and
    trainer.train_and_evaluate share: nothing is built or written."""
    from conftest import train_config
    from hrgan_jax import trainer
    overrides, message = BAD_VALUES[case]
    config = train_config(**overrides)
    with pytest.raises(config_checks.ConfigError) as e:
        trainer.train_and_evaluate(config, str(tmp_path / "run"))
    assert str(e.value).startswith(message) and "\n" not in str(e.value)
    assert not (tmp_path / "run").exists()


def test_the_paper_config_with_a_small_batch_names_bn_group():
    config = coco_w32_256x192.get_config("paper")
    config.train.batch_size = 8
    with pytest.raises(config_checks.ConfigError, match="config.model.bn_group = 16 does not "
                       "divide config.train.batch_size = 8: .* --config.model.bn_group=0"):
        config_checks.check(config)


def test_a_batch_that_does_not_split_over_the_devices_stops_the_start(tmp_path):
    from conftest import train_config
    from hrgan_jax import trainer
    devices = jax.devices()[:3]
    with pytest.raises(config_checks.ConfigError, match=r"^config.train.batch_size = 8 does not "
                       r"split over 3 devices; use a multiple of 3$"):
        trainer.train_and_evaluate(train_config(), str(tmp_path / "run"), devices=devices)
    with pytest.raises(config_checks.ConfigError, match=r"^config.model.bn_group = 4 does not "
                       r"divide the per-device batch 2 \(config.train.batch_size = 8 on 4 "
                       r"devices\)"):
        trainer.train_and_evaluate(train_config(**{"model.bn_group": 4}),
                                   str(tmp_path / "run"), devices=jax.devices()[:4])
    assert not (tmp_path / "run").exists()


def test_config_files_and_their_arguments_are_named_with_the_choices():
    with pytest.raises(config_checks.ConfigError,
                       match=r"^--config=configs/default.py:w99: unknown HRNet preset 'w99': "
                             r"choose one of \['micro', 'small', 'tiny', 'w32', 'w48'\]$"):
        config_checks.load_config_file("configs/default.py:w99")
    with pytest.raises(config_checks.ConfigError,
                       match=r"^--config=configs/coco_w32_256x192.py:hrgn: unknown variant "
                             r"'hrgn': choose hrgan, paper or hrnet$"):
        config_checks.load_config_file("configs/coco_w32_256x192.py:hrgn")
    with pytest.raises(config_checks.ConfigError,
                       match=r"^--config=configs/nope.py: no such config file 'configs/nope.py'; "
                             r"the config files in configs/: configs/ablation.py, .*"
                             r"configs/synthetic.py$"):
        config_checks.load_config_file("configs/nope.py")
    assert config_checks.load_config_file("configs/default.py:micro").model.name == "micro"


def test_a_tuple_given_twice_is_refused_not_joined():
    config = default.get_config()
    twice = ["--config.data.image_size=(64, 64)", "--config.data.image_size=(96, 96)"]
    assert config_checks.repeated_override(config, twice) == (
        "--config.data.image_size is given 2 times ((64, 64), (96, 96)), which would join "
        "them into one tuple: give it once, e.g. --config.data.image_size='(96, 96)'")
    # ml_collections' own spelling of a tuple, one element per repetition, stays.
    assert config_checks.repeated_override(
        config, ["--config.data.image_size=64", "--config.data.image_size=96"]) is None
    assert config_checks.repeated_override(config, ["--config.seed=1", "--config.seed=2"]) is None
