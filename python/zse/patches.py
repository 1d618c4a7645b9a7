"""Overlapping patches of an image and the merge of per-patch estimates back into images."""

from __future__ import annotations

import numpy as np

from . import _core
from ._threads import effective_n_threads
from ._validation import (
    as_image,
    as_image_shape,
    as_patch_shape,
    as_patch_size,
    as_stats,
    as_volume,
    check_fits,
    check_volume_fits,
)

MERGE_STATS = ("mean", "median", "var", "count")


def extract_patches(image, patch_size, *, n_threads=None) -> np.ndarray:
    """All overlapping patches of a 2-D image or a 3-D volume at stride 1.

    Parameters
    ----------
    image : array_like of shape (rows, columns) or (z, rows, columns)
        Real-valued, finite image or volume. Converted once to float64.
    patch_size : int or tuple of int
        Patch extents, (rows, columns) or (z, rows, columns); an int is the same size along
        every axis.
    n_threads : int, optional
        Threads for the copy (``None``: all available, ``-1``: all CPUs).

    Returns
    -------
    patches : ndarray of shape (n_patches, patch_rows * patch_cols)
        Patch ``n = r0 * (columns - patch_cols + 1) + c0`` has its top-left corner at
        ``(r0, c0)``; its pixels are flattened row-major (ALGORITHM.md §2.1). For a volume,
        ``n = (z0 * Rc + r0) * Qc + c0`` with Rc, Qc the corner counts, z slowest.

    Raises
    ------
    ValueError
        If the image is not 2-D, empty, non-finite, or smaller than the patch.
    TypeError
        If the image is not real-valued.

    Examples
    --------
    >>> import numpy as np, zse
    >>> zse.extract_patches(np.arange(12.0).reshape(3, 4), 2).shape
    (6, 4)
    """
    volume = as_volume(image)
    if volume.ndim == 3:
        patch = as_patch_shape(patch_size, 3)
        check_volume_fits(volume.shape, patch)
        n = int(np.prod([s - p + 1 for s, p in zip(volume.shape, patch)]))
        return _core.gather_patches(
            volume, patch, np.arange(n, dtype=np.int64), effective_n_threads(n_threads)
        )
    image = as_image(volume)
    ph, pw = as_patch_size(patch_size)
    check_fits(image.shape, (ph, pw))
    return _core.extract_patches(image, ph, pw, effective_n_threads(n_threads))


