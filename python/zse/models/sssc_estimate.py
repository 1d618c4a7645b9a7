"""SSSC's estimation helpers: the state sets a batch of patches starts from, and the streamed
estimate of every patch of an image or volume (ALGORITHM.md §2.6, §4.11)."""

from __future__ import annotations

import warnings

import numpy as np

from .. import _core
from .base import check_n_features, fingerprint
from .groups import group_window, nonlocal_estimate
from .sssc_noise import transform_of


def search_options(model, estimation=False):
    """The state search's settings, as the kernels take them (ALGORITHM.md §4.9, §4.10):
    training always evolves the states; ``estimation`` searches with ``estimation_search``."""
    return _core.SearchOptions(
        method=model.estimation_search if estimation else "evolution",
        n_parents=int(model.n_parents),
        n_children=int(model.n_children),
        n_generations=int(model.n_generations),
        selection=model.selection,
        mutation=model.mutation,
        bitflip_prob=float(model.bitflip_prob or 0.0),
    )


def states_for(model, Y, n_threads, *, estimation=False):
    """State sets for Y and their sweeps: the training sets if Y is the training data, else
    fresh ones; with ``estimation`` of the estimation's size (the best of each training set
    under the fitted parameters)."""
    H, S, p_init = model._search_shape(estimation)
    if fingerprint(Y) == model._train_fingerprint:
        K = model.K_.copy()
        if S < K.shape[1]:
            lpj = model._estep(
                model._centred(Y), K, 10**9, evolve=False, want_lpj=True, n_threads=n_threads
            )["lpj"]
            best = np.argsort(-lpj, axis=1, kind="stable")[:, :S]
            K = np.ascontiguousarray(np.take_along_axis(K, best[:, :, None], axis=1))
        return K, 1
    K = _core.sssc_init_states(Y.shape[0], S, H, p_init, model._seed + 1, n_threads)
    return K, int(model.n_estimate_sweeps)


def stream_volume(model, volume, patch, positions, n_threads, stream):
    """Streamed estimate and merge of every patch of a (Z, R, Q) volume (ALGORITHM.md §2.6).

    ``positions`` are the sorted training positions when this model was just fitted on
    exactly those patches (their learned state sets are the starting point there).
    """
    check_n_features(model, int(np.prod(patch)))
    H, S, p_init = model._search_shape(estimation=True)
    if len(positions) != model.K_.shape[0]:
        positions = np.zeros(0, dtype=np.int64)
    states = model.K_ if len(positions) else np.zeros((0, S, model.K_.shape[2]), np.uint64)
    plan = _core.VolumeSearch(
        n_states=S,
        p_init=p_init,
        seed=model._seed,
        fresh_seed=(model._seed + 1) % 2**64,
        train_sweeps=int(model.n_train_sweeps),
        warm_sweeps=int(model.n_warm_sweeps),
        fresh_sweeps=int(model.n_estimate_sweeps),
        patience=int(model.search_patience),
    )
    arguments = (
        patch,
        model._kernel_model(with_bias=True),
        states,
        np.ascontiguousarray(positions, dtype=np.int64),
        search_options(model, estimation=True),
        plan,
    )
    if int(model.group_size) == 1:
        return _core.sssc_estimate_volume(volume, *arguments, stream, n_threads)
    return nonlocal_volume(model, volume, arguments, n_threads, stream)


def nonlocal_volume(model, volume, arguments, n_threads, stream):
    """The nonlocal estimate (ALGORITHM.md §3.16): the first pass also records every patch's
    log-evidence, which the second weighs the group's sharing of its spike against."""
    patch, plan = arguments[0], arguments[-1]
    n_patches = int(np.prod([v - p + 1 for v, p in zip(volume.shape, patch)]))
    evidence = np.empty(n_patches)

    def first_pass(request):
        return _core.sssc_estimate_volume(
            volume, *arguments, request, n_threads, evidence_out=evidence
        )

    def second_pass(request, guide):
        plan.group_size = int(model.group_size)
        plan.group_window = group_window(model, patch)
        plan.group_sweeps = int(model.group_sweeps)
        plan.group_disjoint = model.group_members == "disjoint"
        return _core.sssc_estimate_volume(
            volume, *arguments, request, n_threads, guide=guide, evidence=evidence
        )

    return nonlocal_estimate(model, volume, stream, first_pass, second_pass)


def draw_samples(model, n: int, rng) -> np.ndarray:
    """n patches of the fitted model's generative process (SSSC.sample), in the data's units."""
    H = model.W_.shape[1]
    s = rng.random((n, H)) < model.pi_
    lower = np.linalg.cholesky(model.Psi_)
    z = model.mu_ + rng.standard_normal((n, H)) @ lower.T
    noise = rng.standard_normal((n, model.W_.shape[0])) * np.sqrt(model.sigma2_)
    if model._noise_L is not None:
        noise = noise @ model._noise_L.T  # eps ~ N(0, sigma2 C), C = L L^T
    transformed = model.bias_ + (s * z) @ model.W_.T + noise
    transform = transform_of(model)
    return transformed if transform is None else transform.sample_inverse(transformed)


def variance_unit(model) -> np.float64:
    """data_scale_ squared (variances in the data's units); a warning where that leaves
    float64's range."""
    with np.errstate(over="ignore", under="ignore"):
        unit = np.float64(model.data_scale_) ** 2
    if not np.isfinite(unit) or unit < np.finfo(np.float64).tiny:
        warnings.warn(
            f"variances in the data's units (scale {model.data_scale_:.3g}, squared) are "
            "outside float64's range and come out as inf or 0; rescale the data to get them",
            RuntimeWarning,
            stacklevel=3,
        )
    return unit
