"""Spike-and-slab sparse coding trained by evolutionary truncated variational EM (ES3C).

The C++ core evolves every patch's set of S latent states, computes truncated posteriors with a
per-state cache in the k x k form, accumulates the sufficient statistics and performs the M-step
(ALGORITHM.md §3-§4). Python runs the epoch loop only.
"""

from __future__ import annotations

import numpy as np

from .. import _core
from .._scaling import data_scaling
from .._threads import effective_n_threads
from .._validation import as_patches, check_int
from . import sssc_init, sssc_noise
from .base import check_is_fitted, check_n_features, fingerprint
from .em import EMEstimator
from .sssc_estimate import (
    draw_samples,
    search_options,
    states_for,
    stream_volume,
    variance_unit,
)
from .sssc_noise import (
    describe_noise,
    initial_noise,
    initial_transform,
    log_slope_per_patch,
    noise_after_load,
    noise_epoch,
    noise_summary,
    set_noise,
    transform_of,
    untransformed,
)
from .sssc_parameters import (
    SSSC_PARAMETERS,
    check_learned_shapes,
    check_relations,
    estimation_states,
    lowered_defaults,
)
from .sssc_state import load_state_arrays, state_arrays

# Epochs over which the stopping rule averages the free-energy gain (ES3C's free energy moves in
# small steps and occasionally dips when a search replaces states).
TOL_WINDOW = 5


