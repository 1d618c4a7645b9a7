"""SSSC's noise model beyond white noise (ALGORITHM.md §3.14): the first estimate of a
stationary noise correlation C, the choice of ``noise="auto"``, and the M-step of C.

All values are in SSSC's standardised units (ALGORITHM.md §3.10): the model is
y = b + W_o (s * z) + eps, eps ~ N(0, sigma2 C), C = L L^T with unit diagonal; the kernels see
the whitened patches L^-1 (y - b), the whitened fields W = L^-1 W_o and white noise of variance
sigma2.
"""

from __future__ import annotations

import math

import numpy as np

from ..noise import (
    AUTO_MIN_CORRELATION,
    AUTO_MIN_SLOPE_ERRORS,
    AUTO_MIN_VARIANCE_RATIO,
    FLAT_FRACTION,
    MIN_FLAT_PATCHES,
    Anscombe,
    StationaryNoise,
    anscombe_for,
    flattest_patches_acf,
    neighbour_correlations,
    noise_level_function,
    patch_extent,
    stationary_part,
)
from .base import check_is_fitted


def patch_shape_for(D: int, patch_shape):
    """The patch shape a fit was given, or a square one when ``D`` is a square (None else)."""
    if patch_shape is not None:
        shape = tuple(int(n) for n in patch_shape)
        if int(np.prod(shape)) != D:
            msg = f"patch_shape {shape} has {int(np.prod(shape))} pixels, the patches have {D}"
            raise ValueError(msg)
        return shape
    side = math.isqrt(D)
    return (side, side) if side * side == D else None


def initial_noise(work: np.ndarray, mode: str, patch_shape, support: int):
    """The noise correlation a fit starts from (None: white) and the evidence of the choice.

    ``work``: the standardised training patches (N, D). ``mode``: "white", "correlated" or
    "auto". The first estimate comes from the flattest patches
    (:func:`zse.noise.flattest_patches_acf`); "auto" keeps it when neighbouring pixels'
    correlation reaches AUTO_MIN_CORRELATION along some axis.
    """
    if mode == "white":
        return None, {"noise": "white", "reason": "noise='white' given"}
    if mode == "poisson-gaussian":
        mode = "auto"  # the correlation of the transformed noise is measured as for "auto"
    shape = patch_shape_for(work.shape[1], patch_shape)
    if shape is None:
        if mode == "correlated":
            msg = (
                "noise='correlated' needs the patch shape of non-square patches: "
                "fit(patches, patch_shape=(rows, columns)) or (z, rows, columns)"
            )
            raise ValueError(msg)
        return None, {"noise": "white", "reason": "the patch shape is unknown"}
    extent = patch_extent(shape)
    if extent == (1,):
        return None, {"noise": "white", "reason": "one-pixel patches"}
    if mode == "auto" and FLAT_FRACTION * len(work) < MIN_FLAT_PATCHES:
        reason = (
            f"{len(work)} training patches are too few to find {MIN_FLAT_PATCHES} flat ones "
            f"among the flattest {FLAT_FRACTION:.0%} (noise='correlated' estimates it anyway)"
        )
        return None, {"noise": "white", "reason": reason}
    acf = flattest_patches_acf(work, extent, support)
    noise = StationaryNoise.from_acf(acf, extent, support)
    rho = noise.neighbour_correlations()
    evidence = {"neighbour_correlation": [round(r, 4) for r in rho], "support": int(support)}
    strongest = max(abs(r) for r in rho)
    if mode == "auto" and strongest < AUTO_MIN_CORRELATION:
        reason = (
            f"neighbouring pixels' noise correlation {strongest:.3f} < {AUTO_MIN_CORRELATION} "
            "(first estimate, flattest patches)"
        )
        return None, {"noise": "white", "reason": reason, **evidence}
    reason = (
        "noise='correlated' given"
        if mode == "correlated"
        else f"neighbouring pixels' noise correlation {strongest:.3f} >= {AUTO_MIN_CORRELATION}"
    )
    return noise, {"noise": "correlated", "reason": reason, **evidence}


def noise_mstep(noise: StationaryNoise, stats, N: int, gram_white, W_new, mean_residual, support):
    """The M-step of the noise (ALGORITHM.md §3.14): the expected residual covariance of the
    E-step's patches, in the data's coordinates, projected onto stationary covariances
    (averaged over equal offsets), cut to ``support`` and made positive definite.

    ``gram_white``: sum of the kernels' (whitened, bias-free) patches' outer products;
    ``W_new``: the whitened fields of this M-step; ``mean_residual``: the mean residual
    y - b - W_o <s z> (the bias update's shift). Returns the new noise and its variance sigma2.
    """
    L = noise.L
    Y_sz = L @ np.asarray(stats.Y_sz)
    W_o = L @ W_new
    G = L @ gram_white @ L.T
    S = (G - W_o @ Y_sz.T - Y_sz @ W_o.T + W_o @ np.asarray(stats.B_szsz) @ W_o.T) / N
    S -= np.outer(mean_residual, mean_residual)
    acf = stationary_part(S, noise.extent)
    new = StationaryNoise.from_acf(acf, noise.extent, support)
    centre = tuple(n - 1 for n in noise.extent)
    return new, float(acf[centre])


