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

from .base import check_is_fitted

MODEL_FORMAT = "zse-model"
MODEL_VERSION = 1


class ModelFileError(ValueError):
    """A model file that cannot be used (corrupt, of another format or version, inconsistent)."""


def _field_value(name: str, kind: str, value, where: str):
    """A value read from a model file, checked against its declared kind (ModelFileError)."""

    def bad(expected: str):
        found = type(value).__name__
        if isinstance(value, np.ndarray):
            found = f"array of shape {value.shape} and dtype {value.dtype}"
        msg = f"{where}: field {name!r} must be {expected}, got {found}"
        return ModelFileError(msg)

    def is_number(v) -> bool:
        return isinstance(v, (int, float)) and not isinstance(v, bool) and np.isfinite(v)

    if kind in ("int", "count"):
        if isinstance(value, bool) or not isinstance(value, int):
            raise bad("an int")
        if kind == "count" and value < 0:
            raise bad("an int >= 0")
        return int(value)
    if kind == "bool":
        if not isinstance(value, bool):
            raise bad("true or false")
        return value
    if kind == "floats":
        if not isinstance(value, list) or not all(is_number(v) for v in value):
            raise bad("a list of finite numbers")
        return [float(v) for v in value]
    if kind in ("float", "float_or_array") and not isinstance(value, np.ndarray):
        if not is_number(value):
            raise bad("a finite number")
        return float(value)
    if kind in ("array", "float_or_array"):
        if not isinstance(value, np.ndarray) or value.dtype.kind not in "fiu":
            raise bad("a numeric array")
        if not np.all(np.isfinite(value)):
            raise bad("an array of finite values")
        return np.ascontiguousarray(value, dtype=np.float64)
    raise bad(kind)


def save_model(model, path, *, patch_size=None, overwrite: bool = True) -> Path:
    """Write a fitted zse model to ``path`` (an ``.npz`` archive).

    Parameters
    ----------
    model : zse.SSSC, zse.PMM, zse.GPMM or zse.Identity
        A fitted model.
    path : str or path-like
        The file (conventionally ``*.zse``); written atomically.
    patch_size : tuple of int, optional
        The patch extents the model was trained on (recorded so that ``zse denoise
        --model-file`` uses them, and checked when the loaded model is applied); default: the
        model's ``patch_size_`` when :func:`zse.reconstruct` fitted it.
    overwrite : bool
        Replace an existing file.

    Returns
    -------
    Path

    Examples
    --------
    >>> import pathlib, tempfile, zse
    >>> noisy, _ = zse.synthetic_tem((48, 48), seed=0)
    >>> model = zse.GPMM(4, max_iter=3, random_state=0)
    >>> _ = zse.reconstruct(noisy, model, stats="mean", patch_size=5)
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "session.zse"
    >>> _ = zse.save_model(model, path)
    >>> zse.load_model(path).patch_size_
    (5, 5)
    """
    from .. import __version__
    from ..io.write import _prepare_output, _write_atomically
    from . import class_by_name

    registered = class_by_name(type(model).__name__)
    if registered is None or not isinstance(model, registered):
        msg = f"only zse models can be saved, got {type(model).__name__}"
        raise TypeError(msg)
    check_is_fitted(model)
    if patch_size is None:
        patch_size = model.fitted_patch()  # known when reconstruct fitted it
    if patch_size is not None:
        patch_size = [int(p) for p in patch_size]
        if int(np.prod(patch_size)) != int(model.n_features_in_):
            msg = f"patch_size {patch_size} does not have the model's {model.n_features_in_} pixels"
            raise ValueError(msg)
    params = {}
    stored = set(model.stored_params())
    for name, value in model.get_params().items():
        if name not in stored:
            continue
        if name == "random_state" and not isinstance(value, (int, type(None))):
            value = None  # a Generator: the seed actually used is saved with the state
        params[name] = value.item() if isinstance(value, np.generic) else value
    scalars, arrays = {}, {}
    for name, kind in type(model)._model_file_fields.items():
        value = getattr(model, name)
        if isinstance(value, np.ndarray):
            arrays[f"array__{name}"] = value
        elif kind == "floats":
            scalars[name] = [float(v) for v in value]
        else:
            scalars[name] = value.item() if isinstance(value, np.generic) else value
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
    _prepare_output(path, overwrite, kind="model")

    def write(tmp):
        with open(tmp, "wb") as handle:
            np.savez(handle, meta=np.array(json.dumps(meta)), **arrays)

    return _write_atomically(path, write)


def read_model_meta(path) -> dict:
    """The JSON header of a model file (checked for format and version)."""
    return _read(path)[0]


_MAGIC = {
    b"II*\x00": "a TIFF image",
    b"MM\x00*": "a TIFF image",
    b"\x89PNG": "a PNG image",
    b"\x93NUM": "a NumPy .npy array, not an archive",
}


def _kind_of_file(start: bytes) -> str:
    """What the first bytes of a file that is no zip archive say it is."""
    for magic, kind in _MAGIC.items():
        if start.startswith(magic):
            return f"it is {kind}"
    if start[:2] == b"\xff\xd8":
        return "it is a JPEG image"
    if not start:
        return "it is empty"
    return "it is no npz archive"


