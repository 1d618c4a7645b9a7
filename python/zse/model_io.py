"""Model files: fit once, apply to many images (``zse fit`` / ``--model-file``).

A model file is a NumPy ``.npz`` archive read with ``allow_pickle=False`` (loading never runs
code) holding:

``meta``
    A JSON text: ``format`` ("zse-model"), ``version`` (1), ``zse_version``, ``model`` (the class
    name), ``params`` (the estimator's hyper-parameters), ``patch_size`` (the patch extents the
    model was trained on, when known), ``scalars`` (learned scalars and lists, e.g. ``sigma2_``,
    ``data_scale_``, ``free_energies_``) and ``created``.
``array__<name>``
    One float64/int array per learned array attribute (``W_``, ``pi_``, ...).

What is not saved: the training patches' state sets (``SSSC.K_``), which belong to the training
image; a loaded SSSC estimates every patch from fresh states with its search settings.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

MODEL_FORMAT = "zse-model"
MODEL_VERSION = 1
# Settings of how a fit runs, not of what it learned: not stored.
_RUN_PARAMS = frozenset(
    {"n_threads", "verbose", "checkpoint", "checkpoint_every", "resume", "comm"}
)


class ModelFileError(ValueError):
    """A model file that cannot be used (corrupt, of another format or version, inconsistent)."""


def _registry() -> dict:
    from .mixtures import GPMM, PMM
    from .models import Identity
    from .sssc import SSSC

    return {cls.__name__: cls for cls in (SSSC, PMM, GPMM, Identity)}


def _learned_attributes(model) -> dict:
    names = [n for n in vars(model) if n.endswith("_") and not n.startswith("__")]
    names += [n for n in getattr(type(model), "_model_file_private", ()) if hasattr(model, n)]
    return {
        n: getattr(model, n) for n in names if n not in getattr(type(model), "_model_file_skip", ())
    }


def save_model(model, path, *, patch_size=None, overwrite: bool = True) -> Path:
    """Write a fitted zse model to ``path`` (an ``.npz`` archive; see :mod:`zse.model_io`).

    Parameters
    ----------
    model : zse.SSSC, zse.PMM, zse.GPMM or zse.Identity
        A fitted model.
    path : str or path-like
        The file (conventionally ``*.zse``); written atomically.
    patch_size : tuple of int, optional
        The patch extents the model was trained on (recorded so that ``zse denoise
        --model-file`` uses them).
    overwrite : bool
        Replace an existing file.

    Returns
    -------
    Path
    """
    from . import __version__
    from ._base import check_is_fitted
    from .io import _prepare_output, _write_atomically

    if type(model).__name__ not in _registry() or not isinstance(
        model, _registry()[type(model).__name__]
    ):
        msg = f"only zse models can be saved, got {type(model).__name__}"
        raise TypeError(msg)
    check_is_fitted(model)
    if patch_size is not None:
        patch_size = [int(p) for p in patch_size]
        if int(np.prod(patch_size)) != int(model.n_features_in_):
            msg = f"patch_size {patch_size} does not have the model's {model.n_features_in_} pixels"
            raise ValueError(msg)
    params = {}
    for name, value in model.get_params().items():
        if name in _RUN_PARAMS:
            continue
        if name == "random_state" and not isinstance(value, (int, type(None))):
            value = None  # a Generator: the seed actually used is saved with the state
        params[name] = value.item() if isinstance(value, np.generic) else value
    scalars, arrays = {}, {}
    for name, value in _learned_attributes(model).items():
        if isinstance(value, np.ndarray):
            arrays[f"array__{name}"] = value
        elif isinstance(value, (bool, int, float, np.generic)):
            scalars[name] = value.item() if isinstance(value, np.generic) else value
        elif isinstance(value, list):
            scalars[name] = [float(v) for v in value]
    meta = {
        "format": MODEL_FORMAT,
        "version": MODEL_VERSION,
        "zse_version": __version__,
        "model": type(model).__name__,
        "params": params,
        "patch_size": patch_size,
        "scalars": scalars,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    path = Path(path)
    _prepare_output(path, overwrite)

    def write(tmp):
        with open(tmp, "wb") as handle:
            np.savez(handle, meta=np.array(json.dumps(meta)), **arrays)

    return _write_atomically(path, write)


def read_model_meta(path) -> dict:
    """The JSON header of a model file (checked for format and version)."""
    return _read(path)[0]


def _read(path):
    path = Path(path)
    if not path.exists():
        msg = f"model file not found: {path}"
        raise FileNotFoundError(msg)
    try:
        with open(path, "rb") as handle, np.load(handle, allow_pickle=False) as npz:
            meta = json.loads(str(npz["meta"][()]))
            arrays = {
                k[len("array__") :]: np.array(npz[k]) for k in npz.files if k.startswith("array__")
            }
    except Exception as error:  # noqa: BLE001 - any decoding failure means a bad file
        msg = f"{path} is not a readable zse model file (corrupt or of another kind): {error}"
        raise ModelFileError(msg) from error
    if not isinstance(meta, dict) or meta.get("format") != MODEL_FORMAT:
        found = meta.get("format") if isinstance(meta, dict) else None
        msg = f"{path} is not a zse model file (format {found!r})"
        raise ModelFileError(msg)
    if meta.get("version") != MODEL_VERSION:
        msg = (
            f"{path} is a zse model file of version {meta.get('version')!r} (written by zse "
            f"{meta.get('zse_version')}); this zse reads version {MODEL_VERSION}: refit the model"
        )
        raise ModelFileError(msg)
    return meta, arrays


def load_model(path):
    """Read a model written by :func:`save_model`; returns the fitted estimator.

    The file is checked before use: its format and version, the model class, the parameters,
    and the shapes of the learned arrays against the parameters; a problem raises
    :class:`ModelFileError` naming the file. The patch extents it was trained on (when saved)
    are in ``model.patch_size_``.
    """
    meta, arrays = _read(path)
    registry = _registry()
    name = meta.get("model")
    if name not in registry:
        msg = f"{path} holds a model of unknown kind {name!r}; known: {sorted(registry)}"
        raise ModelFileError(msg)
    cls = registry[name]
    try:
        model = cls(**meta.get("params", {}))
        if hasattr(model, "_check_params"):
            model._check_params()
    except (TypeError, ValueError) as error:
        msg = f"{path} holds parameters this zse cannot use for {name}: {error}"
        raise ModelFileError(msg) from error
    for key, value in meta.get("scalars", {}).items():
        setattr(model, key, value)
    for key, value in arrays.items():
        setattr(model, key, value if value.dtype != np.float64 else np.ascontiguousarray(value))
    patch_size = meta.get("patch_size")
    model.patch_size_ = tuple(patch_size) if patch_size else None
    try:
        model._after_load()
    except (AttributeError, KeyError, ValueError, TypeError) as error:
        msg = f"{path} is inconsistent: {error}"
        raise ModelFileError(msg) from error
    return model
