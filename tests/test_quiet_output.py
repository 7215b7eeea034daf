"""A normal run's output carries no start-up or restore noise (issue 25): TensorFlow's
C++ INFO lines at import, orbax's missing-metadata warning at every restore."""
import logging
import subprocess
import sys

import jax
import jax.numpy as jnp
import pytest

from conftest import subprocess_env
from hrgan_jax import checkpoints

NOISE = ("All log messages before absl::InitializeLog()", "oneDNN custom operations are on",
         "cpu_feature_guard", "This TensorFlow binary is optimized")


@pytest.mark.slow
def test_tensorflow_starts_quietly_and_keeps_its_warnings(tmp_path):
    # The project's modules first (as launch.py imports them), then tf.data at work.
    code = ("import hrgan_jax.inference, tensorflow as tf; "
            "print(int(tf.data.Dataset.range(4).map(lambda x: x + 1).reduce(tf.constant(0, tf.int64), "
            "lambda a, b: a + b)))")
    env = {k: v for k, v in subprocess_env().items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         timeout=300, check=True)
    assert out.stdout.strip() == "10"
    assert not [line for line in out.stderr.splitlines() if any(n in line for n in NOISE)], out.stderr
    # Only INFO is dropped (level 1), and a level the user chose is kept.
    env["TF_CPP_MIN_LOG_LEVEL"] = "0"
    out = subprocess.run([sys.executable, "-c", "import data_pipeline, os; "
                          "print(os.environ['TF_CPP_MIN_LOG_LEVEL'])"],
                         env=env, capture_output=True, text=True, timeout=120, check=True)
    assert out.stdout.strip() == "0"


def test_restore_logs_no_metadata_warning(tmp_path, caplog):
    state = {"a": jnp.ones((3,)), "b": {"c": jnp.zeros((2, 2))}}
    ckpt = checkpoints.Checkpoints(str(tmp_path), every_steps=1, keep=2, async_save=False)
    try:
        ckpt.save(1, state, {"step": 1}, force=True)
        ckpt.wait()
        abstract = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=x.sharding),
                                state)
        with caplog.at_level(logging.WARNING):
            restored, meta = ckpt.restore(1, abstract)
        assert meta == {"step": 1, "checksums": "crc32"}  # the meta as saved, with the integrity marker
        assert float(restored["a"].sum()) == 3.0
        assert not [r for r in caplog.records if r.levelno >= logging.WARNING], caplog.text
        # The shape check that reads the same metadata still names a mismatch.
        wrong = {**abstract, "a": jax.ShapeDtypeStruct((4,), jnp.float32)}
        with pytest.raises(checkpoints.CheckpointError, match=r"a: checkpoint \(3,\), this run \(4,\)"):
            ckpt.restore(1, wrong)
    finally:
        ckpt.close()


def test_the_periodic_line_shows_what_a_person_watches():
    from hrgan_jax.trainer import _log_line
    summary = {"content_loss": 0.0012345, "d_loss": 4.5e-4, "k": 0.0, "images_per_sec": 61.04,
               "steps_per_sec": 2.0, "g_grad_norm": 3.0, "l_real": 1e-3, "d_lr": 8e-5}
    line = _log_line(100, 1300, 1.6, summary)
    assert line == ("step 100/1300  epoch 1.60  content 0.001234  L_D 0.00045  k_t 0  "
                    "61.0 img/s  ETA 0:10:00")
    # HRNet alone: no D loss or k_t; the last step: no ETA.
    assert _log_line(1300, 1300, 21.0, {"content_loss": 1e-3, "images_per_sec": 60.0,
                                        "steps_per_sec": 2.0}) == \
        "step 1300/1300  epoch 21.00  content 0.001  60.0 img/s"
