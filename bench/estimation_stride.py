"""What estimating only every s-th patch would cost in PSNR (bench/README.md "ES3C engine",
round 5): SSSC at the defaults through `zse.reconstruct` (the reference), then every patch
estimated with the same fitted model and the estimates of the patches on a grid of stride s
(plus the last row and column of patches, so that every pixel stays covered) averaged per pixel.

    python bench/estimation_stride.py --images house,isbi0 --sigmas 25

Stride s estimates about 1/s^2 of the patches (the estimation's time), and each pixel is
covered by about (8/s)^2 patches instead of 64. Images and noise as in bench/settings_study.py.
"""

import argparse

import numpy as np

import zse
from _common import load
from settings_study import IMAGES, SET12

PATCH = 8


def merged_on_grid(estimates: np.ndarray, shape, stride: int) -> np.ndarray:
    """The per-pixel mean of the patch estimates at the grid positions of ``stride``."""
    n_rows, n_cols = shape[0] - PATCH + 1, shape[1] - PATCH + 1
    rows = np.unique(np.r_[np.arange(0, n_rows, stride), n_rows - 1])
    cols = np.unique(np.r_[np.arange(0, n_cols, stride), n_cols - 1])
    on_grid = estimates.reshape(n_rows, n_cols, PATCH, PATCH)[np.ix_(rows, cols)]
    total, count = np.zeros(shape), np.zeros(shape)
    for i in range(PATCH):
        for j in range(PATCH):
            total[np.ix_(rows + i, cols + j)] += on_grid[:, :, i, j]
            count[np.ix_(rows + i, cols + j)] += 1.0
    return total / count


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", default=",".join(SET12), help=", ".join(IMAGES))
    parser.add_argument("--sigmas", default="15,25,50")
    parser.add_argument("--crop", type=int, default=256, help="the top-left N x N corner")
    parser.add_argument("--strides", default="1,2,3,4")
    parser.add_argument("--n-threads", type=int, default=2)
    args = parser.parse_args()
    for name in args.images.split(","):
        clean = load(IMAGES[name])[: args.crop, : args.crop]
        for sigma in (float(s) for s in args.sigmas.split(",")):
            noisy = clean + np.random.default_rng(0).normal(0.0, sigma, clean.shape)
            model = zse.SSSC(random_state=0, n_threads=args.n_threads)
            out = zse.reconstruct(noisy, model, stats=("mean",), n_threads=args.n_threads)
            line = f"{name} sigma {sigma:g}: reconstruct {zse.psnr(clean, out['mean'], 255):.3f}"
            estimates = model.estimate(zse.extract_patches(noisy, PATCH))
            for stride in (int(s) for s in args.strides.split(",")):
                merged = merged_on_grid(estimates, noisy.shape, stride)
                line += f", stride {stride} {zse.psnr(clean, merged, 255):.3f}"
            print(line + " dB", flush=True)


if __name__ == "__main__":
    main()
