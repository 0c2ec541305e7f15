"""Evaluate a denoiser (SFM test protocol), a super-resolver, IKC or an FCA generator.

  python eval.py --config configs/X.py --workdir DIR --dataset FOLDER
  python eval.py --weights FILE.msgpack --dataset FOLDER --config.eval.sigmas=15,25,50
  python eval.py --weights sfm:dncnn_b_sfm --dataset BSD68 --output B --compare A   # PSNR vs σ
  python eval.py --task sr --bicubic --config.eval.scale=4 --dataset Set5   # bicubic baseline
  python eval.py --weights W --dataset Set14 --config.eval.blur_sigmas=0.2,1,2,3,4
  python eval.py --weights W2 --dataset Set14 --output B --compare A   # PSNR-NIQE plot of A and B
  python eval.py --task ikc --ikc_weights SFTMD,PREDICTOR,CORRECTOR --dataset FOLDER \
      --config.eval.blur_sigmas=1.8,2.6,3.2
  python eval.py --task fca --config configs/fca.py --workdir DIR --dataset FOLDER --output OUT

How images are degraded and scored is `config.eval` (`sfm_jax/config_base.py:eval_fields`):
the --config file's, or for --weights runs without --config the eval fields saved in the weights
file, each overridable as --config.eval.x=value. Denoising writes OUT/results.csv (image, sigma,
psnr, ssim, noisy_psnr, dct_low_mse, dct_high_mse); SR one row per image and blur σ (PSNR, SSIM,
NIQE, and the same for bicubic) and OUT/perception_distortion.png; both write
OUT/summary.json. The protocols live in sfm_jax.evaluation;
`sfm-eval` is the same program (sfm_jax.evaluation.main).
"""

from sfm_jax.evaluation.main import run

if __name__ == "__main__":
  run()
