"""Image-level entry point: fit on a subset of patch positions, then estimate every patch of the
image and merge the estimates while streaming over it (ALGORITHM.md §2.6)."""

from __future__ import annotations

import numbers
import sys
import time

import numpy as np

from . import _core
from ._memory import available_memory, format_bytes
from ._mpi import team_of
from ._progress import Progress
from ._threads import effective_n_threads
from ._validation import as_patch_shape, as_stats, as_volume, check_progress, check_volume_fits
from .models import AUTO_TRAIN_MAX, as_model, choose_model, is_fitted, make_model, model_class

# Variances of values beyond these magnitudes over- or underflow float64 (squares of 1e154).
_SQUARE_SAFE_MAX = 1e150
_SQUARE_SAFE_MIN = 1e-150


def training_positions(
    n_patches: int, n_train, seed: int, auto_max: int = AUTO_TRAIN_MAX
) -> np.ndarray:
    """Sorted global indices of the patches a model is trained on.

    ``"auto"``: every patch when there are at most ``auto_max``, else that many drawn
    uniformly without replacement; an int: that many (every patch if it is at least
    ``n_patches``). The draw depends on ``seed`` only.
    """
    if isinstance(n_train, str):
        if n_train != "auto":
            msg = f"n_train must be 'auto' or an int >= 1, got {n_train!r}"
            raise ValueError(msg)
        count = min(n_patches, int(auto_max))
    elif isinstance(n_train, numbers.Integral) and not isinstance(n_train, bool) and n_train >= 1:
        count = min(n_patches, int(n_train))
    else:
        msg = f"n_train must be 'auto' or an int >= 1, got {n_train!r}"
        raise ValueError(msg)
    if count == n_patches:
        return np.arange(n_patches, dtype=np.int64)
    rng = np.random.default_rng([seed, 0x7A5E])
    chosen = np.unique(rng.integers(0, n_patches, size=count, dtype=np.int64))
    while len(chosen) < count:  # top up the duplicates, deterministically
        extra = rng.integers(0, n_patches, size=count - len(chosen), dtype=np.int64)
        chosen = np.unique(np.concatenate([chosen, extra]))
    return np.ascontiguousarray(chosen[:count] if len(chosen) > count else chosen)


def check_outputs(model, given, stats, median_kind) -> None:
    """ValueError for statistics the model cannot give (pvar) or an unknown median kind."""
    if "pvar" in stats and not model.provides_variance:
        msg = (
            f"stat 'pvar' needs a model with a predictive variance; {type(given).__name__} has none"
        )
        raise ValueError(msg)
    if median_kind not in ("average", "lower"):
        msg = f"median_kind must be 'average' or 'lower', got {median_kind!r}"
        raise ValueError(msg)


def plan_training(model, patch, n_patches: int, n_train) -> np.ndarray:
    """The training positions of an unfitted model (empty for a fitted one, after checking that
    it was fitted on patches of this shape)."""
    if not is_fitted(model):
        return training_positions(n_patches, n_train, model.fit_seed(), model.auto_train_size)
    D = int(np.prod(patch))
    if model.n_features_in_ is not None and model.n_features_in_ != D:
        msg = (
            f"the model was fitted on patches of {model.n_features_in_} pixels, but patch_size "
            f"{'x'.join(map(str, patch))} gives {D}"
        )
        raise ValueError(msg)
    model._check_patch_shape(patch)
    return np.zeros(0, dtype=np.int64)


def check_squares_fit(volume, stats) -> None:
    """ValueError when ``var``/``pvar`` are asked for values whose squares leave float64."""
    second_moments = [s for s in stats if s in ("var", "pvar")]
    if second_moments:
        peak = float(max(np.max(volume), -np.min(volume)))
        if peak > _SQUARE_SAFE_MAX or 0.0 < peak < _SQUARE_SAFE_MIN:
            msg = (
                f"the image's values reach {peak:.3g}: their squares leave float64's range, so "
                f"{', '.join(map(repr, second_moments))} cannot be computed in these units; "
                "rescale the image (results scale with it) or ask only for mean/median/count"
            )
            raise ValueError(msg)


