"""Poisson mixtures for count-limited images: PMM and the Gamma-Poisson mixture GPMM.

Both models have exact posteriors over their C components; all N x C log-joints are computed by
the C++ core in cache-sized blocks (ALGORITHM.md §5-§6). Python only runs the epoch loop and the
small M-step arithmetic on C x D arrays.
"""

from __future__ import annotations

import warnings

import numpy as np

from . import _core
from ._base import CheckpointError, EMEstimator, check_is_fitted, check_n_features, fingerprint
from ._threads import effective_n_threads
from ._validation import as_patches, check_int

_TINY = np.finfo(np.float64).tiny


class _PoissonMixture(EMEstimator):
    """Shared fit/estimate/score of PMM and GPMM; subclasses define the M-step.

    The Poisson models work in counts, so the scale of the data is information, not a unit:
    grey values must be converted with ``gain``/``offset``. Non-integer data below 1 everywhere
    cannot be counts and are refused; other non-integer data give a warning.
    """

    _provides_variance = True
    _model_file_fields = {
        **EMEstimator._model_file_fields,
        "W_": "array",
        "pi_": "array",
        "log_likelihoods_": "floats",
        "n_dead_components_": "count",
    }

    # PMM's signature; GPMM adds its shape parameters and passes these on.
    def __init__(
        self,
        n_components=256,
        *,
        max_iter=50,
        tol=None,
        gain=1.0,
        offset=0.0,
        random_state=None,
        n_threads=None,
        verbose=False,
        checkpoint=None,
        checkpoint_every=10,
        resume=False,
        comm=None,
    ):
        self.n_components = n_components
        self.max_iter = max_iter
        self.tol = tol
        self.gain = gain
        self.offset = offset
        self.random_state = random_state
        self.n_threads = n_threads
        self.verbose = verbose
        self.checkpoint = checkpoint
        self.checkpoint_every = checkpoint_every
        self.resume = resume
        self.comm = comm

    # -- conversion between grey values and counts -------------------------------------------
    def _check_gain_offset(self):
        gain, offset = float(self.gain), float(self.offset)
        if not (np.isfinite(gain) and gain > 0):
            msg = f"gain must be finite and > 0, got {self.gain!r}"
            raise ValueError(msg)
        if not np.isfinite(offset):
            msg = f"offset must be finite, got {self.offset!r}"
            raise ValueError(msg)
        return gain, offset

    def _to_counts(self, patches) -> np.ndarray:
        patches = as_patches(patches)
        gain, offset = self._check_gain_offset()
        counts = patches if (gain == 1.0 and offset == 0.0) else (patches - offset) * gain
        n_negative = int(np.count_nonzero(counts < 0))
        if n_negative:
            msg = (
                f"{n_negative} value(s) are negative after subtracting offset={offset} and "
                f"scaling by gain={gain}; Poisson models need non-negative counts (set --offset "
                "to the detector's dark level, or use the SSSC model)"
            )
            raise ValueError(msg)
        if not np.array_equal(counts, np.round(counts)):
            peak = float(counts.max())
            if peak < 1.0:
                msg = (
                    f"the values lie in [0, {peak:.3g}] and are not integers: they are not "
                    "electron "
                    "counts. Poisson models need counts: convert grey values with gain "
                    "(counts per grey level) and offset, or use the SSSC model, which does not "
                    "depend on the data's units"
                )
                raise ValueError(msg)
            warnings.warn(
                "the input is not integer counts: the Poisson model assumes electron counts; "
                "pass gain/offset to convert grey values to counts",
                UserWarning,
                stacklevel=3,
            )
        return np.ascontiguousarray(counts, dtype=np.float64)

    def _alpha_array(self):
        return None

    # -- EM hooks (see EMEstimator) ------------------------------------------------------------
    def _check_params(self):
        check_int(self.n_components, "n_components", 1)
        check_int(self.max_iter, "max_iter", 1)
        self._check_gain_offset()
        if self.tol is not None and not (np.isfinite(float(self.tol)) and float(self.tol) >= 0):
            msg = f"tol must be None or a finite number >= 0, got {self.tol!r}"
            raise ValueError(msg)

    def _fit_data(self, patches):
        Y = self._to_counts(patches)
        N = Y.shape[0]
        C = int(self.n_components)
        if C > N:
            msg = f"n_components={C} exceeds the number of patches N={N}"
            raise ValueError(msg)
        if not np.any(Y):
            msg = "all counts are zero; there is nothing to fit"
            raise ValueError(msg)
        self._train_fingerprint = fingerprint(Y)
        return Y

    def _initialise(self, Y, seed, n_threads):
        C = int(self.n_components)
        self._log_factorials = _core.sum_log_factorials(Y, n_threads)
        self._w_floor_counts = 1e-10 * float(Y.mean())
        seeds = Y[_core.kmeans_plusplus(Y, C, seed, n_threads, max(64 * C, 65536))]
        self._init_params(Y, seeds)
        self._last_R = np.zeros(C)

    def _em_epoch(self, Y, epoch, n_threads):
        N = Y.shape[0]
        stats = self._fit_estep(Y, self._log_factorials, n_threads)
        ll = stats["log_likelihood"] / N
        self._mstep(stats, N, n_threads)
        return ll, f"log-likelihood/patch {ll:.6f}"

    def _converged(self, objectives) -> bool:
        if self.tol is None or len(objectives) < 2:
            return False
        return abs(objectives[-1] - objectives[-2]) <= float(self.tol) * abs(objectives[-2])

    def _state_arrays(self):
        arrays = {"W": self.W_, "pi": self.pi_, "last_R": self._last_R}
        if hasattr(self, "alpha_"):
            arrays["alpha"] = np.asarray(self.alpha_, dtype=np.float64)
            arrays["alpha_capped"] = np.bool_(self.alpha_capped_)
        return arrays

    def _load_state_arrays(self, arrays):
        if arrays["W"].shape != self.W_.shape:
            msg = "the checkpoint's arrays do not match this model's shapes"
            raise CheckpointError(msg)
        self.W_ = np.ascontiguousarray(arrays["W"], dtype=np.float64)
        self.pi_ = np.ascontiguousarray(arrays["pi"], dtype=np.float64)
        self._last_R = np.ascontiguousarray(arrays["last_R"], dtype=np.float64)
        if "alpha" in arrays:
            alpha = arrays["alpha"]
            self.alpha_ = float(alpha) if alpha.ndim == 0 else np.array(alpha, dtype=np.float64)
            self.alpha_capped_ = bool(arrays["alpha_capped"])

    def _finish(self, Y):
        self.log_likelihoods_ = self.free_energies_  # exact EM: F = log-likelihood
        self.n_features_in_ = Y.shape[1]
        n_dead = int(np.count_nonzero(self._last_R < 1e-8))
        self.n_dead_components_ = n_dead
        if n_dead:
            self._log(f"{n_dead} component(s) received no responsibility")
        self._log_factorials = None

    def _estep(self, Y, log_factorials, n_threads, want_hist=False, totals=None, share=None):
        return _core.mixture_estep(
            Y,
            self.W_,
            np.log(self.pi_),
            self._alpha_array(),
            1.0,
            log_factorials,
            totals,
            want_hist,
            n_threads,
            share=share,
        )

    def _histogram_request(self):
        """(want_hist, totals) of the training E-step; GPMM asks for what its alpha needs."""
        return False, None

    def _fit_estep(self, Y, log_factorials, n_threads):
        """The training E-step: here, or summed over the MPI ranks' chunk partials in chunk
        order (bit-identical, ALGORITHM.md §7.2)."""
        want_hist, totals = self._histogram_request()
        team = self._team
        if team is None:
            return self._estep(Y, log_factorials, n_threads, want_hist, totals)
        C, D = self.W_.shape
        K = len(totals.values) if want_hist else 0
        return team.sum_chunk_partials(
            lambda: self._estep(Y, log_factorials, n_threads, want_hist, totals, share=team.share),
            lambda partials: _core.sum_mixture_stats(partials, C, D, K),
        )

    def _check_patches_for_estimate(self, patches):
        check_is_fitted(self)
        Y = self._to_counts(patches)
        check_n_features(self, Y.shape[1])
        return Y

    def estimate(self, patches, *, return_variance=False):
        """Posterior-mean estimate of every noise-free patch, in the input's grey units.

        Parameters
        ----------
        patches : array_like of shape (n_patches, n_features)
        return_variance : bool
            Also return the posterior variance of the noise-free intensity of every pixel.

        Returns
        -------
        estimates : ndarray of shape (n_patches, n_features)
        variance : ndarray of shape (n_patches, n_features), only with ``return_variance``
        """
        Y = self._check_patches_for_estimate(patches)
        n_threads = effective_n_threads(self.n_threads)
        est, var = _core.mixture_estimate(
            Y, self.W_, np.log(self.pi_), self._alpha_array(), 1.0, bool(return_variance), n_threads
        )
        gain, offset = self._check_gain_offset()
        if gain != 1.0 or offset != 0.0:
            est = est / gain + offset
            if var is not None:
                var /= gain * gain
        return (est, var) if return_variance else est

    def _estimate_volume(
        self, volume, patch, stats, positions, median_kind, n_threads, share=(0, 1), progress=None
    ):
        """Streamed estimate and merge of every patch of a (Z, R, Q) volume (ALGORITHM.md §2.6)."""
        check_n_features(self, int(np.prod(patch)))
        self._to_counts(volume.reshape(-1, volume.shape[-1]))  # negative / non-count checks
        gain, offset = self._check_gain_offset()
        alpha = self._alpha_array()
        return _core.mixture_estimate_volume(
            volume,
            patch,
            self.W_,
            np.log(self.pi_),
            alpha,
            1.0,
            offset,
            gain,
            stats,
            median_kind,
            n_threads,
            part=share[0],
            n_parts=share[1],
            progress=progress,
        )

    def _check_fitted_shapes(self):
        C, D = int(self.n_components), self.n_features_in_
        if np.shape(self.W_) != (C, D) or np.shape(self.pi_) != (C,):
            msg = f"W_ {np.shape(self.W_)} / pi_ {np.shape(self.pi_)} do not match C={C}, D={D}"
            raise ValueError(msg)
        if not (np.all(self.W_ > 0) and np.all(self.pi_ > 0)):
            msg = "W_ and pi_ must be positive"
            raise ValueError(msg)

    def _draw_components(self, n, rng):
        return rng.choice(len(self.pi_), size=n, p=self.pi_ / self.pi_.sum())

    def _sample_rates(self, components, rng):
        return self.W_[components]

    def sample(self, n_samples=1, random_state=None):
        """Draw patches from the learned generative model (counts, turned into grey values).

        PMM: c ~ pi, y_d ~ Poisson(W_cd); GPMM: c ~ pi, z ~ Gamma(alpha_c, 1),
        y_d ~ Poisson(z W_cd) (ALGORITHM.md §5.1, §6.1). Returned as ``y / gain + offset``.

        Parameters
        ----------
        n_samples : int
        random_state : None, int or numpy.random.Generator

        Returns
        -------
        ndarray of shape (n_samples, n_features)
        """
        check_is_fitted(self)
        n = check_int(n_samples, "n_samples", 1)
        rng = self._rng(random_state)
        counts = rng.poisson(self._sample_rates(self._draw_components(n, rng), rng)).astype(
            np.float64
        )
        gain, offset = self._check_gain_offset()
        return counts / gain + offset

    def predict_proba(self, patches) -> np.ndarray:
        """Posterior responsibilities r_nc of every component, shape (n_patches, n_components)."""
        Y = self._check_patches_for_estimate(patches)
        return _core.mixture_responsibilities(
            Y,
            self.W_,
            np.log(self.pi_),
            self._alpha_array(),
            1.0,
            effective_n_threads(self.n_threads),
        )

    def score(self, patches, y=None) -> float:
        """Mean log-likelihood per patch of the counts under the fitted model (``y`` ignored)."""
        Y = self._check_patches_for_estimate(patches)
        n_threads = effective_n_threads(self.n_threads)
        stats = self._estep(Y, _core.sum_log_factorials(Y, n_threads), n_threads)
        return stats["log_likelihood"] / Y.shape[0]


