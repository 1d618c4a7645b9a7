"""The commands: each turns its parsed arguments into a :class:`Request` once and runs it."""

from __future__ import annotations

import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from .. import _files, io
from ..models import make_model
from .errors import UsageError, error_code, report
from .inputs import expand_inputs, output_stems
from .plan import planned_files
from .request import Request, model_params, request_from_args
from .run import denoise_one, training_patches


def _mpi_comm(request: Request):
    """COMM_WORLD when launched by mpirun/srun (or --mpi) with more than one rank, else None;
    with it, the threads per rank (the node's CPUs shared by its ranks unless given)."""
    from .._mpi import launched_by_mpi, world

    if not (request.mpi or launched_by_mpi()):
        return None, request
    comm = world()
    if comm.Get_size() == 1:
        return None, request
    if request.n_threads is None:
        from mpi4py import MPI

        from .._threads import available_cpus

        local = comm.Split_type(MPI.COMM_TYPE_SHARED).Get_size()
        request = replace(request, n_threads=max(1, available_cpus() // local))
    return comm, request


def logger(request: Request, is_root: bool = True):
    def log(message: str) -> None:
        if not request.quiet and is_root:
            print(f"[zse] {message}", file=sys.stderr, flush=True)

    return log


def note(request: Request, message: str) -> None:
    if not request.quiet:
        print(f"[zse] note: {message}", file=sys.stderr)


def resolve_threads(request: Request) -> Request:
    """Validate --n-threads once; a capped request becomes one note, not a warning per stage."""
    if request.n_threads is None:
        return request
    import warnings

    from .._threads import effective_n_threads

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        resolved = effective_n_threads(request.n_threads)
    for warning in caught:
        note(request, str(warning.message))
    return replace(request, n_threads=resolved)


def cmd_denoise(args) -> int:
    paths = expand_inputs(args.inputs)
    request = resolve_threads(request_from_args(args, paths))
    stems = output_stems(paths)
    # The file rule: no output or checkpoint of one input may replace any input (checked for
    # every input before any work; docs/reliability.md).
    inputs = _files.Inputs(paths + ([request.model_file] if request.model_file else []))
    _files.check_plan(planned_files(paths, stems, request), inputs)
    comm, request = _mpi_comm(request)
    fitted = load_model_file(request)
    spread = comm is not None and len(paths) >= comm.Get_size()
    rank = 0 if comm is None else comm.Get_rank()
    # Many inputs on many ranks: each rank denoises whole files on its own (round robin);
    # fewer inputs than ranks: every file uses all ranks.
    mine = paths[rank :: comm.Get_size()] if spread else paths
    file_comm = None if spread else comm
    log = logger(request, rank == 0)
    failures = []
    for path in mine:
        try:
            denoise_one(
                path,
                stems[path],
                request,
                note=lambda message: note(request, message),
                fitted=fitted,
                comm=file_comm,
                log=log,
                inputs=inputs,
            )
        except KeyboardInterrupt:
            raise
        except Exception as error:  # noqa: BLE001 - one failing input must not stop the others
            failures.append((str(path), error_code(error)))
            if rank == 0 or spread:
                report(path, error)
            if file_comm is not None:
                break  # the ranks' team has failed: no further collective work is possible
    if spread:
        from .._mpi import team_of

        everyone = team_of(comm).run(lambda: failures)
        failures = [f for rank_failures in everyone for f in rank_failures]
    if failures:
        if len(paths) > 1 and rank == 0:
            print(
                f"zse: {len(failures)} of {len(paths)} inputs failed: "
                + ", ".join(p for p, _ in failures),
                file=sys.stderr,
            )
        return max(code for _, code in failures)
    return 0


def cmd_fit(args) -> int:
    """``zse fit INPUT... -o model.zse``: one model from patches of every input."""
    from .._mpi import team_of
    from ..models.files import save_model

    paths = expand_inputs(args.inputs)
    request = resolve_threads(request_from_args(args, paths))
    comm, request = _mpi_comm(request)
    team = team_of(comm)
    is_root = team is None or team.is_root
    log = logger(request, is_root)
    output = Path(request.output)
    _files.check_target(
        output, kind="model", overwrite=request.overwrite, inputs=_files.Inputs(paths)
    )
    if request.checkpoint:
        planned = [(output, "the model file"), (Path(request.checkpoint), "the checkpoint")]
        _files.check_plan(planned, _files.Inputs(paths))
    t = time.perf_counter()
    patches, patch, model_name, evidence = training_patches(paths, request)
    if evidence is not None:
        log(f"model auto: {model_name} ({evidence['reason']})")
    log(
        f"drew {len(patches)} training patches of {'x'.join(map(str, patch))} pixels from "
        f"{len(paths)} input(s)"
    )
    model = make_model(
        model_name,
        options=model_params(request, model_name, lambda m: note(request, m)),
        random_state=request.seed,
        n_threads=request.n_threads,
        verbose=not request.quiet and is_root,
    )
    with model.fitting_on(comm):
        model.fit(patches, patch_shape=patch)
    if is_root:
        save_model(model, output, patch_size=patch, overwrite=request.overwrite)
        log(f"fitted {type(model).__name__} in {time.perf_counter() - t:.1f} s; wrote {output}")
    if team is not None:
        team.check()
    return 0


def load_model_file(request: Request):
    """The model of ``--model-file`` with the request's estimation settings, or None."""
    if not request.model_file:
        return None
    from ..models import REGISTRY
    from ..models.files import load_model

    if request.model != "auto":
        raise UsageError("--model-file gives the model; leave out --model")
    estimation = {n for cls in REGISTRY.values() for n in cls.estimation_params()}
    given = [name for name, value in request.params.items() if name not in estimation and value]
    if given:
        raise UsageError(
            "--model-file holds a fitted model; these options would not be used: "
            + ", ".join("--" + n.replace("_", "-") for n in given)
        )
    model = load_model(request.model_file)
    model.set_estimation(**request.params)
    model.set_threads(request.n_threads)
    return model


def cmd_demo(args) -> int:
    from ..data import psnr, synthetic_tem

    noisy, clean = synthetic_tem(seed=args.seed if args.seed is not None else 0)
    out = Path(args.output)
    print(
        f"[zse] demo: synthetic TEM scene {noisy.shape[0]}x{noisy.shape[1]} px, "
        f"shot noise at 20 e-/px, model {args.model}",
        file=sys.stderr,
    )
    with io.OutputSet(out, ["noisy.tif", "clean.tif"], overwrite=args.overwrite) as outputs:
        io.write_tiff(outputs.path("noisy.tif"), noisy)
        io.write_tiff(outputs.path("clean.tif"), clean)
    request = resolve_threads(request_from_args(args, [out / "noisy.tif"], quiet=False))
    record = denoise_one(
        out / "noisy.tif",
        "demo",
        request,
        note=lambda message: note(request, message),
        log=logger(request),
    )
    quality = {"psnr_noisy_db": round(psnr(clean, noisy), 3)}
    mean_path = out / "demo_mean.tif"
    if mean_path.exists():
        import tifffile

        quality["psnr_mean_db"] = round(
            psnr(clean, tifffile.imread(mean_path).astype(np.float64)), 3
        )
    record["quality"] = quality
    io.write_json(out / "demo.zse.json", record, overwrite=True)
    print(f"[zse] PSNR against the clean scene: noisy {quality['psnr_noisy_db']:.2f} dB", end="")
    if "psnr_mean_db" in quality:
        print(f", denoised mean {quality['psnr_mean_db']:.2f} dB", end="")
    print()
    print(f"[zse] outputs in {out.resolve()}: " + ", ".join(sorted(p.name for p in out.iterdir())))
    return 0


def cmd_info(args) -> int:
    from .. import show_config

    show_config()
    return 0


# What each subcommand of the parser runs (zse relion has its own parser: zse.cli.relion).
COMMANDS = {"denoise": cmd_denoise, "fit": cmd_fit, "demo": cmd_demo, "info": cmd_info}
