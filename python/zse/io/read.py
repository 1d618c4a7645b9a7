"""Reading micrographs (TIFF, MRC, PNG/JPEG) and their headers (pixel size, origin, labels).

Input files are only ever opened for reading.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .checks import check_decoded_size, existing_file, select_page, to_grey
from .tiff import read_tiff, read_tiff_volume, tiff_layout

TIFF_SUFFIXES = (".tif", ".tiff")
MRC_SUFFIXES = (".mrc", ".mrcs", ".map", ".st", ".ali", ".rec")
PIL_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp")
SUPPORTED_SUFFIXES = TIFF_SUFFIXES + MRC_SUFFIXES + PIL_SUFFIXES


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
    index = select_page(nz, page, path, "section")
    check_decoded_size((ny, nx), dtype.itemsize, path)
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
        index = select_page(n_frames, page, path, "frame")
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
        check_decoded_size((height, width, len(im.getbands())), 4, path)
        im.seek(index)
        im.load()
        if im.mode == "P":
            im = im.convert("RGBA")
        elif im.mode == "PA":
            im = im.convert("RGBA")
        mode = im.mode
        array = np.array(im)
    if mode in ("LA", "La"):
        return to_grey(array, 1, 1, path)
    if mode in ("RGBA", "RGBa"):
        return to_grey(array, 3, 1, path)
    if mode in ("RGB", "RGBX"):
        return to_grey(array[..., :3], 3, 0, path)
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
    path = existing_file(path)
    suffix = path.suffix.lower()
    if suffix in TIFF_SUFFIXES:
        reader = read_tiff
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
    path = existing_file(path)
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
            check_decoded_size(shape, dtype.itemsize, path)
            with mrcfile.mmap(path, mode="r", permissive=False) as mrc:
                volume = np.array(mrc.data)
        elif suffix in TIFF_SUFFIXES:
            volume = read_tiff_volume(path)
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
    path = existing_file(path)
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
