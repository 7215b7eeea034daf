"""Every config file loads, with each of its variants, into values the code accepts."""
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
