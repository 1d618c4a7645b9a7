"""The cases of bench/compare.py: images, noise and where each comes from."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from _common import RESULTS, load

OUTPUTS = RESULTS / "outputs"


def output_path(case: Case, method: str, stat: str) -> Path:
    """Where a case's output image of a method is kept (float32 .npy, for bench/gallery.py)."""
    slug = lambda s: "".join(ch if ch.isalnum() else "_" for ch in s).strip("_")  # noqa: E731
    return OUTPUTS / slug(case.name) / f"{slug(method)}__{stat}.npy"


# --------------------------------------------------------------------------- cases


@dataclass
class Case:
    """One noisy image, its noise model and (if known) its clean reference."""

    group: str  # "gaussian", "poisson", "real pair", "real EM", "volume"
    name: str
    make: Callable[[], tuple]  # -> (noisy, clean or None, data_range or None)
    sigma: float | None = None  # noise sigma where known (Poisson: 1, that of the Anscombe domain)
    counts: bool = False  # noisy values are non-negative counts (PMM/GPMM apply)
    domain: str = "direct"  # "anscombe": peers and SSSC work on the Anscombe transform
    keep_outputs: bool = False  # save estimates for bench/gallery.py
    note: str = ""
    credit: str = ""  # attribution shown with published pictures
    volume: bool = False  # a (z, rows, columns) volume: zse's 3-D patches, BM4D; 2-D peers n/a
    networks: bool = False  # the zero-shot networks (ZS-N2N, Noise2Void) run on it (their cost)
    blur: float = 0.0  # coloured noise: the width b of its transfer exp(-2 pi^2 b^2 |f|^2)


def transfer(shape, blur):
    """The Gaussian transfer exp(-2 pi^2 b^2 |f|^2) on an image's frequency grid (a detector's
    MTF, interpolation: ../shared/spec/NOISE-NOTES.md)."""
    fy = np.fft.fftfreq(shape[0])[:, None]
    fx = np.fft.fftfreq(shape[1])[None, :]
    return np.exp(-2 * np.pi**2 * blur**2 * (fx**2 + fy**2))


def coloured_noise(shape, blur, sigma, rng):
    """Gaussian noise of variance sigma^2 through the transfer of width ``blur``, and its power
    spectrum in bm3d's convention (lag-1 correlation 0.39, 0.67, 0.84 for b = 0.5, 0.8, 1.2)."""
    G = transfer(shape, blur)
    out = np.real(np.fft.ifft2(np.fft.fft2(rng.standard_normal(shape)) * G))
    scale = np.sqrt(np.mean(G**2))
    psd = sigma**2 * G**2 / scale**2 * shape[0] * shape[1]
    return sigma * out / scale, psd


def _crop(image, size, top=None, left=None):
    rows, cols = image.shape
    top = (rows - size) // 2 if top is None else top
    left = (cols - size) // 2 if left is None else left
    return image[top : top + size, left : left + size]


def gaussian_case(label, path, sigma, crop=None, networks=False):
    def make():
        clean = load(path)
        if crop:
            clean = _crop(clean, crop)
        noisy = clean + np.random.default_rng(0).normal(0.0, sigma, clean.shape)
        return noisy, clean, 255.0

    return Case("gaussian", f"{label} s{sigma:g}", make, sigma=float(sigma), networks=networks)


def coloured_case(label, path, sigma, blur, crop=256):
    def make():
        clean = _crop(load(path), crop)
        noise, _ = coloured_noise(clean.shape, blur, sigma, np.random.default_rng(0))
        return clean + noise, clean, 255.0

    return Case("coloured", f"{label} s{sigma:g} b{blur:g}", make, sigma=float(sigma), blur=blur)


def mtf_poisson_case(label, path, dose, crop, blur=0.8, top=None, left=None):
    """Counts seen through a detector's MTF: Poisson counts filtered by the transfer (their noise
    correlated, their values no longer integers); the reference is the rate filtered alike."""

    def make():
        clean = _crop(load(path), crop, top, left)
        rate = dose * clean / clean.mean()
        counts = np.random.default_rng(0).poisson(rate).astype(np.float64)
        G = transfer(rate.shape, blur)
        seen = np.real(np.fft.ifft2(np.fft.fft2(counts) * G))
        reference = np.real(np.fft.ifft2(np.fft.fft2(rate) * G))
        return seen, reference, float(reference.max() - reference.min())

    return Case("poisson MTF", f"{label} d{dose:g} MTF b{blur:g}", make, blur=blur)


