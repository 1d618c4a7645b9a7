"""Volumes larger than memory: read, estimated and written a slab of slices at a time.

The streamed estimate of a volume already works band by band (a band is one corner slice of
patches, ALGORITHM.md §2.6), and a band's estimates depend only on the band: so a slab of output
slices needs only the input slices its bands read, and gives the slices a whole-volume run would
give, bit for bit. Training patches are gathered slab by slab at the same global positions.
Peak memory is a slab of input (float64), a slab of each output, the merge's ring and the
training patches, never the volume (docs/tutorials/stacks-and-tomograms.md).
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import _core
from ._memory import available_memory, format_bytes
from ._mpi import team_of
from ._progress import Progress
from ._threads import effective_n_threads
from ._validation import as_patch_shape, as_stats, check_volume_fits
from .models import as_model, is_fitted
from .models.base import Slab
from .reconstruct import check_outputs, check_squares_fit, plan_training

__all__ = [
    "SlabPlan",
    "VolumeSource",
    "WholeOnly",
    "default_slab_slices",
    "estimate_slab_memory",
    "gather_training_patches",
    "reconstruct_slabs",
]

# Slabs when none is asked for: as many slices as keep a slab's input and output images
# (float64) within this budget, at least 4 (each slab estimates Pz - 1 bands again) and at most
# 64: 8 slices of 1024 x 1024 with mean and var, 32 of 512 x 512.
SLAB_BUDGET_BYTES = 256 * 1024**2
MIN_SLAB_SLICES, MAX_SLAB_SLICES = 4, 64


def default_slab_slices(shape, n_stats: int) -> int:
    """Slices per slab for a volume of ``shape`` with ``n_stats`` outputs."""
    per_slice = 8 * int(shape[1]) * int(shape[2]) * (n_stats + 2)
    return int(np.clip(SLAB_BUDGET_BYTES // per_slice, MIN_SLAB_SLICES, MAX_SLAB_SLICES))


class WholeOnly(ValueError):
    """A file that holds its slices in one TIFF page: it can only be read whole."""


class VolumeSource:
    """A volume file (MRC, or a multi-page TIFF) read a slab of slices at a time.

    Only the header is read on opening; :meth:`read` reads slices ``[z0, z1)`` from the file
    (never the whole volume) as a finite float64 array.
    """

    def __init__(self, path):
        from .io.read import MRC_SUFFIXES, TIFF_SUFFIXES

        self.path = Path(path)
        suffix = self.path.suffix.lower()
        if suffix in MRC_SUFFIXES:
            import mrcfile
            from mrcfile.utils import dtype_from_mode

            with mrcfile.open(self.path, mode="r", permissive=False, header_only=True) as mrc:
                header = mrc.header
                self.shape = (int(header.nz), int(header.ny), int(header.nx))
                dtype = np.dtype(dtype_from_mode(header.mode))
                order = header.mode.dtype.byteorder
                self.dtype = dtype.newbyteorder(">") if order == ">" else dtype
                self._offset = 1024 + int(header.nsymbt)
            declared = int(np.prod(self.shape)) * self.dtype.itemsize
            if min(self.shape) < 1 or self.path.stat().st_size - self._offset < declared:
                msg = f"{self.path} is shorter than its header declares (truncated or corrupt)"
                raise ValueError(msg)
            self.kind = "mrc"
        elif suffix in TIFF_SUFFIXES:
            import tifffile

            from .io.tiff import tiff_layout

            with tifffile.TiffFile(self.path) as tif:
                layout = tiff_layout(tif, self.path)
                pages = layout.pages
                first = pages[0]
                self.shape = (len(pages), *first.shape)
                self.dtype = first.dtype
                if layout.single_page_stack:
                    msg = (
                        f"{self.path} holds its {layout.n_sections} slices in one TIFF page; "
                        "zse reads such a file only whole, not slab by slab"
                    )
                    raise WholeOnly(msg)
                for index, page in enumerate(pages):
                    if page.shape != first.shape or page.dtype != first.dtype:
                        msg = f"{self.path}: page {index} differs from page 0: not a volume"
                        raise ValueError(msg)
            self.kind = "tif"
        else:
            msg = f"{self.path}: volumes are read from MRC or TIFF files, not {suffix!r}"
            raise ValueError(msg)
        if len(self.shape) != 3:
            msg = f"{self.path} holds pages of shape {self.shape[1:]}, not 2-D slices"
            raise ValueError(msg)

    def read(self, z0: int, z1: int) -> np.ndarray:
        """Slices ``[z0, z1)`` as a C-contiguous float64 array (ValueError on non-finite values)."""
        _, rows, cols = self.shape
        if self.kind == "mrc":
            count = (z1 - z0) * rows * cols
            offset = self._offset + z0 * rows * cols * self.dtype.itemsize
            raw = np.fromfile(self.path, dtype=self.dtype, count=count, offset=offset)
            data = raw.reshape(z1 - z0, rows, cols)
        else:
            import tifffile

            with tifffile.TiffFile(self.path) as tif:
                data = tif.asarray(key=range(z0, z1))
            data = data.reshape(z1 - z0, rows, cols)
        out = np.ascontiguousarray(data, dtype=np.float64)
        if not np.isfinite(out).all():
            bad = int(np.count_nonzero(~np.isfinite(out)))
            msg = f"{self.path}: {bad} value(s) in slices {z0}..{z1 - 1} are NaN or infinite"
            raise ValueError(msg)
        return out


@dataclass
class SlabPlan:
    """The geometry of a slab-wise reconstruction."""

    shape: tuple
    patch: tuple  # (Pz, Ph, Pw)
    slab_slices: int

    @property
    def corners(self) -> tuple:
        return tuple(s - p + 1 for s, p in zip(self.shape, self.patch))

    def slabs(self):
        """Output slabs [a, b) in order."""
        Z = self.shape[0]
        for a in range(0, Z, self.slab_slices):
            yield a, min(Z, a + self.slab_slices)

    def window(self, a: int, b: int) -> tuple[int, int]:
        """The input slices the bands of output slices [a, b) read."""
        Pz = self.patch[0]
        Zc = self.corners[0]
        first_band, last_band = max(0, a - Pz + 1), min(b, Zc)
        return first_band, min(self.shape[0], last_band - 1 + Pz)


def estimate_slab_memory(plan: SlabPlan, stats, model, n_train: int, n_threads: int) -> dict:
    """Bytes a slab-wise reconstruction needs at its peak, by part (before any work)."""
    _, rows, cols = plan.shape
    D = int(np.prod(plan.patch))
    window = plan.slab_slices + 2 * (plan.patch[0] - 1)
    stream = _core.stream_plan(
        plan.shape, plan.patch, "pvar" in stats, "median" in stats, "auto", n_threads
    )
    parts = {
        "input slab (float64)": 8 * window * rows * cols,
        "output slabs": 8 * plan.slab_slices * rows * cols * (len(stats) + 1),
        "streaming buffers": stream["ring_bytes"] + stream["scratch_bytes"] * stream["wave"],
        "training patches": 8 * n_train * D * 2,
    }
    parts.update(as_model(model).memory_parts(n_train, D))
    parts["total"] = sum(parts.values())
    return parts


def reconstruct_slabs(
    source: VolumeSource,
    model,
    write,
    *,
    stats=("mean", "var"),
    patch_size=None,
    n_train="auto",
    median_kind="average",
    slab_slices: int | None = None,
    n_threads=None,
    verbose=False,
    comm=None,
    progress=None,
):
    """Denoise a volume file slab by slab: the same images as :func:`zse.reconstruct` on the
    whole volume, bit for bit, with memory bounded by a slab (not the volume).

    ``slab_slices``: output slices per slab (None: :func:`default_slab_slices`).
    ``write(first_slice, images)`` receives each slab's images (a dict of (slices, R, Q)
    arrays, in order of the slices) on rank 0; under MPI (``comm``) every rank reads and
    estimates only its part of each slab's slices, and rank 0 gathers the slab. Returns the
    fitted model.
    """
    stats = as_stats(stats)
    given = model
    model = as_model(model)
    if not model.streams():
        msg = f"{type(given).__name__} has no streamed estimate; volumes need a zse model"
        raise TypeError(msg)
    if slab_slices is None:
        slab_slices = default_slab_slices(source.shape, len(stats))
    if int(slab_slices) < 1:
        msg = f"slab_slices must be >= 1, got {slab_slices!r}"
        raise ValueError(msg)
    patch = as_patch_shape(model.default_patch(3) if patch_size is None else patch_size, 3)
    check_volume_fits(source.shape, patch)
    threads = effective_n_threads(n_threads)
    team = team_of(comm)
    plan = SlabPlan(source.shape, patch, int(slab_slices))
    Zc, Rc, Qc = plan.corners
    n_patches = Zc * Rc * Qc
    check_outputs(model, given, stats, median_kind)
    fitted = is_fitted(model)
    positions = plan_training(model, patch, n_patches, n_train)
    parts = estimate_slab_memory(plan, stats, model, len(positions), threads)
    available = available_memory()
    if available is not None and parts["total"] > available:
        detail = ", ".join(f"{k} {format_bytes(v)}" for k, v in parts.items() if k != "total")
        msg = (
            f"denoising a volume of shape {source.shape} in slabs of {plan.slab_slices} slices "
            f"needs about {format_bytes(parts['total'])} ({detail}), but only "
            f"{format_bytes(available)} is available; use thinner slabs or a smaller n_train"
        )
        raise MemoryError(msg)
    is_root = team is None or team.is_root

    def log(message: str, start: float) -> None:
        if verbose and is_root:
            print(f"[zse] {message} ({time.perf_counter() - start:.2f} s)", file=sys.stderr)

    if not fitted:
        t = time.perf_counter()
        train = gather_training_patches(source, plan, positions, threads)
        log(f"gathered {len(positions)} of {n_patches} patches slab by slab for training", t)
        t = time.perf_counter()
        epochs = None if progress is None else (lambda done, total: progress("fit", done, total))
        with model.fitting_on(comm):
            model.fit(train, progress=epochs, patch_shape=plan.patch)
        del train
        model._record_patch_shape(patch)
        log(f"fitted {type(given).__name__}", t)

    t = time.perf_counter()
    slabs = list(plan.slabs())
    lines = Progress("estimating slabs", "slab", enabled=verbose and is_root)
    with lines:
        for index, (a, b) in enumerate(slabs):
            images = _estimate_slab(
                source, plan, model, stats, positions, median_kind, threads, team, a, b
            )
            if team is None:
                write(a, images)
            else:  # rank 0 writes; a failure there reaches every rank
                team.run(
                    lambda a=a, images=images: write(a, images) if is_root else None, gather=False
                )
            del images
            lines(index + 1, len(slabs))
            if progress is not None and is_root:
                progress("estimate", index + 1, len(slabs))
    log(f"estimated and wrote {len(slabs)} slab(s) of {plan.slab_slices} slices", t)
    return given


def _estimate_slab(source, plan, model, stats, positions, median_kind, threads, team, a, b):
    """The images of output slices [a, b): this rank's part of them estimated from the input
    slices its bands read; under MPI gathered on rank 0 (in rank order)."""
    size = 1 if team is None else team.size
    rank = 0 if team is None else team.rank
    lo = a + (b - a) * rank // size
    hi = a + (b - a) * (rank + 1) // size

    def mine():
        if lo == hi:
            return {name: np.zeros((0, *plan.shape[1:])) for name in stats}
        first, last = plan.window(lo, hi)
        window = source.read(first, last)
        check_squares_fit(window, stats)
        slab = Slab(begin=lo, end=hi, n_slices=plan.shape[0], first_slice=first)
        return model.estimate_volume(
            window, plan.patch, list(stats), positions, median_kind, threads, slab=slab
        )

    if team is None:
        return mine()
    images = team.run(mine, gather=False)
    return {name: team.gather_slices(images[name], 0) for name in stats}


def gather_training_patches(source, plan: SlabPlan, positions, n_threads) -> np.ndarray:
    """The patches at the sorted global ``positions``, read slab by slab (as
    ``_core.gather_patches`` on the whole volume would give them)."""
    Zc, Rc, Qc = plan.corners
    per_slice = Rc * Qc
    D = int(np.prod(plan.patch))
    out = np.empty((len(positions), D))
    corner_slices = positions // per_slice
    for a, b in plan.slabs():
        if a >= Zc:
            break
        lo, hi = np.searchsorted(corner_slices, [a, min(b, Zc)])
        if lo == hi:
            continue
        last = min(b, Zc) - 1 + plan.patch[0]
        window = source.read(a, last)
        local = np.ascontiguousarray(positions[lo:hi] - a * per_slice, dtype=np.int64)
        out[lo:hi] = _core.gather_patches(window, plan.patch, local, n_threads)
    return out
