"""``zse relion``: zse as a RELION External job (RELION 3.1 to 5).

RELION runs an External job as ``<program> --o <job dir> --in_mics <star> --j <threads>`` (or
``--in_tomograms`` for RELION 5's tomograms), followed by the job's parameters as ``--<name>
<value>`` and, from RELION 4 on, ``--pipeline_control <job dir>``. The job denoises every
micrograph (or tomogram) the STAR file names into the job directory, mirroring each input's
relative path, and writes

- ``micrographs.star`` (``tomograms.star``): the input's blocks and columns, the image column
  pointing at the denoised files (``rlnMicrographName``; tomograms keep
  ``rlnTomoReconstructedTomogram`` and get ``rlnTomoReconstructedTomogramDenoised``, the column
  RELION 5's denoising jobs fill), the variance image in ``rlnZseVarianceName``;
- ``RELION_OUTPUT_NODES.star``, and ``RELION_JOB_EXIT_SUCCESS`` or ``RELION_JOB_EXIT_FAILURE``;
- ``zse_relion.log``: what was done, skipped or failed, and why.

A re-run skips the micrographs whose outputs zse finished (their run record is written last),
without rewriting them. The job's parameters are those of ``zse denoise`` (``--model gpmm``,
``--patch_size 8``, ``--n_train 16384``; underscores or hyphens). STAR files are read and written
with the ``starfile`` package (``pip install "zse[relion]"``).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path, PurePosixPath

from . import __version__, _files
from ._errors import OptionalDependencyError

INPUTS = {
    # option: (data block holding the files, image column, column written, STAR written, kind)
    "in_mics": (
        "micrographs",
        "rlnMicrographName",
        "rlnMicrographName",
        "micrographs.star",
        "MicrographGroupMetadata.star.relion",
    ),
    "in_tomograms": (
        "global",
        "rlnTomoReconstructedTomogram",
        "rlnTomoReconstructedTomogramDenoised",
        "tomograms.star",
        "TomogramGroupMetadata.star.relion.tomo",
    ),
}
VARIANCE_COLUMN = "rlnZseVarianceName"
SUCCESS, FAILURE = "RELION_JOB_EXIT_SUCCESS", "RELION_JOB_EXIT_FAILURE"
LOG_NAME = "zse_relion.log"


def _starfile():
    try:
        import starfile
    except ImportError as error:
        msg = 'zse relion reads STAR files with the starfile package: pip install "zse[relion]"'
        raise OptionalDependencyError(msg) from error
    return starfile


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="zse relion",
        description="Denoise the micrographs (or tomograms) of a RELION STAR file as an External "
        "job. Further --<name> <value> pairs are options of zse denoise (--model, --patch_size, "
        "--n_train, --stats, ...).",
    )
    p.add_argument("--o", required=True, metavar="JOB_DIR", help="the job directory")
    group = p.add_mutually_exclusive_group(required=True)
    group.add_argument("--in_mics", metavar="STAR", help="a micrographs STAR file")
    group.add_argument("--in_tomograms", metavar="STAR", help="a RELION 5 tomograms STAR file")
    group.add_argument("--in_movies", metavar="STAR", help=argparse.SUPPRESS)
    p.add_argument("--j", type=int, default=None, metavar="THREADS", help="threads")
    p.add_argument("--pipeline_control", default=None, help=argparse.SUPPRESS)
    return p


def _denoise_options(extra: list[str], job_dir: Path, threads, volume: bool):
    """The job's parameters parsed by zse denoise's own parser (checks and defaults included)."""
    from .cli import build_parser as denoise_parser

    argv = ["denoise", "placeholder", "-o", str(job_dir)]
    for item in extra:
        argv.append("--" + item[2:].replace("_", "-") if item.startswith("--") else item)
    if threads is not None:
        argv += ["--n-threads", str(threads)]
    if volume and "--volume" not in argv:
        argv.append("--volume")
    return denoise_parser().parse_args(argv)


def _output_dir(job_dir: Path, image: str) -> Path:
    """Where an input's outputs go: its relative path mirrored under the job directory (an
    absolute path or one that climbs out of the project goes to the job's Denoised/)."""
    relative = PurePosixPath(image)
    if relative.is_absolute() or ".." in relative.parts:
        return job_dir / "Denoised"
    return job_dir / Path(*relative.parts[:-1]) if len(relative.parts) > 1 else job_dir


def _finished(out_dir: Path, names: list[str]) -> bool:
    """Every output of a previous run is there and zse's (its run record is written last)."""
    return all((out_dir / n).is_file() and _files.written_by_zse(out_dir / n) for n in names)


def run(argv: list[str]) -> int:
    """Run the External job; returns the exit code (0 success, 2 a failed micrograph or input)."""
    args, extra = build_parser().parse_known_args(argv)
    job_dir = Path(args.o)
    job_dir.mkdir(parents=True, exist_ok=True)
    for marker in (SUCCESS, FAILURE):
        (job_dir / marker).unlink(missing_ok=True)
    log_file = (job_dir / LOG_NAME).open("a")

    def log(message: str) -> None:
        line = f"[zse relion] {message}"
        print(line, file=sys.stderr, flush=True)
        log_file.write(line + "\n")
        log_file.flush()

    try:
        return _run(args, extra, job_dir, log)
    except Exception as error:  # noqa: BLE001 - RELION needs the failure marker whatever failed
        from .cli.errors import error_code

        log(f"failed: {type(error).__name__}: {error}")
        (job_dir / FAILURE).touch()
        return error_code(error)
    finally:
        log_file.close()