def _read(path):
    path = Path(path)
    if not path.exists():
        msg = f"model file not found: {path}"
        raise FileNotFoundError(msg)
    if path.is_dir():
        msg = f"model file {path} is a directory"
        raise ModelFileError(msg)
    with open(path, "rb") as handle:
        start = handle.read(4)
    if start != b"PK\x03\x04":  # a model file is an npz (zip) archive
        kind = _kind_of_file(start)
        msg = (
            f"{path} is not a zse model file ({kind}); a model file is what zse fit or "
            "zse.save_model writes"
        )
        raise ModelFileError(msg)
    try:
        with open(path, "rb") as handle, np.load(handle, allow_pickle=False) as npz:
            if not hasattr(npz, "files"):
                msg = "not an npz archive"
                raise ValueError(msg)
            if "meta" not in npz.files:
                msg = "it has no 'meta' header"
                raise ValueError(msg)
            meta = json.loads(str(npz["meta"][()]))
            arrays = {
                k[len("array__") :]: np.array(npz[k]) for k in npz.files if k.startswith("array__")
            }
    except Exception as error:  # noqa: BLE001 - any decoding failure means a bad file
        msg = f"{path} is not a readable zse model file (corrupt or of another kind): {error}"
        raise ModelFileError(msg) from error
    if not isinstance(meta, dict) or meta.get("format") != MODEL_FORMAT:
        found = meta.get("format") if isinstance(meta, dict) else type(meta).__name__
        msg = f"{path} is not a zse model file (format {found!r})"
        raise ModelFileError(msg)
    if meta.get("version") != MODEL_VERSION:
        msg = (
            f"{path} is a zse model file of version {meta.get('version')!r} (written by zse "
            f"{meta.get('zse_version')}); this zse reads version {MODEL_VERSION}: refit the model"
        )
        raise ModelFileError(msg)
    for key, kind in (("model", str), ("params", dict), ("scalars", dict)):
        if not isinstance(meta.get(key), kind):
            msg = (
                f"{path}: field {key!r} of the header must be a {kind.__name__}, got "
                f"{type(meta.get(key)).__name__}"
            )
            raise ModelFileError(msg)
    return meta, arrays


def _patch_size(value, n_features: int, where: str):
    if value is None:
        return None
    if (
        not isinstance(value, list)
        or len(value) not in (2, 3)
        or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in value)
    ):
        msg = f"{where}: field 'patch_size' must be a list of 2 or 3 ints >= 1, got {value!r}"
        raise ModelFileError(msg)
    if int(np.prod(value)) != n_features:
        msg = f"{where}: field 'patch_size' {value} does not have the model's {n_features} pixels"
        raise ModelFileError(msg)
    return tuple(value)


def load_model(path):
    """Read a model written by :func:`save_model`; returns the fitted estimator.

    The file is checked before use: its format and version, the model class, every parameter
    (names of the class's parameters only, values of JSON scalar types, then the class's own
    checks), every learned value the class declares (present, of its declared type, finite)
    and the shapes of the learned arrays against the parameters. Nothing else from the file is
    set on the model. A problem raises :class:`ModelFileError` naming the file and the field.
    The patch extents it was trained on (when saved) are in ``model.patch_size_``.
    """
    from . import REGISTRY, class_by_name

    meta, arrays = _read(path)
    name = meta["model"]
    cls = class_by_name(name)
    if cls is None:
        known = sorted(c.__name__ for c in REGISTRY.values())
        msg = f"{path} holds a model of unknown kind {name!r}; known: {known}"
        raise ModelFileError(msg)
    params = meta["params"]
    accepted = set(cls.stored_params())
    for key, value in params.items():
        if key not in accepted:
            msg = f"{path}: {key!r} is not a parameter of {name} that a model file holds"
            raise ModelFileError(msg)
        if not isinstance(value, (bool, int, float, str, type(None))):
            msg = f"{path}: parameter {key!r} must be a number, string or null, got {value!r}"
            raise ModelFileError(msg)
    try:
        model = cls(**params)
        model._check_params()
    except (TypeError, ValueError) as error:
        msg = f"{path} holds parameters this zse cannot use for {name}: {error}"
        raise ModelFileError(msg) from error
    fields = cls._model_file_fields
    stored = {**meta["scalars"], **arrays}
    unknown = sorted(set(stored) - set(fields))
    if unknown:
        msg = f"{path}: {', '.join(map(repr, unknown))} are not learned values of {name}"
        raise ModelFileError(msg)
    missing = sorted(set(fields) - set(stored))
    if missing:
        msg = f"{path}: the learned value(s) {', '.join(map(repr, missing))} are missing"
        raise ModelFileError(msg)
    for key, kind in fields.items():
        setattr(model, key, _field_value(key, kind, stored[key], str(path)))
    if model.n_features_in_ < 1:
        msg = f"{path}: field 'n_features_in_' must be >= 1, got {model.n_features_in_}"
        raise ModelFileError(msg)
    model.patch_size_ = _patch_size(meta.get("patch_size"), model.n_features_in_, str(path))
    try:
        model._after_load()
    except (AttributeError, KeyError, ValueError, TypeError) as error:
        msg = f"{path} is inconsistent: {error}"
        raise ModelFileError(msg) from error
    return model
