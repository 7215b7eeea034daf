"""hrgan-jax: HRGAN (HRNet pose estimation with a BEGAN-style HRNet discriminator) in JAX/Flax."""
__version__ = "0.1.0"