def noise_summary(model) -> dict:
    """The learned noise model of a fitted SSSC for records: its kind, the evidence of the
    choice (fits in this process) and the neighbouring pixels' correlation."""
    C = np.asarray(model._noise_corr)
    summary = {"model": model.noise_model_}
    evidence = vars(model).get("noise_evidence_")
    if evidence is not None:
        summary["choice"] = evidence
    shape = vars(model).get("patch_size_")
    if shape is not None and model.noise_model_ == "correlated":
        extent = patch_extent(shape)
        acf = stationary_part(C, extent)
        rho = neighbour_correlations(acf, extent)
        summary["neighbour_correlation"] = [round(r, 4) for r in rho]
    return summary


def set_noise(model, noise) -> None:
    """A fit's noise (a StationaryNoise; None: white) and what follows from it: C, its
    Cholesky factor L and log det L (the density's change of coordinates)."""
    model._noise = noise
    if noise is None:
        model._noise_L, model._noise_log_det = None, 0.0
        model._noise_corr = np.eye(len(model._bias_std))
    else:
        model._noise_corr = noise.C
        model._noise_L, model._noise_log_det = noise.L, noise.log_det_L


def noise_epoch(model, stats, N: int, work, shift, W_out) -> None:
    """The noise's part of an M-step (after the kernels' and the bias's; ALGORITHM.md §3.14).

    ``noise_update="first"``: sigma2 stays the first estimate's (the sigma2 M-step of a sparse
    code underestimates a coloured noise). ``"em"``: C and sigma2 from the expected residual
    covariance, and the fields re-expressed in the new whitened coordinates.
    """
    if model.noise_update == "first":
        model._sigma2_std = model._noise.variance
        return
    noise, sigma2 = noise_mstep(
        model._noise, stats, N, work.T @ work, model._W_std, shift, int(model.noise_support)
    )
    set_noise(model, noise)
    model._W_std = np.ascontiguousarray(np.linalg.solve(model._noise_L, W_out))
    model._sigma2_std = sigma2


def describe_noise(model) -> None:
    """noise_covariance_ (the learned noise covariance over a patch, in the data's units
    squared) and noise_model_ ("white" or "correlated") of a fitted SSSC."""
    model.noise_covariance_ = model.sigma2_ * model._noise_corr
    white = np.array_equal(model._noise_corr, np.eye(len(model._noise_corr)))
    model.noise_model_ = "white" if white else "correlated"


def noise_after_load(model) -> None:
    """The whitening factor of a model read from a file (its correlation C is stored)."""
    model._noise_corr = np.ascontiguousarray(model._noise_corr, dtype=np.float64)
    white = np.array_equal(model._noise_corr, np.eye(len(model._noise_corr)))
    model._noise = None
    model._noise_L = None if white else np.ascontiguousarray(np.linalg.cholesky(model._noise_corr))
    model._noise_log_det = 0.0 if white else float(np.sum(np.log(np.diag(model._noise_L))))
    describe_noise(model)


def initial_transform(Y: np.ndarray, mode: str, patch_shape):
    """The generalized Anscombe transform a fit works through (None: the data as they are)
    and the evidence of the choice (ALGORITHM.md §3.15).

    ``"auto"`` transforms when the noise variance measurably grows with the brightness
    (:func:`zse.noise.noise_level_function`: a slope at least AUTO_MIN_SLOPE_ERRORS standard
    errors above zero and AUTO_MIN_VARIANCE_RATIO between the 10th and 90th percentile of the
    patches' brightness); ``"poisson-gaussian"`` always (an error where no positive slope is
    measured).
    """
    if mode not in ("auto", "poisson-gaussian"):
        return None, {"signal_dependent": False, "reason": f"noise={mode!r} given"}
    shape = patch_shape_for(Y.shape[1], patch_shape)
    if shape is None or min(shape[-2:]) < 3:
        if mode == "poisson-gaussian":
            msg = "noise='poisson-gaussian' needs the patch shape (rows and columns >= 3)"
            raise ValueError(msg)
        return None, {"signal_dependent": False, "reason": "the patch shape is unknown"}
    level = noise_level_function(Y, shape)
    evidence = {k: round(v, 6) for k, v in level.items() if isinstance(v, float)}
    if "groups" in level:
        evidence["groups"] = {
            k: [float(f"{v:.6g}") for v in vs] for k, vs in level["groups"].items()
        }
    significant = (
        level["measurable"]
        and level["slope"] > AUTO_MIN_SLOPE_ERRORS * level["slope_error"]
        and level["variance_ratio"] >= AUTO_MIN_VARIANCE_RATIO
    )
    transform = anscombe_for(level, Y) if significant or mode == "poisson-gaussian" else None
    if transform is None:
        if mode == "poisson-gaussian":
            msg = (
                "noise='poisson-gaussian': no noise variance that grows with the brightness "
                f"was measured (slope {level.get('slope', float('nan')):.3g})"
            )
            raise ValueError(msg)
        reason = (
            f"the noise variance changes by {level.get('variance_ratio', float('nan')):.2f}x "
            f"over the brightness (< {AUTO_MIN_VARIANCE_RATIO} or not measurable)"
        )
        return None, {"signal_dependent": False, "reason": reason, **evidence}
    reason = (
        "noise='poisson-gaussian' given"
        if mode == "poisson-gaussian"
        else f"the noise variance grows {level['variance_ratio']:.2f}x with the brightness"
    )
    return transform, {
        "signal_dependent": True,
        "reason": reason,
        "alpha": transform.alpha,
        "offset": transform.offset,
        "s2": transform.s2,
        **evidence,
    }


