"""The one rule for every file zse writes (docs/reliability.md, "Your files are never lost").

Outputs, previews, run records, checkpoints and model files all pass through
:func:`check_target` before anything is written and again just before a staged file is moved
into place:

* a file that is an input of the same call is never replaced, nor written through a path that
  resolves to it (symbolic links, ``..``, another case on a case-insensitive file system, hard
  links: files are compared by device and inode, not by name);
* an existing file is replaced only when zse wrote it, which zse tells from the file itself
  (the marker every writer puts in: a TIFF ``Software`` tag, an MRC label, a PNG text chunk, the
  ``zse_version`` of a run record, the ``format`` of a model file or checkpoint), and for
  outputs and model files only when the caller asked to overwrite;
* a checkpoint replaces only a zse checkpoint.

Writers that know the call's inputs pass them (a :class:`Inputs`); the library's writers called
on their own check the second and third points.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

# What each kind of file may replace; "output" covers images, previews and run records.
KINDS = ("output", "checkpoint", "model")
STAR_MARKER = "# written by zse"  # first line of the STAR files zse relion writes
SOFTWARE_PREFIX = "zse"  # the TIFF Software tag and PNG "Software" text chunk of zse's files
MRC_LABEL_PREFIX = "zse:"  # every MRC zse writes carries a label starting with this
MODEL_FORMAT = "zse-model"
CHECKPOINT_FORMAT = "zse-checkpoint"


class WriteRefused(FileExistsError):
    """zse would replace an input of the call or a file it did not write: nothing was written."""


class Inputs:
    """The files a call reads, identified by device and inode (not by name)."""

    def __init__(self, paths=()):
        self._ids: dict[tuple[int, int], Path] = {}
        for path in paths:
            self.add(path)

    def add(self, path) -> None:
        path = Path(path)
        try:
            st = path.stat()
        except OSError:
            return  # a missing input fails where it is read
        self._ids.setdefault((st.st_dev, st.st_ino), path)

    def matching(self, path) -> Path | None:
        """The input that ``path`` is (through any link or spelling), or None."""
        try:
            st = Path(path).stat()
        except OSError:
            return None
        return self._ids.get((st.st_dev, st.st_ino))

    def __len__(self) -> int:
        return len(self._ids)


NO_INPUTS = Inputs()


def written_by_zse(path, kind: str = "output") -> bool:
    """True when the existing file at ``path`` carries zse's marker for ``kind``.

    Reads headers only; a file that cannot be read or parsed is not zse's.
    """
    path = Path(path)
    try:
        if kind == "model":
            return _npz_format(path) == MODEL_FORMAT
        if kind == "checkpoint":
            return _npz_format(path) == CHECKPOINT_FORMAT
        suffix = path.suffix.lower()
        if suffix in (".tif", ".tiff"):
            return _tiff_software(path).startswith(SOFTWARE_PREFIX)
        if suffix == ".png":
            from PIL import Image

            with Image.open(path) as im:
                return str(im.info.get("Software", "")).startswith(SOFTWARE_PREFIX)
        if suffix == ".json":
            if path.stat().st_size > 64 * 1024 * 1024:
                return False
            record = json.loads(path.read_text())
            return isinstance(record, dict) and "zse_version" in record
        if suffix == ".star":
            with path.open(errors="replace") as f:
                return f.readline().startswith(STAR_MARKER)
        from .io.read import MRC_SUFFIXES

        if suffix in MRC_SUFFIXES:
            return any(label.startswith(MRC_LABEL_PREFIX) for label in _mrc_labels(path))
    except Exception:  # noqa: BLE001 - an unreadable file is not one zse wrote
        return False
    return False


def _npz_format(path: Path):
    import numpy as np

    with open(path, "rb") as handle, np.load(handle, allow_pickle=False) as npz:
        if "meta" not in npz.files:
            return None
        meta = json.loads(str(npz["meta"][()]))
    return meta.get("format") if isinstance(meta, dict) else None


def _tiff_software(path: Path) -> str:
    import tifffile

    with tifffile.TiffFile(path) as tif:
        tag = tif.pages[0].tags.get("Software")
        return str(tag.value) if tag is not None else ""


def _mrc_labels(path: Path) -> list:
    import mrcfile

    with mrcfile.open(path, mode="r", permissive=True, header_only=True) as mrc:
        header = mrc.header
        n = min(int(header.nlabl), 10)
        return [bytes(label).decode("ascii", "replace").strip() for label in header.label[:n]]


def check_target(
    path, *, kind: str = "output", overwrite: bool = False, inputs: Inputs = NO_INPUTS
) -> Path:
    """Raise :class:`WriteRefused` (or ``FileExistsError``) unless zse may write ``path``.

    Parameters
    ----------
    path : path-like
        Where the file will end up.
    kind : {"output", "checkpoint", "model"}
        What is written: an output (image, preview, run record), a checkpoint or a model file.
    overwrite : bool
        Outputs and model files: replace an existing file that zse wrote. Checkpoints replace
        a zse checkpoint without it (a fit rewrites its checkpoint every few epochs).
    inputs : Inputs
        The files this call reads; none of them is ever replaced.
    """
    if kind not in KINDS:
        msg = f"kind must be one of {KINDS}, got {kind!r}"
        raise ValueError(msg)
    path = Path(path)
    source = inputs.matching(path)
    if source is not None:
        msg = (
            f"{path} is the input {source} of this call; zse never replaces an input "
            "(choose another output name or folder)"
        )
        raise WriteRefused(msg)
    if not os.path.lexists(path):
        return path
    if path.is_dir():
        msg = f"{path} is a directory; zse would not replace it with a file"
        raise WriteRefused(msg)
    what = {"output": "output", "checkpoint": "checkpoint", "model": "model file"}[kind]
    if not written_by_zse(path, kind):
        msg = (
            f"{path} exists and is not a zse {what}; zse replaces only files it wrote "
            "(move it away or choose another name)"
        )
        raise WriteRefused(msg)
    if kind != "checkpoint" and not overwrite:
        msg = f"{path} exists; pass overwrite=True (--overwrite on the command line) to replace it"
        raise FileExistsError(msg)
    return path


def check_plan(planned, inputs: Inputs) -> None:
    """Refuse, before any work, a call whose planned files include one of its inputs, or that
    would write two of its files to one path.

    ``planned`` holds pairs (path, what writes it), e.g. ``(out/a_mean.tif, "the output
    a_mean.tif of a.tif")`` (a dict of them too); the message names both sides of a clash.
    """
    items = planned.items() if isinstance(planned, dict) else planned
    clashes, seen = [], {}
    for path, producer in items:
        source = inputs.matching(path)
        if source is not None:
            clashes.append(f"{producer} would be written to {path}, which is the input {source}")
        key = os.path.normcase(os.path.realpath(path))
        if key in seen and seen[key] != producer:
            clashes.append(f"{seen[key]} and {producer} would both be written to {path}")
        seen.setdefault(key, producer)
    if clashes:
        msg = (
            "; ".join(clashes)
            + ": zse never replaces an input (choose another output folder or name)"
        )
        raise WriteRefused(msg)
