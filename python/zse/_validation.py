"""Input checks shared by the public functions: validate and convert once, fail clearly."""

from __future__ import annotations

import numbers
from collections.abc import Iterable, Sequence

import numpy as np

KNOWN_STATS = ("mean", "median", "var", "pvar", "count")


def _check_real_dtype(array: np.ndarray, name: str) -> None:
    if array.dtype.kind not in "iuf":
        msg = f"{name} must hold real numbers (integer or floating point), got dtype {array.dtype}"
        raise TypeError(msg)


def _check_finite(array: np.ndarray, name: str) -> None:
    if array.dtype.kind == "f":
        n_bad = array.size - int(np.count_nonzero(np.isfinite(array)))
        if n_bad:
            msg = f"{name} contains {n_bad} NaN or inf value(s); zse needs finite values"
            raise ValueError(msg)


def _dense(value, name: str) -> np.ndarray:
    """``np.asarray(value)``; a sparse matrix (SciPy, PyData sparse) is refused by name rather
    than turned into an array of objects."""
    module = type(value).__module__ or ""
    if module.startswith(("scipy.sparse", "sparse")) and hasattr(value, "toarray"):
        msg = (
            f"{name} must be a dense array, got a sparse {type(value).__name__}: pass "
            f"{name}.toarray() (patches of an image are dense)"
        )
        raise TypeError(msg)
    return np.asarray(value)


def check_progress(progress, called_as: str = "progress(phase, done, total)") -> None:
    """A progress callback must be None or callable (checked before any work, not at its
    first call)."""
    if progress is not None and not callable(progress):
        msg = f"progress must be None or a callable, called as {called_as}; got {progress!r}"
        raise TypeError(msg)


def as_image(image, name: str = "image") -> np.ndarray:
    """Return ``image`` as a finite, C-contiguous float64 array of shape (rows, columns)."""
    array = _dense(image, name)
    _check_real_dtype(array, name)
    if array.ndim != 2:
        msg = (
            f"{name} must be 2-D (rows, columns), got a {array.ndim}-D array of shape "
            f"{array.shape}; convert colour images or stacks to single 2-D images first"
        )
        raise ValueError(msg)
    return _finite_float64(array, name)


def as_patches(patches, name: str = "patches") -> np.ndarray:
    """Return ``patches`` as a finite, C-contiguous float64 array of shape (N, D)."""
    array = _dense(patches, name)
    _check_real_dtype(array, name)
    if array.ndim != 2:
        msg = f"{name} must be 2-D (n_patches, n_features), got shape {array.shape}"
        raise ValueError(msg)
    if array.shape[0] == 0 or array.shape[1] == 0:
        msg = f"{name} is empty (shape {array.shape})"
        raise ValueError(msg)
    _check_finite(array, name)
    return np.ascontiguousarray(array, dtype=np.float64)