def transform_of(model):
    """The fitted model's Anscombe transform, or None."""
    gat = np.asarray(model._gat)
    return Anscombe(*map(float, gat)) if gat[0] > 0 else None


def log_slope_per_patch(model, Y) -> float:
    """The mean over patches of sum_d log f'(y_d) for the model's Anscombe transform f (0
    without one): a density of f(y) plus it is a density of y in the data's units (§3.15)."""
    transform = transform_of(model)
    if transform is None:
        return 0.0
    return float(np.sum(transform.log_slope(Y)) / len(Y))


def untransformed(model, estimates, variance):
    """Estimates (and variances, or None) made on the Anscombe transform mapped back to the
    data: the exact unbiased inverse and the delta method through it (§3.15)."""
    transform = transform_of(model)
    if transform is None:
        return estimates, variance
    if variance is not None:
        variance = variance * transform.inverse_slope(estimates) ** 2
    return transform.inverse(estimates), variance


def noise_description(model) -> dict:
    """What the ``<stem>_noise.png`` picture of a fitted SSSC shows (ALGORITHM.md §3.14-§3.15).

    ``"autocovariance"``: the learned noise's autocovariance over the patch's offsets (the grid
    of :func:`zse.noise.stationary_part`, in the data's units squared, or the transformed
    ones with an Anscombe transform), with its ``"extent"`` (absent when the patch shape is
    unknown). ``"level"``: the noise variance in the data's units as a function of the
    brightness (a constant without the transform; sigma2_ times the transform's
    Poisson-Gaussian variance alpha (x - offset) + alpha^2 s2 with it), drawn over
    ``"brightness"`` (the training patches' 10th-90th percentile where the fit measured it),
    and the measured groups' medians (``"measured"``) where the fit measured them.
    """
    check_is_fitted(model)
    description = {"model": model.noise_model_, "sigma2": float(model.sigma2_)}
    shape = model.fitted_patch() or patch_shape_for(len(model.bias_), None)
    if shape is not None and patch_extent(shape) != (1,):
        extent = patch_extent(shape)
        description["extent"] = extent
        description["autocovariance"] = stationary_part(model.noise_covariance_, extent)
    evidence = vars(model).get("noise_evidence_", {}).get("signal_dependence", {})
    transform = transform_of(model)
    if "brightness_low" in evidence:
        description["brightness"] = (evidence["brightness_low"], evidence["brightness_high"])
    if "groups" in evidence:
        # The measured medians are of the four-neighbour residual, which a correlated noise
        # shrinks: undone with the learned correlation, so that they read as noise variances.
        factor = residual_factor(description.get("autocovariance"))
        groups = evidence["groups"]
        description["measured"] = {
            "brightness": groups["brightness"],
            "variance": [v * factor for v in groups["variance"]],
        }
    sigma2 = float(model.sigma2_)
    if transform is None:
        description["level"] = lambda x: np.full(np.shape(x), sigma2)
    else:
        a, offset, s2 = transform.alpha, transform.offset, transform.s2
        description["transform"] = {"alpha": a, "offset": offset, "s2": s2}
        description["level"] = lambda x: sigma2 * (a * (np.asarray(x) - offset) + a * a * s2)
        description.setdefault("brightness", (offset, offset + 100.0 * a))
    return description


def residual_factor(acf) -> float:
    """1.25 / (the variance of a pixel's residual against the mean of its four in-plane
    neighbours, relative to the noise variance) for the autocovariance ``acf`` (1 for white
    noise, or when it is unknown): what turns :func:`zse.noise.noise_level_function`'s
    medians into noise variances."""
    if acf is None:
        return 1.0
    plane = np.asarray(acf, dtype=np.float64)
    while plane.ndim > 2:
        plane = plane[plane.shape[0] // 2]
    if plane.ndim < 2 or min(plane.shape) < 5:
        return 1.0
    r, c = plane.shape[0] // 2, plane.shape[1] // 2
    taps = {(0, 0): 1.0, (-1, 0): -0.25, (1, 0): -0.25, (0, -1): -0.25, (0, 1): -0.25}
    variance = sum(
        wa * wb * plane[r + b[0] - a[0], c + b[1] - a[1]]
        for a, wa in taps.items()
        for b, wb in taps.items()
    )
    return 1.25 * plane[r, c] / variance if variance > 0 else 1.0