def merge_patches(
    estimates,
    image_shape,
    patch_size,
    stats=("mean", "var"),
    *,
    weights=None,
    median_kind="average",
    n_threads=None,
) -> dict[str, np.ndarray]:
    """Merge per-patch estimates into per-pixel images.

    Every pixel collects the estimates of all patches covering it (fewer at the border, no
    padding; ALGORITHM.md §2.2) and reduces them to the requested statistics.

    Parameters
    ----------
    estimates : array_like of shape (n_patches, patch_rows * patch_cols)
        One estimate per patch, in the patch order of :func:`extract_patches`.
    image_shape : (int, int) or (int, int, int)
        Shape of the image (or volume) the patches were cut from.
    patch_size : int or tuple of int
        Patch extents (an int: the same along every axis).
    stats : str or sequence of str
        Any of ``"mean"``, ``"median"``, ``"var"`` (population variance of the estimates,
        0 where only one exists) and ``"count"`` (number of estimates per pixel).
    weights : array_like of shape (n_patches,), optional
        Positive per-patch weights for a weighted mean and variance (not for the median).
    median_kind : {"average", "lower"}
        For an even number of estimates, the average of the two middle values (default) or the
        lower one (reproduces torch-based reference outputs).
    n_threads : int, optional
        Threads for the merge. Results do not depend on it.

    Returns
    -------
    dict of str to ndarray of shape image_shape
        One float64 image per requested statistic.

    Notes
    -----
    The kernel streams the estimates once per statistic family and needs only O(columns * D)
    scratch memory per thread, never a second (n_patches, D) array.

    Examples
    --------
    >>> import numpy as np, zse
    >>> img = np.arange(20.0).reshape(4, 5)
    >>> out = zse.merge_patches(zse.extract_patches(img, 3), img.shape, 3)
    >>> bool(np.array_equal(out["mean"], img)), float(out["var"].max())
    (True, 0.0)
    """
    stats = as_stats(stats, MERGE_STATS)
    if (
        not isinstance(image_shape, str)
        and hasattr(image_shape, "__len__")
        and len(image_shape) == 3
    ):
        return _merge_volume(
            estimates, image_shape, patch_size, stats, weights, median_kind, n_threads
        )
    image_shape = as_image_shape(image_shape)
    ph, pw = as_patch_size(patch_size)
    check_fits(image_shape, (ph, pw))
    if median_kind not in ("average", "lower"):
        msg = f"median_kind must be 'average' or 'lower', got {median_kind!r}"
        raise ValueError(msg)
    n_patches = (image_shape[0] - ph + 1) * (image_shape[1] - pw + 1)
    expected = (n_patches, ph * pw)

    array = np.asarray(estimates)
    if array.dtype.kind not in "iuf":
        msg = f"estimates must hold real numbers, got dtype {array.dtype}"
        raise TypeError(msg)
    if array.shape != expected:
        msg = (
            f"estimates have shape {array.shape}, but an image of shape {image_shape} with "
            f"{ph}x{pw} patches needs shape {expected}"
        )
        raise ValueError(msg)
    # Finiteness is checked inside the kernel, which avoids an (N, D) boolean temporary.
    array = np.ascontiguousarray(array, dtype=np.float64)

    if weights is not None:
        weights = np.asarray(weights)
        if weights.dtype.kind not in "iuf":
            msg = f"weights must hold real numbers, got dtype {weights.dtype}"
            raise TypeError(msg)
        if weights.shape != (n_patches,):
            msg = f"weights have shape {weights.shape}, expected ({n_patches},)"
            raise ValueError(msg)
        weights = np.ascontiguousarray(weights, dtype=np.float64)
        if not (np.all(np.isfinite(weights)) and np.all(weights > 0)):
            msg = "weights must be finite and > 0"
            raise ValueError(msg)
        if "median" in stats:
            msg = "weights are supported for mean and var, not for median"
            raise ValueError(msg)

    return _core.merge_patches(
        array,
        image_shape[0],
        image_shape[1],
        ph,
        pw,
        list(stats),
        weights,
        median_kind,
        effective_n_threads(n_threads),
    )


def _merge_volume(estimates, shape, patch_size, stats, weights, median_kind, n_threads):
    """merge_patches for a (z, rows, columns) volume (the streamed merge, ALGORITHM.md §2.6)."""
    from ._validation import _as_positive_int

    shape = tuple(_as_positive_int(s, "image_shape") for s in shape)
    patch = as_patch_shape(patch_size, 3)
    check_volume_fits(shape, patch)
    if weights is not None:
        msg = "weights are supported for 2-D merges only"
        raise ValueError(msg)
    if median_kind not in ("average", "lower"):
        msg = f"median_kind must be 'average' or 'lower', got {median_kind!r}"
        raise ValueError(msg)
    array = np.asarray(estimates)
    if array.dtype.kind not in "iuf":
        msg = f"estimates must hold real numbers, got dtype {array.dtype}"
        raise TypeError(msg)
    n = int(np.prod([s - p + 1 for s, p in zip(shape, patch)]))
    expected = (n, int(np.prod(patch)))
    if array.shape != expected:
        msg = (
            f"estimates have shape {array.shape}, but a volume of shape {shape} with "
            f"{'x'.join(map(str, patch))} patches needs shape {expected}"
        )
        raise ValueError(msg)
    array = np.ascontiguousarray(array, dtype=np.float64)
    return _core.merge_volume(
        array, shape, patch, list(stats), None, median_kind, effective_n_threads(n_threads)
    )
