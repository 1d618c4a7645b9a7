"""PSNR/SSIM and seconds of zse SSSC (blind: sigma is learned) against BM3D given the true sigma.

    python bench/denoise_table.py [--quick] [--updates exact|reference|both] [--images house,...]
                                  [--sigmas 15,25,50] [--H 64] [--patch 8] [--states 32]
                                  [--parents 10] [--children 2] [--epochs 50] [--n-threads 2]

Images from ../shared/data/classic (Set12): house, barbara, peppers, cameraman, boat. Noise: white
Gaussian with the given sigma from numpy default_rng(0) (a fresh generator per case), not
clipped. PSNR/SSIM with data range 255 against the clean image. Results go to
bench/results/denoise_table*.csv and a markdown table on stdout (copied into bench/README.md).
"""

from __future__ import annotations

import argparse
import sys

import numpy as np

import zse
from _common import RESULTS, load, machine_line, print_markdown_table, psnr, ssim, timed, write_csv

IMAGES = {
    "house": "classic/set12_02_house_256.png",
    "barbara": "classic/set12_09_barbara_512.png",
    "peppers": "classic/set12_03_peppers_256.png",
    "cameraman": "classic/set12_01_cameraman_256.png",
    "boat": "classic/set12_10_boat_512.png",
}


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--quick", action="store_true", help="house at sigma 25, 64x64 crop, a few epochs"
    )
    parser.add_argument("--images", default=",".join(IMAGES))
    parser.add_argument("--sigmas", default="15,25,50")
    parser.add_argument("--updates", default="exact", choices=["exact", "reference", "both"])
    parser.add_argument("--H", type=int, default=64)
    parser.add_argument("--patch", type=int, default=8)
    parser.add_argument("--states", type=int, default=32)
    parser.add_argument("--parents", type=int, default=10)
    parser.add_argument("--children", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=50)
    parser.add_argument("--no-bm3d", action="store_true")
    parser.add_argument("--n-threads", type=int, default=None)
    parser.add_argument("--tag", default="", help="suffix of the CSV file name")
    args = parser.parse_args()
    names = ["house"] if args.quick else args.images.split(",")
    sigmas = [25.0] if args.quick else [float(s) for s in args.sigmas.split(",")]
    variants = ["exact", "reference"] if args.updates == "both" else [args.updates]
    H, patch, S, epochs = (
        (16, 5, 8, 3) if args.quick else (args.H, args.patch, args.states, args.epochs)
    )
    parents = min(args.parents, S)
    rows = []
    for name in names:
        clean = load(IMAGES[name])
        if args.quick:
            clean = clean[96:160, 96:160]
        for sigma in sigmas:
            noisy = clean + np.random.default_rng(0).normal(0.0, sigma, clean.shape)
            results = {"noisy": (noisy, 0.0)}
            for updates in variants:
                model = zse.SSSC(
                    H,
                    n_states=S,
                    n_parents=parents,
                    n_children=args.children,
                    max_iter=epochs,
                    updates=updates,
                    random_state=0,
                    n_threads=args.n_threads,
                )
                out, seconds = timed(
                    zse.reconstruct,
                    noisy,
                    model,
                    stats=("mean",),
                    patch_size=patch,
                    n_threads=args.n_threads,
                )
                results[f"SSSC {updates}"] = (out["mean"], seconds)
                results[f"SSSC {updates}"] += (float(np.sqrt(model.sigma2_)),)
            if not args.no_bm3d:
                import bm3d

                results["BM3D (true sigma)"] = timed(bm3d.bm3d, noisy, sigma_psd=sigma)
            for method, value in results.items():
                estimate, seconds = value[0], value[1]
                row = {
                    "image": name,
                    "sigma": sigma,
                    "method": method,
                    "psnr": round(psnr(clean, estimate, 255.0), 3),
                    "ssim": round(ssim(clean, estimate, 255.0), 4),
                    "seconds": round(seconds, 2),
                    "learned_sigma": round(value[2], 2) if len(value) > 2 else "",
                }
                rows.append(row)
                print(
                    f"{name:10s} sigma {sigma:4.0f}  {method:18s} PSNR {row['psnr']:7.3f}  SSIM {row['ssim']:.4f}  "
                    f"{seconds:7.1f} s  {row['learned_sigma']}",
                    file=sys.stderr,
                    flush=True,
                )
    write_csv(RESULTS / f"denoise_table{'_quick' if args.quick else ''}{args.tag}.csv", rows)

    print(
        f"Machine: {machine_line()}. SSSC: H={H}, {patch}x{patch} patches, S={S}, {parents} parents, "
        f"{args.children} children, 1 generation, fit selection, randflip, {epochs} epochs, mean merge, seed 0.\n"
    )
    print_markdown_table(
        rows,
        ("image", "sigma"),
        ("image", "sigma"),
        lambda r: f"{r['psnr']:.2f} / {r['ssim']:.3f} / {r['seconds']:.0f}",
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
