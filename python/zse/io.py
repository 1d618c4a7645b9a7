"""Reading micrographs (TIFF, MRC, PNG/JPEG) and writing results (float32 TIFF, 8-bit PNG preview).

Input files are only ever opened for reading. Writers refuse to replace an existing file unless
``overwrite=True``.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

TIFF_SUFFIXES = (".tif", ".tiff")
MRC_SUFFIXES = (".mrc", ".mrcs", ".map", ".st", ".ali", ".rec")
PIL_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp")
SUPPORTED_SUFFIXES = TIFF_SUFFIXES + MRC_SUFFIXES + PIL_SUFFIXES


def _grey_from_channels(array: np.ndarray, path: Path) -> np.ndarray:
    """Accept colour-typed files only when every channel holds the same grey values."""
    if array.ndim == 3 and array.shape[-1] in (3, 4):
        colour = array[..., :3]
        if np.array_equal(colour[..., 0], colour[..., 1]) and np.array_equal(
            colour[..., 0], colour[..., 2]
        ):
            return np.ascontiguousarray(colour[..., 0])
        msg = (
            f"{path} is a colour image of shape {array.shape}; zse works on single-channel "
            "(grey) images: convert it to grey first"
        )
        raise ValueError(msg)
    return array


def _select_page(n_pages: int, page: int | None, path: Path) -> int:
    index = 0 if page is None else page
    if isinstance(index, bool) or not isinstance(index, (int, np.integer)):
        msg = f"page must be an int, got {page!r}"
        raise TypeError(msg)
    if not 0 <= index < n_pages:
        msg = f"page {index} does not exist in {path}, which has {n_pages} page(s)"
        raise ValueError(msg)
    return int(index)


def _read_tiff(path: Path, page: int | None) -> np.ndarray:
    import tifffile

    with tifffile.TiffFile(path) as tif:
        series = tif.series[0] if tif.series else None
        if series is not None and len(tif.pages) == 1 and series.ndim == 3 and series.shape[-1] not in (3, 4):
            # One page that holds a whole stack (e.g. ImageJ hyperstacks stored contiguously).
            stack = series.asarray()
            return stack[_select_page(stack.shape[0], page, path)]
        index = _select_page(len(tif.pages), page, path)
        return tif.pages[index].asarray()


def _read_mrc(path: Path, page: int | None) -> np.ndarray:
    import mrcfile

    with mrcfile.open(path, mode="r", permissive=False) as mrc:
        data = np.array(mrc.data)
    if data.ndim == 3:
        return data[_select_page(data.shape[0], page, path)]
    if page not in (None, 0):
        _select_page(1, page, path)
    return data


def _read_pil(path: Path, page: int | None) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as im:
        n_frames = getattr(im, "n_frames", 1)
        im.seek(_select_page(n_frames, page, path))
        im.load()
        if im.mode == "1":
            msg = f"{path} is a 1-bit (binary) image, not a micrograph"
            raise TypeError(msg)
        if im.mode in ("P", "PA", "LA"):
            im = im.convert("RGBA" if im.mode != "LA" else "LA")
        array = np.array(im)
    if array.ndim == 3 and array.shape[-1] == 2:  # grey + alpha
        array = np.ascontiguousarray(array[..., 0])
    return array


def read_image(path, *, page: int | None = None) -> np.ndarray:
    """Read one 2-D image from a TIFF, MRC, PNG or JPEG file.

    Parameters
    ----------
    path : str or path-like
        The file. Its suffix picks the reader: TIFF (``.tif``, ``.tiff``; 8/16/32-bit integer and
        float), MRC (``.mrc``, ``.mrcs``, ``.map``, ``.st``, ``.ali``, ``.rec``), PNG, JPEG or
        BMP.
    page : int, optional
        Page of a multi-page TIFF, section of an MRC stack or frame of a PNG/GIF-like file
        (default: the first).

    Returns
    -------
    ndarray of shape (rows, columns)
        The pixel values in the file's own dtype (not rescaled).

    Raises
    ------
    FileNotFoundError
        If the file does not exist.
    ValueError
        For an unsupported suffix, a missing page, a colour image, or a file that cannot be
        decoded (truncated or corrupt).
    """
    path = Path(path)
    if not path.exists():
        msg = f"input file not found: {path}"
        raise FileNotFoundError(msg)
    if path.is_dir():
        msg = f"{path} is a directory, not an image file"
        raise ValueError(msg)
    suffix = path.suffix.lower()
    if suffix in TIFF_SUFFIXES:
        reader = _read_tiff
    elif suffix in MRC_SUFFIXES:
        reader = _read_mrc
    elif suffix in PIL_SUFFIXES:
        reader = _read_pil
    else:
        msg = f"unsupported file type {suffix!r} for {path}; supported: " + ", ".join(
            SUPPORTED_SUFFIXES
        )
        raise ValueError(msg)
    try:
        array = reader(path, page)
    except (ValueError, TypeError) as error:
        if str(path) in str(error):
            raise
        msg = f"could not read {path}: {error}"
        raise ValueError(msg) from error
    except Exception as error:  # decoder errors: truncated or corrupt files
        msg = f"could not read {path} (truncated or corrupt?): {type(error).__name__}: {error}"
        raise ValueError(msg) from error
    array = _grey_from_channels(np.asarray(array), path)
    if array.ndim != 2:
        msg = f"{path} holds an array of shape {array.shape}; zse needs a 2-D image"
        raise ValueError(msg)
    return array


def _prepare_output(path: Path, overwrite: bool) -> None:
    if path.exists() and not overwrite:
        msg = f"{path} exists; pass overwrite=True (--overwrite on the command line) to replace it"
        raise FileExistsError(msg)
    if not path.parent.is_dir():
        msg = f"output directory {path.parent} does not exist"
        raise FileNotFoundError(msg)


def write_tiff(path, image, *, overwrite: bool = False) -> Path:
    """Write a 2-D image as a float32 TIFF; returns the path written."""
    path = Path(path)
    _prepare_output(path, overwrite)
    image = np.asarray(image)
    out = image.astype(np.float32)
    if np.isfinite(image).all() and not np.isfinite(out).all():
        msg = f"values of the image for {path} overflow float32"
        raise ValueError(msg)
    import tifffile

    tifffile.imwrite(path, out, photometric="minisblack")
    return path


def preview_uint8(image, percentiles=(0.5, 99.5)) -> np.ndarray:
    """Contrast-stretch an image to 8 bits between two percentiles (display only).

    Values outside the percentile range saturate at 0 or 255 in the preview; the float TIFF
    outputs keep the full range.
    """
    image = np.asarray(image, dtype=np.float64)
    finite = image[np.isfinite(image)]
    if finite.size == 0:
        return np.zeros(image.shape, dtype=np.uint8)
    lo, hi = np.percentile(finite, percentiles)
    if hi <= lo:
        return np.zeros(image.shape, dtype=np.uint8)
    scaled = (np.nan_to_num(image, nan=lo) - lo) / (hi - lo)
    return np.round(np.clip(scaled, 0.0, 1.0) * 255.0).astype(np.uint8)


def write_preview_png(path, image, *, percentiles=(0.5, 99.5), overwrite: bool = False) -> Path:
    """Write an 8-bit PNG preview with a percentile contrast stretch; returns the path."""
    from PIL import Image

    path = Path(path)
    _prepare_output(path, overwrite)
    Image.fromarray(preview_uint8(image, percentiles), mode="L").save(path)
    return path


def ensure_output_dir(directory) -> Path:
    """Create ``directory`` if needed and check that files can be written into it."""
    directory = Path(directory)
    if directory.exists() and not directory.is_dir():
        msg = f"output path {directory} exists and is not a directory"
        raise ValueError(msg)
    try:
        directory.mkdir(parents=True, exist_ok=True)
        probe = directory / f".zse-write-test-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as error:
        msg = f"cannot write to output directory {directory}: {error.strerror or error}"
        raise ValueError(msg) from error
    return directory
