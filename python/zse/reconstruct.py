"""Image-level entry point: cut patches, fit the model, estimate every patch, merge."""

from __future__ import annotations

import sys
import time

import numpy as np

from ._base import is_fitted
from ._validation import as_image, as_patch_size, as_stats, check_fits
from .models import DEFAULT_MODEL, make_model, supports_variance
from .patches import extract_patches, merge_patches

DEFAULT_PATCH_SIZE = 6
# Variances of values beyond these magnitudes over- or underflow float64 (squares of 1e154).
_SQUARE_SAFE_MAX = 1e150
_SQUARE_SAFE_MIN = 1e-150


def reconstruct(
    image,
    model=None,
    *,
    stats=("mean", "var"),
    patch_size=None,
    median_kind="average",
    n_threads=None,
    verbose=False,
) -> dict:
    """Denoise an image with a patch model and merge the per-patch estimates.

    Parameters
    ----------
    image : array_like of shape (rows, columns)
        The noisy image (real-valued and finite; converted once to float64).
    model : estimator, optional
        Any object with ``fit(patches)`` and ``estimate(patches)``. It is fitted on the image's
        own patches unless it is already fitted. ``None`` uses :class:`zse.SSSC` with its
        default settings.
    stats : str or sequence of str
        Images to return: ``"mean"`` (the denoised image), ``"median"``, ``"var"`` (variance of
        the per-patch estimates of each pixel, the "variance image"), ``"pvar"`` (posterior-
        predictive variance: mean per-patch predictive variance plus ``"var"``; only for models
        that provide it) and ``"count"``.
    patch_size : int or (int, int), optional
        Patch height and width (default 6).
    median_kind : {"average", "lower"}
        How ``"median"`` treats an even number of estimates.
    n_threads : int, optional
        Threads for patch extraction and merging (the model has its own ``n_threads``).
    verbose : bool
        Print each stage and its duration to stderr.

    Returns
    -------
    dict of str to ndarray of shape (rows, columns)
        One float64 image per requested statistic, in the requested order.

    Raises
    ------
    ValueError
        For invalid images, unknown stats, an image smaller than the patch, a fitted model whose
        patch dimension does not match, or ``"pvar"`` with a model that has no predictive
        variance.
    TypeError
        If ``model`` lacks ``fit``/``estimate`` or the image is not real-valued.
    """
    image = as_image(image)
    stats = as_stats(stats)
    if model is None:
        model = make_model(DEFAULT_MODEL)
    if not (callable(getattr(model, "fit", None)) and callable(getattr(model, "estimate", None))):
        msg = f"model must have fit(patches) and estimate(patches) methods, got {model!r}"
        raise TypeError(msg)
    ph, pw = as_patch_size(DEFAULT_PATCH_SIZE if patch_size is None else patch_size)
    check_fits(image.shape, (ph, pw))
    if "pvar" in stats and not supports_variance(model):
        msg = f"stat 'pvar' needs a model with a predictive variance; {type(model).__name__} has none"
        raise ValueError(msg)

    second_moments = [s for s in stats if s in ("var", "pvar")]
    if second_moments:
        peak = float(max(np.max(image), -np.min(image)))
        if peak > _SQUARE_SAFE_MAX or 0.0 < peak < _SQUARE_SAFE_MIN:
            msg = (
                f"the image's values reach {peak:.3g}: their squares leave float64's range, so "
                f"{', '.join(map(repr, second_moments))} cannot be computed in these units; "
                "rescale the image (results scale with it) or ask only for mean/median/count"
            )
            raise ValueError(msg)

    def log(message: str, start: float) -> None:
        if verbose:
            print(f"[zse] {message} ({time.perf_counter() - start:.2f} s)", file=sys.stderr)

    t = time.perf_counter()
    patches = extract_patches(image, (ph, pw), n_threads=n_threads)
    log(f"extracted {patches.shape[0]} patches of {ph}x{pw} pixels", t)

    fitted_features = getattr(model, "n_features_in_", None) if is_fitted(model) else None
    if fitted_features is None:
        t = time.perf_counter()
        model.fit(patches)
        log(f"fitted {type(model).__name__}", t)
    elif fitted_features != ph * pw:
        msg = (
            f"the model was fitted on patches of {fitted_features} pixels, but patch_size "
            f"{ph}x{pw} gives {ph * pw}"
        )
        raise ValueError(msg)

    t = time.perf_counter()
    if "pvar" in stats:
        estimates, predictive_variances = model.estimate(patches, return_variance=True)
    else:
        estimates = model.estimate(patches)
    del patches
    log("estimated every patch", t)

    t = time.perf_counter()
    merge_stats = [s for s in stats if s != "pvar"]
    if "pvar" in stats and "var" not in merge_stats:
        merge_stats.append("var")
    merged = merge_patches(
        estimates, image.shape, (ph, pw), merge_stats, median_kind=median_kind, n_threads=n_threads
    )
    if "pvar" in stats:
        # Law of total variance over the patches covering a pixel (ALGORITHM.md §2.5, V2).
        mean_predictive = merge_patches(
            predictive_variances, image.shape, (ph, pw), ("mean",), n_threads=n_threads
        )["mean"]
        merged["pvar"] = mean_predictive + merged["var"]
    log("merged " + ", ".join(stats), t)
    return {name: merged[name] for name in stats}
