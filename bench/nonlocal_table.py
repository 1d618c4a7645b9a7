"""Issue 34: the nonlocal estimate (SSSC's group_size, group_members) against every patch alone
and against block matching, side by side in one run, on the issue's cases and on real EM.

    python bench/nonlocal_table.py                 # every case (about 25 min on 2 cores)
    python bench/nonlocal_table.py --cases 'house*'
    python bench/nonlocal_table.py --model gpmm      # the count cases with GPMM (or pmm)
    python bench/nonlocal_table.py --gaussian-table  # SSSC on compare.py's Gaussian table

Per case SSSC is fitted once at zse's defaults (seed 0; the fit's time is its own column), then
the image is estimated with every patch alone (group_size=1, today's default), with groups of 8
of the nearest patches and with groups of 8 disjoint ones (group_members="disjoint"); each
estimate's time is that of zse.reconstruct with the fitted model (the "fit s" column: the fit
and a first estimate of the mean). The peers are told the true
noise (BM3D sigma or PSD, Anscombe + BM3D for counts, BM4D for volumes) and timed in the same
run. Real EM without ground truth: the noise left in the input's flattest blocks (output over
input, bench/noise_study.py), lower is more removed. Writes bench/results/nonlocal_table.csv and
prints a markdown table.
"""

from __future__ import annotations

import argparse
import csv
import fnmatch
import sys
import time

import numpy as np

import zse
from _common import RESULTS, anscombe, inverse_anscombe_unbiased, psnr
from compare import var_spearman
from compare_cases import (
    CRYOET,
    SET12,
    Case,
    coloured_case,
    coloured_noise,
    full_cases,
    gaussian_case,
    real_case,
)
from compare_methods import _bm3d, _bm3d_psd, true_psd
from noise_study import background_ratio

VARIANTS = {
    "alone": dict(group_size=1),
    "groups of 8": dict(group_size=8),
    "groups of 8, disjoint": dict(group_size=8, group_members="disjoint"),
}


def cases():
    """The issue's cases (the five Gaussian ones, volumes, counts), coloured noise and real EM."""
    stored = {c.name: c for c in full_cases()}
    picked = [
        stored["house s25"],
        stored["cameraman s15"],
        stored["peppers s50"],
        gaussian_case("barbara 512", SET12["barbara"], 25),
        gaussian_case("ISBI slice0 512", "em/isbi2012_sstem_train_slice0_512.png", 25),
        stored["phantom 64³ s25"],
        stored["HRTEM S3_5 particle d2"],
        stored["ISBI slice15 d5"],
        stored["FMD confocal raw000"],
        coloured_case("house", SET12["house"], 25, 0.8),
        coloured_case("ISBI slice0 256", "em/isbi2012_sstem_train_slice0_512.png", 25, 0.8),
        stored["HRTEM S3_5 particle d2 MTF b0.8"],
    ]
    # The synthetic TEM scene the variance image is judged on (transmission x 200, sigma 25).
    picked += [scene_case(0.0), scene_case(0.8)]
    real = [
        real_case("cryo-ET SARS-CoV-2 slice (native)", CRYOET),
        real_case("TEM giant virus 1 crop 320", "em/tem_giantvirus_crop1_641.tif", crop=320),
        real_case("TEM giant virus 2 crop 320", "em/tem_giantvirus_crop2_641.tif", crop=320),
    ]
    return picked + real


def scene_case(blur):
    def make():
        clean = zse.synthetic_tem((256, 256), dose=200.0, seed=0)[1]
        rng = np.random.default_rng(0)
        if blur:
            noise = coloured_noise(clean.shape, blur, 25.0, rng)[0]
        else:
            noise = rng.normal(0.0, 25.0, clean.shape)
        return clean + noise, clean, float(clean.max() - clean.min())

    name = "TEM scene s25" + (f" b{blur:g}" if blur else "")
    group = "coloured" if blur else "gaussian"
    return Case(group, name, make, sigma=25.0, blur=blur)


def peer(case, noisy):
    """The block-matching peer told the true noise, and its name."""
    if case.volume:
        from peers import bm4d_volume

        return "BM4D (true σ)", bm4d_volume(noisy, case.sigma)
    if case.domain == "anscombe":
        return "Anscombe + BM3D", inverse_anscombe_unbiased(_bm3d(anscombe(noisy), 1.0)["mean"])
    if case.group == "coloured":
        return "BM3D (true PSD)", _bm3d_psd(noisy, true_psd(noisy, case))["mean"]
    if case.group == "gaussian":
        return "BM3D (true σ)", _bm3d(noisy, case.sigma)["mean"]
    return None, None


