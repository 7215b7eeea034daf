import jax
import numpy as np
import pytest

from conftest import FIXTURES
from hrgan_jax.targets import heatmap_targets


@pytest.mark.parametrize("name", ["targets_coco_256x192_s2", "targets_mpii_256x256_s2"])
def test_targets_match_official_generate_target(name):
    with np.load(FIXTURES / f"{name}.npz") as d:
        f = jax.jit(heatmap_targets, static_argnums=(2, 3, 4))
        target, weight = f(d["joints"].astype(np.float32), d["joints_vis"],
                           tuple(int(v) for v in d["image_size"]),
                           tuple(int(v) for v in d["heatmap_size"]), float(d["sigma"]))
        np.testing.assert_array_equal(np.asarray(weight), d["target_weight"][..., 0])
        np.testing.assert_allclose(np.asarray(target).transpose(0, 3, 1, 2), d["target"],
                                   rtol=1e-6, atol=1e-7)
        # The fixture includes joints outside the heatmap and unlabelled joints.
        assert (d["target_weight"] == 0).any() and (d["joints_vis"] > 0).any()
