"""zse against the denoisers people use today, on one declared list of cases: numbers for RESULTS.md.

    pip install -r bench/requirements.txt        # peers and metrics, benchmark environment only
    python bench/compare.py                      # full table (about 40 min on 2 cores), resumable
    python bench/compare.py --quick              # a few small cases, about a minute (CI runs this)

The zero-shot peers of bench/peers.py (ZS-N2N, Noise2Void, NLM calibrated by Noise2Self, bmnd,
BM4D) need bench/requirements-peers.txt; without their packages they are skipped and the report
says so.

Every (case, method) result is appended to the CSV as soon as it is measured, so an interrupted
run resumes where it stopped (``--fresh`` starts over; a row whose settings differ from the
current ones is recomputed). At the end the markdown report is written from the whole CSV:

    full:   bench/results/compare.csv        bench/RESULTS.md
    quick:  bench/results/compare_quick.csv  bench/results/RESULTS_quick.md

Outputs of the cases without ground truth (and of the real pair) are kept as float32 .npy files
under bench/results/outputs/ for bench/gallery.py; bench/results/ is not committed except for
compare.csv, so no picture of a restricted image leaves the machine.

Cases, noise and settings are declared below (CASES, zse_methods, PEERS); noise comes from
numpy.random.default_rng(0), a fresh generator per case.
"""

from __future__ import annotations

import argparse
import csv
import fnmatch
import re
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

import peers
import zse
from _common import RESULTS, anscombe, inverse_anscombe_unbiased, load, machine_line, psnr, ssim

REPORT = Path(__file__).resolve().parent / "RESULTS.md"
OUTPUTS = RESULTS / "outputs"
FIELDS = [
    "group",
    "case",
    "method",
    "psnr",
    "ssim",
    "blur",
    "flat_noise",
    "seconds",
    "peak_mib",
    "settings",
    "learned_sigma",  # zse SSSC: sqrt(sigma2_) (Poisson cases: in the Anscombe domain, true 1)
    "var_spearman",  # Spearman(var image, clean |grad|^2 over the patch) where both exist
]


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
    ]


# --------------------------------------------------------------------------- methods


@dataclass
class Method:
    name: str
    run: Callable  # (x, case, sigma) -> dict of stat -> image, in the domain of x
    applies: Callable[[Case], bool] = lambda case: True
    settings: str = ""
    needs_counts: bool = False  # runs on the raw counts, never on the Anscombe transform
    stats: tuple = field(default=("mean",))
    # Training a network is not reproducible to 0.01 dB across thread counts: --verify skips it.
    reproducible: bool = True


def zse_methods(quick: bool, n_threads: int) -> list[Method]:
    if quick:
        sssc_kw, mix_kw, patch = (
            dict(H=16, n_states=8, n_parents=4, max_iter=3),
            dict(max_iter=5),
            5,
        )
        C = 16
    else:
        sssc_kw, mix_kw, patch = (
            {},
            dict(max_iter=50),
            8,
        )
        C = 256

    # The full table runs SSSC at zse's defaults (issue 11: the targets hold "at the defaults"):
    # no settings passed, the patch size is reconstruct's default.
    sssc_patch = patch if quick else None

    def sssc(x, case, sigma):
        model = zse.SSSC(**sssc_kw, random_state=0, n_threads=n_threads)
        out = zse.reconstruct(
            x, model, stats=("mean", "var"), patch_size=sssc_patch, n_threads=n_threads
        )
        out["_learned_sigma"] = float(np.sqrt(model.sigma2_))
        return out

    def mixture(cls):
        def run(x, case, sigma):
            model = cls(C, **mix_kw, random_state=0, n_threads=n_threads)
            return zse.reconstruct(
                x, model, stats=("mean", "var"), patch_size=patch, n_threads=n_threads
            )

        return run

    counts_only = lambda case: case.counts  # noqa: E731
    if quick:
        kw = ", ".join(f"{k}={v}" for k, v in sssc_kw.items()) + f", {patch}x{patch}"
    else:
        d = zse.SSSC().get_params()
        p = zse.SSSC.default_patch(2)[0]
        kw = (
            f"defaults: H={d['H']}, n_states={d['n_states']}, n_parents={d['n_parents']}, "
            f"n_children={d['n_children']}, max_iter={d['max_iter']}, updates={d['updates']}, "
            f"{p}x{p}, n_train auto ({zse.SSSC.auto_train_size})"
        )
    mix = ", ".join(f"{k}={v}" for k, v in mix_kw.items())
    return [
        # "streamed": the model since the units work (standardised patches, y = b + W(s z)) and the
        # image-native pipeline (n_train auto, warm-started estimation); older rows are recomputed.
        Method(
            "zse SSSC",
            sssc,
            settings=f"{kw}, streamed, seed 0, {n_threads} threads",
            stats=("mean", "var"),
        ),
        Method(
            "zse PMM",
            mixture(zse.PMM),
            counts_only,
            f"C={C}, {mix}, {patch}x{patch}, seed 0, {n_threads} threads",
            needs_counts=True,
            stats=("mean", "var"),
        ),
        Method(
            "zse GPMM",
            mixture(zse.GPMM),
            counts_only,
            f"C={C}, {mix}, {patch}x{patch}, seed 0, {n_threads} threads",
            needs_counts=True,
            stats=("mean", "var"),
        ),
    ]