def score(case, noisy, clean, data_range, image):
    if clean is None:
        return "flat-block noise", background_ratio(noisy, image)
    return "PSNR", psnr(clean, image, data_range)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", default="*", help="globs on case names, comma-separated")
    parser.add_argument("--n-threads", type=int, default=2)
    parser.add_argument(
        "--gaussian-table",
        action="store_true",
        help="SSSC on the 15 cases of bench/compare.py's Gaussian table instead",
    )
    parser.add_argument(
        "--model",
        choices=("sssc", "gpmm", "pmm"),
        default="sssc",
        help="SSSC at its defaults on every case, or a mixture (C 256, 50 epochs, 8x8 patches "
        "as in bench/compare.py) on the count cases",
    )
    args = parser.parse_args(argv)
    globs = args.cases.split(",")
    rows = []
    print(
        "| case | metric | fit s | alone | groups of 8 | disjoint | s: alone / 8 / disjoint "
        "| peer | peer s |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    # The mixtures run on every count case of bench/compare.py (the Poisson table, the pair).
    todo = cases() if args.model == "sssc" else [c for c in full_cases() if c.counts]
    if args.gaussian_table:
        todo = [c for c in full_cases() if c.group == "gaussian"]
    for case in todo:
        if not any(fnmatch.fnmatch(case.name, g) for g in globs):
            continue
        noisy, clean, data_range = case.make()
        # SSSC on the data as they are (noise="auto" decides; counts included), patch at the
        # defaults (3-D patches for volumes).
        patch = None
        model = zse.SSSC(random_state=0, n_threads=args.n_threads)
        if args.model != "sssc":
            patch = 8
            mixture = zse.GPMM if args.model == "gpmm" else zse.PMM
            model = mixture(256, max_iter=50, random_state=0, n_threads=args.n_threads)
        t = time.perf_counter()
        zse.reconstruct(noisy, model, stats=("mean",), patch_size=patch, n_threads=args.n_threads)
        fit_seconds = time.perf_counter() - t  # the fit and a first estimate (mean only)
        row = {"case": case.name, "model": args.model, "fit s": fit_seconds}
        for name, settings in VARIANTS.items():
            model.set_params(**settings)
            t = time.perf_counter()
            out = zse.reconstruct(
                noisy, model, stats=("mean", "var"), patch_size=patch, n_threads=args.n_threads
            )
            row[f"{name} s"] = time.perf_counter() - t
            metric, row[name] = score(case, noisy, clean, data_range, out["mean"])
            if clean is not None:  # does the variance image trace structure, not noise?
                row[f"{name} var rho"] = var_spearman(out["var"], clean)
        row["metric"] = metric
        peer_name, peer_image = None, None
        t = time.perf_counter()
        if clean is not None:
            peer_name, peer_image = peer(case, noisy)
        row["peer s"] = time.perf_counter() - t
        row["peer"] = peer_name or ""
        row["peer value"] = (
            score(case, noisy, clean, data_range, peer_image)[1] if peer_image is not None else ""
        )
        rows.append(row)
        fmt = "{:.3f}" if metric == "flat-block noise" else "{:.2f}"
        print(
            f"| {case.name} | {metric} | {fit_seconds:.1f} | "
            + " | ".join(fmt.format(row[n]) for n in VARIANTS)
            + " | "
            + " / ".join(f"{row[n + ' s']:.1f}" for n in VARIANTS)
            + f" | {peer_name or '—'} {fmt.format(row['peer value']) if peer_name else ''} | "
            + (f"{row['peer s']:.1f}" if peer_name else "—")
            + " |"
            + (
                " var ρ " + " / ".join(f"{row[n + ' var rho']:.3f}" for n in VARIANTS)
                if clean is not None
                else ""
            ),
            flush=True,
        )
    RESULTS.mkdir(parents=True, exist_ok=True)
    label = "gaussian" if args.gaussian_table else args.model
    path = RESULTS / f"nonlocal_table_{label}.csv"
    if rows:
        with open(path, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
