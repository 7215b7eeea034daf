"""hrgan-jax: HRGAN (HRNet pose estimation with a BEGAN-style HRNet discriminator) in JAX/Flax."""
import importlib.util as _importlib_util
import os as _os
import sys as _sys

__version__ = "0.1.0"

# TensorFlow's C++ INFO lines at start-up (absl's notice, oneDNN's on AVX-512 CPUs) are
# dropped whichever package imports first: data_pipeline/__init__.py does the same (and says why).
_os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")
_os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")

# The shipped configs are the package hrgan_jax.configs (`--config=NAME`).  An installed
# package carries them in hrgan_jax/configs/ (pyproject.toml maps that package onto the
# repository's configs/); run from a checkout (`python launch.py`, PYTHONPATH), they are
# the checkout's own top-level configs/ directory.
_here = _os.path.dirname(_os.path.abspath(__file__))
_checkout_configs = _os.path.join(_os.path.dirname(_here), "configs")
if (not _os.path.isdir(_os.path.join(_here, "configs"))
        and _os.path.isfile(_os.path.join(_checkout_configs, "default.py"))):
    _spec = _importlib_util.spec_from_file_location(
        "hrgan_jax.configs", _os.path.join(_checkout_configs, "__init__.py"),
        submodule_search_locations=[_checkout_configs])
    configs = _importlib_util.module_from_spec(_spec)
    _sys.modules["hrgan_jax.configs"] = configs
    _spec.loader.exec_module(configs)
