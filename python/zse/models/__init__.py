"""The patch models and their one registry.

A model is any object with ``fit(patches)`` (returning itself) and ``estimate(patches)``
(posterior-mean estimate of every patch, same shape); zse's own models (:class:`SSSC`,
:class:`PMM`, :class:`GPMM`, :class:`Identity`) declare their parameters once in a table
(:mod:`zse.models.params`) and answer the pipeline's questions through methods
(:class:`zse.models.base.BaseEstimator`).
"""

from __future__ import annotations

import numpy as np

from .base import AUTO_TRAIN_MAX, BaseEstimator, NotFittedError, as_model, is_fitted
from .checkpoints import CheckpointError
from .gpmm import GPMM
from .identity import Identity
from .mixtures import PMM
from .sssc import SSSC

# Command-line name -> class: the one registry (model files name the class).
REGISTRY = {"identity": Identity, "sssc": SSSC, "pmm": PMM, "gpmm": GPMM}
MODELS = tuple(REGISTRY)

DEFAULT_MODEL = "sssc"
# model="auto": the Poisson model with the higher PSNR on both count tables of bench/RESULTS.md
# (Poisson table 20.67 vs 20.55 dB, FMD pair 37.09 vs 36.83 dB); SSSC for anything else.
COUNTS_MODEL = "gpmm"


def choose_model(data, *, counts=None, gain=None, offset=None) -> tuple[str, dict]:
    """The model ``model="auto"`` picks for ``data``, and the evidence it picked it on.

    The command line (``--model auto``) and :func:`zse.reconstruct` (``model="auto"``) both
    decide here: ``COUNTS_MODEL`` (GPMM) when ``(data - offset) * gain`` holds electron
    counts by :func:`zse.counts.count_evidence` (or ``counts=True``), else SSSC. Of a stack or
    volume (3-D ``data``) the sections :func:`zse.counts.count_test_sections` names are tested.

    Returns
    -------
    name : str
        ``"gpmm"`` or ``"sssc"``.
    evidence : dict
        ``counts`` (bool), ``reason`` (a sentence) and, when tested, the measured statistics.
    """
    from ..counts import count_evidence, count_test_sections

    if counts is not None:
        reason = "--counts given" if counts else "--no-counts given"
        evidence = {"counts": bool(counts), "reason": reason}
    else:
        sections = None
        if np.ndim(data) == 3 and len(data) > len(count_test_sections(len(data))):
            sections = count_test_sections(len(data))
            data = np.asarray(data)[sections]
        evidence = count_evidence(
            data,
            gain=1.0 if gain is None else gain,
            offset=0.0 if offset is None else offset,
        )
        if sections is not None:
            evidence["sections_tested"] = sections
    return (COUNTS_MODEL if evidence["counts"] else "sssc"), evidence


def make_model(name: str, *, options=None, **common):
    """Instantiate a registered model by its command-line name.

    ``common`` (random_state, n_threads, verbose) go to the models that have them; every entry of
    ``options`` must be a parameter of the chosen model, so nothing the user asked for is dropped
    (ValueError naming the others). None values keep the model's defaults.
    """
    cls = model_class(name)
    options = {k: v for k, v in (options or {}).items() if v is not None}
    unknown = unknown_params(cls, options)
    if unknown:
        msg = f"{', '.join(unknown)}: not a parameter of model {name!r}"
        raise ValueError(msg)
    accepted = set(cls._param_names())
    params = {k: v for k, v in common.items() if k in accepted and v is not None}
    params.update(options)
    return cls(**params)


def unknown_params(cls, names) -> list[str]:
    """The names that are not parameters of model class ``cls``, sorted."""
    return sorted(set(names) - set(cls._param_names()))


def model_class(name: str):
    """The class of a registered model by its command-line name (ValueError otherwise)."""
    try:
        return REGISTRY[name.lower()]
    except KeyError:
        msg = f"unknown model {name!r}; expected one of " + ", ".join(MODELS)
        raise ValueError(msg) from None


def class_by_name(name: str):
    """The registered class whose name is ``name`` (as model files and checkpoints record it),
    else None."""
    return {cls.__name__: cls for cls in REGISTRY.values()}.get(name)


__all__ = [
    "AUTO_TRAIN_MAX",
    "BaseEstimator",
    "CheckpointError",
    "COUNTS_MODEL",
    "DEFAULT_MODEL",
    "GPMM",
    "Identity",
    "MODELS",
    "NotFittedError",
    "PMM",
    "REGISTRY",
    "SSSC",
    "as_model",
    "choose_model",
    "class_by_name",
    "is_fitted",
    "make_model",
    "model_class",
    "unknown_params",
]
