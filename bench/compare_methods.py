"""The methods of bench/compare.py: zse's models and the peers, with their settings."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np

import peers
import zse
from _common import anscombe, inverse_anscombe_unbiased
from compare_cases import Case

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

    def auto(x, case, sigma):
        # What a user gets: zse.reconstruct(x) at its defaults (model="auto", the count test;
        # noise="auto"), seeded; the chosen model is recorded with the row.
        name, _ = zse.models.choose_model(x)
        model = zse.models.make_model(name, random_state=0, n_threads=n_threads)
        if quick:
            model.set_params(**(sssc_kw if name == "sssc" else mix_kw))
        out = zse.reconstruct(
            x,
            model,
            stats=("mean", "var"),
            patch_size=sssc_patch if quick else None,
            n_threads=n_threads,
        )
        out["_chosen"] = name
        return out

    counts_only = lambda case: case.counts  # noqa: E731
    # Where "auto" can choose other than SSSC at its defaults (on the Gaussian tables it is the
    # "zse SSSC" row: the count test says "not counts" on every one of them).
    choice_matters = lambda case: case.group not in ("gaussian", "coloured")  # noqa: E731
    if quick:
        kw = ", ".join(f"{k}={v}" for k, v in sssc_kw.items()) + f", {patch}x{patch}"
    else:
        d = zse.SSSC().get_params()
        p = zse.SSSC.default_patch(2)[0]
        kw = (
            f"defaults: H={d['H']}, n_states={d['n_states']}, n_parents={d['n_parents']}, "
            f"n_children={d['n_children']}, max_iter={d['max_iter']}, updates={d['updates']}, "
            f"noise={d['noise']}, {p}x{p}, n_train auto ({zse.SSSC.auto_train_size})"
        )
    mix = ", ".join(f"{k}={v}" for k, v in mix_kw.items())
    return [
        Method(
            "zse (defaults, model auto)",
            auto,
            choice_matters,
            f"zse.reconstruct(x) at its defaults (model and noise auto), seed 0, {n_threads} "
            "threads, on the data as they are",
            needs_counts=True,
            stats=("mean", "var"),
        ),
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


def _bm3d_psd(x, psd):
    import bm3d

    if not hasattr(np, "trapz"):
        np.trapz = np.trapezoid  # noqa: NPY201 - bm3d 4.0.3 calls np.trapz for coloured noise
    return {"mean": bm3d.bm3d(x, psd)}


def true_psd(x, case):
    """The coloured cases' noise power spectrum in bm3d's convention (compare_cases)."""
    from compare_cases import coloured_noise

    _, psd = coloured_noise(x.shape, case.blur, case.sigma, np.random.default_rng(0))
    return psd


def estimated_psd(x):
    """A noise spectrum estimated from the image itself, the fair blind peer: zse's own first
    estimate of the noise's autocovariance (zse.noise.flattest_patches_acf on up to 16 384 8 x 8
    patches, made positive definite) on the image's periodic grid, in bm3d's units."""
    from zse import noise

    patches = zse.extract_patches(x, 8)
    rng = np.random.default_rng(0)
    keep = np.sort(rng.choice(len(patches), min(16384, len(patches)), replace=False))
    acf = noise.flattest_patches_acf(patches[keep], (8, 8))
    acf, _ = noise.positive_definite(acf, (8, 8))
    torus = np.zeros(x.shape)
    for (i, j), value in np.ndenumerate(acf):
        torus[(i - 7) % x.shape[0], (j - 7) % x.shape[1]] += value
    return np.maximum(np.real(np.fft.fft2(torus)), 0) * x.size


def gat_bm3d(x, alpha, offset, s2):
    """BM3D on the generalized Anscombe transform (unit noise variance there) and zse's exact
    unbiased inverse (Mäkitalo & Foi)."""
    from zse.noise import Anscombe

    transform = Anscombe(float(alpha), float(offset), float(s2))
    out = _bm3d(transform.forward(x), 1.0)["mean"]
    return {"mean": transform.inverse(out)}


def nlf_from_image(x):
    """The noise-level function estimated from the image alone (zse.noise.noise_level_function
    on its 8 x 8 patches): the transform's alpha, offset and s2."""
    from zse.noise import anscombe_for, noise_level_function

    patches = zse.extract_patches(x, 8)
    transform = anscombe_for(noise_level_function(patches, (8, 8)), patches)
    return (transform.alpha, transform.offset, transform.s2) if transform else (1.0, 0.0, 0.0)


def nlf_from_pair(raw, reference):
    """The noise-level function from the pair: (raw - reference)^2 against the reference,
    a line through 32 brightness groups' means; as (alpha, offset, s2)."""
    edges = np.quantile(reference, np.linspace(0, 1, 33))
    group = np.clip(np.searchsorted(edges, reference, side="right") - 1, 0, 31)
    centres = np.array([reference[group == g].mean() for g in range(32) if np.any(group == g)])
    levels = np.array(
        [((raw - reference)[group == g] ** 2).mean() for g in range(32) if np.any(group == g)]
    )
    slope, intercept = np.polyfit(centres, levels, 1)
    if intercept >= 0:
        return slope, 0.0, intercept / slope**2
    return slope, -intercept / slope, 0.0


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
            "BM3D (true PSD)",
            lambda x, case, sigma: _bm3d_psd(x, true_psd(x, case)),
            lambda case: case.group == "coloured",
            "bm3d.bm3d(psd = the true noise power spectrum)",
        ),
        Method(
            "BM3D (estimated PSD)",
            lambda x, case, sigma: _bm3d_psd(x, estimated_psd(x)),
            lambda case: case.group in ("coloured", "poisson MTF", "real EM"),
            "bm3d.bm3d(psd = estimated from the image: zse.noise.flattest_patches_acf, 8 x 8)",
        ),
        Method(
            "GAT+BM3D (estimated NLF)",
            lambda x, case, sigma: gat_bm3d(x, *nlf_from_image(x)),
            lambda case: case.group == "real pair",
            "noise-level function from the image (zse.noise.noise_level_function), "
            "generalized Anscombe, bm3d sigma 1, exact unbiased inverse",
            needs_counts=True,
        ),
        Method(
            "GAT+BM3D (pair's NLF)",
            lambda x, case, sigma: gat_bm3d(x, *nlf_from_pair(x, case.make()[1])),
            lambda case: case.group == "real pair",
            "noise-level function from the raw frame against the 50-frame average (not blind), "
            "generalized Anscombe, bm3d sigma 1, exact unbiased inverse",
            needs_counts=True,
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
