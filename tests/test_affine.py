import numpy as np

from data_pipeline.affine import affine_points, get_affine_transform
from conftest import FIXTURES


def test_affine_matrices_match_official_fixture():
    with np.load(FIXTURES / "affine_transforms.npz") as d:
        for i in range(len(d["rot"])):
            trans = get_affine_transform(d["center"][i], d["scale"][i], d["rot"][i],
                                         d["output_size"][i], inv=bool(d["inv"][i]))
            np.testing.assert_allclose(trans, d["trans"][i], rtol=1e-12, atol=1e-9)


def test_inverse_undoes_forward_and_centre_maps_to_centre():
    center, scale, size = np.array([300.0, 200.0]), np.array([1.2, 1.6]), (192, 256)
    fwd = get_affine_transform(center, scale, 30.0, size)
    inv = get_affine_transform(center, scale, 30.0, size, inv=True)
    pts = np.random.default_rng(0).uniform(0, 500, (10, 2))
    np.testing.assert_allclose(affine_points(affine_points(pts, fwd), inv), pts, atol=1e-3)
    np.testing.assert_allclose(affine_points(center, fwd), [96.0, 128.0], atol=1e-3)
