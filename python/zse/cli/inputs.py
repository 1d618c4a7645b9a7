"""Reading the command line's inputs: file patterns, output stems, and each file as an image,
a stack of sections or a volume, with --page, --crop, --bin and --decimate applied (and the MRC
header's origin and pixel size kept right)."""

from __future__ import annotations

import glob
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .. import io
from ..counts import bin_image
from .errors import UsageError


class InputError(ValueError):
    """An input (file or pattern) that cannot be processed."""


def expand_inputs(patterns) -> list[Path]:
    """Files named or matched by ``patterns`` (globs expanded), sorted, duplicates removed."""
    found: dict[Path, Path] = {}
    for pattern in patterns:
        if any(ch in pattern for ch in "*?[") and not Path(pattern).exists():
            matches = sorted(glob.glob(pattern))
            if not matches:
                msg = f"no file matches {pattern!r}"
                raise InputError(msg)
        else:
            matches = [pattern]
        for match in matches:
            path = Path(match)
            found.setdefault(path.resolve(), path)
    return [found[key] for key in sorted(found)]


def output_stems(paths) -> dict[Path, str]:
    """Each input's output stem (its file name without suffix); clashes are errors."""
    stems: dict[str, Path] = {}
    for path in paths:
        stem = path.stem
        if stem in stems:
            msg = (
                f"{stems[stem]} and {path} would write the same outputs ({stem}_*): "
                "denoise them into different output folders"
            )
            raise InputError(msg)
        stems[stem] = path
    return {path: stem for stem, path in stems.items()}


@dataclass
class Loaded:
    """An input read for denoising."""

    data: np.ndarray  # float64: (rows, cols) or (sections, rows, cols)
    kind: str  # "image", "stack" (sections denoised as images) or "volume"
    info: io.ImageInfo
    record: dict = field(default_factory=dict)


def load(path: Path, options) -> Loaded:
    """Read ``path`` as an image, a stack of sections or a volume, with crop and binning."""
    info = io.read_info(path)
    wants_volume = bool(options.volume) or (
        options.patch_size is not None and len(options.patch_size) == 3
    )
    record = {
        "path": str(path.resolve()),
        "file_kind": info.kind,
        "n_sections": info.n_sections,
        "voxel_size_A": list(info.voxel_size) if info.voxel_size else None,
    }
    if options.page is not None or info.kind == "image":
        if wants_volume and info.kind == "image":
            msg = f"{path} is a 2-D image; a 3-D patch size or --volume needs a volume"
            raise InputError(msg)
        data, kind = io.read_image(path, page=options.page), "image"
        record["page"] = options.page
        if options.page:
            _move_origin(info, 0, 0, options.page)  # one section of a stack: a crop in z
    else:
        data = io.read_volume(path)
        kind = "volume" if wants_volume or info.kind == "volume" else "stack"
    record["dtype"], record["shape"] = str(data.dtype), list(data.shape)
    if kind == "volume" and (options.crop or options.bin != 1 or options.decimate != 1):
        msg = "--crop, --bin and --decimate apply to images and stacks, not to volumes"
        raise InputError(msg)
    if options.crop:
        rows, cols = parse_crop(options.crop, data.shape[-2:])
        data = data[..., rows, cols]
        record["crop"] = [rows.start, rows.stop, cols.start, cols.stop]
        _move_origin(info, cols.start, rows.start)
    notes = []
    if options.bin > 1:
        data, cropped = bin_image(data, options.bin)
        record["bin"] = options.bin
        if any(cropped):
            notes.append(
                f"--bin {options.bin}: the last {cropped[0]} row(s) and {cropped[1]} "
                "column(s) do not fill a block and were cropped"
            )
        _scale_pixels(info, options.bin, point_samples=False)
    if options.decimate > 1:
        data = data[..., :: options.decimate, :: options.decimate]
        record["decimate"] = options.decimate
        _scale_pixels(info, options.decimate, point_samples=True)
    if info.origin is not None:
        record["origin_A"] = list(info.origin)
    data = np.ascontiguousarray(data, dtype=np.float64)
    record["processed_shape"], record["kind"], record["notes"] = list(data.shape), kind, notes
    return Loaded(data, kind, info, record)


# The MRC header after --crop, --bin and --decimate follows IMOD (trimvol, newstack, binvol):
# the header's origin is the negative of the physical coordinate (in Å) of the first pixel's
# lower-left corner, so a feature keeps its coordinates. A crop from column x0, row y0 moves
# the origin by -(x0, y0) pixels (--page k: by -k sections); binning by n keeps the corner
# (origin unchanged) and scales the pixel size by n; keeping every n-th pixel makes each kept
# sample the centre of an n times larger pixel, whose corner lies (n - 1) / 2 old pixels before
# the sample's own corner.
def _move_origin(info: io.ImageInfo, x0: int, y0: int, z0: int = 0) -> None:
    if info.origin is None or info.voxel_size is None:
        return
    (ox, oy, oz), (vx, vy, vz) = info.origin, info.voxel_size
    info.origin = (ox - x0 * vx, oy - y0 * vy, oz - z0 * vz)


def _scale_pixels(info: io.ImageInfo, factor: int, *, point_samples: bool) -> None:
    if info.voxel_size is None:
        return
    vx, vy, vz = info.voxel_size
    if point_samples and info.origin is not None:
        ox, oy, oz = info.origin
        shift = (factor - 1) / 2
        info.origin = (ox + shift * vx, oy + shift * vy, oz)
    info.voxel_size = (vx * factor, vy * factor, vz)


def parse_crop(text: str, shape) -> tuple[slice, slice]:
    """``"y0:y1,x0:x1"`` (ends may be left empty) -> slices; out-of-range crops are errors."""
    axes = text.split(",")
    if len(axes) != 2:
        raise UsageError(f"--crop must look like y0:y1,x0:x1, got {text!r}")
    slices = []
    for axis_text, size, axis in zip(axes, shape, ("y", "x")):
        ends = axis_text.split(":")
        if len(ends) != 2:
            raise UsageError(f"--crop must look like y0:y1,x0:x1, got {text!r}")
        try:
            start = int(ends[0]) if ends[0].strip() else 0
            stop = int(ends[1]) if ends[1].strip() else size
        except ValueError:
            raise UsageError(f"--crop bounds must be integers, got {text!r}") from None
        if not 0 <= start < stop <= size:
            raise UsageError(
                f"--crop {axis} range {start}:{stop} is empty or outside the image "
                f"(0:{size} along {axis}); nothing is clipped silently"
            )
        slices.append(slice(start, stop))
    return slices[0], slices[1]
