"""Patch models that plug into :func:`zse.reconstruct`.

A model is any object with ``fit(patches)`` (returning itself) and ``estimate(patches)``
(posterior-mean estimate of every patch, same shape). Models that can also return a predictive
variance accept ``estimate(patches, return_variance=True)`` and return ``(mean, variance)``.
"""

from __future__ import annotations

from . import _core
from ._base import BaseEstimator, check_is_fitted, check_n_features
from ._validation import as_patches


class Identity(BaseEstimator):
    """The trivial model whose estimate of a patch is the patch itself.

    Useful to test the patch/merge pipeline: ``reconstruct(img, Identity())`` returns the input
    as ``"mean"`` and ``"median"`` and zero ``"var"``. It does not denoise.

    Attributes
    ----------
    n_features_in_ : int
        Patch dimension D seen in ``fit``.
    """

    def __init__(self):
        pass

    _model_file_fields = {"n_features_in_": "count"}

    def _after_load(self):
        self.n_features_in_ = int(self.n_features_in_)

    def fit(self, patches, y=None, *, progress=None):
        """Record the patch dimension; returns ``self``."""
        patches = as_patches(patches)
        self.n_features_in_ = patches.shape[1]
        return self

    def estimate(self, patches, *, return_variance=False):
        """Return a float64 copy of ``patches``."""
        check_is_fitted(self)
        if return_variance:
            msg = "Identity provides no predictive variance"
            raise ValueError(msg)
        patches = as_patches(patches)
        check_n_features(self, patches.shape[1])
        return patches.copy()

    def _estimate_volume(
        self, volume, patch, stats, positions, median_kind, n_threads, share=(0, 1), progress=None
    ):
        """Streamed merge of every patch of a (Z, R, Q) volume: the input's statistics."""
        check_is_fitted(self)
        return _core.identity_estimate_volume(
            volume,
            patch,
            stats,
            median_kind,
            n_threads,
            part=share[0],
            n_parts=share[1],
            progress=progress,
        )


def _registry():
    from .mixtures import GPMM, PMM
    from .sssc import SSSC

    return {"identity": Identity, "sssc": SSSC, "pmm": PMM, "gpmm": GPMM}


MODELS = ("identity", "sssc", "pmm", "gpmm")
DEFAULT_MODEL = "sssc"
# model="auto": the Poisson model with the higher PSNR on both count tables of bench/RESULTS.md
# (Poisson table 20.67 vs 20.55 dB, FMD pair 37.09 vs 36.83 dB); SSSC for anything else.
COUNTS_MODEL = "gpmm"


def choose_model(data, *, counts=None, gain=None, offset=None) -> tuple[str, dict]:
    """The model ``model="auto"`` picks for ``data``, and the evidence it picked it on.

    The command line (``--model auto``) and :func:`zse.reconstruct` (``model="auto"``) both
    decide here: :data:`COUNTS_MODEL` (GPMM) when ``(data - offset) * gain`` holds electron
    counts by :func:`zse.counts.count_evidence` (or ``counts=True``), else SSSC.

    Returns
    -------
    name : str
        ``"gpmm"`` or ``"sssc"``.
    evidence : dict
        ``counts`` (bool), ``reason`` (a sentence) and, when tested, the measured statistics.
    """
    from .counts import count_evidence

    if counts is not None:
        reason = "--counts given" if counts else "--no-counts given"
        evidence = {"counts": bool(counts), "reason": reason}
    else:
        evidence = count_evidence(
            data,
            gain=1.0 if gain is None else gain,
            offset=0.0 if offset is None else offset,
        )
    return (COUNTS_MODEL if evidence["counts"] else "sssc"), evidence


def make_model(name: str, *, options=None, **common):
    """Instantiate a registered model by its command-line name.

    ``common`` (random_state, n_threads, verbose) go to the models that have them; every entry of
    ``options`` must be a parameter of the chosen model, so nothing the user asked for is dropped.
    None values keep the model's defaults.
    """
    try:
        cls = _registry()[name.lower()]
    except KeyError:
        msg = f"unknown model {name!r}; expected one of " + ", ".join(MODELS)
        raise ValueError(msg) from None
    accepted = set(cls._param_names())
    options = {k: v for k, v in (options or {}).items() if v is not None}
    unknown = sorted(set(options) - accepted)
    if unknown:
        names = ", ".join("--" + u.replace("_", "-") for u in unknown)
        msg = f"{names} does not apply to model {name!r}"
        raise ValueError(msg)
    params = {k: v for k, v in common.items() if k in accepted and v is not None}
    params.update(options)
    return cls(**params)


def supports_variance(model) -> bool:
    return bool(getattr(model, "_provides_variance", False))


__all__ = ["Identity", "MODELS", "DEFAULT_MODEL", "COUNTS_MODEL", "choose_model", "make_model"]