def _bm3d(x, sigma):
    import bm3d

    return {"mean": bm3d.bm3d(x, sigma_psd=sigma)}


def _nlm(x, sigma):
    from skimage.restoration import denoise_nl_means

    return {
        "mean": denoise_nl_means(
            x, h=0.8 * sigma, sigma=sigma, patch_size=5, patch_distance=6, fast_mode=True
        )
    }


def _wavelet(x, sigma):
    from skimage.restoration import denoise_wavelet

    return {
        "mean": denoise_wavelet(
            x, sigma=sigma, method="BayesShrink", mode="soft", rescale_sigma=True
        )
    }


def _tv(x, sigma):
    from skimage.restoration import denoise_tv_chambolle

    return {"mean": denoise_tv_chambolle(x, weight=sigma)}


def peer_methods(quick: bool = False, n_threads: int = 1) -> tuple[list[Method], list[str]]:
    """The peers, and the names of the optional ones skipped because their packages are missing.

    Peers get the true sigma only where it is known; every other one estimates it from the image.
    """
    flat = lambda case: not case.volume  # noqa: E731
    known = lambda case: case.sigma is not None and not case.volume  # noqa: E731
    methods = [
        Method(
            "BM3D (true σ)",
            lambda x, case, sigma: _bm3d(x, sigma),
            known,
            "bm3d.bm3d(sigma_psd=true sigma)",
        ),
        Method(
            "BM3D (blind)",
            lambda x, case, sigma: _bm3d(x, estimate_sigma(x)),
            flat,
            settings="sigma_psd=estimate_sigma",
        ),
        Method(
            "NLM",
            lambda x, case, sigma: _nlm(x, estimate_sigma(x)),
            flat,
            settings="fast_mode, patch 5, distance 6, h=0.8 sigma_est",
        ),
        Method(
            "wavelet BayesShrink",
            lambda x, case, sigma: _wavelet(x, estimate_sigma(x)),
            flat,
            settings="db1, soft, sigma_est, rescale_sigma",
        ),
        Method(
            "TV Chambolle",
            lambda x, case, sigma: _tv(x, estimate_sigma(x)),
            flat,
            settings="weight=sigma_est",
        ),
    ]
    optional = _zero_shot_peers(quick, n_threads)
    present = [m for m in optional if peers.available(m.name)]
    skipped = [m.name for m in optional if not peers.available(m.name)]
    return methods + present, skipped


def _zero_shot_peers(quick: bool, n_threads: int) -> list[Method]:
    import importlib.metadata

    def version(package):
        try:
            return importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            return "?"

    networks = lambda case: case.networks and not case.volume  # noqa: E731
    flat = lambda case: not case.volume  # noqa: E731
    # Quick mode keeps the harness alive on CI at a fraction of the schedules: not a result.
    steps = 50 if quick else peers.ZS_N2N_STEPS
    epochs = 3 if quick else peers.N2V_EPOCHS
    patch = 32 if quick else peers.N2V_PATCH
    torch_threads = f"torch {version('torch')} on the CPU, {n_threads} threads"

    def zs_n2n(x, case, sigma):
        return {"mean": peers.zs_n2n(x, steps=steps, n_threads=n_threads)}

    def n2v(x, case, sigma):
        import torch

        torch.set_num_threads(n_threads)
        return {"mean": peers.noise2void(x, epochs=epochs, patch=patch)}

    def nlm_n2s(x, case, sigma):
        out, _ = peers.nlm_n2s(x, estimate_sigma(x))
        return {"mean": out}

    def bm4d(blind):
        def run(x, case, sigma):
            return {"mean": peers.bm4d_volume(x, estimate_sigma(x) if blind else sigma)}

        return run

    return [
        Method(
            "ZS-N2N",
            zs_n2n,
            networks,
            f"blind; {steps} Adam steps (lr 1e-3, halved at {steps // 2}), 48 channels, "
            f"{torch_threads}",
            reproducible=False,
        ),
        Method(
            "Noise2Void (CAREamics)",
            n2v,
            networks,
            f"blind; careamics {version('careamics')} create_n2v_config defaults, "
            f"{patch}x{patch} patches ({peers.N2V_VAL_PATCHES} to validate), batch "
            f"{peers.N2V_BATCH}, {epochs} epochs, {torch_threads}",
            reproducible=False,
        ),
        Method(
            "NLM (N2S-calibrated)",
            nlm_n2s,
            flat,
            "blind; skimage calibrate_denoiser over h = (0.4-1.2) sigma_est, patch 5, distance 6",
        ),
        Method(
            "bmnd (direct Poisson)",
            lambda x, case, sigma: {"mean": peers.bmnd_poisson(x)},
            lambda case: case.domain == "anscombe",
            f"bmnd {version('bmnd')} BM3D/BM4DProfile(noise_model=POISSON) on the counts",
            needs_counts=True,
        ),
        Method(
            "BM4D (true σ)",
            bm4d(False),
            lambda case: case.volume,
            f"bm4d {version('bm4d')}, sigma_psd = true sigma",
        ),
        Method(
            "BM4D (blind)",
            bm4d(True),
            lambda case: case.volume,
            f"bm4d {version('bm4d')}, sigma_psd = estimate_sigma",
        ),
    ]