def _run(args, extra, job_dir: Path, log) -> int:
    from dataclasses import replace

    from .cli.commands import note, resolve_threads
    from .cli.request import request_from_args
    from .cli.run import denoise_one, output_format, output_names

    if args.in_movies:
        msg = (
            "zse denoises micrographs, not movies: give the motion-corrected micrographs "
            "(--in_mics)"
        )
        raise ValueError(msg)
    option = "in_mics" if args.in_mics else "in_tomograms"
    block_name, column, written_column, star_name, node_type = INPUTS[option]
    star_path = Path(getattr(args, option))
    starfile = _starfile()
    blocks = starfile.read(star_path, always_dict=True)
    if block_name not in blocks or column not in blocks[block_name]:
        msg = f"{star_path} has no {column} column in a data_{block_name} block"
        raise ValueError(msg)
    table = blocks[block_name]
    # An unfinished micrograph of an earlier run is redone over its own leftovers (the file rule
    # still refuses to replace anything zse did not write).
    options = resolve_threads(
        request_from_args(
            _denoise_options(extra, job_dir, args.j, volume=option == "in_tomograms"),
            overwrite=True,
        )
    )
    started = time.perf_counter()
    log(
        f"zse {__version__}: {len(table)} {option[3:].replace('mics', 'micrographs')} of "
        f"{star_path} into {job_dir} "
        f"({' '.join(extra) or 'default settings'})"
    )
    images = [str(v) for v in table[column]]
    outputs: dict[str, tuple[Path, str]] = {}
    for image in images:
        path = Path(image)
        out_dir = _output_dir(job_dir, image)
        target = (out_dir, path.stem)
        if target in outputs.values():
            msg = f"two inputs would write {out_dir / path.stem}_*: {image} and another"
            raise ValueError(msg)
        outputs[image] = target
    failures, done, skipped = [], 0, 0
    for image in images:
        path = Path(image)
        out_dir, stem = outputs[image]
        fmt = output_format(path, options)
        names = output_names(stem, options.stats, fmt, fields=False)
        if _finished(out_dir, names):
            skipped += 1
            continue
        one = replace(options, inputs=(path,), output=out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        t = time.perf_counter()
        try:
            denoise_one(
                path,
                stem,
                one,
                note=lambda message, one=one: note(one, message),
                log=lambda message: None,
                inputs=_files.Inputs([path]),
            )
        except KeyboardInterrupt:
            raise
        except Exception as error:  # noqa: BLE001 - the others go on; the job then fails
            failures.append(image)
            log(f"failed: {image}: {type(error).__name__}: {error}")
            continue
        done += 1
        log(f"denoised {image} ({time.perf_counter() - t:.1f} s)")
    log(
        f"{done} denoised, {skipped} finished before and skipped, {len(failures)} failed "
        f"({time.perf_counter() - started:.1f} s)"
    )
    if failures:
        (job_dir / FAILURE).touch()
        return 2

    fmt_of = {image: output_format(Path(image), options) for image in images}
    denoised = table.copy()
    mean = "mean" if "mean" in options.stats else options.stats[0]
    denoised[written_column] = [
        str(outputs[i][0] / f"{outputs[i][1]}_{mean}.{fmt_of[i]}") for i in images
    ]
    if "var" in options.stats:
        denoised[VARIANCE_COLUMN] = [
            str(outputs[i][0] / f"{outputs[i][1]}_var.{fmt_of[i]}") for i in images
        ]
    blocks[block_name] = denoised
    import pandas as pd

    nodes = pd.DataFrame(
        {"rlnPipeLineNodeName": [str(job_dir / star_name)], "rlnPipeLineNodeTypeLabel": [node_type]}
    )
    read = _files.Inputs([star_path, *(Path(i) for i in images)])
    _write_star(starfile, blocks, job_dir / star_name, read)
    _write_star(starfile, {"output_nodes": nodes}, job_dir / "RELION_OUTPUT_NODES.star", read)
    (job_dir / SUCCESS).touch()
    return 0


def _write_star(starfile, blocks: dict, path: Path, inputs: _files.Inputs) -> None:
    """A STAR file under the file rule (never an input, never a file zse did not write), its
    first line zse's marker, moved into place whole."""
    import os
    import tempfile

    _files.check_target(path, overwrite=True, inputs=inputs)
    fd, staged = tempfile.mkstemp(prefix=".zse-", suffix=".star", dir=path.parent)
    os.close(fd)
    try:
        starfile.write(blocks, staged, overwrite=True)
        body = Path(staged).read_text()
        Path(staged).write_text(f"{_files.STAR_MARKER} {__version__}\n" + body)
        os.replace(staged, path)
    finally:
        Path(staged).unlink(missing_ok=True)
