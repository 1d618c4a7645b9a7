"""What the command line does with each input file: pick the model (``--model auto``), denoise,
and write ``<stem>_<stat>.<ext>``, previews, ``<stem>_fields.png`` and ``<stem>.zse.json`` as one
output set. Every function takes the typed request (:class:`zse.cli.request.Request`).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

from .. import __version__, _files, io
from ..models import choose_model as pick_model
from ..models import make_model, model_class
from ..reconstruct import reconstruct
from .errors import UsageError
from .inputs import load
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


def output_names(stem: str, stats, fmt: str, fields: bool) -> list[str]:
    names = [f"{stem}_input.png"]
    for stat in stats:
        names += [f"{stem}_{stat}.{fmt}", f"{stem}_{stat}.png"]
    if fields:
        names.append(f"{stem}_fields.png")
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
        for name in output_names(stem, options.stats, fmt, fields=True):
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


def write_outputs(outputs, stem, loaded, results, stats, fmt, model, patch, record):
    """Every file of one input into an open :class:`zse.io.OutputSet`."""
    t = time.perf_counter()
    preview = _preview(loaded.data)
    io.write_preview_png(outputs.path(f"{stem}_input.png"), preview)
    for stat in stats:
        array = results[stat]
        target = outputs.path(f"{stem}_{stat}.{fmt}")
        if fmt == "mrc":
            io.write_mrc(
                target, array, info=loaded.info, label=f"{io.ZSE_LABEL} {__version__}: {stat}"
            )
        else:
            io.write_tiff(target, array, info=loaded.info)
        io.write_preview_png(outputs.path(f"{stem}_{stat}.png"), _preview(array))
    if f"{stem}_fields.png" in outputs.names:
        fields, style = model.fields_image()
        io.write_fields_png(outputs.path(f"{stem}_fields.png"), fields, style, patch)
    record["timings_s"]["write"] = round(time.perf_counter() - t, 4)
    io.write_json(outputs.path(f"{stem}.zse.json"), record)


def _preview(array: np.ndarray) -> np.ndarray:
    """The central section of a stack or volume (an image as it is), for the PNG previews."""
    return array[array.shape[0] // 2] if array.ndim == 3 else array


def open_outputs(path, stem, options, model_name, fitted, inputs, is_root):
    """The output format, statistics and file names of one input, and (on rank 0) its output
    set: existing outputs are refused before any work (the set is opened only to write)."""
    fmt = output_format(path, options)
    stats = tuple(options.stats)
    fields = (fitted is not None and fitted.fields_image() is not None) or (
        fitted is None and model_name != "identity"
    )
    names = output_names(stem, stats, fmt, fields)
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


def denoise_one(
    path: Path,
    stem: str,
    options: Request,
    *,
    note=None,
    fitted=None,
    comm=None,
    log=None,
    inputs: _files.Inputs | None = None,
) -> dict:
    """Denoise one input file into ``options.output``; returns its run record.

    ``note(message)`` reports the defaults a model lowers for small settings.
    ``fitted``: a model loaded from ``--model-file`` (applied, not refitted; with
    ``--per-section`` applied to each section). Under MPI (``comm``), every rank reads and
    computes, rank 0 writes. ``inputs``: every file the call reads (default: this input and the
    model file); no output replaces one of them.
    """
    from .._mpi import team_of
    from .volumes import denoise_volume_in_slabs, wants_slabs

    if wants_slabs(path, options):
        return denoise_volume_in_slabs(
            path, stem, options, note=note, fitted=fitted, comm=comm, log=log, inputs=inputs
        )
    team = team_of(comm)
    is_root = team is None or team.is_root
    log = log or (lambda message: None)
    timings = {}
    t = time.perf_counter()
    loaded = load(path, options)
    timings["read"] = round(time.perf_counter() - t, 4)
    for message in loaded.record["notes"]:
        log(f"note: {message}")
    log(f"read {path}: {loaded.kind} {tuple(loaded.data.shape)}")
    evidence = None
    if fitted is not None:
        model_name = type(fitted).__name__.lower()
        patch = patch_for(loaded.kind, model_name, options, fitted.fitted_patch())
    else:
        model_name, evidence = choose_model(options, loaded.data)
        if evidence is not None:
            log(f"model auto: {model_name} ({evidence['reason']})")
        patch = patch_for(loaded.kind, model_name, options)
    per_section = loaded.kind == "stack" and options.per_section
    fmt, stats, names, output_set = open_outputs(
        path, stem, options, model_name, fitted, inputs, is_root
    )

    def new_model(section=None):
        return make_request_model(options, model_name, evidence, stem, section, is_root, note)

    t = time.perf_counter()
    verbose = not options.quiet and is_root
    if per_section:
        # One model per section, each fitted on its own section (--per-section), or the model
        # file's applied to each.
        section_results, models = [], []
        for index, section in enumerate(loaded.data):
            model = fitted if fitted is not None else new_model(index)
            section_results.append(
                reconstruct(
                    section,
                    model,
                    stats=stats,
                    patch_size=patch[1:],
                    n_train=options.n_train,
                    n_threads=options.n_threads,
                    verbose=verbose,
                    comm=comm,
                )
            )
            models.append(model)
        results = (
            None if not is_root else {s: np.stack([r[s] for r in section_results]) for s in stats}
        )
        model = models[0]
    else:
        model = fitted if fitted is not None else new_model()
        results = reconstruct(
            loaded.data,
            model,
            stats=stats,
            patch_size=patch,
            n_train=options.n_train,
            n_threads=options.n_threads,
            verbose=verbose,
            comm=comm,
        )
    timings["reconstruct"] = round(time.perf_counter() - t, 4)

    record = base_record("denoise")
    record.update(
        {
            "input": loaded.record,
            "model": model.summary(),
            "model_choice": evidence,
            "model_file": str(options.model_file) if options.model_file else None,
            "per_section": bool(per_section),
            "patch_size": list(patch),
            "n_train": options.n_train,
            "stats": list(stats),
            "seed": options.seed,
            "n_threads": options.n_threads,
            "n_ranks": 1 if team is None else team.size,
            "format": fmt,
            "timings_s": timings,
        }
    )
    if not is_root:
        team.check()  # rank 0's writing below may fail: the other ranks learn it here
        return record

    def write():
        with output_set as outputs:
            record["outputs"] = [str(outputs.final_path(n)) for n in names]
            write_outputs(outputs, stem, loaded, results, stats, fmt, model, patch, record)

    if team is None:
        write()
    else:
        team.run(write, gather=False)
    log(f"wrote {', '.join(n for n in names if not n.endswith('.png'))} to {options.output}")
    return record


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


def training_patches(paths, options):
    """Patches for ``zse fit``: drawn from every input (every section of stacks), the
    ``--n-train`` budget split over them by their number of patches; ``--model auto`` decides on
    the first input. Inputs are read one at a time (a first pass counts their patches, a second
    gathers them), so memory holds one input and the training patches, not every input at once.
    Returns the patches, the patch size, the model name and the choice's evidence."""
    from .. import _core
    from .._threads import effective_n_threads
    from ..reconstruct import training_positions

    def as_volume(item):
        return item.data if item.data.ndim == 3 else item.data[None]

    kinds, shapes, model_name, evidence = set(), [], None, None
    for path in paths:
        item = load(path, options)
        if model_name is None:
            model_name, evidence = choose_model(options, item.data)
        kinds.add(item.kind)
        shapes.append(as_volume(item).shape)
    if "volume" in kinds and len(kinds) > 1:
        msg = "zse fit cannot mix volumes with images or stacks (their patches differ in shape)"
        raise UsageError(msg)
    kind = "volume" if "volume" in kinds else "stack"
    patch = patch_for(kind, model_name, options)
    patch3 = patch if len(patch) == 3 else (1, *patch)
    counts = [int(np.prod([s - p + 1 for s, p in zip(shape, patch3)])) for shape in shapes]
    if min(counts) < 1:
        small = paths[counts.index(min(counts))]
        msg = f"{small} is smaller than the {'x'.join(map(str, patch))} patch"
        raise UsageError(msg)
    total = sum(counts)
    auto = model_class(model_name).auto_train_size
    budget = min(total, auto if options.n_train == "auto" else int(options.n_train))
    pieces = []
    for i, (path, n) in enumerate(zip(paths, counts)):
        share = max(1, int(round(budget * n / total)))
        positions = training_positions(n, share, (options.seed or 0) + i)
        volume = as_volume(load(path, options))
        pieces.append(
            _core.gather_patches(volume, patch3, positions, effective_n_threads(options.n_threads))
        )
    return np.concatenate(pieces), patch[-2:] if kind == "stack" else patch, model_name, evidence
