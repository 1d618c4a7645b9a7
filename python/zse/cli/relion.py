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

Before any work the job checks, and refuses with the reason in ``zse_relion.log`` and
``RELION_JOB_EXIT_FAILURE`` (or, where the job directory itself cannot be used, on standard error
alone): its options (usage errors included), a job directory that is a file, cannot be written
or holds another job's markers or output nodes (the input job's folder: nothing there is
touched), and every file the whole job plans to write against every file it reads (the STAR
file, every micrograph, the model file) and every existing file zse did not write.

A re-run skips the micrographs whose outputs zse finished (their run record is written last),
without rewriting them. ``--model_file`` applies one fitted model to every micrograph;
``--checkpoint c.ckpt`` gives each micrograph its own ``c.<stem>.ckpt``. Every value of the STAR
file is written back as it was read (as text: ``001`` stays ``001``). The job's parameters are
those of ``zse denoise`` (``--model gpmm``, ``--patch_size 8``, ``--n_train 16384``; underscores
or hyphens). STAR files are read and written with the ``starfile`` package (``pip install
"zse[relion]"``).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path, PurePosixPath

from .. import __version__, _files
from .._errors import OptionalDependencyError

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


def build_parser(parser_class=argparse.ArgumentParser) -> argparse.ArgumentParser:
    p = parser_class(
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
    """The job's parameters parsed by zse denoise's own parser (checks and defaults included);
    a bad one raises UsageError."""
    from .options import RaisingParser
    from .options import build_parser as denoise_parser

    argv = ["denoise", "placeholder", "-o", str(job_dir)]
    for item in extra:
        argv.append("--" + item[2:].replace("_", "-") if item.startswith("--") else item)
    if threads is not None:
        argv += ["--n-threads", str(threads)]
    if volume and "--volume" not in argv:
        argv.append("--volume")
    return denoise_parser(parser_class=RaisingParser).parse_args(argv)


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


def _option_value(argv: list[str], name: str):
    """The value of ``--name VALUE`` or ``--name=VALUE`` in ``argv`` (the last one), or None;
    read before the parser so that a usage error can still be recorded in the job directory."""
    value = None
    for i, item in enumerate(argv):
        if item == name and i + 1 < len(argv):
            value = argv[i + 1]
        elif item.startswith(name + "="):
            value = item[len(name) + 1 :]
    return value


# RELION's files that mark a job's state or outputs: a directory holding them without zse's log
# is another job's (typically the input job's: --o MotionCorr/job002/).
RELION_JOB_FILES = (SUCCESS, FAILURE, "RELION_JOB_EXIT_ABORTED", "RELION_OUTPUT_NODES.star")


def _job_dir_problem(job_dir: Path) -> str | None:
    """Why ``job_dir`` cannot be this job's directory, or None."""
    if job_dir.exists() and not job_dir.is_dir():
        return f"the job directory --o {job_dir} exists and is not a directory"
    existing = job_dir
    while not existing.exists():
        if existing.parent == existing:
            break
        existing = existing.parent
    if not existing.is_dir():
        return f"the job directory --o {job_dir} cannot be made: {existing} is not a directory"
    if not os.access(existing, os.W_OK | os.X_OK):
        return f"the job directory --o {job_dir} cannot be written ({existing} is not writable)"
    if not job_dir.is_dir() or (job_dir / LOG_NAME).exists():
        return None
    nodes = job_dir / "RELION_OUTPUT_NODES.star"
    foreign = [
        name
        for name in RELION_JOB_FILES
        if (job_dir / name).exists() and not (name == nodes.name and _files.written_by_zse(nodes))
    ]
    if foreign:
        return (
            f"{job_dir} holds another job's {', '.join(foreign)} (the input job's folder?); "
            "zse relion writes only into its own job directory (RELION's External/jobNNN/): "
            "nothing there was changed"
        )
    return None


def run(argv: list[str]) -> int:
    """Run the External job; returns the exit code (0 success, 2 a failed micrograph, input or
    option, 1 a bug)."""
    from .errors import error_code, report
    from .options import RaisingParser

    given = _option_value(argv, "--o")
    if given is None or any(a in ("-h", "--help") for a in argv):
        # Without a job directory there is nowhere to record anything: argparse's own usage
        # error (exit 2) or help.
        build_parser().parse_args(argv)
    job_dir = Path(given)
    problem = _job_dir_problem(job_dir)
    if problem is not None:
        print(f"zse relion: error: {problem}", file=sys.stderr)
        return 2
    try:
        job_dir.mkdir(parents=True, exist_ok=True)
        log_file = (job_dir / LOG_NAME).open("a")
    except OSError as error:
        return report(None, error)
    for marker in (SUCCESS, FAILURE):
        (job_dir / marker).unlink(missing_ok=True)

    def log(message: str) -> None:
        line = f"[zse relion] {message}"
        print(line, file=sys.stderr, flush=True)
        log_file.write(line + "\n")
        log_file.flush()

    try:
        args, extra = build_parser(RaisingParser).parse_known_args(argv)
        return _run(args, extra, job_dir, log)
    except Exception as error:  # noqa: BLE001 - RELION needs the failure marker whatever failed
        log(f"failed: {type(error).__name__}: {error}")
        (job_dir / FAILURE).touch()
        return error_code(error)
    finally:
        log_file.close()


def _read_star(starfile, path: Path) -> dict:
    """Every block of ``path`` with every value as the text it was read as (starfile would turn
    ``001`` into the number 1), so that what is written back is what was read."""
    if not path.is_file():
        msg = f"STAR file not found: {path}"
        raise FileNotFoundError(msg)
    blocks = starfile.read(path, always_dict=True)
    names = set()
    for block in blocks.values():
        names.update(block.keys() if isinstance(block, dict) else block.columns)
    return starfile.read(path, always_dict=True, parse_as_string=sorted(names))


def _run(args, extra, job_dir: Path, log) -> int:
    from dataclasses import replace

    from .commands import load_model_file, note, resolve_threads
    from .plan import checkpoint_for, output_format, output_names
    from .request import request_from_args
    from .run import denoise_one

    if args.in_movies:
        msg = (
            "zse denoises micrographs, not movies: give the motion-corrected micrographs "
            "(--in_mics)"
        )
        raise ValueError(msg)
    option = "in_mics" if args.in_mics else "in_tomograms"
    block_name, column, written_column, star_name, node_type = INPUTS[option]
    star_path = Path(getattr(args, option))
    parsed = _denoise_options(extra, job_dir, args.j, volume=option == "in_tomograms")
    starfile = _starfile()
    blocks = _read_star(starfile, star_path)
    if block_name not in blocks or column not in blocks[block_name]:
        msg = f"{star_path} has no {column} column in a data_{block_name} block"
        raise ValueError(msg)
    table = blocks[block_name]
    images = [str(v) for v in table[column]]
    # An unfinished micrograph of an earlier run is redone over its own leftovers (the file rule
    # still refuses to replace anything zse did not write).
    options = resolve_threads(request_from_args(parsed, [Path(i) for i in images], overwrite=True))
    fitted = load_model_file(options)
    read = _files.Inputs(
        [star_path, *(Path(i) for i in images)]
        + ([options.model_file] if options.model_file else [])
    )
    outputs = _plan(images, job_dir, options, star_name, read, checkpoint_for, output_names)
    started = time.perf_counter()
    log(
        f"zse {__version__}: {len(table)} {option[3:].replace('mics', 'micrographs')} of "
        f"{star_path} into {job_dir} "
        f"({' '.join(extra) or 'default settings'})"
    )
    failures, done, skipped = [], 0, 0
    for image in images:
        path = Path(image)
        out_dir, stem = outputs[image]
        fmt = output_format(path, options)
        names = output_names(stem, options.stats, fmt, fields=False)
        if _finished(out_dir, names):
            skipped += 1
            continue
        one = replace(options, output=out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        t = time.perf_counter()
        try:
            denoise_one(
                path,
                stem,
                one,
                note=lambda message, one=one: note(one, message),
                fitted=fitted,
                log=lambda message: None,
                inputs=read,
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
    _write_star(starfile, blocks, job_dir / star_name, read)
    _write_star(starfile, {"output_nodes": nodes}, job_dir / "RELION_OUTPUT_NODES.star", read)
    (job_dir / SUCCESS).touch()
    return 0


def _plan(images, job_dir, options, star_name, read, checkpoint_for, output_names) -> dict:
    """Each input's (output folder, stem), after checking before any work that no file the whole
    job writes is one of the files it reads, that no two of its files share a path, and that no
    existing file among them is one zse did not write."""
    from .plan import output_format

    outputs: dict[str, tuple[Path, str]] = {}
    planned = [
        (job_dir / star_name, f"the job's {star_name}"),
        (job_dir / "RELION_OUTPUT_NODES.star", "the job's RELION_OUTPUT_NODES.star"),
        (job_dir / LOG_NAME, f"the job's {LOG_NAME}"),
    ]
    for image in images:
        path = Path(image)
        out_dir = _output_dir(job_dir, image)
        target = (out_dir, path.stem)
        if target in outputs.values():
            msg = f"two inputs would write {out_dir / path.stem}_*: {image} and another"
            raise ValueError(msg)
        outputs[image] = target
        for name in output_names(path.stem, options.stats, output_format(path, options), True):
            planned.append((out_dir / name, f"the output {name} of {image}"))
        checkpoint = checkpoint_for(options.checkpoint, path.stem, len(images))
        if checkpoint is not None:
            planned.append((Path(checkpoint), f"the checkpoint of {image}"))
    _files.check_plan(planned, read)
    for path, _ in planned:
        if path.name != LOG_NAME and os.path.lexists(path):
            kind = "checkpoint" if path.suffix == ".ckpt" else "output"
            _files.check_target(path, kind=kind, overwrite=True, inputs=read)
    return outputs


def _write_star(starfile, blocks: dict, path: Path, inputs: _files.Inputs) -> None:
    """A STAR file under the file rule (never an input, never a file zse did not write), its
    first line zse's marker, moved into place whole."""
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
