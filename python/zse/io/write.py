"""Writing results: float32 TIFF and MRC (with the input's header), the JSON record, and sets of
outputs that appear completely or not at all.

Every writer follows the one file rule of ``zse._files``: it replaces an existing file only
when zse wrote it and ``overwrite=True``, and never a file that is an input of the same call.
Every file written carries zse's marker (a TIFF ``Software`` tag, an MRC label, a PNG text chunk,
the record's ``zse_version``) so that a later call can tell its own outputs from a user's files.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import numpy as np

from .. import _files
from .read import ImageInfo

ZSE_LABEL = "zse: denoised with zero-shot enhancement"


def write_mrc(
    path,
    volume,
    *,
    overwrite: bool = False,
    info: ImageInfo | None = None,
    label: str | None = None,
) -> Path:
    """Write a 2-D image or 3-D array as a float32 MRC file (atomically); returns the path.

    With ``info`` (from :func:`read_info` of the input) the voxel size, origin and labels are
    kept, a 3-D array is marked as a stack or a volume like the input, and ``label`` (at most
    80 characters, starting with ``"zse:"``; default ``ZSE_LABEL``) is added to the labels:
    it marks the file as zse's.
    """
    import mrcfile

    from .. import __version__

    path = Path(path)
    _prepare_output(path, overwrite)
    out = _as_float32(volume, path)
    label = label or f"{ZSE_LABEL} {__version__}"
    if not label.startswith(_files.MRC_LABEL_PREFIX):
        msg = f"an MRC label of zse must start with {_files.MRC_LABEL_PREFIX!r}, got {label!r}"
        raise ValueError(msg)

    def write(tmp):
        with mrcfile.new(tmp, overwrite=True) as mrc:
            mrc.set_data(out)
            _mrc_header(mrc, info, label, out.ndim == 3)

    return _write_atomically(path, write)


def _mrc_header(mrc, info: ImageInfo | None, label: str, three_d: bool) -> None:
    """The input's header (stack or volume, voxel size, origin, labels) and zse's label last."""
    if three_d:
        if info is not None and info.kind == "stack":
            mrc.set_image_stack()
        else:
            mrc.set_volume()
    # Only the input's labels and ours (not mrcfile's "Created by" line).
    mrc.header.nlabl = 0
    mrc.header.label[:] = b""
    if info is not None:
        if info.voxel_size is not None:
            mrc.voxel_size = info.voxel_size
        if info.origin is not None:
            mrc.header.origin = info.origin
        for text in list(info.labels)[-9:]:  # 10 labels at most, ours is the last
            mrc.add_label(text[:80])
    mrc.add_label(label[:80])


def _prepare_output(
    path: Path, overwrite: bool, kind: str = "output", inputs: _files.Inputs = _files.NO_INPUTS
) -> None:
    """The file rule (:func:`zse._files.check_target`) and an existing output directory."""
    _files.check_target(path, kind=kind, overwrite=overwrite, inputs=inputs)
    if not path.parent.is_dir():
        msg = f"output directory {path.parent} does not exist"
        raise FileNotFoundError(msg)


def _as_float32(data, path: Path) -> np.ndarray:
    """float32 copy for writing; ValueError when finite values would overflow to inf."""
    data = np.asarray(data)
    with np.errstate(over="ignore"):
        out = data.astype(np.float32)
    if np.isfinite(data).all() and not np.isfinite(out).all():
        msg = f"values of the image for {path} overflow float32"
        raise ValueError(msg)
    return out


def _write_atomically(path: Path, write) -> Path:
    """Call write(temporary_path), then rename it to path: a reader never sees half a file."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


def write_tiff(path, image, *, overwrite: bool = False, info: ImageInfo | None = None) -> Path:
    """Write a 2-D image (or a stack, one page per section) as a float32 TIFF (atomically).

    With ``info`` carrying a pixel size, it is written to the resolution tags (pixels per
    centimetre), which Fiji/ImageJ and napari's TIFF readers show as the pixel size.
    Returns the path written.
    """
    path = Path(path)
    _prepare_output(path, overwrite)
    out = _as_float32(image, path)
    import tifffile

    from .. import __version__

    options = {"software": f"{_files.SOFTWARE_PREFIX} {__version__}"}
    if info is not None and info.voxel_size is not None and info.voxel_size[0] > 0:
        per_cm = 1e8 / float(info.voxel_size[0])
        options.update(resolution=(per_cm, per_cm), resolutionunit="CENTIMETER")
    return _write_atomically(
        path, lambda tmp: tifffile.imwrite(tmp, out, photometric="minisblack", **options)
    )


