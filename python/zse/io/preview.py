"""8-bit PNG previews, from arrays only: a percentile-stretched image, and the picture of a
model's learned fields (the fields come from the model's ``fields_image()``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .. import _files
from .write import _prepare_output, _write_atomically


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
    return _save_png(path, Image.fromarray(preview_uint8(image, percentiles)))


def _save_png(path: Path, picture) -> Path:
    """Save a PIL picture as PNG (atomically) with zse's ``Software`` text chunk."""
    from PIL.PngImagePlugin import PngInfo

    from .. import __version__

    info = PngInfo()
    info.add_text("Software", f"{_files.SOFTWARE_PREFIX} {__version__}")
    return _write_atomically(path, lambda tmp: picture.save(tmp, format="PNG", pnginfo=info))


def fields_mosaic(fields, style, patch, *, scale: int = 4) -> np.ndarray:
    """Learned fields (one per row, in the order shown) as one 8-bit picture.

    ``style`` "symmetric": each field symmetric about zero (mid-grey is 0; SSSC's W_ columns);
    "range": each from its own minimum to maximum (PMM/GPMM component means). A 3-D patch shows
    its central slice. Every pixel is ``scale`` x ``scale`` screen pixels, with a one-pixel gap
    between fields. The fields and their style come from a model's ``fields_image()``.
    """
    if style not in ("symmetric", "range"):
        msg = f"style must be 'symmetric' or 'range', got {style!r}"
        raise ValueError(msg)
    fields = np.asarray(fields, dtype=np.float64)
    patch = tuple(int(p) for p in patch)
    fields = fields.reshape(len(fields), *patch)
    if fields.ndim == 4:
        fields = fields[:, patch[0] // 2]
    n, rows, cols = fields.shape
    grid = int(np.ceil(np.sqrt(n)))
    grid_rows = int(np.ceil(n / grid))
    tile_r, tile_c = rows * scale + 1, cols * scale + 1
    mosaic = np.full((grid_rows * tile_r + 1, grid * tile_c + 1), 255, dtype=np.uint8)
    for k, unit in enumerate(fields):
        if style == "symmetric":
            peak = np.max(np.abs(unit))
            scaled = 0.5 + 0.5 * unit / peak if peak > 0 else np.full(unit.shape, 0.5)
        else:
            lo, hi = unit.min(), unit.max()
            scaled = (unit - lo) / (hi - lo) if hi > lo else np.full(unit.shape, 0.5)
        tile = np.kron(np.round(scaled * 255).astype(np.uint8), np.ones((scale, scale), np.uint8))
        r, c = divmod(k, grid)
        mosaic[
            1 + r * tile_r : 1 + r * tile_r + rows * scale,
            1 + c * tile_c : 1 + c * tile_c + cols * scale,
        ] = tile
    return mosaic


def write_fields_png(path, fields, style, patch, *, overwrite: bool = False) -> Path:
    """Write :func:`fields_mosaic` of learned fields as a PNG; returns the path."""
    from PIL import Image

    path = Path(path)
    _prepare_output(path, overwrite)
    return _save_png(path, Image.fromarray(fields_mosaic(fields, style, patch)))
