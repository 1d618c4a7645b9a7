"""What one input of the command line becomes before any work: the model (``--model auto``)
and its patch extents, the output format and file names, the checkpoint of each fit, every
file a call plans to write (for the file rule) and the run record's common part. The per-input
work (:mod:`zse.cli.run`, :mod:`zse.cli.volumes`) and the RELION job build on these.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

from .. import __version__, _files, io
from ..models import choose_model as pick_model
from ..models import make_model, model_class
from .errors import UsageError
from .request import Request, model_params

MRC_OUT_SUFFIXES = (".mrc", ".mrcs", ".map", ".st", ".ali", ".rec")


def choose_model(options: Request, data: np.ndarray) -> tuple[str, dict | None]:
    """The model name and, for ``auto``, the evidence it was chosen on (the library's rule,
    :func:`zse.models.choose_model`)."""
    if options.model != "auto":
        return options.model, None
    return pick_model(data, counts=options.counts, gain=options.gain, offset=options.offset)


def patch_for(kind: str, model_name: str, options, fitted_patch=None) -> tuple:
    """The patch extents: --patch-size, else the model file's, else the model's default; a
    stack's sections get 2-D patches as (1, rows, columns), which never cross sections."""
    given = tuple(options.patch_size) if options.patch_size is not None else None
    if given is not None and fitted_patch is not None and given != tuple(fitted_patch):
        msg = (
            f"the model file was trained on {'x'.join(map(str, fitted_patch))} patches, "
            f"--patch-size asks for {'x'.join(map(str, given))}"
        )
        raise UsageError(msg)
    if fitted_patch is not None and (len(fitted_patch) == 3) != (kind == "volume"):
        what = "a volume (3-D patches)" if kind == "volume" else f"a 2-D {kind}"
        msg = (
            f"the model file was trained on {'x'.join(map(str, fitted_patch))} patches "
            f"({len(fitted_patch)}-D) and cannot denoise {what}; fit a model on inputs of this "
            "kind (zse fit)"
        )
        raise UsageError(msg)
    if given is not None:
        patch = given
    elif fitted_patch is not None:
        patch = tuple(fitted_patch)
    else:
        patch = model_class(model_name).default_patch(3 if kind == "volume" else 2)
    if kind == "stack" and len(patch) == 2:
        return (1, *patch)
    return patch


def output_format(path: Path, options) -> str:
    if options.format:
        return options.format
    return "mrc" if path.suffix.lower() in MRC_OUT_SUFFIXES else "tif"


def output_names(stem: str, stats, fmt: str, fields: bool, noise: bool = False) -> list[str]:
    names = [f"{stem}_input.png"]
    for stat in stats:
        names += [f"{stem}_{stat}.{fmt}", f"{stem}_{stat}.png"]
    if fields:
        names.append(f"{stem}_fields.png")
    if noise:
        names.append(f"{stem}_noise.png")
    names.append(f"{stem}.zse.json")
    return names


def checkpoint_for(base, stem: str, n_inputs: int, section: int | None = None) -> str | None:
    """Where one fit's checkpoint goes: ``--checkpoint c.ckpt`` itself for one input,
    ``c.<stem>.ckpt`` for each of several inputs, ``c.<stem>.<section>.ckpt`` for each
    section of ``--per-section``."""
    if not base:
        return None
    where = Path(base)
    if section is None and n_inputs <= 1:
        return str(where)
    tag = stem if section is None else f"{stem}.{section}"
    return str(where.with_name(f"{where.stem}.{tag}{where.suffix}"))


def planned_files(paths, stems, options) -> list:
    """Every file ``zse denoise`` may write for ``paths``, each with what writes it (for the
    check that no output or checkpoint of one input replaces another input or another file of
    the call)."""
    planned = []
    for path in paths:
        stem, fmt = stems[path], output_format(path, options)
        for name in output_names(stem, options.stats, fmt, fields=True, noise=True):
            planned.append((Path(options.output) / name, f"the output {name} of {path}"))
        sections = [None]
        if options.checkpoint and options.per_section:
            try:
                sections = list(range(io.read_info(path).n_sections))
            except (OSError, ValueError):
                sections = []  # the input fails on its own when it is read
        for section in sections:
            where = checkpoint_for(options.checkpoint, stem, len(paths), section)
            if where is not None:
                planned.append((Path(where), f"the checkpoint of {path}"))
    return planned


def open_outputs(path, stem, options, model_name, fitted, inputs, is_root):
    """The output format, statistics and file names of one input, and (on rank 0) its output
    set: existing outputs are refused before any work (the set is opened only to write)."""
    fmt = output_format(path, options)
    stats = tuple(options.stats)
    fields = (fitted is not None and fitted.fields_image() is not None) or (
        fitted is None and model_name != "identity"
    )
    # The picture of the learned noise: SSSC's (PMM and GPMM model Poisson counts as they are).
    noise = (fitted is not None and fitted.noise_description() is not None) or (
        fitted is None and model_name == "sssc"
    )
    names = output_names(stem, stats, fmt, fields, noise)
    if inputs is None:
        inputs = _files.Inputs([path] + ([options.model_file] if options.model_file else []))
    output_set = (
        io.OutputSet(options.output, names, overwrite=options.overwrite, inputs=inputs)
        if is_root
        else None
    )
    return fmt, stats, names, output_set


def make_request_model(options, model_name, evidence, stem, section, is_root, note):
    """The model the request asks for (its checkpoint named for this input and section); a
    parameter the auto-chosen model lacks is a usage error that says what was chosen."""
    try:
        params = model_params(options, model_name, note)
        if params.get("checkpoint"):
            params["checkpoint"] = checkpoint_for(
                params["checkpoint"], stem, options.n_inputs, section
            )
        return make_model(
            model_name,
            options=params,
            random_state=options.seed,
            n_threads=options.n_threads,
            verbose=not options.quiet and is_root,
        )
    except ValueError as error:
        if evidence is None:
            raise
        msg = (
            f"{error} (--model auto chose {model_name}: {evidence['reason']}; name the "
            "model with --model)"
        )
        raise UsageError(msg) from error


def base_record(command: str) -> dict:
    import platform

    from .. import _core

    return {
        "zse_version": __version__,
        "command": command,
        "argv": sys.argv,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "platform": {
            "python": platform.python_version(),
            "machine": platform.machine(),
            "system": platform.system(),
            "openmp": bool(_core.has_openmp),
            "compiler": _core.compiler(),
        },
        "versions": _versions(),
    }


def _versions() -> dict:
    from importlib import metadata

    versions = {"zse": __version__}
    for name in ("numpy", "tifffile", "mrcfile", "pillow", "mpi4py"):
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions
