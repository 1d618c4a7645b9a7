"""Coloured noise and real EM: zse at its defaults (noise="auto") against the white-noise model
and BM3D told the noise's power spectrum (the true one, or one estimated from the image).

    python bench/noise_study.py                       # every table
    python bench/noise_study.py --table pair          # the real fluorescence pair
    python bench/noise_study.py --picture docs/noise_cryoet.png   # the picture of docs/tutorials/counts-and-noise.md
    python bench/noise_study.py --table synthetic --images house --blurs 0.8
    python bench/noise_study.py --table real --real cryoet crop1

Synthetic: a clean image plus sigma 25 noise through the Gaussian transfer
exp(-2 pi^2 b^2 |f|^2), scaled to that variance (lag-1 correlation 0, 0.39, 0.67, 0.84 for
b = 0, 0.5, 0.8, 1.2; ../shared/spec/NOISE-NOTES.md). Real: the EM images of ../shared/data/em
without a reference; "background" is the noise left in their flattest 32 x 32 blocks (a plane
removed from each) relative to the input's, and the variance image's Spearman correlation with
the mean image's local edge energy says whether it traces structure. BM3D's estimated spectrum
comes from zse's own first estimate of the noise (zse.noise.flattest_patches_acf on 16 384
patches), the fair blind peer. zse runs on 2 threads.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

import zse
from compare_cases import coloured_noise

HERE = Path(__file__).resolve().parent
DATA = HERE.parent.parent / "shared" / "data"
IMAGES = {
    "isbi": "em/isbi2012_sstem_train_slice0_512.png",
    "house": "classic/set12_02_house_256.png",
}
REAL = {
    "cryoet": "em/cryoet_sarscov2_TS001_slice133_928x960.tif",
    **{f"crop{i}": f"em/tem_giantvirus_crop{i}_641.tif" for i in range(1, 7)},
}


def read(path: Path) -> np.ndarray:
    if path.suffix == ".tif":
        import tifffile

        return tifffile.imread(path).astype(np.float64)
    from PIL import Image

    return np.asarray(Image.open(path).convert("L"), dtype=np.float64)


def estimated_psd(image):
    """The image's noise spectrum from zse's first estimate (8 x 8 patches), in bm3d's units
    (the comparison's blind peer, bench/compare_methods.py)."""
    from compare_methods import estimated_psd as from_image

    return from_image(image)


def bm3d_psd(noisy, psd):
    from compare_methods import _bm3d_psd

    return _bm3d_psd(noisy, psd)["mean"]


def zse_run(image, noise_kind):
    model = zse.SSSC(random_state=0, n_threads=2) if noise_kind != "default" else None
    if noise_kind == "white":
        model.set_params(noise="white")
    t = time.perf_counter()
    result = zse.reconstruct(image, "auto" if model is None else model, n_threads=2)
    seconds = time.perf_counter() - t
    fitted = result.model
    summary = fitted.summary()
    rho = summary.get("noise", {}).get("neighbour_correlation")
    info = {
        "seconds": seconds,
        "model": type(fitted).__name__,
        "active": float(np.sum(fitted.pi_)) if isinstance(fitted, zse.SSSC) else float("nan"),
        "sigma": summary.get("learned_sigma"),
        "rho": "white" if rho is None else "/".join(f"{r:.2f}" for r in rho),
    }
    return result, info


def synthetic(images, blurs):
    print(
        "| image | lag-1 | noisy | zse defaults | s | Σπ | σ | ρ learned | zse white | s | Σπ |"
        " BM3D true PSD | BM3D estimated PSD |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for name in images:
        clean = read(DATA / IMAGES[name])[:256, :256]
        for blur in blurs:
            noise_image, psd = coloured_noise(clean.shape, blur, 25.0, np.random.default_rng(1))
            noisy = clean + noise_image
            n = noise_image
            lag1 = np.mean(
                [
                    np.corrcoef(n[:, :-1].ravel(), n[:, 1:].ravel())[0, 1],
                    np.corrcoef(n[:-1].ravel(), n[1:].ravel())[0, 1],
                ]
            )
            auto, a = zse_run(noisy, "default")
            white, w = zse_run(noisy, "white")
            true_out = bm3d_psd(noisy, psd)
            est_out = bm3d_psd(noisy, estimated_psd(noisy))
            row = [
                name,
                f"{lag1:.2f}",
                f"{zse.data.psnr(clean, noisy):.2f}",
                f"{zse.data.psnr(clean, auto['mean']):.2f}",
                f"{a['seconds']:.0f}",
                f"{a['active']:.2f}",
                f"{a['sigma']:.1f}",
                a["rho"],
                f"{zse.data.psnr(clean, white['mean']):.2f}",
                f"{w['seconds']:.0f}",
                f"{w['active']:.2f}",
                f"{zse.data.psnr(clean, true_out):.2f}",
                f"{zse.data.psnr(clean, est_out):.2f}",
            ]
            print("| " + " | ".join(row) + " |", flush=True)


def plane_residual(block):
    y, x = np.mgrid[: block.shape[0], : block.shape[1]]
    A = np.column_stack([np.ones(block.size), y.ravel(), x.ravel()])
    coef = np.linalg.lstsq(A, block.ravel(), rcond=None)[0]
    return block.ravel() - A @ coef


def background_ratio(image, out, block=32, fraction=0.1):
    """RMS of the plane-free residual in the input's flattest blocks: output over input."""
    blocks = [
        (plane_residual(image[i : i + block, j : j + block]).std(), i, j)
        for i in range(0, image.shape[0] - block + 1, block)
        for j in range(0, image.shape[1] - block + 1, block)
    ]
    blocks.sort()
    kept = blocks[: max(1, int(fraction * len(blocks)))]
    before = np.sqrt(np.mean([b[0] ** 2 for b in kept]))
    after = np.sqrt(
        np.mean([plane_residual(out[i : i + block, j : j + block]).std() ** 2 for _, i, j in kept])
    )
    return after / before


def variance_traces_structure(mean, var):
    """Spearman correlation of the variance image with the mean image's local edge energy."""
    gy, gx = np.gradient(mean)
    energy = zse.merge_patches(zse.extract_patches(gx**2 + gy**2, 8), mean.shape, 8)["mean"]
    ranks = [np.argsort(np.argsort(a.ravel())) for a in (var, energy)]
    return float(np.corrcoef(*ranks)[0, 1])


def real(names):
    print(
        "| image | zse defaults s | Σπ | σ | ρ learned | background | var ρ | zse white s | Σπ |"
        " background | BM3D estimated PSD background |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for name in names:
        image = read(DATA / REAL[name])
        auto, a = zse_run(image, "default")
        white, w = zse_run(image, "white")
        est_out = bm3d_psd(image, estimated_psd(image))
        row = [
            name,
            f"{a['seconds']:.1f}",
            f"{a['active']:.2f}",
            f"{a['sigma']:.2f}",
            a["rho"],
            f"{background_ratio(image, auto['mean']):.2f}",
            f"{variance_traces_structure(auto['mean'], auto['var']):.2f}",
            f"{w['seconds']:.1f}",
            f"{w['active']:.2f}",
            f"{background_ratio(image, white['mean']):.2f}",
            f"{background_ratio(image, est_out):.2f}",
        ]
        print("| " + " | ".join(row) + " |", flush=True)


def pair():
    """The real fluorescence pair: a raw frame against its 50-frame average (no second frame
    used by zse)."""
    raw = read(DATA / "fluorescence/fmd_confocal_bpae_b_fov19_raw000.png")
    ref = read(DATA / "fluorescence/fmd_confocal_bpae_b_fov19_gt_avg50.png")
    print("| frame | noisy | zse defaults | s | signal-dependent (alpha, offset) | zse white | s |")
    print("|---|---|---|---|---|---|---|")
    auto, a = zse_run(raw, "default")
    white, w = zse_run(raw, "white")
    evidence = auto.model.noise_evidence_["signal_dependence"]
    how = (
        f"yes ({evidence['alpha']:.2f}, {evidence['offset']:.2f})"
        if evidence["signal_dependent"]
        else "no"
    )
    row = [
        "FMD confocal BPAE B field 19, raw000",
        f"{zse.data.psnr(ref, raw, 255):.2f}",
        f"{zse.data.psnr(ref, auto['mean'], 255):.3f}",
        f"{a['seconds']:.0f}",
        how,
        f"{zse.data.psnr(ref, white['mean'], 255):.2f}",
        f"{w['seconds']:.0f}",
    ]
    print("| " + " | ".join(row) + " |", flush=True)


def picture(path: Path) -> None:
    """The cryo-ET slice (CC0) side by side: input | zse at its defaults (mean) | BM3D given the
    spectrum zse estimated | zse's variance image, on the same grey scale (the variance's own)."""
    from PIL import Image

    image = read(DATA / REAL["cryoet"])
    auto, _ = zse_run(image, "default")
    bm3d_out = bm3d_psd(image, estimated_psd(image))
    rows, cols = slice(300, 620), slice(300, 620)
    low, high = np.percentile(image, [1, 99])

    def grey(a, lo, hi):
        return (np.clip((a - lo) / (hi - lo), 0, 1) * 255).astype(np.uint8)

    spread = np.sqrt(auto["var"][rows, cols])
    v_low, v_high = np.percentile(spread, [1, 99])
    gap = np.full((320, 8), 255, np.uint8)
    tiles = [
        grey(image[rows, cols], low, high),
        gap,
        grey(auto["mean"][rows, cols], low, high),
        gap,
        grey(bm3d_out[rows, cols], low, high),
        gap,
        grey(spread, v_low, v_high),
    ]
    Image.fromarray(np.concatenate(tiles, axis=1)).save(path, optimize=True)
    print(f"wrote {path}", file=sys.stderr)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--table", choices=("synthetic", "real", "pair", "all"), default="all")
    parser.add_argument("--images", nargs="+", default=list(IMAGES), choices=list(IMAGES))
    parser.add_argument(
        "--blurs", type=lambda s: [float(b) for b in s.split(",")], default=[0.0, 0.5, 0.8, 1.2]
    )
    parser.add_argument("--real", nargs="+", default=list(REAL), choices=list(REAL))
    parser.add_argument("--picture", type=Path, help="also write the cryo-ET picture here")
    args = parser.parse_args(argv)
    if args.picture is not None:
        picture(args.picture)
        return 0
    if args.table in ("synthetic", "all"):
        synthetic(args.images, args.blurs)
    if args.table in ("real", "all"):
        real(args.real)
    if args.table in ("pair", "all"):
        pair()
    return 0


if __name__ == "__main__":
    sys.exit(main())
