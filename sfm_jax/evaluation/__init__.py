"""The test protocols, one module per kind of model, all driven by `config.eval`:

- `denoise`: the SFM denoising protocol (seeded noise per image and σ, clamped input and output,
  PSNR with peak 1 on whole images, SSIM, DCT low/high-band MSE).
- `sr`: the SR papers' protocol (MATLAB bicubic LR, Y-channel PSNR/SSIM with a border crop equal
  to the scale), with an optional Gaussian blur sweep.
- `ikc`: IKC's test (Predictor, then Corrector steps) on blurred LR.

The training loop's validation and `eval.py` call the same functions. Metrics live in
`sfm_jax.metrics`; image writing in `sfm_jax.data.images`.
"""