class PMM(_PoissonMixture):
    """Poisson mixture model of image patches (exact EM).

    Each patch y (D pixels, electron counts) comes from one of C components with Poisson rates
    ``W_[c]``: p(y | c) = prod_d Poisson(y_d; W_cd). The denoised patch is the posterior-mean rate
    sum_c r_nc W_c (Salwig, Drefs & Lücke, PLOS Comput. Biol. 2024; ALGORITHM.md §5).

    Parameters
    ----------
    n_components : int
        Number of mixture components C (must not exceed the number of patches).
    max_iter : int
        Number of EM epochs (full passes over all patches).
    tol : float, optional
        Stop early when the relative change of the log-likelihood per patch falls below this.
    gain, offset : float
        Grey values are turned into counts as ``(value - offset) * gain``; estimates are turned
        back. Negative counts are an error; non-integer counts give a warning.
    random_state : None, int or numpy.random.Generator
        Seed of the k-means++ initialisation.
    n_threads : int, optional
        Threads of the C++ kernels; results do not depend on it.
    verbose : bool
        Print the log-likelihood and time of every epoch.
    checkpoint, checkpoint_every, resume
        Periodic checkpoints and bit-identical resume, as for :class:`zse.SSSC`.
    comm : mpi4py communicator, optional
        Train on several MPI ranks (bit-identical results for any ranks and threads), as for
        :class:`zse.SSSC`.

    Attributes
    ----------
    W_ : ndarray of shape (n_components, n_features)
        Component rates in counts.
    pi_ : ndarray of shape (n_components,)
    log_likelihoods_ : list of float
        Log-likelihood per patch at the start of every epoch (before its M-step).
    free_energies_ : list of float
        The same values (the posterior is exact).
    epoch_seconds_ : list of float
        Wall-clock seconds of every epoch (E-step and M-step).
    n_iter_ : int
    converged_ : bool
        True when ``tol`` stopped the fit early.
    n_dead_components_ : int
        Components that received (almost) no responsibility in the last epoch.
    """

    def _init_params(self, Y, seeds):
        C = seeds.shape[0]
        self.W_ = np.maximum(seeds, self._w_floor_counts)
        self.pi_ = np.full(C, 1.0 / C)

    def _mstep(self, stats, N, n_threads):
        R = stats["R"]
        self._last_R = R
        alive = R > 0
        W = self.W_.copy()  # a component without responsibility keeps its rates
        W[alive] = stats["S"][alive] / R[alive, None]
        self.W_ = np.maximum(W, self._w_floor_counts)
        self.pi_ = np.maximum(R / N, _TINY)


