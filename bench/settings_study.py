"""SSSC settings side by side on the Gaussian cases of bench/compare.py (bench/README.md "ES3C
engine"): PSNR, seconds end to end and the learned sigma of `zse.reconstruct` (stats mean and
var, 2 threads by default) for each setting; ``--bm3d`` adds BM3D given the added sigma.

    python bench/settings_study.py "updates='reference'" "updates='exact'"
    python bench/settings_study.py --images house --sigmas 25 "H=128, n_train=32768"
    python bench/settings_study.py --images isbi0,isbi15,isbi29 --crop 256 --bm3d "" "updates='exact'"

A setting is Python keyword arguments of zse.SSSC, plus ``n_train`` for zse.reconstruct (default
"auto"); an empty setting is zse's defaults. Images from ../shared/data: Set12 (classic/) and
the ISBI 2012 ssTEM slices (em/, real EM texture with mild noise of its own; slice 0 has the
least); ``--crop N`` keeps the top-left N x N corner. White Gaussian noise from
default_rng(0), not clipped; seed 0. Each line also gives the noise-to-signal ratio sigma /
std(clean image) of its case.
"""

import argparse
import time

import numpy as np

import zse
from _common import load

IMAGES = {
    "house": "classic/set12_02_house_256.png",
    "peppers": "classic/set12_03_peppers_256.png",
    "cameraman": "classic/set12_01_cameraman_256.png",
    "barbara": "classic/set12_09_barbara_512.png",
    "boat": "classic/set12_10_boat_512.png",
    "isbi0": "em/isbi2012_sstem_train_slice0_512.png",
    "isbi15": "em/isbi2012_sstem_train_slice15_512.png",
    "isbi29": "em/isbi2012_sstem_train_slice29_512.png",
}
SET12 = ("house", "peppers", "cameraman", "barbara", "boat")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("settings", nargs="+", help='e.g. "H=128, updates=\'exact\'" or ""')
    parser.add_argument("--images", default=",".join(SET12), help=", ".join(IMAGES))
    parser.add_argument("--sigmas", default="15,25,50")
    parser.add_argument("--crop", type=int, default=None, help="the top-left N x N corner")
    parser.add_argument("--bm3d", action="store_true", help="also BM3D given the added sigma")
    parser.add_argument("--n-threads", type=int, default=2)
    args = parser.parse_args()
    for name in args.images.split(","):
        clean = load(IMAGES[name])
        if args.crop:
            clean = clean[: args.crop, : args.crop]
        for sigma in (float(s) for s in args.sigmas.split(",")):
            noisy = clean + np.random.default_rng(0).normal(0.0, sigma, clean.shape)
            for setting in args.settings:
                kwargs = eval(f"dict({setting})")  # a benchmark's own command line
                n_train = kwargs.pop("n_train", "auto")
                model = zse.SSSC(random_state=0, n_threads=args.n_threads, **kwargs)
                start = time.perf_counter()
                out = zse.reconstruct(
                    noisy, model, stats=("mean", "var"), n_train=n_train, n_threads=args.n_threads
                )
                seconds = time.perf_counter() - start
                print(
                    f"{name} sigma {sigma:g} (sigma/std {sigma / clean.std():.2f}) "
                    f"[{setting or 'defaults'}]: "
                    f"{zse.psnr(clean, out['mean'], 255):.3f} dB, {seconds:.1f} s, learned sigma "
                    f"{np.sqrt(model.sigma2_):.2f}",
                    flush=True,
                )
            if args.bm3d:
                import bm3d

                start = time.perf_counter()
                denoised = bm3d.bm3d(noisy, sigma)
                seconds = time.perf_counter() - start
                print(
                    f"{name} sigma {sigma:g} [BM3D given sigma]: "
                    f"{zse.psnr(clean, denoised, 255):.3f} dB, {seconds:.1f} s",
                    flush=True,
                )


if __name__ == "__main__":
    main()