def _as_positive_int(value, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        if (
            isinstance(value, numbers.Real)
            and float(value).is_integer()
            and not isinstance(value, bool)
        ):
            value = int(value)
        else:
            msg = f"{what} must be an integer, got {value!r}"
            raise TypeError(msg)
    if value < 1:
        msg = f"{what} must be >= 1, got {value}"
        raise ValueError(msg)
    return int(value)


def as_patch_size(patch_size) -> tuple[int, int]:
    """``6`` -> (6, 6); ``(6, 8)`` -> (6, 8) (rows, columns)."""
    if isinstance(patch_size, (numbers.Integral, numbers.Real)) and not isinstance(
        patch_size, bool
    ):
        size = _as_positive_int(patch_size, "patch size")
        return size, size
    if (
        isinstance(patch_size, Sequence)
        and not isinstance(patch_size, str)
        and len(patch_size) == 2
    ):
        return (
            _as_positive_int(patch_size[0], "patch size"),
            _as_positive_int(patch_size[1], "patch size"),
        )
    msg = f"patch_size must be an int or a (rows, columns) pair, got {patch_size!r}"
    raise TypeError(msg)


def as_image_shape(image_shape) -> tuple[int, int]:
    if (
        not isinstance(image_shape, Sequence)
        or isinstance(image_shape, str)
        or len(image_shape) != 2
    ):
        msg = f"image_shape must be a (rows, columns) pair, got {image_shape!r}"
        raise ValueError(msg)
    return (
        _as_positive_int(image_shape[0], "image_shape"),
        _as_positive_int(image_shape[1], "image_shape"),
    )


def check_fits(image_shape: tuple[int, int], patch_size: tuple[int, int]) -> None:
    if image_shape[0] < patch_size[0] or image_shape[1] < patch_size[1]:
        msg = (
            f"image of shape {image_shape} is smaller than the patch size "
            f"{patch_size[0]}x{patch_size[1]}"
        )
        raise ValueError(msg)


def as_stats(stats, allowed: Iterable[str] = KNOWN_STATS) -> tuple[str, ...]:
    """Normalise ``stats`` to a tuple of unique, known statistic names (order kept)."""
    allowed = tuple(allowed)
    if isinstance(stats, str):
        stats = (stats,)
    try:
        names = list(stats)
    except TypeError:
        msg = f"stats must be a string or a sequence of strings, got {stats!r}"
        raise TypeError(msg) from None
    if not names:
        msg = "stats is empty; ask for at least one of " + ", ".join(allowed)
        raise ValueError(msg)
    result: list[str] = []
    for name in names:
        if not isinstance(name, str):
            msg = f"stat names must be strings, got {name!r}"
            raise TypeError(msg)
        if name not in allowed:
            msg = f"unknown stat {name!r}; expected one of " + ", ".join(allowed)
            raise ValueError(msg)
        if name not in result:
            result.append(name)
    return tuple(result)


def check_int(value, name: str, low: int, high: int | None = None) -> int:
    """Return ``value`` as an int in [low, high]; ValueError naming the parameter otherwise."""
    if (
        isinstance(value, bool)
        or not isinstance(value, numbers.Integral)
        or value < low
        or (high is not None and value > high)
    ):
        bounds = f">= {low}" if high is None else f"in [{low}, {high}]"
        msg = f"{name} must be an int {bounds}, got {value!r}"
        raise ValueError(msg)
    return int(value)


def as_volume(image, name: str = "image") -> np.ndarray:
    """A finite, C-contiguous float64 2-D image (rows, columns) or 3-D volume (z, y, x)."""
    array = _dense(image, name)
    _check_real_dtype(array, name)
    if array.ndim not in (2, 3):
        msg = (
            f"{name} must be 2-D (rows, columns) or 3-D (z, y, x), got a {array.ndim}-D array of "
            f"shape {array.shape}; convert colour images to single-channel images first"
        )
        raise ValueError(msg)
    return _finite_float64(array, name)


def _finite_float64(array: np.ndarray, name: str) -> np.ndarray:
    if array.size == 0:
        msg = f"{name} is empty (shape {array.shape})"
        raise ValueError(msg)
    _check_finite(array, name)
    return np.ascontiguousarray(array, dtype=np.float64)


def as_patch_shape(patch_size, ndim: int) -> tuple[int, ...]:
    """Patch extents for an ndim-D input: an int is the same size along every axis."""
    if isinstance(patch_size, (numbers.Integral, numbers.Real)) and not isinstance(
        patch_size, bool
    ):
        size = _as_positive_int(patch_size, "patch size")
        return (size,) * ndim
    if isinstance(patch_size, Sequence) and not isinstance(patch_size, str):
        if len(patch_size) == ndim:
            return tuple(_as_positive_int(p, "patch size") for p in patch_size)
        if ndim == 3 and len(patch_size) == 2:
            msg = (
                f"patch_size {tuple(patch_size)} is 2-D but the input is a 3-D volume; give a "
                "3-D patch such as (4, 4, 4) (an int means the same size along z, y and x), or "
                "denoise the sections one by one as 2-D images"
            )
            raise ValueError(msg)
        if ndim == 2 and len(patch_size) == 3:
            msg = f"patch_size {tuple(patch_size)} is 3-D but the input is a 2-D image"
            raise ValueError(msg)
    axes = "(rows, columns)" if ndim == 2 else "(z, rows, columns)"
    msg = f"patch_size must be an int or a {axes} tuple, got {patch_size!r}"
    raise TypeError(msg)


def check_volume_fits(shape: tuple[int, ...], patch: tuple[int, ...]) -> None:
    if any(s < p for s, p in zip(shape, patch)):
        what = "image" if len(shape) == 2 else "volume"
        msg = (
            f"{what} of shape {tuple(shape)} is smaller than the patch size "
            f"{'x'.join(map(str, patch))}"
        )
        raise ValueError(msg)
