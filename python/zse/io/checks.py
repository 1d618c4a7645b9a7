"""What every reader checks before it decodes: the file exists, the page asked for, the memory
the decoded values need, and grey values from colour-typed files."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .._memory import check_fits_in_memory


def existing_file(path) -> Path:
    """``path`` as a Path; FileNotFoundError when missing, ValueError for a directory."""
    path = Path(path)
    if not path.exists():
        msg = f"input file not found: {path}"
        raise FileNotFoundError(msg)
    if path.is_dir():
        msg = f"{path} is a directory, not an image file (name files or a pattern: 'dir/*.mrc')"
        raise ValueError(msg)
    return path


def to_grey(array: np.ndarray, n_colour: int, n_extra: int, path: Path) -> np.ndarray:
    """Grey values from an array whose last axis holds n_colour colour and n_extra extra samples.

    Colour-typed files are accepted only when every colour channel holds the same values, and
    extra samples (alpha) only when they are constant: a varying alpha says that some pixels
    are not meant to be seen, which zse cannot honour.
    """
    if n_extra:
        extras = array[..., n_colour:]
        if extras.size and not np.all(extras == extras.reshape(-1, n_extra)[0]):
            msg = (
                f"{path} has {n_colour} colour channel(s) and {n_extra} extra (alpha) channel(s) "
                "that vary over the image; zse would ignore the transparency: save the grey "
                "values without alpha first"
            )
            raise ValueError(msg)
    if n_colour == 1:
        return np.ascontiguousarray(array[..., 0])
    if n_colour == 3:
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
    msg = f"{path} has {n_colour} colour channels per pixel; zse reads grey or RGB images only"
    raise ValueError(msg)


def select_page(n_pages: int, page: int | None, path: Path, what: str = "page") -> int:
    if page is None:
        if n_pages == 1:
            return 0
        msg = (
            f"{path} holds {n_pages} {what}s; pass page=k (--page k on the command line) to "
            f"pick one (0 to {n_pages - 1})"
            + (
                ", or a 3-D patch size (--patch-size 4x4x4) to denoise the whole volume"
                if what == "section"
                else ""
            )
        )
        raise ValueError(msg)
    if isinstance(page, bool) or not isinstance(page, (int, np.integer)):
        msg = f"page must be an int, got {page!r}"
        raise TypeError(msg)
    if not 0 <= page < n_pages:
        msg = f"page {page} does not exist in {path}, which has {n_pages} {what}(s)"
        raise ValueError(msg)
    return int(page)


def check_decoded_size(shape, itemsize: int, path: Path) -> None:
    """Refuse before decoding what would not fit in memory with its float64 copy."""
    n_values = int(np.prod([int(n) for n in shape], dtype=np.float64))
    pixels = " x ".join(str(int(n)) for n in shape)
    check_fits_in_memory(
        n_values * (itemsize + 8),
        f"decoding {path} ({pixels} values) and its float64 copy",
        "crop or bin the image with another tool first",
    )