def poisson_case(label, path, dose, crop, top=None, left=None, networks=False):
    def make():
        clean = _crop(load(path), crop, top, left)
        rate = dose * clean / clean.mean()
        counts = np.random.default_rng(0).poisson(rate).astype(np.float64)
        return counts, rate, float(rate.max() - rate.min())

    return Case(
        "poisson",
        f"{label} d{dose:g}",
        make,
        sigma=1.0,
        counts=True,
        domain="anscombe",
        networks=networks,
    )


def phantom_volume(n=64, seed=1):
    """A synthetic cell-like volume (grey values 0-255): a background ramp, virion-like shells,
    filled particles of several densities and three filaments, smoothed by a voxel's width."""
    from scipy.ndimage import gaussian_filter

    rng = np.random.default_rng(seed)
    z, y, x = np.mgrid[0:n, 0:n, 0:n].astype(np.float64)
    vol = 60.0 + 40.0 * x / n
    for _ in range(10):  # shells: radius 5-9 voxels, wall 2 voxels
        c, r = rng.uniform(8, n - 8, 3), rng.uniform(5, 9)
        d = np.sqrt((z - c[0]) ** 2 + (y - c[1]) ** 2 + (x - c[2]) ** 2)
        vol[np.abs(d - r) < 1.0] = 200.0
    for _ in range(12):  # filled particles
        c, r = rng.uniform(4, n - 4, 3), rng.uniform(2, 5)
        d = np.sqrt((z - c[0]) ** 2 + (y - c[1]) ** 2 + (x - c[2]) ** 2)
        vol[d < r] = rng.uniform(110, 240)
    for _ in range(3):  # filaments: straight rods of radius 1.5 through the volume
        p, u = rng.uniform(0, n, 3), rng.normal(size=3)
        u /= np.linalg.norm(u)
        q = np.stack([z - p[0], y - p[1], x - p[2]])
        along = np.tensordot(u, q, axes=1)
        dist = np.sqrt(np.maximum((q**2).sum(axis=0) - along**2, 0.0))
        vol[dist < 1.5] = 30.0
    return gaussian_filter(vol, 0.7)


def volume_case(noise, level, n=64):
    def make():
        clean = phantom_volume(n)
        rng = np.random.default_rng(0)
        if noise == "gaussian":
            return clean + rng.normal(0.0, level, clean.shape), clean, 255.0
        rate = level * clean / clean.mean()
        return rng.poisson(rate).astype(np.float64), rate, float(rate.max() - rate.min())

    if noise == "gaussian":
        return Case("volume", f"phantom {n}³ s{level:g}", make, sigma=float(level), volume=True)
    return Case(
        "volume",
        f"phantom {n}³ d{level:g}",
        make,
        sigma=1.0,
        counts=True,
        domain="anscombe",
        volume=True,
    )


def fluorescence_case(crop=None):
    def make():
        raw = load("fluorescence/fmd_confocal_bpae_b_fov19_raw000.png")
        ref = load("fluorescence/fmd_confocal_bpae_b_fov19_gt_avg50.png")
        if crop:
            raw, ref = _crop(raw, crop), _crop(ref, crop)
        return raw, ref, 255.0

    return Case(
        "real pair",
        "FMD confocal raw000",
        make,
        counts=True,
        keep_outputs=True,
        note="pseudo-clean reference: the average of 50 frames",
    )


def real_case(name, path, crop=None, top=None, left=None, bin=1, publishable=False, credit=""):
    def make():
        image = load(path)
        if crop:
            image = _crop(image, crop, top, left)
        if bin > 1:  # mean of bin x bin blocks, as `zse denoise --bin` does
            rows, cols = image.shape[0] // bin, image.shape[1] // bin
            image = (
                image[: rows * bin, : cols * bin].reshape(rows, bin, cols, bin).mean(axis=(1, 3))
            )
        return image, None, None

    return Case(
        "real EM",
        name,
        make,
        keep_outputs=True,
        note="publishable" if publishable else "internal only",
        credit=credit,
    )