def estimate_peak_memory(shape, patch, stats, model, n_train: int, n_threads: int) -> dict:
    """Bytes the streamed reconstruction needs at its peak, by part (before any work)."""
    voxels = int(np.prod(shape))
    D = int(np.prod(patch))
    shape3 = tuple(shape) if len(shape) == 3 else (1, *shape)
    patch3 = tuple(patch) if len(patch) == 3 else (1, *patch)
    plan = _core.stream_plan(shape3, patch3, "pvar" in stats, "median" in stats, "auto", n_threads)
    parts = {
        "image (float64)": 8 * voxels,
        "output images": 8 * voxels * len(stats),
        "streaming buffers": plan["ring_bytes"] + plan["scratch_bytes"] * plan["wave"],
        "training patches": 8 * n_train * D * 2,  # the gathered patches and the model's copy
    }
    parts.update(as_model(model).memory_parts(n_train, D))
    guides = as_model(model).extra_images()
    if guides:
        parts["nonlocal estimate (guide, evidences)"] = 8 * voxels * guides
    parts["total"] = sum(parts.values())
    return parts


class Reconstruction(dict):
    """The images of :func:`reconstruct`, one per statistic (a dict), and how they were made.

    Attributes
    ----------
    model : estimator
        The fitted model that estimated the patches (the one passed in, or the one chosen).
    model_choice : dict or None
        With ``model="auto"``: the chosen model's name (``"model"``) and the evidence of the
        count test (``counts``, ``reason`` and the measured statistics); None when a model was
        given.
    """

    def __init__(self, images: dict, model, model_choice=None):
        super().__init__(images)
        self.model = model
        self.model_choice = model_choice


