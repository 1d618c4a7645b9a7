"""``zse denoise`` on a volume larger than memory: read, estimated and written slab by slab
(:mod:`zse.slabs`), with the same outputs, previews and record as the whole-volume path and the
same images bit for bit."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from .. import __version__, _files, io
from .._memory import available_memory
from ..counts import count_test_sections
from ..slabs import VolumeSource, default_slab_slices, reconstruct_slabs
from .errors import UsageError
from .plan import (
    base_record,
    choose_model,
    make_request_model,
    open_outputs,
    patch_for,
)
from .request import Request

# The whole-volume path is taken while its images (input and outputs, float64) take at most
# this part of the available memory; beyond, the slab path (docs/tutorials/stacks-and-tomograms.md).
WHOLE_VOLUME_SHARE = 0.5


def wants_slabs(path: Path, options: Request) -> bool:
    """True when ``path`` is denoised slab by slab: ``--slabs N``, or a volume whose whole-volume
    images would not fit in memory."""
    if options.page is not None or options.per_section:
        if options.slabs is not None:
            raise UsageError("--slabs denoises a volume; it cannot go with --page or --per-section")
        return False
    info = io.read_info(path)
    volume = (
        options.volume
        or info.kind == "volume"
        or (options.patch_size is not None and len(options.patch_size) == 3)
    )
    if options.slabs is not None:
        if not volume or info.n_sections < 2:
            raise UsageError(f"--slabs applies to volumes; {path} is read as a {info.kind}")
        if options.crop or options.bin != 1 or options.decimate != 1:
            raise UsageError("--crop, --bin and --decimate apply to images and stacks, not volumes")
        return True
    if (
        not volume
        or info.n_sections < 2
        or options.crop
        or options.bin != 1
        or options.decimate != 1
    ):
        return False  # the whole-volume path refuses --crop/--bin/--decimate on volumes
    available = available_memory()
    whole = 8 * int(np.prod(VolumeSource(path).shape)) * (1 + len(options.stats))
    return available is not None and whole > WHOLE_VOLUME_SHARE * available


def denoise_volume_in_slabs(
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
    """Denoise the volume ``path`` slab by slab into ``options.output``; returns its record."""
    from .._mpi import team_of

    team = team_of(comm)
    is_root = team is None or team.is_root
    log = log or (lambda message: None)
    timings = {}
    info = io.read_info(path)
    source = VolumeSource(path)
    Z = source.shape[0]
    slab_slices = options.slabs or default_slab_slices(source.shape, len(options.stats))
    log(f"read the header of {path}: volume {source.shape}, in slabs of {slab_slices} slices")
    evidence = None
    if fitted is not None:
        model_name = type(fitted).__name__.lower()
        patch = patch_for("volume", model_name, options, fitted.fitted_patch())
    else:
        # The slices the whole-volume path tests (zse.counts.count_test_sections), read alone.
        sections = count_test_sections(Z)
        sample = (
            np.concatenate([source.read(z, z + 1) for z in sections])
            if options.model == "auto"
            else None
        )
        model_name, evidence = choose_model(options, sample)
        if evidence is not None:
            if "n_blocks" in evidence and len(sections) < Z:
                evidence = {**evidence, "sections_tested": sections}
            log(f"model auto: {model_name} ({evidence['reason']})")
        patch = patch_for("volume", model_name, options)
    fmt, stats, names, output_set = open_outputs(
        path, stem, options, model_name, fitted, inputs, is_root
    )
    model = (
        fitted
        if fitted is not None
        else make_request_model(options, model_name, evidence, stem, None, is_root, note)
    )
    record = base_record("denoise")
    centre = {}  # the central slice of each output, for the previews

    def run(outputs):
        writers = {}
        if outputs is not None:
            label = f"{io.ZSE_LABEL} {__version__}"
            writers = {
                stat: io.VolumeWriter(
                    outputs.path(f"{stem}_{stat}.{fmt}"),
                    source.shape,
                    fmt=fmt,
                    info=info,
                    label=f"{label}: {stat}",
                )
                for stat in stats
            }

        def write(first, images):
            for stat, image in images.items():
                writers[stat].write(first, image)
                if first <= Z // 2 < first + len(image):
                    centre[stat] = np.array(image[Z // 2 - first])

        try:
            t = time.perf_counter()
            reconstruct_slabs(
                source,
                model,
                write,
                stats=stats,
                patch_size=patch,
                n_train=options.n_train,
                slab_slices=slab_slices,
                n_threads=options.n_threads,
                verbose=not options.quiet and is_root,
                comm=comm,
            )
            timings["reconstruct"] = round(time.perf_counter() - t, 4)
        finally:
            for writer in writers.values():
                writer.close()
        record.update(
            {
                "input": {
                    "path": str(path.resolve()),
                    "file_kind": info.kind,
                    "n_sections": info.n_sections,
                    "voxel_size_A": list(info.voxel_size) if info.voxel_size else None,
                    "dtype": str(source.dtype),
                    "shape": list(source.shape),
                    "processed_shape": list(source.shape),
                    "kind": "volume",
                    "slab_slices": slab_slices,
                    "notes": [],
                },
                "model": model.summary(),
                "model_choice": evidence,
                "model_file": str(options.model_file) if options.model_file else None,
                "per_section": False,
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

        def finish():
            if outputs is None:
                return
            t = time.perf_counter()
            record["outputs"] = [str(outputs.final_path(n)) for n in names]
            middle = source.read(Z // 2, Z // 2 + 1)[0]
            io.write_preview_png(outputs.path(f"{stem}_input.png"), middle)
            for stat in stats:
                io.write_preview_png(outputs.path(f"{stem}_{stat}.png"), centre[stat])
            if f"{stem}_fields.png" in outputs.names:
                fields_image, style = model.fields_image()
                io.write_fields_png(outputs.path(f"{stem}_fields.png"), fields_image, style, patch)
            if f"{stem}_noise.png" in outputs.names:
                io.write_noise_png(outputs.path(f"{stem}_noise.png"), model.noise_description())
            record["timings_s"]["write"] = round(time.perf_counter() - t, 4)
            io.write_json(outputs.path(f"{stem}.zse.json"), record)

        if team is None:
            finish()
        else:  # rank 0 writes; a failure there reaches every rank
            team.run(finish, gather=False)

    if output_set is None:
        run(None)  # the other ranks' part of every collective step
        return record
    with output_set as outputs:
        run(outputs)
    log(f"wrote {', '.join(n for n in names if not n.endswith('.png'))} to {options.output}")
    return record