def write_json(path, record: dict, *, overwrite: bool = False) -> Path:
    """Write a JSON record (atomically); returns the path.

    The record carries ``zse_version`` (added first when it lacks one): zse's marker.
    """
    import json

    from .. import __version__

    path = Path(path)
    _prepare_output(path, overwrite)
    if "zse_version" not in record:
        record = {"zse_version": __version__, **record}
    text = json.dumps(record, indent=2) + "\n"
    return _write_atomically(path, lambda tmp: tmp.write_text(text))


class OutputSet:
    """A set of output files that appears completely or not at all.

    Files are written into a hidden staging folder inside ``directory`` and moved into place
    together when the ``with`` block ends without an error. On an error or an interrupt the
    staged files are deleted, and so is ``directory`` (and any parent) if this set created it
    and it is still empty. The file rule (``zse._files``) is checked for every name before
    any work and again before the files are moved: an input of the call (``inputs``) or a file
    zse did not write is never replaced, and existing outputs only with ``overwrite``.

    Examples
    --------
    >>> with OutputSet("out", ["mean.tif"]) as outputs:       # doctest: +SKIP
    ...     write_tiff(outputs.path("mean.tif"), image)
    """

    def __init__(
        self, directory, names, *, overwrite: bool = False, inputs: _files.Inputs = _files.NO_INPUTS
    ):
        self.directory = Path(directory)
        self.names = list(dict.fromkeys(names))
        self.overwrite = overwrite
        self.inputs = inputs
        self._created: list[Path] = []
        self._staging: Path | None = None
        if self.directory.exists() and not self.directory.is_dir():
            msg = f"output path {self.directory} exists and is not a directory"
            raise ValueError(msg)
        self._check_targets()

    def _check_targets(self) -> None:
        """The file rule for every name: no input replaced, no foreign file, --overwrite."""
        refused, existing = [], []
        for name in self.names:
            try:
                _files.check_target(
                    self.directory / name, overwrite=self.overwrite, inputs=self.inputs
                )
            except _files.WriteRefused as error:
                refused.append(str(error))
            except FileExistsError:
                existing.append(str(self.directory / name))
        if refused:
            raise _files.WriteRefused("; ".join(refused))
        if existing:
            msg = (
                "outputs exist already: "
                + ", ".join(existing)
                + "; pass --overwrite (overwrite=True) to replace them"
            )
            raise FileExistsError(msg)

    def __enter__(self) -> OutputSet:
        missing = []
        parent = self.directory
        while not parent.exists():
            missing.append(parent)
            parent = parent.parent
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            self._created = missing
            self._staging = Path(tempfile.mkdtemp(prefix=".zse-staging-", dir=self.directory))
        except OSError as error:
            self._remove_created()
            msg = f"cannot write to output directory {self.directory}: {error.strerror or error}"
            raise ValueError(msg) from error
        return self

    def path(self, name: str) -> Path:
        """Where to write output ``name`` while the set is open (a staging path)."""
        if name not in self.names:
            msg = f"{name!r} is not one of this output set's files: {self.names}"
            raise ValueError(msg)
        return self._staging / name

    def final_path(self, name: str) -> Path:
        return self.directory / name

    def __exit__(self, exc_type, exc, tb) -> None:
        try:
            if exc_type is None:
                missing = [n for n in self.names if not (self._staging / n).exists()]
                if missing:
                    msg = f"outputs were not written: {', '.join(missing)}"
                    raise RuntimeError(msg)
                self._check_targets()  # a file may have appeared while the set was written
                for name in self.names:
                    os.replace(self._staging / name, self.directory / name)
        finally:
            shutil.rmtree(self._staging, ignore_errors=True)
            if exc_type is not None:
                self._remove_created()

    def _remove_created(self) -> None:
        for folder in self._created:  # deepest first
            try:
                folder.rmdir()
            except OSError:
                break


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


