"""TIFF files: one page as a grey image, every page as a stack, and the page list checked whole
(a TIFF written page by page is a stack; a page list that breaks off is an error)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .checks import check_decoded_size, select_page, to_grey

_TIFF_PHOTOMETRIC_REFUSED = {
    3: "a palette (indexed-colour)",
    5: "a CMYK (separated)",
    8: "a CIELAB",
}


def read_tiff(path: Path, page: int | None) -> np.ndarray:
    import tifffile

    file_size = path.stat().st_size
    with tifffile.TiffFile(path) as tif:
        layout = tiff_layout(tif, path)
        first = layout.pages[0]
        if layout.single_page_stack:
            # One page that holds a whole stack (e.g. ImageJ hyperstacks stored contiguously).
            index = select_page(layout.n_sections, page, path, "section")
            check_tiff_data(first, path, file_size)
            return first.asarray()[index]
        index = select_page(len(layout.pages), page, path)
        tiff_page = layout.pages[index]
        check_tiff_data(tiff_page, path, file_size)
        array = tiff_page.asarray()
        spp = int(tiff_page.samplesperpixel)
        if spp == 1:
            return array
        if int(tiff_page.planarconfig) == 2 and array.shape[0] == spp:
            array = np.moveaxis(array, 0, -1)  # planar (separate) samples: (spp, h, w)
        n_extra = len(tiff_page.extrasamples)
        return to_grey(array, spp - n_extra, n_extra, path)


@dataclass
class TiffLayout:
    """Every page of a TIFF file, each checked readable (see :func:`tiff_layout`)."""

    pages: list
    n_sections: int  # pages, or the sections of one page that holds a whole stack
    single_page_stack: bool


def tiff_layout(tif, path: Path) -> TiffLayout:
    """The pages of the open TIFF ``tif``: every page the file's page list holds, whatever its
    metadata groups them into (a file written page by page, ``imwrite(..., append=True)``,
    has one series per page; every reader sees all of them).

    A page list that breaks off (a truncated or corrupt file, which tifffile only logs) and a
    page whose data lie beyond the end of the file are errors naming the file and the page, so
    no reader sees fewer pages than the file was written with.
    """
    import logging

    import tifffile

    problems: list = []

    class _Collect(logging.Handler):
        def emit(self, record):
            problems.append(record.getMessage())

    handler = _Collect(level=logging.WARNING)
    logger = tifffile.logger()
    logger.addHandler(handler)
    try:
        pages = list(tif.pages)
    finally:
        logger.removeHandler(handler)
    if not pages:
        msg = f"{path} is a TIFF file without any readable image (no page; damaged file?)"
        raise ValueError(msg)
    if problems:
        msg = (
            f"{path}: page {len(pages)} cannot be read: the file's list of pages breaks off "
            f"after {len(pages)} page(s) ({problems[0]}; truncated or corrupt file)"
        )
        raise ValueError(msg)
    file_size = path.stat().st_size
    for index, tiff_page in enumerate(pages):
        try:
            check_tiff_data(tiff_page, path, file_size, memory=False)
        except ValueError as error:
            msg = f"page {index} of {error}" if len(pages) > 1 else str(error)
            raise ValueError(msg) from None
    first = pages[0]
    single = len(pages) == 1 and first.samplesperpixel == 1 and len(first.shape) == 3
    return TiffLayout(pages, int(first.shape[0]) if single else len(pages), single)


def check_tiff_data(tiff_page, path: Path, file_size: int, memory: bool = True) -> None:
    """Refuse a page whose data the file cannot hold; with ``memory``, also one whose decoded
    values would not fit in memory."""
    photometric = int(tiff_page.photometric)
    if photometric in _TIFF_PHOTOMETRIC_REFUSED:
        msg = (
            f"{path} is {_TIFF_PHOTOMETRIC_REFUSED[photometric]} image; zse reads grey images: "
            "convert it to grey first"
        )
        raise ValueError(msg)
    shape, itemsize = tiff_page.shape, tiff_page.dtype.itemsize
    declared = int(np.prod(shape, dtype=np.float64)) * itemsize
    counts = [int(c) for c in tiff_page.databytecounts]
    offsets = [int(o) for o in tiff_page.dataoffsets]
    dims = "x".join(str(int(n)) for n in shape)
    if declared and (not counts or min(counts) == 0):
        msg = (
            f"{path} declares {dims} {tiff_page.dtype} values but some of its strips or tiles "
            "hold no data (truncated or corrupt file)"
        )
        raise ValueError(msg)
    end = max((o + c for o, c in zip(offsets, counts)), default=0)
    if end > file_size:
        msg = (
            f"{path} declares image data up to byte {end}, but the file has {file_size} bytes "
            "(truncated or corrupt file)"
        )
        raise ValueError(msg)
    if int(tiff_page.compression) == 1 and sum(counts) < declared:
        msg = (
            f"{path} declares {dims} uncompressed {tiff_page.dtype} values ({declared} bytes) "
            f"but holds only {sum(counts)} bytes of image data (truncated or corrupt file)"
        )
        raise ValueError(msg)
    if memory:
        check_decoded_size(shape, itemsize, path)


def read_tiff_volume(path: Path) -> np.ndarray:
    """Every page of a TIFF as one array (pages, rows, columns), or the one page that holds a
    whole stack; pages that differ in shape or type are refused."""
    import tifffile

    with tifffile.TiffFile(path) as tif:
        layout = tiff_layout(tif, path)
        first = layout.pages[0]
        for index, page in enumerate(layout.pages):
            if page.shape != first.shape or page.dtype != first.dtype:
                msg = (
                    f"{path} has pages that differ (page 0 is {first.shape} "
                    f"{first.dtype}, page {index} is {page.shape} {page.dtype}), so they "
                    "are no stack or volume; denoise one page with --page k"
                )
                raise ValueError(msg)
        n_pages = len(layout.pages)
        shape = first.shape if n_pages == 1 else (n_pages, *first.shape)
        check_decoded_size(shape, first.dtype.itemsize, path)
        if n_pages == 1:
            volume = first.asarray()  # one page holding a whole stack
        else:
            volume = tif.asarray(key=range(len(layout.pages)))
            volume = volume.reshape(len(layout.pages), *first.shape)
    return volume