def reconstruct(
    image,
    model="auto",
    *,
    stats=("mean", "var"),
    patch_size=None,
    n_train="auto",
    median_kind="average",
    n_threads=None,
    verbose=False,
    comm=None,
    progress=None,
    noise=None,
) -> dict | None:
    """Denoise an image or volume with a patch model and merge the per-patch estimates.

    The model is fitted on the patches at ``n_train`` positions (unless it is fitted already);
    then every patch of the image is read, estimated and merged into the per-pixel statistics
    while streaming over the image in bands, so no (n_patches, D) array is ever formed
    (ALGORITHM.md §2.6).

    Parameters
    ----------
    image : array_like of shape (rows, columns) or (z, rows, columns)
        The noisy image or volume (real-valued and finite; converted once to float64).
    model : estimator, str or None
        :class:`zse.SSSC`, :class:`zse.PMM`, :class:`zse.GPMM`, :class:`zse.Identity`, or any
        object with ``fit(patches)`` and ``estimate(patches)`` (2-D only; estimated on the
        (n_patches, D) matrix); or a model's name (``"sssc"``, ``"gpmm"``, ``"pmm"``,
        ``"identity"``) for that model at its defaults. ``"auto"`` (default; also None) makes
        the choice ``zse denoise --model auto`` makes: :class:`zse.GPMM` when the image holds
        electron counts (:func:`zse.models.choose_model`: the noise variance equals the local
        mean), else :class:`zse.SSSC`; the choice and its evidence are on the result
        (``result.model_choice``). A fitted zse model is checked against the patch extents it
        was trained on (``patch_size_``), not only their pixel count.
    stats : str or sequence of str
        Images to return: ``"mean"`` (the denoised image), ``"median"``, ``"var"`` (variance of
        the per-patch estimates of each pixel, the "variance image"), ``"pvar"`` (posterior-
        predictive variance: mean per-patch posterior variance plus ``"var"``; only for models
        that provide it) and ``"count"``.
    patch_size : int or tuple of int, optional
        Patch extents: (rows, columns) for an image (default 8 x 8), (z, rows, columns) for a
        volume (default 4 x 4 x 4); an int is the same size along every axis.
    n_train : "auto" or int
        Patch positions the model is trained on, drawn uniformly without replacement with the
        model's ``random_state`` (0 when it is not an int). ``"auto"``: every patch up to the
        model's ``auto_train_size`` (SSSC 16 384; PMM, GPMM and others 65 536), a random subset
        of that many beyond (bench/README.md, "ES3C quality", for what it costs and gains).
    median_kind : {"average", "lower"}
        How ``"median"`` treats an even number of estimates.
    n_threads : int, optional
        Threads for gathering, estimating and merging (the model's own ``n_threads`` is used
        for its fit). Results do not depend on it.
    verbose : bool
        Print each stage and its duration to stderr (rank 0 only under MPI).
    comm : mpi4py communicator, optional
        Run on the communicator's MPI ranks: every rank calls ``reconstruct`` with the same
        image and settings; each trains on its share of the training patches (when the model's
        own ``comm`` is None, it is used for the fit) and estimates its share of the image's
        bands, each with ``n_threads`` threads. Results are bit-identical to one rank with any
        thread count. Needs a zse model. See docs/tutorials/cluster.md.
    progress : callable, optional
        ``progress(phase, done, total)``: after every fit epoch (``"fit"``, epochs; zse models)
        and every wave of estimated bands (``"estimate"``, bands; rank 0's share under MPI). An
        exception it raises stops the work and reaches the caller (a cancel button).
    noise : {"auto", "white", "correlated", "poisson-gaussian"}, optional
        The noise model of a model this call makes (``model`` a name or ``"auto"``) that has
        one (SSSC's ``noise``; default: the model's, ``"auto"``). A model object carries its
        own: ``zse.SSSC(noise=...)``. ALGORITHM.md §3.14, §3.15.

    Returns
    -------
    Reconstruction (a dict of str to ndarray of the image's shape), or None
        One float64 image per requested statistic, in the requested order; ``.model`` is the
        fitted model, ``.model_choice`` the evidence of ``model="auto"``. Under MPI only rank
        0 gets the images; the other ranks get None.

    Raises
    ------
    zse.RankError
        Under MPI, on every rank, when the work of any rank failed (with its message).
    ValueError
        For invalid images, unknown stats, an image smaller than the patch, a patch size of the
        wrong dimension, a fitted model whose patch dimension does not match, or ``"pvar"`` with
        a model that has no predictive variance.
    MemoryError
        Before any work, when the estimated peak memory exceeds the memory available; the
        message names the estimate and the options that shrink it.
    TypeError
        If ``model`` lacks ``fit``/``estimate`` or the image is not real-valued.

    Examples
    --------
    >>> import zse
    >>> noisy, clean = zse.synthetic_tem((64, 64), dose=20.0, seed=0)
    >>> model = zse.GPMM(8, max_iter=5, random_state=0)
    >>> result = zse.reconstruct(noisy, model, patch_size=6)
    >>> list(result), result["mean"].shape
    (['mean', 'var'], (64, 64))
    >>> bool(zse.psnr(clean, result["mean"]) > zse.psnr(clean, noisy) + 3)
    True
    """
    volume = as_volume(image)
    stats = as_stats(stats)
    check_progress(progress)
    choice = None
    if model is None or isinstance(model, str):
        name = "auto" if model is None else model.lower()
        if name == "auto":
            name, evidence = choose_model(volume)
            choice = {"model": name, **evidence}
        options = {} if noise is None else {"noise": noise}
        if options and "noise" not in model_class(name)._param_names():
            msg = (
                f"noise={noise!r} does not apply to model {name!r}"
                + (f" (model='auto' chose it: {choice['reason']})" if choice else "")
                + "; the Poisson mixtures model counts as they are"
            )
            raise ValueError(msg)
        model = make_model(name, options=options)
    elif noise is not None:
        msg = "noise= applies to a model reconstruct makes; set it on the model: SSSC(noise=...)"
        raise ValueError(msg)
    given = model
    model = as_model(model)
    default = model.default_patch(volume.ndim)
    patch = as_patch_shape(default if patch_size is None else patch_size, volume.ndim)
    check_volume_fits(volume.shape, patch)
    check_outputs(model, given, stats, median_kind)
    check_squares_fit(volume, stats)
    threads = effective_n_threads(n_threads)
    volume3 = volume if volume.ndim == 3 else volume[None]
    patch3 = patch if len(patch) == 3 else (1, *patch)
    n_patches = int(np.prod([s - p + 1 for s, p in zip(volume.shape, patch)]))

    fitted = is_fitted(model)
    positions = plan_training(model, patch, n_patches, n_train)
    streamed = model.streams()
    if not streamed and volume.ndim == 3:
        msg = f"{type(given).__name__} has no streamed estimate; volumes need a zse model"
        raise TypeError(msg)
    team = team_of(comm)
    if team is not None and not streamed:
        msg = f"{type(given).__name__} has no streamed estimate; MPI (comm=) needs a zse model"
        raise TypeError(msg)
    _check_memory(volume.shape, patch, stats, model, len(positions), threads, streamed)

    def log(message: str, start: float) -> None:
        if verbose and (team is None or team.is_root):
            print(f"[zse] {message} ({time.perf_counter() - start:.2f} s)", file=sys.stderr)

    if not fitted:
        t = time.perf_counter()
        train = _core.gather_patches(volume3, patch3, positions, threads)
        log(
            f"gathered {len(positions)} of {n_patches} patches of {'x'.join(map(str, patch))} "
            "pixels for training",
            t,
        )
        t = time.perf_counter()
        epochs = None if progress is None else (lambda done, total: progress("fit", done, total))
        with model.fitting_on(comm if team is not None else None):
            model.fit(train, progress=epochs, patch_shape=patch)
        del train
        model._record_patch_shape(patch)
        log(f"fitted {type(given).__name__}", t)

    t = time.perf_counter()
    # Bands of rows (slices) estimated: a bar on a terminal, lines in logs (rank 0's share).
    lines = Progress(
        "estimating" if team is None else "estimating (rank 0's share)",
        "band",
        enabled=verbose and (team is None or team.is_root),
    )

    def bands(done: int, total: int) -> None:
        lines(done, total)
        if progress is not None and (team is None or team.is_root):
            progress("estimate", done, total)

    share = (0, 1) if team is None else team.share

    def estimate():
        return model.estimate_volume(
            volume3, patch3, list(stats), positions, median_kind, threads, share, bands
        )

    # Under MPI each rank finishes whole bands of rows (slices); rank 0 gathers them in rank
    # order.
    with lines:
        merged = estimate() if team is None else team.run(estimate, gather=False)
    if team is not None:
        axis = 1 if volume.ndim == 2 else 0  # rows of the (1, R, Q) view, or slices
        merged = {name: team.gather_slices(merged[name], axis) for name in stats}
        if not team.is_root:
            return None
    where = "" if team is None else f" on {team.size} ranks"
    log(f"estimated and merged every patch{where}: {', '.join(stats)}", t)
    return Reconstruction(
        {name: merged[name].reshape(volume.shape) for name in stats}, given, choice
    )


def _check_memory(shape, patch, stats, model, n_train, n_threads, streamed) -> None:
    if streamed:
        parts = estimate_peak_memory(shape, patch, stats, model, n_train, n_threads)
    else:  # a foreign model: the patch and estimate matrices
        N = int(np.prod([s - p + 1 for s, p in zip(shape, patch)]))
        parts = {"total": 8 * N * int(np.prod(patch)) * 3 + 8 * int(np.prod(shape)) * len(stats)}
    available = available_memory()
    if available is not None and parts["total"] > available:
        detail = ", ".join(f"{k} {format_bytes(v)}" for k, v in parts.items() if k != "total")
        msg = (
            f"denoising an image of shape {tuple(shape)} needs about "
            f"{format_bytes(parts['total'])} ({detail}), but only {format_bytes(available)} "
            "is available; shrink it with a smaller n_train (--n-train), fewer stats (pvar "
            "doubles the streaming buffers), fewer threads, or crop/bin the image"
        )
        raise MemoryError(msg)
