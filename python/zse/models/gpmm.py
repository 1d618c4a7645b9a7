"""The Gamma-Poisson mixture GPMM: a PMM whose components have a random brightness."""

from __future__ import annotations

import warnings

import numpy as np

from .. import _core
from .mixtures import _TINY, MIXTURE_PARAMETERS, _PoissonMixture
from .params import Flag, Param, Real

ALPHA_MIN = 1e-6

GPMM_PARAMETERS = (
    MIXTURE_PARAMETERS[0],
    Param(
        "learn_alpha",
        True,
        Flag(),
        "learn the Gamma shape alpha",
        doc="By a bracketed root find of its profile equation (otherwise the initial value is "
        "kept).",
    ),
    Param("class_alpha", False, Flag(), "one Gamma shape per component instead of a global one"),
    Param(
        "alpha_init",
        None,
        Real(0.0, low_open=True, none_ok=True),
        "initial Gamma shape",
        default_text="a moment estimate from the patch totals",
    ),
    Param(
        "alpha_max",
        1e6,
        Real(ALPHA_MIN, low_open=True),
        "cap of the Gamma shape",
        doc="The equation has no finite root when the patch totals are not over-dispersed "
        "within components; alpha is then set to the cap (the model becomes a PMM) and "
        "alpha_capped_ reports it.",
    ),
    *MIXTURE_PARAMETERS[1:],
)


class GPMM(_PoissonMixture):
    """Gamma-Poisson mixture model of image patches (exact EM, z integrated out).

    A patch comes from component c with a random brightness z ~ Gamma(alpha, beta=1):
    y_d | c, z ~ Poisson(z W_cd). Integrating z out gives a negative-multinomial likelihood with
    exact posteriors; the denoised patch is E[z W_c | y] (Monk, Savin & Lücke, Sci. Rep. 2018;
    ALGORITHM.md §6). beta is fixed to 1 because only the product z W is identifiable.

    Parameters
    ----------
    <parameters>

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

    parameters = GPMM_PARAMETERS

    _ALPHA_MIN = ALPHA_MIN

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

    def _alpha_summary(self):
        return np.asarray(self.alpha_).tolist()

    def _alpha_array(self):
        return np.broadcast_to(np.asarray(self.alpha_, dtype=np.float64), self.W_.shape[:1]).copy()

    def _init_params(self, Y, seeds):
        C = seeds.shape[0]
        totals = Y.sum(axis=1)
        if self.alpha_init is None:
            mean, var = totals.mean(), totals.var()
            alpha = mean * mean / max(var - mean, 1e-12 * mean)
        else:
            alpha = float(self.alpha_init)
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

    def fit(self, patches, y=None, *, progress=None, patch_shape=None):
        super().fit(patches, y, progress=progress, patch_shape=patch_shape)
        if self.alpha_capped_:
            warnings.warn(
                f"GPMM: alpha reached its cap alpha_max={self.alpha_max:g}: the patch totals are "
                "not over-dispersed within components, so the model behaves like a PMM",
                UserWarning,
                stacklevel=2,
            )
        return self