class VolumeWriter:
    """A float32 volume written slab by slab, in order, into one file: an MRC file with the
    input's header (voxel size, origin, labels, zse's label last) or a multi-page TIFF.

    Nothing is held but the slab being written, so a volume larger than memory can be written
    (docs/tutorials/stacks-and-tomograms.md). Use it on a path of an :class:`OutputSet` (the file
    appears with the set, or not at all); the MRC header's statistics (minimum, maximum, mean,
    RMS) are written when the last slab is in.
    """

    def __init__(self, path, shape, *, fmt: str, info: ImageInfo | None = None, label=None):
        from .. import __version__

        self.path = Path(path)
        self.shape = tuple(int(s) for s in shape)
        self.fmt = fmt
        self.next_slice = 0
        self._stats = [np.inf, -np.inf, 0.0, 0.0]  # min, max, sum, sum of squares
        _prepare_output(self.path, False)
        if fmt == "mrc":
            self._offset = _new_mrc_header(self.path, self.shape, info, label)
            self._file = open(self.path, "r+b")  # noqa: SIM115 - closed by close()
        elif fmt == "tif":
            import tifffile

            self._tiff_options = {"software": f"{_files.SOFTWARE_PREFIX} {__version__}"}
            if info is not None and info.voxel_size is not None and info.voxel_size[0] > 0:
                per_cm = 1e8 / float(info.voxel_size[0])
                self._tiff_options.update(resolution=(per_cm, per_cm), resolutionunit="CENTIMETER")
            self._file = tifffile.TiffWriter(self.path, bigtiff=True)
        else:
            msg = f"fmt must be 'mrc' or 'tif', got {fmt!r}"
            raise ValueError(msg)

    def write(self, z0: int, slab) -> None:
        """Write slices [z0, z0 + len(slab)) (the next ones: slabs come in order)."""
        if z0 != self.next_slice or slab.shape[1:] != self.shape[1:]:
            msg = (
                f"slab at slice {z0} of shape {slab.shape} does not follow slice {self.next_slice}"
            )
            raise ValueError(msg)
        out = _as_float32(slab, self.path)
        if self.fmt == "mrc":
            self._file.seek(self._offset + z0 * out[0].nbytes)
            self._file.write(np.ascontiguousarray(out, dtype="<f4").tobytes())
            wide = out.astype(np.float64)
            self._stats[0] = min(self._stats[0], float(wide.min()))
            self._stats[1] = max(self._stats[1], float(wide.max()))
            self._stats[2] += float(wide.sum())
            self._stats[3] += float(np.square(wide).sum())
        else:
            for section in out:
                self._file.write(
                    section, photometric="minisblack", contiguous=True, **self._tiff_options
                )
        self.next_slice = z0 + len(out)

    def close(self) -> None:
        if self.fmt == "mrc":
            if self.next_slice == self.shape[0]:
                n = float(np.prod(self.shape))
                mean = self._stats[2] / n
                rms = np.sqrt(max(0.0, self._stats[3] / n - mean * mean))
                self._file.seek(76)  # dmin, dmax, dmean (words 20-22), rms (word 55)
                self._file.write(np.array(self._stats[:2] + [mean], dtype="<f4").tobytes())
                self._file.seek(216)
                self._file.write(np.array([rms], dtype="<f4").tobytes())
        self._file.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False


def _new_mrc_header(path: Path, shape, info, label) -> int:
    """A float32 MRC file of ``shape`` with the input's header and zse's label, data unwritten
    (sparse); returns the offset of the data."""
    import mrcfile

    from .. import __version__

    label = label or f"{ZSE_LABEL} {__version__}"
    if not label.startswith(_files.MRC_LABEL_PREFIX):
        msg = f"an MRC label of zse must start with {_files.MRC_LABEL_PREFIX!r}, got {label!r}"
        raise ValueError(msg)
    with mrcfile.new_mmap(path, shape=shape, mrc_mode=2, overwrite=True) as mrc:
        _mrc_header(mrc, info, label, True)
        if mrc.header.mode.dtype.byteorder == ">":
            msg = "a big-endian MRC header: the slab writer writes little-endian data"
            raise ValueError(msg)
        return 1024 + int(mrc.header.nsymbt)
