"""sfm-jax: frequency-aware image restoration in JAX/Flax (SFM, NatSR, FCA, DCT denoisers).

Submodules are imported on demand so that `import sfm_jax.ops` stays free of Flax and TensorFlow.
"""

__version__ = "0.1.0"
