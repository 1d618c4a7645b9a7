"""Reading micrographs (TIFF, MRC, PNG/JPEG) and writing results (float32 TIFF and MRC, 8-bit PNG
previews, the JSON record), split by topic: :mod:`~zse.io.read`, :mod:`~zse.io.write`,
:mod:`~zse.io.preview`.

Input files are only ever opened for reading; every writer follows the one file rule of
``zse._files``.
"""

from __future__ import annotations

from .preview import (
    fields_mosaic,
    noise_picture,
    preview_uint8,
    write_fields_png,
    write_noise_png,
    write_preview_png,
)
from .read import (
    MRC_SUFFIXES,
    PIL_SUFFIXES,
    SUPPORTED_SUFFIXES,
    TIFF_SUFFIXES,
    ImageInfo,
    read_image,
    read_info,
    read_volume,
)
from .write import (
    ZSE_LABEL,
    OutputSet,
    VolumeWriter,
    ensure_output_dir,
    write_json,
    write_mrc,
    write_tiff,
)

__all__ = [
    "MRC_SUFFIXES",
    "PIL_SUFFIXES",
    "SUPPORTED_SUFFIXES",
    "TIFF_SUFFIXES",
    "ZSE_LABEL",
    "ImageInfo",
    "OutputSet",
    "VolumeWriter",
    "ensure_output_dir",
    "fields_mosaic",
    "preview_uint8",
    "read_image",
    "read_info",
    "read_volume",
    "write_fields_png",
    "write_noise_png",
    "noise_picture",
    "write_json",
    "write_mrc",
    "write_preview_png",
    "write_tiff",
]
