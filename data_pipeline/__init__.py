"""Everything on the host between the files on disk and a batch on the device."""
import os

# TensorFlow (tf.data) prints C++ INFO lines at start-up: absl's "All log messages before
# absl::InitializeLog()", the CPU-feature and oneDNN notices.  Level 1 drops INFO and keeps
# its warnings and errors; a value the user set is kept.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")
# TensorFlow 2.21 prints oneDNN's notice (and absl's with it) on CPUs with AVX-512 whatever
# the level.  TensorFlow here runs tf.data (host-side data movement, not TF's math) and the
# SavedModel export, so its oneDNN kernels are turned off unless the user set the variable.
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")


def tf_on_host_only() -> None:
    """Keep TensorFlow off the GPUs: tf.data runs on the host, and a TensorFlow that
    sees a GPU reserves its memory, which JAX needs.  Called where tf.data pipelines
    and TFDS builders are made (not at import); a no-op once TensorFlow has set up its
    devices."""
    import tensorflow as tf
    try:
        tf.config.set_visible_devices([], "GPU")
    except RuntimeError:  # devices already initialised: too late to change, leave them
        pass
