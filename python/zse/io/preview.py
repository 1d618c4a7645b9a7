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


NOISE_PANEL = 192  # screen pixels of each of the noise picture's three panels


def noise_picture(description: dict) -> np.ndarray:
    """A model's learned noise as one 8-bit picture of three panels.

    ``description`` is what :meth:`zse.SSSC.noise_description` returns. Left, the noise power
    spectrum: the autocovariance on a 64-pixel periodic grid, zero frequency at the centre,
    black 0 and white its maximum (a flat white square: white noise). Middle, the correlation
    over the patch's offsets: mid-grey 0, white 1 (offset 0 at the centre). Right, the noise
    variance against the brightness in the data's units: the model's line and, as squares, the
    medians the fit measured. A 3-D patch shows its central section.
    """
    from PIL import Image, ImageDraw

    size, top = NOISE_PANEL, 14
    picture = Image.new("L", (3 * size + 4 * 8, size + top + 28), 255)
    draw = ImageDraw.Draw(picture)
    acf = description.get("autocovariance")
    lefts = [8, 16 + size, 24 + 2 * size]
    if acf is not None:
        acf = np.asarray(acf, dtype=np.float64)
        while acf.ndim > 2:
            acf = acf[acf.shape[0] // 2]
        acf = acf.reshape(-1, acf.shape[-1]) if acf.ndim == 2 else acf.reshape(1, -1)
        torus = np.zeros((64, 64) if acf.shape[0] > 1 else (1, 64))
        centre = [n // 2 for n in acf.shape]
        for (i, j), value in np.ndenumerate(acf):
            torus[(i - centre[0]) % torus.shape[0], (j - centre[1]) % 64] += value
        psd = np.fft.fftshift(np.maximum(np.real(np.fft.fft2(torus)), 0.0))
        peak = psd.max()
        grey = psd / peak if peak > 0 else np.zeros_like(psd)
        tile = np.round(grey * 255).astype(np.uint8)
        picture.paste(Image.fromarray(tile).resize((size, size), Image.NEAREST), (lefts[0], top))
        corr = acf / acf[tuple(centre)] if acf[tuple(centre)] > 0 else np.zeros_like(acf)
        tile = np.round(np.clip(0.5 + 0.5 * corr, 0, 1) * 255).astype(np.uint8)
        picture.paste(Image.fromarray(tile).resize((size, size), Image.NEAREST), (lefts[1], top))
        if np.ptp(psd) <= 1e-9 * peak:
            draw.text((lefts[0] + 6, top + size // 2), "flat: white noise", fill=0)
    for left in lefts[:2]:
        draw.rectangle((left - 1, top - 1, left + size, top + size), outline=0)
    draw.text((lefts[0], 1), "noise power spectrum", fill=0)
    draw.text((lefts[1], 1), "correlation over offsets", fill=0)
    draw.text((lefts[2], 1), "noise variance vs brightness", fill=0)
    _noise_level_panel(draw, description, lefts[2], top, size)
    caption = f"noise: {description.get('model', '?')}"
    transform = description.get("transform")
    if transform is not None:
        caption += (
            f", Poisson-Gaussian: alpha {transform['alpha']:.4g}, offset "
            f"{transform['offset']:.4g}, s2 {transform['s2']:.3g} (Anscombe)"
        )
    caption += f", sigma2 {description.get('sigma2', float('nan')):.4g}"
    draw.text((8, size + top + 14), caption, fill=0)
    return np.asarray(picture)


def _noise_level_panel(draw, description: dict, left: int, top: int, size: int) -> None:
    """The noise-level function: its line over the brightness range, the measured medians."""
    draw.rectangle((left, top, left + size - 1, top + size - 1), outline=0)
    level = description.get("level")
    if level is None or "brightness" not in description:  # a constant over an unknown range
        draw.text((left + 6, top + size // 2), "constant (not measured)", fill=0)
        return
    low, high = description["brightness"]
    if not (np.isfinite(low) and np.isfinite(high)) or high <= low:
        return
    measured = description.get("measured", {})
    xs = np.linspace(low, high, 64)
    line = np.asarray(level(xs), dtype=np.float64)
    points = [
        (b, v)
        for b, v in zip(measured.get("brightness", []), measured.get("variance", []))
        if np.isfinite(b) and np.isfinite(v) and low <= b <= high
    ]
    values = np.concatenate([line, [v for _, v in points]])
    values = values[np.isfinite(values)]
    if values.size == 0:
        return
    v_high = max(float(values.max()) * 1.1, np.finfo(np.float64).tiny)

    def at(b, v):
        return (
            left + (b - low) / (high - low) * (size - 1),
            top + size - 1 - np.clip(v / v_high, 0, 1) * (size - 1),
        )

    draw.line([at(b, v) for b, v in zip(xs, line) if np.isfinite(v)], fill=0, width=2)
    for b, v in points:
        x, y = at(b, v)
        draw.rectangle((x - 2, y - 2, x + 2, y + 2), outline=0)
    draw.text((left, top + size + 1), f"{low:.4g}", fill=0)
    draw.text((left + size - 40, top + size + 1), f"{high:.4g}", fill=0)
    draw.text((left + 3, top + 2), f"{v_high:.3g}", fill=0)


def write_noise_png(path, description: dict, *, overwrite: bool = False) -> Path:
    """Write :func:`noise_picture` of a model's learned noise as a PNG; returns the path."""
    from PIL import Image

    path = Path(path)
    _prepare_output(path, overwrite)
    return _save_png(path, Image.fromarray(noise_picture(description)))
