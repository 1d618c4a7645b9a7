"""Reading micrographs (TIFF, MRC, PNG/JPEG) and their headers (pixel size, origin, labels).

Input files are only ever opened for reading.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .._memory import check_fits_in_memory

TIFF_SUFFIXES = (".tif", ".tiff")
MRC_SUFFIXES = (".mrc", ".mrcs", ".map", ".st", ".ali", ".rec")
PIL_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp")
SUPPORTED_SUFFIXES = TIFF_SUFFIXES + MRC_SUFFIXES + PIL_SUFFIXES


def _to_grey(array: np.ndarray, n_colour: int, n_extra: int, path: Path) -> np.ndarray:
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


def _select_page(n_pages: int, page: int | None, path: Path, what: str = "page") -> int:
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


def _check_decoded_size(shape, itemsize: int, path: Path) -> None:
    """Refuse before decoding what would not fit in memory with its float64 copy."""
    n_values = int(np.prod([int(n) for n in shape], dtype=np.float64))
    pixels = " x ".join(str(int(n)) for n in shape)
    check_fits_in_memory(
        n_values * (itemsize + 8),
        f"decoding {path} ({pixels} values) and its float64 copy",
        "crop or bin the image with another tool first",
    )


_TIFF_PHOTOMETRIC_REFUSED = {
    3: "a palette (indexed-colour)",
    5: "a CMYK (separated)",
    8: "a CIELAB",
}


def _read_tiff(path: Path, page: int | None) -> np.ndarray:
    import tifffile

    file_size = path.stat().st_size
    with tifffile.TiffFile(path) as tif:
        layout = tiff_layout(tif, path)
        first = layout.pages[0]
        if layout.single_page_stack:
            # One page that holds a whole stack (e.g. ImageJ hyperstacks stored contiguously).
            index = _select_page(layout.n_sections, page, path, "section")
            _check_tiff_data(first, path, file_size)
            return first.asarray()[index]
        index = _select_page(len(layout.pages), page, path)
        tiff_page = layout.pages[index]
        _check_tiff_data(tiff_page, path, file_size)
        array = tiff_page.asarray()
        spp = int(tiff_page.samplesperpixel)
        if spp == 1:
            return array
        if int(tiff_page.planarconfig) == 2 and array.shape[0] == spp:
            array = np.moveaxis(array, 0, -1)  # planar (separate) samples: (spp, h, w)
        n_extra = len(tiff_page.extrasamples)
        return _to_grey(array, spp - n_extra, n_extra, path)


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
            _check_tiff_data(tiff_page, path, file_size, memory=False)
        except ValueError as error:
            msg = f"page {index} of {error}" if len(pages) > 1 else str(error)
            raise ValueError(msg) from None
    first = pages[0]
    single = len(pages) == 1 and first.samplesperpixel == 1 and len(first.shape) == 3
    return TiffLayout(pages, int(first.shape[0]) if single else len(pages), single)


def _existing_file(path) -> Path:
    """``path`` as a Path; FileNotFoundError when missing, ValueError for a directory."""
    path = Path(path)
    if not path.exists():
        msg = f"input file not found: {path}"
        raise FileNotFoundError(msg)
    if path.is_dir():
        msg = f"{path} is a directory, not an image file (name files or a pattern: 'dir/*.mrc')"
        raise ValueError(msg)
    return path


def _check_tiff_data(tiff_page, path: Path, file_size: int, memory: bool = True) -> None:
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
        _check_decoded_size(shape, itemsize, path)


def _read_mrc(path: Path, page: int | None) -> np.ndarray:
    import mrcfile
    from mrcfile.utils import dtype_from_mode

    with mrcfile.open(path, mode="r", permissive=False, header_only=True) as mrc:
        header = mrc.header
        nx, ny, nz = int(header.nx), int(header.ny), int(header.nz)
        dtype = np.dtype(dtype_from_mode(header.mode))
        extended = int(header.nsymbt)
    if min(nx, ny, nz) < 1:
        msg = f"{path} declares an empty image ({nz} x {ny} x {nx})"
        raise ValueError(msg)
    declared = nx * ny * nz * dtype.itemsize
    have = path.stat().st_size - 1024 - extended
    if have < declared:
        msg = (
            f"{path} declares {nz} x {ny} x {nx} {dtype} values ({declared} bytes) but holds "
            f"only {max(have, 0)} bytes of data (truncated or corrupt file)"
        )
        raise ValueError(msg)
    index = _select_page(nz, page, path, "section")
    _check_decoded_size((ny, nx), dtype.itemsize, path)
    # A memory map reads only the section asked for, not the whole stack.
    with mrcfile.mmap(path, mode="r", permissive=False) as mrc:
        data = mrc.data
        return np.array(data[index] if data.ndim == 3 else data)


_PIL_MODES_REFUSED = {
    "CMYK": "a CMYK",
    "YCbCr": "a YCbCr",
    "LAB": "a CIELAB",
    "HSV": "an HSV",
}


def _read_pil(path: Path, page: int | None) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as im:
        n_frames = getattr(im, "n_frames", 1)
        index = _select_page(n_frames, page, path, "frame")
        if im.mode in _PIL_MODES_REFUSED:
            msg = (
                f"{path} is {_PIL_MODES_REFUSED[im.mode]} colour image; zse reads grey images: "
                "convert it to grey first"
            )
            raise ValueError(msg)
        if im.mode == "1":
            msg = f"{path} is a 1-bit (binary) image, not a micrograph"
            raise TypeError(msg)
        width, height = im.size
        _check_decoded_size((height, width, len(im.getbands())), 4, path)
        im.seek(index)
        im.load()
        if im.mode == "P":
            im = im.convert("RGBA")
        elif im.mode == "PA":
            im = im.convert("RGBA")
        mode = im.mode
        array = np.array(im)
    if mode in ("LA", "La"):
        return _to_grey(array, 1, 1, path)
    if mode in ("RGBA", "RGBa"):
        return _to_grey(array, 3, 1, path)
    if mode in ("RGB", "RGBX"):
        return _to_grey(array[..., :3], 3, 0, path)
    return array


@contextlib.contextmanager
def _decoding(path: Path):
    """Errors of a reader as one ValueError naming the file (memory and missing files pass)."""
    try:
        yield
    except (MemoryError, FileNotFoundError):
        raise
    except (ValueError, TypeError) as error:
        if str(path) in str(error):
            raise
        msg = f"could not read {path}: {error}"
        raise ValueError(msg) from error
    except Exception as error:  # decoder errors: truncated or corrupt files
        msg = f"could not read {path} (truncated or corrupt?): {type(error).__name__}: {error}"
        raise ValueError(msg) from error


def read_image(path, *, page: int | None = None) -> np.ndarray:
    """Read one 2-D image from a TIFF, MRC, PNG or JPEG file.

    Parameters
    ----------
    path : str or path-like
        The file. Its suffix picks the reader: TIFF (``.tif``, ``.tiff``; 8/16/32-bit integer and
        float), MRC (``.mrc``, ``.mrcs``, ``.map``, ``.st``, ``.ali``, ``.rec``), PNG, JPEG or
        BMP.
    page : int, optional
        Page of a multi-page TIFF, section of an MRC stack or frame of a PNG/GIF-like file.
        Required when the file holds more than one: nothing is picked silently.

    Returns
    -------
    ndarray of shape (rows, columns)
        The pixel values in the file's own dtype (not rescaled).

    Raises
    ------
    FileNotFoundError
        If the file does not exist.
    ValueError
        For an unsupported suffix, a missing page (or none given for a stack), a colour image,
        a varying alpha channel, CMYK/palette files, or a file that cannot be decoded (truncated
        or corrupt: the declared size is compared with the file's size before decoding).
    MemoryError
        If decoding the declared image would need more memory than is available.
    """
    path = _existing_file(path)
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
    with _decoding(path):
        array = reader(path, page)
    array = np.asarray(array)
    if array.ndim != 2:
        msg = f"{path} holds an array of shape {array.shape}; zse needs a 2-D image"
        raise ValueError(msg)
    return array


def read_volume(path) -> np.ndarray:
    """Read a whole MRC volume or stack (z, y, x), or a multi-page TIFF, as a 3-D array.

    The declared size is checked against the file's size and the available memory before the
    data are read (as :func:`read_image` does). A single 2-D image is refused: use
    :func:`read_image`.
    """
    path = _existing_file(path)
    suffix = path.suffix.lower()
    with _decoding(path):
        if suffix in MRC_SUFFIXES:
            import mrcfile
            from mrcfile.utils import dtype_from_mode

            with mrcfile.open(path, mode="r", permissive=False, header_only=True) as mrc:
                header = mrc.header
                shape = (int(header.nz), int(header.ny), int(header.nx))
                dtype = np.dtype(dtype_from_mode(header.mode))
                extended = int(header.nsymbt)
            declared = int(np.prod(shape)) * dtype.itemsize
            have = path.stat().st_size - 1024 - extended
            if min(shape) < 1 or have < declared:
                msg = (
                    f"{path} declares {shape[0]} x {shape[1]} x {shape[2]} {dtype} values but "
                    f"holds {max(have, 0)} bytes of data (truncated or corrupt file)"
                )
                raise ValueError(msg)
            _check_decoded_size(shape, dtype.itemsize, path)
            with mrcfile.mmap(path, mode="r", permissive=False) as mrc:
                volume = np.array(mrc.data)
        elif suffix in TIFF_SUFFIXES:
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
                _check_decoded_size(shape, first.dtype.itemsize, path)
                if n_pages == 1:
                    volume = first.asarray()  # one page holding a whole stack
                else:
                    volume = tif.asarray(key=range(len(layout.pages)))
                    volume = volume.reshape(len(layout.pages), *first.shape)
        else:
            msg = f"{path}: volumes are read from MRC or TIFF files, not {suffix!r}"
            raise ValueError(msg)
    if volume.ndim != 3:
        msg = f"{path} holds an array of shape {volume.shape}, not a volume (z, y, x)"
        raise ValueError(msg)
    return volume


@dataclass
class ImageInfo:
    """What a file says about its pixels besides their values.

    Attributes
    ----------
    kind : {"image", "stack", "volume"}
        One 2-D image; a stack of 2-D sections (an MRC with ISPG 0 and several sections, a
        multi-page TIFF); or a 3-D volume (an MRC with ISPG 1 and several sections, e.g. a
        tomogram ``.rec``).
    n_sections : int
        Sections of a stack or volume (1 for an image).
    voxel_size : tuple of float, optional
        (x, y, z) pixel/voxel size in Å when the file gives one (MRC header, TIFF resolution
        tags), else None.
    origin : tuple of float, optional
        The MRC header's origin (x, y, z) in Å.
    labels : list of str
        The MRC header's text labels.
    """

    kind: str = "image"
    n_sections: int = 1
    voxel_size: tuple | None = None
    origin: tuple | None = None
    labels: list = field(default_factory=list)


_ANGSTROM_PER_UNIT = {2: 2.54e8, 3: 1e8}  # TIFF ResolutionUnit: 2 inch, 3 centimetre


def read_info(path) -> ImageInfo:
    """The kind (image, stack, volume), size and pixel size of an image file, from its header.

    Reads headers only (no pixel data). PNG/JPEG/BMP files are single images without a pixel
    size; a multi-page TIFF is a stack.
    """
    path = _existing_file(path)
    suffix = path.suffix.lower()
    try:
        if suffix in MRC_SUFFIXES:
            return _mrc_info(path)
        if suffix in TIFF_SUFFIXES:
            return _tiff_info(path)
    except (OSError, ValueError) as error:
        if str(path) in str(error):
            raise
        msg = f"could not read the header of {path}: {error}"
        raise ValueError(msg) from error
    except Exception as error:  # decoder errors of damaged headers
        msg = f"could not read the header of {path} (corrupt?): {type(error).__name__}: {error}"
        raise ValueError(msg) from error
    if suffix in PIL_SUFFIXES:
        return ImageInfo()
    msg = f"unsupported file type {suffix!r} for {path}; supported: " + ", ".join(
        SUPPORTED_SUFFIXES
    )
    raise ValueError(msg)


def _mrc_info(path: Path) -> ImageInfo:
    import mrcfile

    with mrcfile.open(path, mode="r", permissive=False, header_only=True) as mrc:
        header = mrc.header
        nz, ispg = int(header.nz), int(header.ispg)
        size = tuple(float(v) for v in (mrc.voxel_size.x, mrc.voxel_size.y, mrc.voxel_size.z))
        origin = tuple(float(v) for v in (header.origin.x, header.origin.y, header.origin.z))
        labels = [
            str(label.decode("ascii", "replace")).rstrip()
            for label in header.label[: int(header.nlabl)]
        ]
    if nz == 1:
        kind = "image"
    else:
        # ISPG 0 marks a stack of images; 1 (and the space groups) a volume; .rec is a tomogram.
        kind = "stack" if ispg == 0 and path.suffix.lower() != ".rec" else "volume"
    return ImageInfo(
        kind=kind,
        n_sections=nz,
        voxel_size=size if any(v > 0 for v in size) else None,
        origin=origin,
        labels=[label for label in labels if label],
    )


def _tiff_info(path: Path) -> ImageInfo:
    import tifffile

    with tifffile.TiffFile(path) as tif:
        layout = tiff_layout(tif, path)
        first, n_sections = layout.pages[0], layout.n_sections
        voxel_size = None
        tags = first.tags
        if "XResolution" in tags and "ResolutionUnit" in tags:
            unit = int(tags["ResolutionUnit"].value)
            numerator, denominator = tags["XResolution"].value
            if unit in _ANGSTROM_PER_UNIT and numerator > 0 and denominator > 0:
                pixels_per_unit = numerator / denominator
                size = _ANGSTROM_PER_UNIT[unit] / pixels_per_unit
                voxel_size = (size, size, 0.0)
    return ImageInfo(
        kind="stack" if n_sections > 1 else "image", n_sections=n_sections, voxel_size=voxel_size
    )