class SSSC(EMEstimator):
    """Spike-and-slab sparse coding of image patches, trained by evolutionary EM (ES3C).

    A patch y (D pixels) is generated as y = b + W (s * z) + noise with binary
    s_h ~ Bernoulli(pi_h),
    Gaussian slabs z ~ N(mu, Psi) and white noise of variance sigma2, all learned from the noisy
    patches themselves (the noise level is never given). Each patch keeps a set of S latent
    states that an evolutionary search improves every epoch; the posterior is truncated to that
    set (Drefs, Guiraud & Lücke, JMLR 2022; ALGORITHM.md §3-§4).

    The model has a learned bias b (a mean patch): y = b + W (s * z) + noise. The kernels work
    on standardised patches (a low quantile subtracted, divided by the standard deviation), so
    results do not depend on the data's units: fitting ``a * Y + c`` (a > 0) gives estimates
    ``a * estimate(Y) + c`` and variances ``a**2 * variance`` (ALGORITHM.md §3.10). The learned
    parameters are reported in the data's units.

    Parameters
    ----------
    <parameters>

    Attributes
    ----------
    W_ : ndarray of shape (n_features, H)
        Generative fields, in the data's units.
    pi_, mu_ : ndarray of shape (H,)
    Psi_ : ndarray of shape (H, H)
        Prior of the slabs z (unitless: W_ carries the units).
    sigma2_ : float
        Noise variance, in the data's units squared.
    bias_ : ndarray of shape (n_features,)
        The learned bias b (the patch that all-off states generate), in the data's units.
    data_offset_, data_scale_ : float
        The 0.1 % quantile and the standard deviation of the training patches' values, used to
        standardise them.
    free_energies_ : list of float
        Truncated free energy per patch at every epoch, as a density in the data's units
        (computed with the parameters before that epoch's M-step, after the state search).
    epoch_seconds_ : list of float
        Wall-clock seconds of every epoch (E-step, state search and M-step).
    n_iter_ : int
    converged_ : bool
        True when ``tol`` stopped the fit before ``max_iter``.
    n_dead_units_ : int
        Units that received no posterior mass in the last M-step (their fields were kept).
    K_ : ndarray of shape (n_patches, n_states, words), uint64
        The training patches' final state sets (packed bits).
    noise_model_ : {"white", "correlated"}
        The noise's correlation model the fit used (``noise``; ALGORITHM.md §3.14).
    noise_covariance_ : ndarray of shape (n_features, n_features)
        The learned noise covariance over a patch, sigma2_ C (sigma2_ I for white noise).
    noise_evidence_ : dict
        Why ``noise="auto"`` chose what it chose (the measured correlation; under
        ``"signal_dependence"`` the noise-level function and, when it was applied, the Anscombe
        transform's alpha, offset and s2; §3.15). With the transform, W_, bias_, sigma2_ and
        noise_covariance_ are in the transformed units.

    Examples
    --------
    >>> import numpy as np, zse
    >>> rng = np.random.default_rng(0)
    >>> clean = np.kron(rng.uniform(0, 100, (8, 8)), np.ones((6, 6)))
    >>> patches = zse.extract_patches(clean + rng.normal(0, 10, clean.shape), 4)
    >>> model = zse.SSSC(H=8, n_states=8, n_parents=4, max_iter=5, random_state=0)
    >>> model.fit(patches).W_.shape, model.estimate(patches).shape
    ((16, 8), (2025, 16))
    >>> bool(np.all(np.diff(model.free_energies_[1:]) > -1.0))  # it climbs (ES3C may dip a little)
    True
    """

    parameters = SSSC_PARAMETERS
    provides_variance = True
    # What a model file holds (zse.models.files); K_ belongs to the training image and is not saved.
    _model_file_fields = {
        **EMEstimator._model_file_fields,
        "W_": "array",
        "pi_": "array",
        "mu_": "array",
        "Psi_": "array",
        "bias_": "array",
        "sigma2_": "float",
        "data_offset_": "float",
        "data_scale_": "float",
        "n_dead_units_": "count",
        "_W_std": "array",
        "_sigma2_std": "float",
        "_bias_std": "array",
        "_noise_corr": "array",
        "_gat": "array",
    }

    # Training patches of ``zse.reconstruct(..., n_train="auto")``: more epochs on fewer
    # patches beat fewer epochs on all of them in equal time (bench/README.md, "ES3C quality").
    auto_train_size = 16384

    # -- checks and initialisation -----------------------------------------------------------
    def _check_relations(self, values):
        check_relations(values)

    def _search_shape(self, estimation=False):
        """H, S (the states kept per patch in training, or with ``estimation`` while
        estimating) and the initial states' unit probability, after checking every parameter."""
        values = self._check_params()
        H = values["H"]
        p_init = 1.0 / H if values["p_init"] is None else float(values["p_init"])
        S = estimation_states(values) if estimation else values["n_states"]
        return H, S, p_init

    @classmethod
    def fitting_defaults(cls, given: dict) -> list[tuple]:
        """Defaults a small H or S cannot take, lowered (see
        ``zse.models.sssc_parameters.lowered_defaults``)."""
        return lowered_defaults(given)

    def _estep(
        self,
        Y,
        K,
        epoch,
        *,
        evolve=True,
        n_sweeps=1,
        want_stats=False,
        want_estimates=False,
        want_variance=False,
        want_lpj=False,
        n_threads=1,
        share=None,
        estimation=False,
    ):
        """The C++ E-step on standardised patches with the standardised parameters;
        ``estimation``: searched as estimates are (``estimation_search``), else as in training."""
        request = _core.EStepRequest(
            seed=self._seed,
            epoch=epoch,
            evolve=evolve,
            n_sweeps=n_sweeps,
            want_stats=want_stats,
            want_estimates=want_estimates,
            want_variance=want_variance,
            want_lpj=want_lpj,
        )
        return _core.sssc_estep(
            Y,
            self._kernel_model(),
            K,
            search_options(self, estimation),
            request,
            n_threads,
            share=share,
        )

    def _fields_out(self):
        """The fields in the data's coordinates, W_o = L W (W itself for white noise; §3.14)."""
        return self._W_std if self._noise_L is None else self._noise_L @ self._W_std

    def _kernel_model(self, *, with_bias=False):
        """The standardised parameters as the kernels take them; ``with_bias``: with the map
        between the data's units and the standardised ones (the streamed estimate)."""
        extra = {}
        if with_bias:
            extra = {"bias": np.ascontiguousarray(self.bias_), "scale": float(self.data_scale_)}
        if transform_of(self) is not None:
            extra["gat"] = np.ascontiguousarray(self._gat)
        if self._noise_L is not None:
            # Coloured noise (ALGORITHM.md §3.14): the kernels see whitened patches and fields;
            # estimates and variances come out with the fields in the data's coordinates.
            extra["W_out"] = np.ascontiguousarray(self._fields_out())
            if with_bias:
                extra["whiten"] = self._noise_L
        return _core.SSSCModel(
            self._W_std, self.pi_, self.mu_, self.Psi_, float(self._sigma2_std), **extra
        )

    def _training_stats(self, work, epoch, n_threads):
        """The statistics of one training E-step: here, or summed over the MPI ranks' chunk
        partials in chunk order (bit-identical, ALGORITHM.md §7.2)."""
        team = self._team
        if team is None:
            return self._estep(work, self._K, epoch, want_stats=True, n_threads=n_threads)["stats"]
        H, D = self._W_std.shape[1], self._W_std.shape[0]
        return team.sum_chunk_partials(
            lambda: self._estep(
                work, self._K, epoch, want_stats=True, n_threads=n_threads, share=team.share
            )["chunk_stats"],
            lambda partials: _core.sum_sssc_stats(partials, H, D),
        )

    def _full_state_sets(self):
        """Every training patch's state set; under MPI each rank holds its own chunks' only."""
        team = self._team
        if team is None:
            return self._K
        begin, end = _core.chunk_share_patches("sssc", self._K.shape[0], *team.share)
        return team.allgather_rows(self._K, begin, end)

    # -- EM hooks (see EMEstimator) ------------------------------------------------------------
    def _fit_data(self, patches):
        Y = as_patches(patches)
        self._train_fingerprint = fingerprint(Y)
        # Signal-dependent noise (ALGORITHM.md §3.15): the model works on the generalized
        # Anscombe transform of the data when the evidence (or noise="poisson-gaussian") says so.
        transform, self._signal_evidence = initial_transform(
            Y, self.noise, vars(self).get("_fit_patch_shape")
        )
        self._gat = np.zeros(3) if transform is None else transform.parameters
        self._fit_scaling = data_scaling(Y if transform is None else transform.forward(Y))
        self._fit_log_slope = log_slope_per_patch(self, Y)
        return Y

    def _initialise(self, Y, seed, n_threads):
        H, S, p_init = self._search_shape()
        self.data_offset_, self.data_scale_ = self._fit_scaling
        self._bias_std = np.zeros(Y.shape[1])
        set_noise(self, None)
        self._work = self._centred(Y)  # the patches the kernels see, refreshed every epoch
        self._column_means = self._work.mean(axis=0)
        # The noise model (ALGORITHM.md §3.14): white, or a stationary correlation whose first
        # estimate comes from the flattest patches; the kernels then see whitened patches.
        noise, self.noise_evidence_ = initial_noise(
            self._work, self.noise, vars(self).get("_fit_patch_shape"), int(self.noise_support)
        )
        self.noise_evidence_["signal_dependence"] = self._signal_evidence
        if noise is not None:
            set_noise(self, noise)
            self._work = self._centred(Y)
        rng = np.random.default_rng(seed)
        if self.init == "patches":
            params, mean = sssc_init.data_driven(self._work, H, rng)
            # The bias starts at the mean patch; _column_means stay those of the bias-free
            # patches, which the bias M-step needs (ALGORITHM.md §3.10).
            self._bias_std = mean if self._noise_L is None else self._noise_L @ mean
            self._work = self._centred(Y)
        else:
            params = sssc_init.evo_standard(self._work, H, rng)
        self._W_std, self.pi_, self.mu_ = params["W"], params["pi"], params["mu"]
        self.Psi_, self._sigma2_std = params["Psi"], params["sigma2"]
        if self._noise is not None and self.noise_update == "first":
            self._sigma2_std = self._noise.variance
        self.n_dead_units_ = 0
        self._K = _core.sssc_init_states(Y.shape[0], S, H, p_init, seed, n_threads)

    def _centred(self, Y, out=None):
        """(Y - bias) / data_scale_, with the bias in the data's units (ALGORITHM.md §3.10).

        Computed afresh from Y (not updated in place) so that a resumed fit sees the same bits.
        """
        bias = self.data_offset_ + self.data_scale_ * self._bias_std
        transform = transform_of(self)
        out = np.subtract(Y if transform is None else transform.forward(Y), bias, out=out)
        out /= self.data_scale_
        if self._noise_L is not None:
            out[...] = np.linalg.solve(self._noise_L, out.T).T
        return out

    def _em_epoch(self, Y, epoch, n_threads):
        N = Y.shape[0]
        work = self._centred(Y, out=self._work)
        stats = self._training_stats(work, epoch, n_threads)
        free_energy = stats.log_joint_sum / N - self._log_scale_per_patch() + self._fit_log_slope
        update = _core.sssc_mstep(stats, N, self._kernel_model(), self.updates == "exact")
        self._W_std, self.pi_, self.mu_ = update["W"], update["pi"], update["mu"]
        self.Psi_, self._sigma2_std = update["Psi"], update["sigma2"]
        self.n_dead_units_ = update["n_dead_units"]
        # Conditional M-step of the bias: b = mean_n (y_n - W_o <s z>_n), exact given q and the
        # new W, so the free energy cannot decrease (ALGORITHM.md §3.10); W_o = L W (§3.14).
        a = np.asarray(stats.a_sz) / N
        old_bias = self._bias_std
        W_out = self._fields_out()
        self._bias_std = self._column_means - W_out @ a
        if self._noise is not None:
            noise_epoch(self, stats, N, work, self._column_means - old_bias - W_out @ a, W_out)
        if stats.n_invalid:
            self._log(f"{stats.n_invalid} state(s) had a non-positive-definite covariance")
        sigma = np.sqrt(self._sigma2_std) * self.data_scale_
        return free_energy, (
            f"F/N {free_energy:.4f}  sigma {sigma:.4g}  "
            f"new states/patch {stats.n_new_states / N:.2f}  "
            f"replaced/patch {stats.n_replaced / N:.2f}"
        )

    def _converged(self, objectives) -> bool:
        # A difference of free energies per patch does not depend on the data's units (the
        # -D log a of ALGORITHM.md §3.10 cancels); per pixel and epoch it is comparable across
        # patch sizes.
        if self.tol is None or len(objectives) <= TOL_WINDOW:
            return False
        gain = (objectives[-1] - objectives[-1 - TOL_WINDOW]) / TOL_WINDOW
        return gain / self._W_std.shape[0] < float(self.tol)

    def _log_scale_per_patch(self) -> float:
        # A density in the data's units: log p(a y) = log p(y) - D log a (ALGORITHM.md §3.10),
        # and of the unwhitened patches: log p(y) = log p(L^-1 y) - log det L (§3.14).
        return self._W_std.shape[0] * float(np.log(self.data_scale_)) + self._noise_log_det

    def _state_arrays(self):
        return state_arrays(self)

    def _load_state_arrays(self, arrays):
        load_state_arrays(self, arrays)

    def _finish(self, Y):
        # The learned parameters in the data's units; the kernels keep the standardised ones
        # (at extreme scales sigma2_ may under- or overflow, the standardised values do not).
        W_out = self._fields_out()
        self.W_ = W_out * self.data_scale_
        self.bias_ = self.data_offset_ + self.data_scale_ * self._bias_std
        self.sigma2_ = float(np.float64(self._sigma2_std) * variance_unit(self))
        describe_noise(self)
        self.K_ = self._full_state_sets()
        del self._K, self._work, self._column_means
        self.n_features_in_ = Y.shape[1]
        if self.n_dead_units_:
            self._log(f"{self.n_dead_units_} unit(s) were never active in the last epoch")

    def _check_fitted_shapes(self):
        check_learned_shapes(self)

    def _after_load(self):
        super()._after_load()
        noise_after_load(self)
        words = (int(self.H) + 63) // 64
        self.K_ = np.zeros((0, int(self.n_states), words), dtype=np.uint64)

    # -- public API ----------------------------------------------------------------------------
    def summary(self) -> dict:
        summary = super().summary()
        if "sigma2_" in vars(self):
            summary["learned_sigma"] = float(np.sqrt(self.sigma2_))
            summary["n_dead_units"] = int(self.n_dead_units_)
            summary["noise"] = noise_summary(self)
        return summary

    def fields_image(self):
        """The columns of W_, most probable unit first, each shown symmetric about zero."""
        check_is_fitted(self)
        order = np.argsort(-np.asarray(self.pi_), kind="stable")
        return np.asarray(self.W_, dtype=np.float64).T[order], "symmetric"

    def noise_description(self):
        """The learned noise: its autocovariance and noise-level function (§3.14-§3.15)."""
        return sssc_noise.noise_description(self)

    def memory_parts(self, n_train: int, n_features: int) -> dict:
        H, S = int(self.H), int(self.n_states)
        return {"training state sets": 8 * n_train * S * ((H + 63) // 64)}

    def extra_images(self) -> int:
        # The nonlocal estimate's guide and every patch's log-evidence (n_patches <= voxels).
        return 2 if int(self.group_size) > 1 else 0

    def sample(self, n_samples=1, random_state=None):
        """Draw patches from the learned generative model (ALGORITHM.md §3.1).

        s_h ~ Bernoulli(pi_h), z ~ N(mu, Psi), y = bias + W (s * z) + eps with
        eps ~ N(0, noise_covariance_) (sigma2 I for white noise).

        Parameters
        ----------
        n_samples : int
        random_state : None, int or numpy.random.Generator

        Returns
        -------
        ndarray of shape (n_samples, n_features)
            In the data's units.
        """
        check_is_fitted(self)
        return draw_samples(self, check_int(n_samples, "n_samples", 1), self._rng(random_state))

    def _prepare(self, patches):
        check_is_fitted(self)
        Y = as_patches(patches)
        check_n_features(self, Y.shape[1])
        return Y

    def estimate(self, patches, *, return_variance=False):
        """Posterior-mean estimate W <s z> of every noise-free patch (ALGORITHM.md §3.8).

        Every patch keeps ``n_estimate_states`` states: the training patches the best of their
        learned sets under the final parameters, refined by one more sweep of the estimation
        search; other patches get ``n_estimate_sweeps`` sweeps from fresh states.

        Parameters
        ----------
        patches : array_like of shape (n_patches, n_features)
        return_variance : bool
            Also return the posterior variance of every noise-free pixel (sigma2 not included).

        Returns
        -------
        estimates : ndarray of shape (n_patches, n_features)
            In the data's units.
        variance : ndarray of shape (n_patches, n_features), only with ``return_variance``
            In the data's units squared.
        """
        Y = self._prepare(patches)
        n_threads = effective_n_threads(self.n_threads)
        K, sweeps = states_for(self, Y, n_threads, estimation=True)
        out = self._estep(
            self._centred(Y),
            K,
            10**9,
            n_sweeps=sweeps,
            want_estimates=True,
            want_variance=bool(return_variance),
            n_threads=n_threads,
            estimation=True,
        )
        estimates = out["estimates"]
        estimates *= self.data_scale_
        estimates += self.bias_
        variance = out["variance"] * variance_unit(self) if return_variance else None
        estimates, variance = untransformed(self, estimates, variance)
        return (estimates, variance) if return_variance else estimates

    def score(self, patches, y=None) -> float:
        """Truncated free energy per patch (a lower bound of the log-likelihood per patch).

        A density in the data's units, comparable with ``free_energies_``; ``y`` is ignored.
        """
        Y = self._prepare(patches)
        n_threads = effective_n_threads(self.n_threads)
        K, sweeps = states_for(self, Y, n_threads)
        stats = self._estep(
            self._centred(Y), K, 10**9, n_sweeps=sweeps, n_threads=n_threads, estimation=True
        )["stats"]
        return (
            stats.log_joint_sum / Y.shape[0]
            - self._log_scale_per_patch()
            + log_slope_per_patch(self, Y)
        )

    def _stream_volume(self, volume, patch, positions, n_threads, stream):
        return stream_volume(self, volume, patch, positions, n_threads, stream)