class GPMM(_PoissonMixture):
    """Gamma-Poisson mixture model of image patches (exact EM, z integrated out).

    A patch comes from component c with a random brightness z ~ Gamma(alpha, beta=1):
    y_d | c, z ~ Poisson(z W_cd). Integrating z out gives a negative-multinomial likelihood with
    exact posteriors; the denoised patch is E[z W_c | y] (Monk, Savin & Lücke, Sci. Rep. 2018;
    ALGORITHM.md §6). beta is fixed to 1 because only the product z W is identifiable.

    Parameters
    ----------
    n_components : int
        Number of mixture components C.
    max_iter, tol, gain, offset, random_state, n_threads, verbose
        As for :class:`PMM`.
    checkpoint, checkpoint_every, resume, comm
        As for :class:`PMM`.
    learn_alpha : bool
        Learn the Gamma shape alpha by a bracketed root find of its profile equation
        (otherwise keep the initial value).
    class_alpha : bool
        One shape per component instead of a global one.
    alpha_init : float, optional
        Initial shape; default: a moment estimate from the patch totals.
    alpha_max : float
        Cap for alpha. The equation has no finite root when the patch totals are not
        over-dispersed within components; alpha is then set to the cap (the model becomes a PMM)
        and ``alpha_capped_`` reports it.

    Attributes
    ----------
    W_ : ndarray of shape (n_components, n_features)
    pi_ : ndarray of shape (n_components,)
    alpha_ : float, or ndarray of shape (n_components,) with ``class_alpha``
    alpha_capped_ : bool
    log_likelihoods_, free_energies_, epoch_seconds_, n_iter_, n_dead_components_
        As for :class:`PMM`.
    """

    _model_file_fields = {
        **_PoissonMixture._model_file_fields,
        "alpha_": "float_or_array",
        "alpha_capped_": "bool",
    }

    def __init__(
        self,
        n_components=256,
        *,
        max_iter=50,
        tol=None,
        learn_alpha=True,
        class_alpha=False,
        alpha_init=None,
        alpha_max=1e6,
        gain=1.0,
        offset=0.0,
        random_state=None,
        n_threads=None,
        verbose=False,
        checkpoint=None,
        checkpoint_every=10,
        resume=False,
        comm=None,
    ):
        super().__init__(
            n_components,
            max_iter=max_iter,
            tol=tol,
            gain=gain,
            offset=offset,
            random_state=random_state,
            n_threads=n_threads,
            verbose=verbose,
            checkpoint=checkpoint,
            checkpoint_every=checkpoint_every,
            resume=resume,
            comm=comm,
        )
        self.learn_alpha = learn_alpha
        self.class_alpha = class_alpha
        self.alpha_init = alpha_init
        self.alpha_max = alpha_max

    _ALPHA_MIN = 1e-6

    def _sample_rates(self, components, rng):
        alpha = np.broadcast_to(np.asarray(self.alpha_, dtype=np.float64), self.pi_.shape)
        z = rng.gamma(alpha[components], 1.0)
        return z[:, None] * self.W_[components]

    def _check_fitted_shapes(self):
        super()._check_fitted_shapes()
        alpha = np.asarray(self.alpha_, dtype=np.float64)
        if alpha.shape not in ((), (int(self.n_components),)) or not np.all(alpha > 0):
            msg = f"alpha_ must be a positive scalar or one per component, got shape {alpha.shape}"
            raise ValueError(msg)
        self.alpha_ = float(alpha) if alpha.ndim == 0 else alpha

    def _alpha_array(self):
        return np.broadcast_to(np.asarray(self.alpha_, dtype=np.float64), self.W_.shape[:1]).copy()

    def _init_params(self, Y, seeds):
        C = seeds.shape[0]
        if not (np.isfinite(self.alpha_max) and self.alpha_max > self._ALPHA_MIN):
            msg = f"alpha_max must be finite and > {self._ALPHA_MIN}, got {self.alpha_max!r}"
            raise ValueError(msg)
        totals = Y.sum(axis=1)
        if self.alpha_init is None:
            mean, var = totals.mean(), totals.var()
            alpha = mean * mean / max(var - mean, 1e-12 * mean)
        else:
            alpha = float(self.alpha_init)
            if not (np.isfinite(alpha) and alpha > 0):
                msg = f"alpha_init must be finite and > 0, got {self.alpha_init!r}"
                raise ValueError(msg)
        alpha = float(np.clip(alpha, 1e-3, self.alpha_max))
        self.alpha_ = np.full(C, alpha) if self.class_alpha else alpha
        self.alpha_capped_ = False
        self._totals = _core.index_totals(Y) if self.learn_alpha else None
        # W = m / E[z]: the seeds are patches, i.e. samples of z W.
        self.W_ = np.maximum(seeds / alpha, self._w_floor_counts / alpha)
        self.pi_ = np.full(C, 1.0 / C)

    def _histogram_request(self):
        # The per-class histogram of patch totals feeds the class-specific alpha update.
        want_hist = bool(self.learn_alpha and self.class_alpha)
        return want_hist, self._totals if want_hist else None

    def _mstep(self, stats, N, n_threads):
        R, T, S = stats["R"], stats["T"], stats["S"]
        self._last_R = R
        alive = R > 0
        if self.learn_alpha:
            values = self._totals.values
            if self.class_alpha:
                hist = stats["hist"]
                alpha = np.array(self.alpha_, dtype=np.float64)
                capped = np.zeros(len(R), dtype=bool)
                for c in np.flatnonzero(alive):  # one 1-D root find per component
                    alpha[c], capped[c] = _core.solve_alpha(
                        values,
                        np.ascontiguousarray(hist[c]),
                        R[c : c + 1].copy(),
                        T[c : c + 1].copy(),
                        self._ALPHA_MIN,
                        float(self.alpha_max),
                    )
                self.alpha_ = alpha
                self.alpha_capped_ = bool(capped.any())
            else:
                self.alpha_, self.alpha_capped_ = _core.solve_alpha(
                    values, self._totals.counts, R, T, self._ALPHA_MIN, float(self.alpha_max)
                )
        alpha = np.asarray(self.alpha_, dtype=np.float64)
        alpha_c = np.broadcast_to(alpha, R.shape)
        W = self.W_.copy()
        # Closed-form W for the profile alpha (§6.5):
        # W_c = (beta / alpha_c) * (weighted mean patch).
        W[alive] = S[alive] / (R[alive] * alpha_c[alive])[:, None]
        self.W_ = np.maximum(W, (self._w_floor_counts / alpha_c)[:, None])
        self.pi_ = np.maximum(R / N, _TINY)

    def _finish(self, Y):
        super()._finish(Y)
        self._totals = None

    def fit(self, patches, y=None, *, progress=None):
        super().fit(patches, y, progress=progress)
        if self.alpha_capped_:
            warnings.warn(
                f"GPMM: alpha reached its cap alpha_max={self.alpha_max:g}: the patch totals are "
                "not over-dispersed within components, so the model behaves like a PMM",
                UserWarning,
                stacklevel=2,
            )
        return self
