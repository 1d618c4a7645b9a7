"""What the command line does with each input file: read it, fit or apply the model, and write
``<stem>_<stat>.<ext>``, previews, ``<stem>_fields.png`` and ``<stem>.zse.json`` as one output
set (the plan of names and models: :mod:`zse.cli.plan`). Every function takes the typed request
(:class:`zse.cli.request.Request`).
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from .. import __version__, _files, io
from ..models import model_class
from ..reconstruct import reconstruct
from .errors import UsageError
from .inputs import load
from .plan import (
    base_record,
    choose_model,
    make_request_model,
    open_outputs,
    patch_for,
)
from .request import Request
from .volumes import denoise_volume_in_slabs, wants_slabs


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
    if f"{stem}_noise.png" in outputs.names:
        io.write_noise_png(outputs.path(f"{stem}_noise.png"), model.noise_description())
    record["timings_s"]["write"] = round(time.perf_counter() - t, 4)
    io.write_json(outputs.path(f"{stem}.zse.json"), record)


def _preview(array: np.ndarray) -> np.ndarray:
    """The central section of a stack or volume (an image as it is), for the PNG previews."""
    return array[array.shape[0] // 2] if array.ndim == 3 else array


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


def training_patches(paths, options):
    """Patches for ``zse fit``: drawn from every input (every section of stacks), the
    ``--n-train`` budget split over them by their number of patches; ``--model auto`` decides on
    the first input. Stacks and volumes (MRC, multi-page TIFF) are read slab by slab, as ``zse
    denoise`` reads volumes larger than memory (an image, or an input with ``--page``, ``--crop``,
    ``--bin`` or ``--decimate``, is read whole), so memory holds one slab and the training
    patches, never a whole volume. Returns the patches, the patch size, the model name and the
    choice's evidence."""
    from .. import _core
    from .._threads import effective_n_threads
    from ..reconstruct import training_positions
    from ..slabs import SlabPlan, default_slab_slices, gather_training_patches

    threads = effective_n_threads(options.n_threads)
    readers, kinds, shapes, model_name, evidence = [], set(), [], None, None
    for path in paths:
        reader = _SlabReader.of(path, options) or _WholeReader(path, options)
        if model_name is None:
            model_name, evidence = choose_model(options, reader.count_test_sample())
        readers.append(reader)
        kinds.add(reader.kind)
        shapes.append(reader.shape)
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
    for i, (reader, n) in enumerate(zip(readers, counts)):
        share = max(1, int(round(budget * n / total)))
        positions = training_positions(n, share, (options.seed or 0) + i)
        if isinstance(reader, _SlabReader):
            plan = SlabPlan(reader.shape, patch3, default_slab_slices(reader.shape, 1))
            pieces.append(gather_training_patches(reader.source, plan, positions, threads))
        else:
            pieces.append(_core.gather_patches(reader.volume(), patch3, positions, threads))
    return np.concatenate(pieces), patch[-2:] if kind == "stack" else patch, model_name, evidence


class _WholeReader:
    """An input of ``zse fit`` read whole (images, and inputs cropped, binned or paged)."""

    def __init__(self, path, options):
        self.path, self.options = path, options
        loaded = load(path, options)
        self.kind = loaded.kind
        self.shape = (loaded.data if loaded.data.ndim == 3 else loaded.data[None]).shape

    def volume(self) -> np.ndarray:
        data = load(self.path, self.options).data  # read again: one input in memory at a time
        return data if data.ndim == 3 else data[None]

    def count_test_sample(self) -> np.ndarray:
        return load(self.path, self.options).data


class _SlabReader:
    """A stack or volume of ``zse fit`` read slab by slab (zse.slabs.VolumeSource)."""

    @classmethod
    def of(cls, path, options):
        if options.page is not None or options.crop or options.bin != 1 or options.decimate != 1:
            return None
        info = io.read_info(path)
        if info.n_sections < 2:
            return None
        from ..slabs import VolumeSource, WholeOnly

        try:
            source = VolumeSource(path)
        except WholeOnly:
            return None
        wants_volume = bool(options.volume) or (
            options.patch_size is not None and len(options.patch_size) == 3
        )
        return cls(source, "volume" if wants_volume or info.kind == "volume" else "stack")

    def __init__(self, source, kind: str):
        self.source, self.kind, self.shape = source, kind, tuple(source.shape)

    def count_test_sample(self) -> np.ndarray:
        """The slices the count test of a whole read would look at, read alone."""
        from ..counts import count_test_sections

        return np.concatenate(
            [self.source.read(z, z + 1) for z in count_test_sections(self.shape[0])]
        )