SET12 = {
    "house": "classic/set12_02_house_256.png",
    "barbara": "classic/set12_09_barbara_512.png",
    "peppers": "classic/set12_03_peppers_256.png",
    "cameraman": "classic/set12_01_cameraman_256.png",
    "boat": "classic/set12_10_boat_512.png",
}
# The two HRTEM simulations are the same Pt particle on CeO2 and differ only in two atomic columns
# at its left facet (rows 272-418, columns 147-279), so central crops of both would be one case
# twice. Each gets its own region instead: (path, top, left) of a POISSON_CROP square.
HRTEM = {
    "HRTEM S3_5 particle": ("em/sim_hrtem_PtCeO2_clean_S3_5_876x927_float32.tif", 190, 335),
    "HRTEM S1-2 facet": ("em/sim_hrtem_PtCeO2_clean_S1-2_2-S3_1_876x927_float32.tif", 217, 85),
}
ISBI = {f"ISBI slice{k}": f"em/isbi2012_sstem_train_slice{k}_512.png" for k in (0, 15, 29)}
CRYOET = "em/cryoet_sarscov2_TS001_slice133_928x960.tif"
CRYOET_CREDIT = "tomogram slice: Ke et al., Nature 2020; CZ CryoET Data Portal dataset 10006 (CC0)"
POISSON_CROP = 256  # crop of the Poisson references (keeps the full table within the hour)


def full_cases() -> list[Case]:
    # The zero-shot networks cost minutes per image (bench/peers.py): they run on the 256 x 256
    # images at the middle noise level of each table.
    cases = [
        gaussian_case(n, p, s, networks=s == 25 and p.endswith("_256.png"))
        for n, p in SET12.items()
        for s in (15, 25, 50)
    ]
    cases += [
        poisson_case(n, p, d, POISSON_CROP, top, left, networks=d == 2)
        for n, (p, top, left) in HRTEM.items()
        for d in (0.5, 2, 10)
    ]
    cases += [
        poisson_case(n, p, d, POISSON_CROP, networks=d == 5)
        for n, p in ISBI.items()
        for d in (5, 20)
    ]
    cases.append(fluorescence_case())
    # The whole slice binned 2x2: its noise is spatially correlated over about two pixels (at full
    # resolution SSSC takes it for structure), and binning is what a microscopist does first.
    cases.append(
        real_case("cryo-ET SARS-CoV-2 bin 2", CRYOET, bin=2, publishable=True, credit=CRYOET_CREDIT)
    )
    cases += [
        real_case(f"TEM giant virus {k} crop 320", f"em/tem_giantvirus_crop{k}_641.tif", crop=320)
        for k in (1, 2)
    ]
    cases += [volume_case("gaussian", 25), volume_case("poisson", 2)]
    # Coloured noise (issue 33): the 256 x 256 ISBI slice 0 crop and two Set12 images, sigma 15
    # and 25, lag-1 correlation 0.39 / 0.67 / 0.84.
    coloured = {"ISBI slice0 256": ISBI["ISBI slice0"], "house": SET12["house"]}
    coloured["peppers"] = SET12["peppers"]
    cases += [
        coloured_case(n, p, s, b)
        for n, p in coloured.items()
        for s in (15, 25)
        for b in (0.5, 0.8, 1.2)
    ]
    cases += [
        mtf_poisson_case(
            "HRTEM S3_5 particle",
            *HRTEM["HRTEM S3_5 particle"][:1],
            2,
            256,
            top=HRTEM["HRTEM S3_5 particle"][1],
            left=HRTEM["HRTEM S3_5 particle"][2],
        ),
        mtf_poisson_case("ISBI slice15", ISBI["ISBI slice15"], 5, POISSON_CROP),
    ]
    return cases


def quick_cases() -> list[Case]:
    return [
        gaussian_case("house", SET12["house"], 25, crop=96, networks=True),
        poisson_case("HRTEM S3_5", HRTEM["HRTEM S3_5 particle"][0], 2, crop=96),
        fluorescence_case(crop=96),
        real_case(
            "cryo-ET SARS-CoV-2",
            CRYOET,
            crop=96,
            top=400,
            left=300,
            publishable=True,
            credit=CRYOET_CREDIT,
        ),
        volume_case("gaussian", 25, n=24),
        coloured_case("house", SET12["house"], 25, 0.8, crop=96),
    ]
