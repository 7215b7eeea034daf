"""Everything on the host between the files on disk and a batch on the device."""


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
