"""PSNR/SSIM and seconds of zse's Poisson models against Anscombe + BM3D on count-limited EM images.

    python bench/poisson_table.py [--quick] [--n-threads 2]

Cases (clean references from ../shared/data/em, noise from numpy default_rng(0)):
  (a) the two simulated noise-free HRTEM images (central 512x512 crops), Poisson-sampled at 0.5, 2
      and 10 electrons per pixel: counts = poisson(dose * clean / mean(clean));
  (b) the three ISBI 2012 ssTEM slices (512x512), as rates dose * clean / mean(clean) at doses 5, 20.
PSNR and SSIM are against the noise-free rate image with data_range = its max - min. Results go to
bench/results/poisson_table.csv and a markdown table on stdout (copied into bench/README.md).
"""

from __future__ import annotations

import argparse
import sys

import numpy as np

import zse
from _common import (
    RESULTS,
    anscombe,
    anscombe_bm3d,
    inverse_anscombe_unbiased,
    load,
    machine_line,
    print_markdown_table,
    psnr,
    ssim,
    timed,
    write_csv,
)

HRTEM = [
    "em/sim_hrtem_PtCeO2_clean_S3_5_876x927_float32.tif",
    "em/sim_hrtem_PtCeO2_clean_S1-2_2-S3_1_876x927_float32.tif",
]
ISBI = [f"em/isbi2012_sstem_train_slice{k}_512.png" for k in (0, 15, 29)]


def cases(quick: bool):
    for path in HRTEM[:1] if quick else HRTEM:
        clean = load(path)
        r0, c0 = (clean.shape[0] - 512) // 2, (clean.shape[1] - 512) // 2
        clean = clean[r0 : r0 + 512, c0 : c0 + 512]
        for dose in (2.0,) if quick else (0.5, 2.0, 10.0):
            yield "HRTEM " + path.split("clean_")[1].split("_876")[0], dose, clean
    for path in ISBI[:1] if quick else ISBI:
        for dose in (20.0,) if quick else (5.0, 20.0):
            yield "ISBI " + path.split("train_")[1].split("_512")[0], dose, load(path)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--quick", action="store_true", help="one HRTEM and one ISBI case, short fits"
    )
    parser.add_argument("--n-threads", type=int, default=None)
    parser.add_argument("--components", type=int, default=256)
    parser.add_argument("--epochs", type=int, default=50)
    parser.add_argument("--no-bm3d", action="store_true", help="skip the BM3D peer")
    parser.add_argument("--patch", type=int, default=6, help="patch size of PMM/GPMM (default 6)")
    parser.add_argument("--tag", default="", help="suffix of the CSV file name")
    parser.add_argument(
        "--sssc",
        action="store_true",
        help="also SSSC (H=64, 8x8, S=32) on Anscombe-stabilised counts",
    )
    parser.add_argument(
        "--only-sssc", action="store_true", help="skip PMM/GPMM (rows already in another table)"
    )
    parser.add_argument("--sssc-epochs", type=int, default=30)
    args = parser.parse_args()
    epochs = 5 if args.quick else args.epochs
    C = 32 if args.quick else args.components
    rng = np.random.default_rng(0)
    rows = []
    for name, dose, clean in cases(args.quick):
        rate = dose * clean / clean.mean()
        counts = rng.poisson(rate).astype(np.float64)
        data_range = float(rate.max() - rate.min())
        results = {"noisy": (counts, 0.0)}
        mixtures = (
            ()
            if args.only_sssc
            else (
                ("PMM", zse.PMM(C, max_iter=epochs, random_state=0, n_threads=args.n_threads)),
                ("GPMM", zse.GPMM(C, max_iter=epochs, random_state=0, n_threads=args.n_threads)),
            )
        )
        for label, model in mixtures:
            out, seconds = timed(
                zse.reconstruct,
                counts,
                model,
                stats=("mean",),
                patch_size=args.patch,
                n_threads=args.n_threads,
            )
            results[label] = (out["mean"], seconds)
        if args.sssc or args.only_sssc:
            sssc = zse.SSSC(
                64,
                n_states=32,
                max_iter=5 if args.quick else args.sssc_epochs,
                random_state=0,
                n_threads=args.n_threads,
            )
            out, seconds = timed(
                zse.reconstruct,
                anscombe(counts),
                sssc,
                stats=("mean",),
                patch_size=8,
                n_threads=args.n_threads,
            )
            results["Anscombe+SSSC"] = (inverse_anscombe_unbiased(out["mean"]), seconds)
        if not args.no_bm3d:
            results["Anscombe+BM3D"] = timed(anscombe_bm3d, counts)
        for method, (estimate, seconds) in results.items():
            row = {
                "case": name,
                "dose": dose,
                "method": method,
                "psnr": round(psnr(rate, estimate, data_range), 3),
                "ssim": round(ssim(rate, estimate, data_range), 4),
                "seconds": round(seconds, 2),
            }
            rows.append(row)
            print(
                f"{name:14s} dose {dose:5.1f}  {method:14s} PSNR {row['psnr']:7.3f}  SSIM {row['ssim']:.4f}  {seconds:7.2f} s",
                file=sys.stderr,
                flush=True,
            )
    write_csv(RESULTS / f"poisson_table{'_quick' if args.quick else ''}{args.tag}.csv", rows)

    print(
        f"Machine: {machine_line()}; PMM/GPMM: C={C}, {args.patch}x{args.patch} patches, {epochs} epochs, mean merge, seed 0.\n"
    )
    print_markdown_table(
        rows,
        ("case", "dose"),
        ("case", "dose e/px"),
        lambda r: f"{r['psnr']:.2f} / {r['ssim']:.3f} / {r['seconds']:.1f}",
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
