"""Poisson mixtures for count-limited images: PMM and the Gamma-Poisson mixture GPMM.

Both models have exact posteriors over their C components; all N x C log-joints are computed by
the C++ core in cache-sized blocks (ALGORITHM.md §5-§6). Python only runs the epoch loop and the
small M-step arithmetic on C x D arrays.
"""

from __future__ import annotations

import warnings

import numpy as np

from .. import _core
from .._threads import effective_n_threads
from .._validation import as_patches, check_int
from .base import check_is_fitted, check_n_features, fingerprint
from .checkpoints import CheckpointError
from .em import EMEstimator, em_parameters
from .groups import group_parameters, group_window, nonlocal_estimate
from .params import Int, Param, Real

_TINY = np.finfo(np.float64).tiny

MIXTURE_PARAMETERS = (
    Param(
        "n_components",
        256,
        Int(1),
        "mixture components C",
        doc="Must not exceed the number of patches.",
        positional=True,
    ),
    Param(
        "gain",
        1.0,
        Real(0.0, low_open=True),
        "counts per grey level",
        doc="Grey values are turned into counts as (value - offset) * gain; estimates are turned "
        "back. Negative counts are an error; non-integer counts give a warning. On the command "
        "line it also serves the count test of --model auto.",
        estimation=True,
    ),
    Param(
        "offset",
        0.0,
        Real(),
        "detector dark level in grey values",
        estimation=True,
    ),
    *group_parameters("one mixture component"),
    *em_parameters(
        max_iter=50,
        tol_help="stop early when the relative change of the log-likelihood per patch falls "
        "below tol",
        verbose_help="print the log-likelihood and time of every epoch",
    ),
)


class _PoissonMixture(EMEstimator):
    """Shared fit/estimate/score of PMM and GPMM; subclasses define the M-step.

    The Poisson models work in counts, so the scale of the data is information, not a unit:
    grey values must be converted with ``gain``/``offset``. Non-integer data below 1 everywhere
    cannot be counts and are refused; other non-integer data give a warning.
    """

    provides_variance = True
    _model_file_fields = {
        **EMEstimator._model_file_fields,
        "W_": "array",
        "pi_": "array",
        "log_likelihoods_": "floats",
        "n_dead_components_": "count",
    }

    # -- conversion between grey values and counts -------------------------------------------
    def _check_gain_offset(self):
        values = self._check_params()
        return float(values["gain"]), float(values["offset"])

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
        if "alpha_" in vars(self):
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

    def _kernel_model(self):
        """The parameters as the kernels take them (beta = 1: only z W is identifiable)."""
        return _core.MixtureModel(self.W_, np.log(self.pi_), self._alpha_array(), 1.0)

    def _estep(self, Y, log_factorials, n_threads, want_hist=False, totals=None, share=None):
        return _core.mixture_estep(
            Y, self._kernel_model(), log_factorials, totals, want_hist, n_threads, share=share
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
        est, var = _core.mixture_estimate(Y, self._kernel_model(), bool(return_variance), n_threads)
        gain, offset = self._check_gain_offset()
        if gain != 1.0 or offset != 0.0:
            est = est / gain + offset
            if var is not None:
                var /= gain * gain
        return (est, var) if return_variance else est

    def _stream_volume(self, volume, patch, positions, n_threads, stream):
        """Streamed estimate and merge of every patch of a (Z, R, Q) volume (ALGORITHM.md §2.6)."""
        check_n_features(self, int(np.prod(patch)))
        self._to_counts(volume.reshape(-1, volume.shape[-1]))  # negative / non-count checks
        gain, offset = self._check_gain_offset()
        arguments = (volume, patch, self._kernel_model(), offset, gain)
        if int(self.group_size) == 1:
            return _core.mixture_estimate_volume(*arguments, stream, n_threads)

        def first_pass(request):
            return _core.mixture_estimate_volume(*arguments, request, n_threads)

        def second_pass(request, guide):
            return _core.mixture_estimate_volume(
                *arguments,
                request,
                n_threads,
                group_size=int(self.group_size),
                group_window=group_window(self, patch),
                group_disjoint=self.group_members == "disjoint",
                guide=guide,
            )

        return nonlocal_estimate(self, volume, stream, first_pass, second_pass)

    def extra_images(self) -> int:
        return 1 if int(self.group_size) > 1 else 0  # the nonlocal estimate's guide

    def _check_fitted_shapes(self):
        C, D = int(self.n_components), self.n_features_in_
        if np.shape(self.W_) != (C, D) or np.shape(self.pi_) != (C,):
            msg = f"W_ {np.shape(self.W_)} / pi_ {np.shape(self.pi_)} do not match C={C}, D={D}"
            raise ValueError(msg)
        if not (np.all(self.W_ > 0) and np.all(self.pi_ > 0)):
            msg = "W_ and pi_ must be positive"
            raise ValueError(msg)

    def summary(self) -> dict:
        summary = super().summary()
        if "pi_" in vars(self):
            weights = np.sort(np.asarray(self.pi_))[::-1]
            summary["mixture"] = {
                "n_components": int(len(weights)),
                "largest_weights": [float(w) for w in weights[:5]],
                "n_dead_components": int(vars(self).get("n_dead_components_", 0)),
                "alpha": self._alpha_summary(),
            }
        return summary

    def _alpha_summary(self):
        return None

    def fields_image(self):
        """The component means W_, heaviest first, each from its minimum to its maximum."""
        check_is_fitted(self)
        order = np.argsort(-np.asarray(self.pi_), kind="stable")
        return np.asarray(self.W_, dtype=np.float64)[order], "range"

    def memory_parts(self, n_train: int, n_features: int) -> dict:
        return {"mixture blocks": 8 * int(self.n_components) * n_features * 4}

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
            Y, self._kernel_model(), effective_n_threads(self.n_threads)
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
    <parameters>

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

    parameters = MIXTURE_PARAMETERS

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
