"""ES3C at its best (issue 11): variants of the SSSC training measured side by side.

    python bench/es3c_study.py --variants default,exact,patches,exact+patches --sigma 25
    python bench/es3c_study.py --curves           # free-energy curves of the defaults (figure)
    python bench/es3c_study.py --spearman         # variance image against the clean edge energy
    python bench/es3c_study.py --quick            # one small case (CI smoke)

Cases are those of bench/compare.py's Gaussian table (Set12 images, sigma 15/25/50, noise seed 0);
each variant runs ``zse.reconstruct`` with compare.py's former SSSC settings (H=64, S=32,
10 parents x 2 children, 8x8 patches, seed 0, 2 threads) plus the variant's changes. Reported per case: PSNR of
the mean, the learned sigma (true sigma in the case name), epochs run and wall seconds. Rows go to
bench/results/es3c_study.csv; the table is printed for bench/README.md.

``--spearman``: on synthetic TEM scenes with Poisson noise (zse.data.synthetic_tem) the Spearman
rank correlation between the ``var`` image and the local edge energy of the clean scene
(|gradient|^2 smoothed over the patch), next to the same for the local variance of the noisy image
and of a smoothed noisy image.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import zse  # noqa: E402
from _common import RESULTS, SHARED_DATA  # noqa: E402

BASE = dict(H=64, n_states=32, n_parents=10, n_children=2, max_iter=30)
VARIANTS = {
    "default": {},
    "exact": {"updates": "exact"},
    "patches": {"init": "patches"},
    "exact+patches": {"updates": "exact", "init": "patches"},
    "100 epochs": {"max_iter": 100},
    "exact 100 epochs": {"updates": "exact", "max_iter": 100},
}
IMAGES = {  # bench/compare.py's Set12 cases
    "house": "classic/set12_02_house_256.png",
    "barbara": "classic/set12_09_barbara_512.png",
    "peppers": "classic/set12_03_peppers_256.png",
    "cameraman": "classic/set12_01_cameraman_256.png",
    "boat": "classic/set12_10_boat_512.png",
}


def gaussian(name: str, sigma: float, crop: int | None = None):
    from PIL import Image

    clean = np.asarray(Image.open(SHARED_DATA / IMAGES[name]).convert("L"), dtype=np.float64)
    if crop:
        top, left = (clean.shape[0] - crop) // 2, (clean.shape[1] - crop) // 2
        clean = clean[top : top + crop, left : left + crop]
    noisy = clean + np.random.default_rng(0).normal(0.0, sigma, clean.shape)
    return noisy, clean


def run_variant(noisy, clean, variant: str, n_threads: int, quick: bool):
    settings = dict(BASE, **VARIANTS[variant])
    if quick:
        settings.update(H=8, n_states=8, n_parents=4, max_iter=3)
    model = zse.SSSC(**settings, random_state=0, n_threads=n_threads)
    t = time.perf_counter()
    out = zse.reconstruct(
        noisy, model, stats=("mean",), patch_size=5 if quick else 8, n_threads=n_threads
    )
    seconds = time.perf_counter() - t
    return {
        "psnr": round(zse.psnr(clean, out["mean"], data_range=255.0), 3),
        "sigma": round(float(np.sqrt(model.sigma2_)), 3),
        "epochs": model.n_iter_,
        "seconds": round(seconds, 1),
        "free_energies": [round(f, 5) for f in model.free_energies_],
    }


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    from scipy.stats import spearmanr

    return float(spearmanr(a.ravel(), b.ravel()).statistic)


def edge_energy(clean: np.ndarray, patch: int) -> np.ndarray:
    from scipy.ndimage import uniform_filter

    gy, gx = np.gradient(clean)
    return uniform_filter(gx**2 + gy**2, size=patch)


def spearman_rows(n_threads: int, quick: bool) -> list[dict]:
    from scipy.ndimage import gaussian_filter, uniform_filter

    rows = []
    for seed in (0,) if quick else (0, 1, 2):
        noisy, clean = zse.synthetic_tem((96, 96) if quick else (256, 256), seed=seed)
        patch = 8
        energy = edge_energy(clean, patch)

        def local_var(x, size=patch):
            return uniform_filter(x**2, size=size) - uniform_filter(x, size=size) ** 2

        row = {
            "case": f"synthetic TEM seed {seed}, 20 e-/px",
            "noisy local variance": spearman(local_var(noisy), energy),
            "smoothed noisy local variance": spearman(
                local_var(gaussian_filter(noisy, 2.0)), energy
            ),
        }
        for name, model in (
            (
                "SSSC",
                zse.SSSC(
                    **(dict(H=8, n_states=8, n_parents=4, max_iter=3) if quick else BASE),
                    random_state=0,
                    n_threads=n_threads,
                ),
            ),
            (
                "GPMM",
                zse.GPMM(
                    16 if quick else 256,
                    max_iter=5 if quick else 50,
                    random_state=0,
                    n_threads=n_threads,
                ),
            ),
        ):
            out = zse.reconstruct(
                noisy, model, stats=("mean", "var"), patch_size=patch, n_threads=n_threads
            )
            row[f"zse {name} var"] = spearman(out["var"], energy)
        rows.append({k: (round(v, 3) if isinstance(v, float) else v) for k, v in row.items()})
        print(rows[-1], flush=True)
    return rows


def curves_figure(path: Path, n_threads: int, epochs: int = 100) -> None:
    """F per epoch for two cases: the tvlearn/evo initialisation against the data-driven one."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(9, 3.4))
    for ax, (name, sigma) in zip(axes, (("house", 25), ("cameraman", 50))):
        noisy, _ = gaussian(name, sigma)
        patches = zse.extract_patches(noisy, 8)
        for init in ("evo", "patches"):
            settings = dict(BASE, init=init, max_iter=epochs)
            model = zse.SSSC(**settings, random_state=0, n_threads=n_threads)
            t = time.perf_counter()
            model.fit(patches)
            seconds = time.perf_counter() - t
            ax.plot(
                np.arange(1, model.n_iter_ + 1),
                model.free_energies_,
                label=f"init={init} ({seconds:.0f} s)",
            )
            print(
                name,
                sigma,
                init,
                [round(model.free_energies_[k], 3) for k in (0, 9, 29, epochs - 1)],
                round(seconds, 1),
                flush=True,
            )
        ax.axvline(30, color="grey", lw=0.8, ls=":")
        ax.set_title(f"{name}, sigma {sigma}: free energy per patch")
        ax.set_xlabel("epoch")
        ax.set_xscale("log")
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    print(f"wrote {path}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--variants", default="default,exact,patches,exact+patches")
    parser.add_argument("--images", default="house,cameraman,peppers")
    parser.add_argument("--sigma", default="25")
    parser.add_argument("--n-threads", type=int, default=2)
    parser.add_argument("--curves", action="store_true")
    parser.add_argument("--spearman", action="store_true")
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    RESULTS.mkdir(parents=True, exist_ok=True)
    if args.curves:
        curves_figure(Path(__file__).resolve().parent / "es3c_free_energy.png", args.n_threads)
        return
    if args.spearman:
        rows = spearman_rows(args.n_threads, args.quick)
        if not args.quick:
            (RESULTS / "es3c_spearman.json").write_text(json.dumps(rows, indent=1))
        return
    rows = []
    for name in args.images.split(",")[:1] if args.quick else args.images.split(","):
        for sigma in map(float, args.sigma.split(",")):
            noisy, clean = gaussian(name, sigma, crop=64 if args.quick else None)
            for variant in args.variants.split(","):
                result = run_variant(noisy, clean, variant, args.n_threads, args.quick)
                row = {"case": f"{name} s{sigma:g}", "variant": variant, **result}
                rows.append(row)
                print(
                    f"| {row['case']} | {variant} | {row['psnr']:.2f} | {row['sigma']:.2f} | "
                    f"{row['epochs']} | {row['seconds']:.0f} |",
                    flush=True,
                )
    if not args.quick:
        path = RESULTS / "es3c_study.csv"
        new = not path.exists()
        with open(path, "a", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=[k for k in rows[0] if k != "free_energies"])
            if new:
                writer.writeheader()
            writer.writerows({k: v for k, v in r.items() if k != "free_energies"} for r in rows)
        for variant in args.variants.split(","):
            psnrs = [r["psnr"] for r in rows if r["variant"] == variant]
            print(f"mean {variant}: {np.mean(psnrs):.3f} dB over {len(psnrs)} case(s)")


if __name__ == "__main__":
    main()
