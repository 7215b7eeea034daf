"""Everything on the host between the files on disk and a batch on the device."""
import os

# TensorFlow (tf.data) prints C++ INFO lines at start-up: absl's "All log messages before
# absl::InitializeLog()", the CPU-feature and oneDNN notices.  Level 1 drops INFO and keeps
# its warnings and errors; a value the user set is kept.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")


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