def estimate_sigma(x) -> float:
    from skimage.restoration import estimate_sigma as skimage_estimate_sigma

    return float(skimage_estimate_sigma(x))


def run_method(method: Method, case: Case, noisy):
    """Apply a method in the case's domain; Poisson cases go through the Anscombe transform."""
    if case.domain == "anscombe" and not method.needs_counts:
        # In the stabilised domain the noise has unit variance: that is the "true sigma".
        out = method.run(anscombe(noisy), case, 1.0)
        return {k: inverse_anscombe_unbiased(v) if k == "mean" else v for k, v in out.items()}
    return method.run(noisy, case, case.sigma)


# --------------------------------------------------------------------------- metrics


def _central_section(image):
    """A volume's flat-region and sharpness figures are taken on its central section."""
    image = np.asarray(image)
    return image[image.shape[0] // 2] if image.ndim == 3 else image


def flat_tiles(noisy, tile=16, fraction=0.1):
    """The fraction of tiles with the least structure, judged on a smoothed copy of the noisy image."""
    from scipy.ndimage import gaussian_filter

    noisy = _central_section(noisy)
    smooth = gaussian_filter(noisy, 2.0)
    rows, cols = noisy.shape[0] // tile, noisy.shape[1] // tile
    scores = (
        smooth[: rows * tile, : cols * tile]
        .reshape(rows, tile, cols, tile)
        .var(axis=(1, 3))
        .ravel()
    )
    order = np.argsort(scores, kind="stable")[: max(1, int(round(fraction * scores.size)))]
    return [(int(k // cols) * tile, int(k % cols) * tile) for k in order], tile


def flat_noise(image, tiles) -> float:
    """RMS over the flat tiles of the residual standard deviation after removing a fitted plane."""
    positions, tile = tiles
    image = _central_section(image)
    r, c = np.mgrid[0:tile, 0:tile]
    design = np.column_stack([np.ones(tile * tile), r.ravel(), c.ravel()])
    variances = []
    for top, left in positions:
        block = image[top : top + tile, left : left + tile].ravel()
        coef, *_ = np.linalg.lstsq(design, block, rcond=None)
        variances.append(np.var(block - design @ coef))
    return float(np.sqrt(np.mean(variances)))


def blur(image) -> float:
    from skimage.measure import blur_effect

    return float(blur_effect(image))


class PeakMemory:
    """Peak resident memory above the starting point, from the kernel's high-water mark.

    Writing 5 to /proc/self/clear_refs resets VmHWM to the current RSS (Linux >= 4.0), so
    native allocations of the C++ kernels count too. glibc's malloc_trim first hands memory freed
    by earlier methods back to the system, so that reusing it counts as well. None where /proc
    does not allow it.
    """

    def __enter__(self):
        self.start = None
        try:
            import ctypes

            ctypes.CDLL("libc.so.6").malloc_trim(0)
        except (OSError, AttributeError):
            pass
        try:
            Path("/proc/self/clear_refs").write_text("5")
            self.start = self._read("VmRSS")
        except OSError:
            pass
        return self

    def __exit__(self, *exc):
        self.peak_mib = None
        if self.start is not None:
            self.peak_mib = (self._read("VmHWM") - self.start) / 1024.0

    @staticmethod
    def _read(key) -> int:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
        raise OSError(key)


# --------------------------------------------------------------------------- runner


def read_rows(path: Path) -> list[dict]:
    if not path.exists():
        return []
    with path.open(newline="") as f:
        rows = list(csv.DictReader(f))
    return [{k: (r.get(k) or "") for k in FIELDS} for r in rows]  # older files lack new fields


def append_row(path: Path, row: dict) -> None:
    if path.exists():
        with path.open(newline="") as f:
            header = next(csv.reader(f), [])
        if header != FIELDS:  # a file of an older layout: rewrite it with the current fields
            rows = read_rows(path)
            path.unlink()
            for r in rows:
                append_row(path, r)
    new = not path.exists()
    with path.open("a", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=FIELDS)
        if new:
            writer.writeheader()
        writer.writerow(row)


def output_path(case: Case, method: str, stat: str) -> Path:
    slug = lambda s: "".join(ch if ch.isalnum() else "_" for ch in s).strip("_")  # noqa: E731
    return OUTPUTS / slug(case.name) / f"{slug(method)}__{stat}.npy"


def measure(case: Case, method: Method | None, noisy, clean, data_range, tiles):
    if method is None:  # the noisy input itself
        out, seconds, peak = {"mean": noisy}, 0.0, 0.0
    else:
        with PeakMemory() as memory:
            start = time.perf_counter()
            out = run_method(method, case, noisy)
            seconds = time.perf_counter() - start
        peak = memory.peak_mib
    learned_sigma = out.pop("_learned_sigma", None)
    estimate = out["mean"]
    spearman = ""
    if clean is not None and "var" in out:
        spearman = f"{var_spearman(out['var'], clean):.3f}"
    row = {
        "group": case.group,
        "case": case.name,
        "method": method.name if method else "noisy",
        "psnr": f"{psnr(clean, estimate, data_range):.3f}" if clean is not None else "",
        "ssim": f"{ssim(clean, estimate, data_range):.4f}" if clean is not None else "",
        "blur": f"{blur(estimate):.4f}",
        "flat_noise": f"{flat_noise(estimate, tiles):.4g}",
        "seconds": f"{seconds:.2f}",
        "peak_mib": "" if peak is None else f"{peak:.0f}",
        "settings": method.settings if method else "",
        "learned_sigma": "" if learned_sigma is None else f"{learned_sigma:.4f}",
        "var_spearman": spearman,
    }
    return row, out


VAR_PATCH = 8  # the zse models' patch size in the full table


def var_spearman(var, clean, patch: int = VAR_PATCH) -> float:
    """Spearman rank correlation of a variance image with the clean image's local edge energy
    (|gradient|^2 averaged over the patch; over a cube in a volume): does the variance trace
    structure, not noise?"""
    from scipy.ndimage import uniform_filter
    from scipy.stats import spearmanr

    gradients = np.gradient(np.asarray(clean, dtype=np.float64))
    energy = uniform_filter(sum(g**2 for g in gradients), size=patch)
    return float(spearmanr(np.asarray(var).ravel(), energy.ravel()).statistic)


def run(cases, methods, csv_path: Path, verify: bool, rerun: bool = False) -> int:
    """Measure every missing (case, method) row, or with ``verify`` re-measure and compare PSNRs."""
    import bm3d  # noqa: F401  (imported before timing: no import cost in the first peer's row)
    import skimage.measure  # noqa: F401
    import skimage.restoration  # noqa: F401

    stored = {(r["case"], r["method"]): r for r in read_rows(csv_path)}

    def wanted(case, method):
        if method is not None and not method.applies(case):
            return False
        name, settings = (method.name, method.settings) if method else ("noisy", "")
        if verify and method is not None and not method.reproducible:
            return False
        if verify:  # results do not depend on the thread count: verify across thread counts too
            same = lambda a, b: re.sub(r", \d+ threads$", "", a) == re.sub(r", \d+ threads$", "", b)  # noqa: E731
            return (case.name, name) in stored and same(
                stored[(case.name, name)]["settings"], settings
            )
        row = stored.get((case.name, name))
        outputs_missing = (
            case.keep_outputs
            and method is not None
            and not output_path(case, name, "mean").exists()
        )
        return rerun or row is None or row["settings"] != settings or outputs_missing

    todo = sum(wanted(c, m) for c in cases for m in [None, *methods])
    verb = "to verify against" if verify else "to run ->"
    print(
        f"compare: {len(cases)} cases x {len(methods) + 1} methods, {todo} rows {verb} {csv_path}",
        file=sys.stderr,
    )
    started, finished, worst = time.perf_counter(), 0, 0.0
    for case in cases:
        noisy = None
        for method in [None, *methods]:
            if not wanted(case, method):
                continue
            name = method.name if method else "noisy"
            if noisy is None:
                noisy, clean, data_range = case.make()
                tiles = flat_tiles(noisy)
                if case.keep_outputs and not verify:
                    output_path(case, "noisy", "mean").parent.mkdir(parents=True, exist_ok=True)
                    np.save(output_path(case, "noisy", "mean"), noisy.astype(np.float32))
            row, out = measure(case, method, noisy, clean, data_range, tiles)
            finished += 1
            elapsed = time.perf_counter() - started
            if verify:
                # PSNR where there is a reference, else the blur metric: both are deterministic.
                key = "psnr" if row["psnr"] else "blur"
                diff = abs(float(row[key]) - float(stored[(case.name, name)][key]))
                worst = max(worst, diff if key == "psnr" else 0.0)
                print(
                    f"[{finished:3d}/{todo}] {case.name:22s} {name:20s} {key} {row[key]} vs stored "
                    f"{stored[(case.name, name)][key]}  (diff {diff:.4f})",
                    file=sys.stderr,
                    flush=True,
                )
                if (key == "psnr" and diff > 0.01) or (key == "blur" and diff > 1e-3):
                    print("compare: not reproduced", file=sys.stderr)
                    return 1
                continue
            if case.keep_outputs and method is not None:
                for stat, image in out.items():
                    np.save(output_path(case, name, stat), np.asarray(image, dtype=np.float32))
            if (case.name, name) in stored:  # a stale row: rewrite the file without it
                kept = [
                    r for r in read_rows(csv_path) if (r["case"], r["method"]) != (case.name, name)
                ]
                csv_path.unlink()
                for r in kept:
                    append_row(csv_path, r)
            append_row(csv_path, row)
            print(
                f"[{finished:3d}/{todo}] {case.name:22s} {name:20s} PSNR {row['psnr'] or '-':>7s}  "
                f"SSIM {row['ssim'] or '-':>6s}  blur {row['blur']}  {row['seconds']:>7s} s  "
                f"{row['peak_mib'] or '-':>5s} MiB  (elapsed {elapsed / 60:5.1f} min)",
                file=sys.stderr,
                flush=True,
            )
    if verify:
        print(
            f"compare: {finished} rows reproduced (largest PSNR difference {worst:.4f} dB)",
            file=sys.stderr,
        )
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--quick", action="store_true", help="four small cases and small models (about a minute)"
    )
    parser.add_argument("--fresh", action="store_true", help="ignore the rows already in the CSV")
    parser.add_argument(
        "--cases", default="*", help="globs on case names, e.g. 'house*,boat*' (default: all)"
    )
    parser.add_argument(
        "--methods", default="*", help="glob on method names, e.g. 'zse*' (default: all)"
    )
    parser.add_argument(
        "--n-threads", type=int, default=None, help="zse threads (default: all cores)"
    )
    parser.add_argument(
        "--report-only", action="store_true", help="write the report from the CSV, run nothing"
    )
    parser.add_argument(
        "--rerun",
        action="store_true",
        help="re-measure the selected rows even when the CSV has them (replacing them)",
    )
    parser.add_argument(
        "--verify",
        action="store_true",
        help="re-run the selected rows and check the stored PSNRs to 0.01 dB (writes nothing)",
    )
    args = parser.parse_args()

    from zse._threads import effective_n_threads

    n_threads = effective_n_threads(args.n_threads)
    csv_path = RESULTS / ("compare_quick.csv" if args.quick else "compare.csv")
    report_path = RESULTS / "RESULTS_quick.md" if args.quick else REPORT
    RESULTS.mkdir(parents=True, exist_ok=True)
    if args.fresh and csv_path.exists() and not args.verify:
        csv_path.unlink()
    all_cases = quick_cases() if args.quick else full_cases()
    peer_list, skipped = peer_methods(args.quick, n_threads)
    if skipped:
        print(
            f"compare: skipped (packages missing, see bench/requirements-peers.txt): "
            f"{', '.join(skipped)}",
            file=sys.stderr,
        )
    methods = zse_methods(args.quick, n_threads) + peer_list
    if not args.report_only:
        cases = [
            c for c in all_cases if any(fnmatch.fnmatch(c.name, g) for g in args.cases.split(","))
        ]
        chosen = [m for m in methods if fnmatch.fnmatch(m.name, args.methods)]
        status = run(cases, chosen, csv_path, args.verify, args.rerun)
        if args.verify or status:
            return status

    declared = {c.name for c in all_cases}
    rows = [
        r for r in read_rows(csv_path) if r["case"] in declared
    ]  # rows of retired cases are ignored
    if not rows:
        print("compare: no rows to report", file=sys.stderr)
        return 1
    report_path.write_text(render_report(rows, all_cases, methods, args.quick, n_threads, skipped))
    print(f"compare: wrote {report_path}", file=sys.stderr)
    return 0


# --------------------------------------------------------------------------- report


def _f(value, fmt):
    return format(float(value), fmt) if value not in ("", None) else "–"


def _table(rows, cases, methods, cell, mean_key=None):
    names = [m for m in ["noisy", *methods] if any(r["method"] == m for r in rows)]
    lines = ["| case | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
    by_key = {(r["case"], r["method"]): r for r in rows}
    for case in cases:
        if not any(r["case"] == case for r in rows):
            continue
        lines.append(
            f"| {case} | "
            + " | ".join(cell(by_key[(case, m)]) if (case, m) in by_key else "n/a" for m in names)
            + " |"
        )
    if mean_key:
        cells = []
        for m in names:
            values = [
                float(by_key[(c, m)][mean_key])
                for c in cases
                if (c, m) in by_key and by_key[(c, m)][mean_key] != ""
            ]
            complete = len(values) == sum(1 for c in cases if any(r["case"] == c for r in rows))
            cells.append(f"**{np.mean(values):.2f}**" if values and complete else "–")
        lines.append(f"| **mean {mean_key.upper()}** | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _sigma_note(case: Case) -> str:
    path = output_path(case, "noisy", "mean")
    if not path.exists():
        return f"{case.name}: not computed"
    return f"{case.name}: σ̂ = {estimate_sigma(np.load(path).astype(np.float64)):.2f}"


def summary(rows, order, method_names) -> list[str]:
    """Mean PSNR per group and method over the cases each method ran on, and zse's margin."""
    groups = [
        g
        for g in ("gaussian", "poisson", "real pair", "volume")
        if any(r["group"] == g for r in rows)
    ]
    if not groups:
        return []
    lines = [
        "## Summary: mean PSNR (dB) per group",
        "",
        "| method | "
        + " | ".join(
            f"{g} ({len({r['case'] for r in rows if r['group'] == g})} cases)" for g in groups
        )
        + " |",
        "|---|" + "---|" * len(groups),
    ]
    means = {}
    for m in ["noisy", *method_names]:
        cells = []
        for g in groups:
            cases = {r["case"] for r in rows if r["group"] == g}
            values = [
                float(r["psnr"])
                for r in rows
                if r["group"] == g and r["method"] == m and r["psnr"] != ""
            ]
            if values and len(values) == len(cases):
                means[(m, g)] = float(np.mean(values))
                cells.append(f"{means[(m, g)]:.2f}")
            else:
                cells.append("n/a")
        if any(c != "n/a" for c in cells):
            lines.append(f"| {m} | " + " | ".join(cells) + " |")
    lines += ["", "Best zse model against the best peer, per group (positive: zse ahead):", ""]
    for g in groups:
        zse_best = max(
            ((v, m) for (m, gg), v in means.items() if gg == g and m.startswith("zse")),
            default=None,
        )
        peer_best = max(
            (
                (v, m)
                for (m, gg), v in means.items()
                if gg == g and m not in ("noisy",) and not m.startswith("zse")
            ),
            default=None,
        )
        if zse_best and peer_best:
            lines.append(
                f"- {g}: {zse_best[1]} {zse_best[0]:.2f} dB vs {peer_best[1]} {peer_best[0]:.2f} dB "
                f"({zse_best[0] - peer_best[0]:+.2f} dB)"
            )
    return [*lines, ""]


def sigma_and_variance_section(rows, cases) -> list[str]:
    """Learned sigma of zse SSSC against the truth, and the variance images' Spearman column."""
    have = [r for r in rows if r["learned_sigma"] or r["var_spearman"]]
    if not have:
        return []
    by_key = {(r["case"], r["method"]): r for r in rows}
    lines = [
        "## Learned σ and the variance image",
        "",
        "zse SSSC learns σ (never given): its `sqrt(sigma2_)` against the true σ (Poisson cases: in the "
        "Anscombe domain, where σ = 1). `var ρ`: Spearman rank correlation between a model's variance image "
        "(`var`) and the clean image's local edge energy (|∇|² averaged over the 8 × 8 patch) — does the "
        "variance trace structure rather than noise (issue 11's target: ≥ 0.8)?",
        "",
        "| case | true σ | SSSC learned σ | error | SSSC var ρ | PMM var ρ | GPMM var ρ |",
        "|---|---|---|---|---|---|---|",
    ]
    true_sigma = {c.name: c.sigma for c in cases}
    for case in [c.name for c in cases]:
        sssc = by_key.get((case, "zse SSSC"))
        if sssc is None or not (sssc["learned_sigma"] or sssc["var_spearman"]):
            continue
        truth = true_sigma.get(case)
        learned = sssc["learned_sigma"]
        error = (
            f"{100 * (float(learned) / truth - 1):+.1f} %" if learned and truth is not None else "–"
        )
        rho = [
            _f(by_key[(case, m)]["var_spearman"], ".3f") if (case, m) in by_key else "n/a"
            for m in ("zse SSSC", "zse PMM", "zse GPMM")
        ]
        lines.append(
            f"| {case} | {_f(truth, 'g') if truth is not None else '–'} | {_f(learned, '.3f')} | "
            f"{error} | " + " | ".join(rho) + " |"
        )
    return [*lines, ""]


def peer_margins(rows, order, method_names, skipped) -> list[str]:
    """Where zse wins and loses against each peer: per peer, the cases both ran, PSNR margins of
    the best zse model on each case, and the time ratio."""
    by_key = {(r["case"], r["method"]): r for r in rows}
    zse_names = [m for m in method_names if m.startswith("zse")]
    lines = [
        "## zse against each peer",
        "",
        "Per peer, over the cases where it ran and has a reference: the best zse model on each case "
        "(SSSC, PMM or GPMM, whichever is ahead there) minus the peer, in dB (positive: zse ahead), and "
        "the peer's time over that zse model's time, summed over those cases.",
        "",
        "| peer | cases | zse ahead | mean margin dB | smallest | largest | where zse loses most | "
        "peer time / zse time |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for peer in [m for m in method_names if not m.startswith("zse")]:
        margins, peer_s, zse_s = [], 0.0, 0.0
        for case in order:
            p = by_key.get((case, peer))
            if p is None or p["psnr"] == "":
                continue
            best = max(
                (
                    by_key[(case, z)]
                    for z in zse_names
                    if (case, z) in by_key and by_key[(case, z)]["psnr"]
                ),
                key=lambda r: float(r["psnr"]),
                default=None,
            )
            if best is None:
                continue
            margins.append((float(best["psnr"]) - float(p["psnr"]), case))
            peer_s += float(p["seconds"])
            zse_s += float(best["seconds"])
        if not margins:
            continue
        values = np.array([m for m, _ in margins])
        worst = min(margins)
        lines.append(
            f"| {peer} | {len(margins)} | {int((values > 0).sum())} of {len(margins)} | "
            f"{values.mean():+.2f} | {values.min():+.2f} | {values.max():+.2f} | "
            f"{worst[1]} ({worst[0]:+.2f}) | {peer_s / zse_s:.2f} |"
        )
    if skipped:
        lines += [
            "",
            "Skipped in this run (their packages are not installed; bench/requirements-peers.txt): "
            + ", ".join(skipped)
            + ".",
        ]
    return [*lines, ""]


def render_report(rows, cases, methods, quick, n_threads, skipped=()) -> str:
    import importlib.metadata

    import skimage

    method_names = [m.name for m in methods]
    settings = {m.name: m.settings for m in methods}
    order = [c.name for c in cases]
    out = [
        "# zse against common denoisers"
        + (" (quick mode: small crops and models, not a result)" if quick else ""),
        "",
        f"Produced by `python bench/compare.py{' --quick' if quick else ''}` from the cases and seeds declared in that "
        "script (noise from `numpy.random.default_rng(0)`, a fresh generator per case); every number below is read "
        f"from `bench/results/compare{'_quick' if quick else ''}.csv`.",
        "",
        f"Machine: {machine_line()}; zse with {n_threads} threads; peers: bm3d {importlib.metadata.version('bm3d')}, "
        f"scikit-image {skimage.__version__} (single-threaded).",
        "",
        "Columns: PSNR in dB / SSIM against the clean reference; seconds and peak memory (MiB of resident memory above "
        "the level before the call, from the kernel's high-water mark) per method and case.",
        "",
        "Method settings:",
        "",
    ]
    for m, current in settings.items():
        out.append(f"- **{m}**: {current}")
        older = {}  # rows not (yet) re-measured with the current settings
        for r in rows:
            if r["method"] == m and r["settings"] != current:
                older.setdefault(r["settings"], []).append(r["case"])
        for other, names in older.items():
            out.append(f"  - measured with *{other}* instead: {', '.join(names)}")
    out += [
        "",
        "Peers see the true σ only in the Gaussian cases (BM3D (true σ)); everything else estimates σ with "
        "`skimage.restoration.estimate_sigma`. On the Poisson cases the peers and zse SSSC run on the Anscombe "
        "transform (σ = 1 there, which BM3D (true σ) is given) followed by the closed-form unbiased inverse; "
        "PMM and GPMM run on the counts. PMM/GPMM need counts, so they do not apply to the Gaussian and real-EM cases "
        "(n/a).",
        "",
    ]
    out += summary(rows, order, method_names)
    groups = [
        ("gaussian", "Gaussian noise (Set12, σ = 15, 25, 50, not clipped; data range 255)"),
        (
            "poisson",
            f"Poisson noise ({POISSON_CROP}×{POISSON_CROP} crops; counts = poisson(dose · clean / mean(clean)); "
            "PSNR against the rate image, data range max − min)",
        ),
        (
            "real pair",
            "Real pair: FMD confocal raw frame against the 50-frame average (data range 255)",
        ),
        (
            "volume",
            "Volumes: a synthetic 64³ cell-like phantom (`phantom_volume`: shells, particles, "
            "filaments) with Gaussian noise (σ = 25, data range 255) and with Poisson noise (dose 2; "
            "PSNR against the rate); zse with 4×4×4 patches",
        ),
    ]
    out += sigma_and_variance_section(rows, cases)
    for group, title in groups:
        g = [r for r in rows if r["group"] == group]
        if not g:
            continue
        out += [
            f"## {title}",
            "",
            _table(
                g,
                order,
                method_names,
                lambda r: f"{_f(r['psnr'], '.2f')} / {_f(r['ssim'], '.3f')}",
                "psnr",
            ),
            "",
        ]
        if group == "poisson":
            where = "; ".join(
                f"{name}: rows {top}–{top + POISSON_CROP - 1}, columns {left}–{left + POISSON_CROP - 1}"
                for name, (_, top, left) in HRTEM.items()
            )
            out += [
                f"HRTEM crops ({where}): the particle with vacuum above and the support interface below, and the "
                "left facet, the only region where the two simulations differ. ISBI: central crops.",
                "",
            ]
        if group == "real pair":
            out += [
                "The noise of this frame grows with the signal (Poisson–Gaussian). The blind peers get one σ "
                "estimated from the whole image and no variance-stabilising transform (the detector gain is not "
                "known); zse's models learn the noise from the image (SSSC one σ in the image domain, PMM and "
                "GPMM Poisson statistics of the raw values).",
                "",
            ]
        out += [
            "Seconds / peak MiB:",
            "",
            _table(
                g,
                order,
                method_names,
                lambda r: f"{_f(r['seconds'], '.1f')} / {_f(r['peak_mib'], '.0f')}",
            ),
            "",
        ]
    g = [r for r in rows if r["group"] == "real EM"]
    if g:
        out += [
            "## Real EM without ground truth",
            "",
            "No PSNR is possible. Sharpness: `skimage.measure.blur_effect` (0 = sharp, 1 = blurry; the noisy input is "
            "sharp because noise is). Noise left in flat regions: the 10% of 16×16 tiles with the least structure in a "
            "Gaussian-smoothed (σ = 2 px) copy of the noisy image, per tile the standard deviation around a fitted plane, "
            "RMS over the tiles, in grey levels. Cells: blur effect / flat-region noise. The cryo-ET slice (Ke et al., "
            "Nature 2020, CZ CryoET Data Portal dataset 10006) is binned 2×2 (464×480): its noise is correlated over "
            "about two pixels. The giant-virus TEM crops (central 320×320 of the 641×641 crops) are internal test "
            "images whose outputs are not published.",
            "",
            _table(
                g,
                order,
                method_names,
                lambda r: f"{_f(r['blur'], '.3f')} / {_f(r['flat_noise'], '.2f')}",
            ),
            "",
            "The blind peers rely on `estimate_sigma` (a wavelet median estimate from the finest scale), which "
            "reads correlated noise as signal; its estimate for each noisy input: "
            + "; ".join(_sigma_note(c) for c in cases if c.group == "real EM" and c.name in order)
            + ".",
            "",
            "Seconds / peak MiB:",
            "",
            _table(
                g,
                order,
                method_names,
                lambda r: f"{_f(r['seconds'], '.1f')} / {_f(r['peak_mib'], '.0f')}",
            ),
            "",
        ]
    seconds = sum(float(r["seconds"]) for r in rows)
    out += [f"Total method time in this table: {seconds / 60:.1f} min.", ""]
    out += peer_margins(rows, order, method_names, skipped)
    return "\n".join(out)


if __name__ == "__main__":
    sys.exit(main())
