"""The ``zse`` command line: ``zse denoise``, ``zse fit``, ``zse demo`` and ``zse info``."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

from . import __version__, _files, io
from ._workflow import (
    UsageError,
    denoise_one,
    expand_inputs,
    output_stems,
    parse_crop,
    planned_files,
)
from .models import MODELS, make_model

# The demo should finish in well under a minute on a laptop; the model's own default is longer.
DEMO_MAX_ITER = 30

__all__ = ["main", "build_parser", "parse_crop", "parse_patch_size", "UsageError"]


def parse_patch_size(text: str) -> tuple[int, ...]:
    """``6``, ``6x8`` or ``6,8`` (2-D); ``4x4x4`` or ``4,4,4`` (3-D: the input is a volume)."""
    parts = text.lower().replace("*", "x").replace(",", "x").split("x")
    try:
        sizes = [int(p) for p in parts]
    except ValueError:
        raise UsageError(f"--patch-size must look like 6, 6x8 or 4x4x4, got {text!r}") from None
    if len(sizes) == 1:
        sizes = sizes * 2
    if len(sizes) not in (2, 3) or min(sizes) < 1:
        raise UsageError(
            f"--patch-size must look like 6, 6x8 or 4x4x4 with sizes >= 1, got {text!r}"
        )
    return tuple(sizes)


def _mpi_comm(args):
    """COMM_WORLD when launched by mpirun/srun (or --mpi) with more than one rank, else None."""
    from ._mpi import launched_by_mpi, world

    if not (getattr(args, "mpi", False) or launched_by_mpi()):
        return None
    comm = world()
    if comm.Get_size() == 1:
        return None
    if args.n_threads is None:
        # Ranks on one node share its CPUs: each takes its part instead of all of them.
        from mpi4py import MPI

        from ._threads import available_cpus

        local = comm.Split_type(MPI.COMM_TYPE_SHARED).Get_size()
        args.n_threads = max(1, available_cpus() // local)
    return comm


def _logger(args, is_root: bool = True):
    def log(message: str) -> None:
        if not args.quiet and is_root:
            print(f"[zse] {message}", file=sys.stderr, flush=True)

    return log


def _error_code(error: BaseException) -> int:
    """2 for errors of inputs, options, files or memory; 1 for anything else (a bug)."""
    from ._base import CheckpointError
    from ._errors import OptionalDependencyError
    from ._mpi import RankError
    from .model_io import ModelFileError

    if isinstance(error, RankError):
        return (
            2
            if error.kind
            in (
                "ValueError",
                "TypeError",
                "FileNotFoundError",
                "OSError",
                "MemoryError",
                "CheckpointError",
                "ModelFileError",
                "InputError",
                "UsageError",
                "FileExistsError",
                "WriteRefused",
                "OptionalDependencyError",
            )
            else 1
        )
    user = (
        MemoryError,
        ValueError,
        TypeError,
        OSError,
        CheckpointError,
        ModelFileError,
        OptionalDependencyError,
    )
    return 2 if isinstance(error, user) else 1


def _report(path, error: BaseException) -> int:
    code = _error_code(error)
    where = f"{path}: " if path is not None else ""
    if isinstance(error, MemoryError):
        detail = str(error) or "an allocation failed"
        print(
            f"zse: error: {where}not enough memory: {detail}; try --crop, --bin, a smaller "
            "--patch-size or fewer --stats",
            file=sys.stderr,
        )
    elif code == 2:
        print(f"zse: error: {where}{error}", file=sys.stderr)
    else:
        import traceback

        traceback.print_exception(type(error), error, error.__traceback__, file=sys.stderr)
        print(
            f"zse: internal error: {where}{type(error).__name__}: {error}\n"
            f"This is a bug in zse {__version__}; please report it with the command line above.",
            file=sys.stderr,
        )
    return code


def cmd_denoise(args) -> int:
    _resolve_threads(args)
    _check_image_options(args)
    paths = expand_inputs(args.inputs)
    stems = output_stems(paths)
    args.n_inputs = len(paths)
    # The file rule: no output or checkpoint of one input may replace any input (checked for
    # every input before any work; README "Reliability").
    inputs = _files.Inputs(paths + ([Path(args.model_file)] if args.model_file else []))
    _files.check_plan(planned_files(paths, stems, args), inputs)
    comm = _mpi_comm(args)
    fitted = _load_model_file(args)
    spread = comm is not None and len(paths) >= comm.Get_size()
    rank = 0 if comm is None else comm.Get_rank()
    # Many inputs on many ranks: each rank denoises whole files on its own (round robin);
    # fewer inputs than ranks: every file uses all ranks.
    mine = paths[rank :: comm.Get_size()] if spread else paths
    file_comm = None if spread else comm
    log = _logger(args, rank == 0)
    failures = []
    for path in mine:
        try:
            denoise_one(
                path,
                stems[path],
                args,
                model_params=lambda name: _model_params(args, name),
                fitted=fitted,
                comm=file_comm,
                log=log,
                inputs=inputs,
            )
        except KeyboardInterrupt:
            raise
        except Exception as error:  # noqa: BLE001 - one failing input must not stop the others
            failures.append((str(path), _error_code(error)))
            if rank == 0 or spread:
                _report(path, error)
            if file_comm is not None:
                break  # the ranks' team has failed: no further collective work is possible
    if spread:
        from ._mpi import team_of

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
    from ._mpi import team_of
    from ._workflow import training_patches
    from .model_io import save_model

    _resolve_threads(args)
    _check_image_options(args)
    paths = expand_inputs(args.inputs)
    comm = _mpi_comm(args)
    team = team_of(comm)
    is_root = team is None or team.is_root
    log = _logger(args, is_root)
    output = Path(args.output)
    _files.check_target(output, kind="model", overwrite=args.overwrite, inputs=_files.Inputs(paths))
    if args.checkpoint:
        planned = [(output, "the model file"), (Path(args.checkpoint), "the checkpoint")]
        _files.check_plan(planned, _files.Inputs(paths))
    t = time.perf_counter()
    patches, patch, model_name, evidence = training_patches(paths, args)
    if evidence is not None:
        log(f"model auto: {model_name} ({evidence['reason']})")
    log(
        f"drew {len(patches)} training patches of {'x'.join(map(str, patch))} pixels from "
        f"{len(paths)} input(s)"
    )
    params = _model_params(args, model_name)
    model = make_model(
        model_name,
        options=params,
        random_state=args.seed,
        n_threads=args.n_threads,
        verbose=not args.quiet and is_root,
    )
    if comm is not None and hasattr(model, "comm"):
        model.comm = comm
    model.fit(patches)
    if hasattr(model, "comm"):
        model.comm = None
    if is_root:
        save_model(model, output, patch_size=patch, overwrite=args.overwrite)
        log(f"fitted {type(model).__name__} in {time.perf_counter() - t:.1f} s; wrote {output}")
    if team is not None:
        team.check()
    return 0


# Options that change how a fitted model estimates, not what it learned: they apply to a
# --model-file model.
ESTIMATION_OPTIONS = ("gain", "offset", "n_estimate_sweeps", "n_warm_sweeps", "search_patience")


def _load_model_file(args):
    if not args.model_file:
        return None
    from .model_io import load_model

    if args.model != "auto":
        raise UsageError("--model-file gives the model; leave out --model")
    given = [
        name
        for name in MODEL_OPTIONS
        if getattr(args, name, None) not in (None, False) and name not in ESTIMATION_OPTIONS
    ]
    if given:
        raise UsageError(
            "--model-file holds a fitted model; these options would not be used: "
            + ", ".join("--" + n.replace("_", "-") for n in given)
        )
    model = load_model(args.model_file)
    for name in ESTIMATION_OPTIONS:
        value = getattr(args, name, None)
        if value is not None and name in model.get_params():
            setattr(model, name, value)
    model.n_threads = args.n_threads
    return model


def _check_image_options(args) -> None:
    for name in ("bin", "decimate"):
        if getattr(args, name) < 1:
            raise UsageError(f"--{name} must be >= 1, got {getattr(args, name)}")
    if args.bin > 1 and args.decimate > 1:
        raise UsageError("--bin averages blocks and --decimate keeps every n-th pixel: give one")


def cmd_demo(args) -> int:
    from .data import psnr, synthetic_tem

    _resolve_threads(args)
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
    args.inputs, args.output, args.quiet = [str(out / "noisy.tif")], str(out), False
    for name, value in (
        ("page", None),
        ("crop", None),
        ("bin", 1),
        ("decimate", 1),
        ("volume", False),
        ("per_section", False),
        ("model_file", None),
        ("format", None),
    ):
        setattr(args, name, value)
    record = denoise_one(
        out / "noisy.tif",
        "demo",
        args,
        model_params=lambda name: _model_params(args, name),
        log=_logger(args),
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
    from . import show_config

    show_config()
    return 0


# Command-line names of every model parameter that a valid setting may need.
MODEL_OPTIONS = (
    "H",
    "n_states",
    "n_parents",
    "n_children",
    "n_generations",
    "selection",
    "mutation",
    "bitflip_prob",
    "p_init",
    "updates",
    "init",
    "n_estimate_sweeps",
    "n_warm_sweeps",
    "search_patience",
    "n_components",
    "max_iter",
    "tol",
    "learn_alpha",
    "class_alpha",
    "alpha_init",
    "alpha_max",
    "gain",
    "offset",
    "checkpoint",
    "checkpoint_every",
    "resume",
)


def _note(args, message: str) -> None:
    if not getattr(args, "quiet", False):
        print(f"[zse] note: {message}", file=sys.stderr)


def _resolve_threads(args) -> None:
    """Validate --n-threads once; a capped request becomes one note, not a warning per stage."""
    if args.n_threads is None:
        return
    import warnings

    from ._threads import effective_n_threads

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        resolved = effective_n_threads(args.n_threads)
    for warning in caught:
        _note(args, str(warning.message))
    args.n_threads = resolved


def _model_params(args, model_name: str | None = None) -> dict:
    """Model options given on the command line for ``model_name`` (default ``--model``); an
    option the model lacks is an error when the model is made.

    With ``--model auto``, ``--gain``/``--offset`` serve the count test and go to the Poisson
    models only. For SSSC, defaults that a small H or S cannot take (more states than 2^H, more
    parents
    than states, more single-bit children than units) are lowered to the largest valid value,
    with a note; values the user gave are never changed.
    """
    params = {
        name: getattr(args, name) for name in MODEL_OPTIONS if getattr(args, name, None) is not None
    }
    if params.get("resume") is False:
        params.pop("resume")
    model_name = model_name or args.model
    if args.model == "auto" and model_name not in ("pmm", "gpmm"):
        params.pop("gain", None)
        params.pop("offset", None)
    if model_name == "sssc":
        import inspect

        from .sssc import SSSC

        defaults = {k: p.default for k, p in inspect.signature(SSSC.__init__).parameters.items()}
        H = params.get("H", defaults["H"])
        if isinstance(H, int) and 1 <= H < 63:
            if "n_states" not in params and defaults["n_states"] > 2**H:
                params["n_states"] = 2**H
                _note(args, f"H={H} has {2**H} states in all: using --n-states {2**H}")
            S = params.get("n_states", defaults["n_states"])
            if "n_parents" not in params and defaults["n_parents"] > S:
                params["n_parents"] = S
                _note(args, f"--n-states {S}: using --n-parents {S}")
            mutation = params.get("mutation", defaults["mutation"])
            if "n_children" not in params and mutation == "randflip" and defaults["n_children"] > H:
                params["n_children"] = H
                _note(args, f"H={H}: using --n-children {H}")
    return params


def _n_train(text: str):
    if text == "auto":
        return text
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"--n-train must be auto or an int >= 1, got {text!r}"
        ) from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"--n-train must be auto or an int >= 1, got {text!r}")
    return value


def _stats(text: str) -> tuple[str, ...]:
    names = tuple(s.strip() for s in text.split(",") if s.strip())
    if not names:
        raise argparse.ArgumentTypeError("--stats needs at least one name")
    return names


def _add_model_options(p: argparse.ArgumentParser) -> None:
    from .sssc import INITS, MUTATIONS, SELECTIONS, UPDATES

    p.add_argument(
        "--model",
        default="auto",
        choices=["auto", *sorted(MODELS)],
        help="patch model; auto (default): gpmm for electron counts (tested on the "
        "data, see --counts), else sssc",
    )
    p.add_argument(
        "--counts",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="with --model auto: the input holds electron counts (--counts) or not "
        "(--no-counts) instead of testing the data",
    )
    p.add_argument(
        "--patch-size",
        type=parse_patch_size,
        default=None,
        help="patch size: 6 or 6x8 for images and stacks, 4x4x4 for a volume "
        "(default: 8, i.e. 8x8, for every model; 4x4x4 for volumes)",
    )
    m = p.add_argument_group("model parameters (see the model's docstring; default: the model's)")
    m.add_argument("--H", type=int, default=None, help="latent units H (sssc; default 64)")
    m.add_argument(
        "--n-states",
        type=int,
        default=None,
        help="states kept per patch S (sssc; default 32, at most 2^H)",
    )
    m.add_argument(
        "--n-parents",
        type=int,
        default=None,
        help="parents per generation (sssc; default 10, at most S)",
    )
    m.add_argument(
        "--n-children", type=int, default=None, help="children per parent (sssc; default 2)"
    )
    m.add_argument(
        "--n-generations", type=int, default=None, help="generations per epoch (sssc; default 1)"
    )
    m.add_argument("--selection", choices=SELECTIONS, default=None, help="parent selection (sssc)")
    m.add_argument("--mutation", choices=MUTATIONS, default=None, help="mutation operator (sssc)")
    m.add_argument(
        "--bitflip-prob",
        type=float,
        default=None,
        help="bit-flip probability of the sparseflip mutations (sssc)",
    )
    m.add_argument(
        "--p-init",
        type=float,
        default=None,
        help="probability of an active unit in the initial states (sssc; default 1/H)",
    )
    m.add_argument("--updates", choices=UPDATES, default=None, help="M-step variant (sssc)")
    m.add_argument(
        "--init", choices=INITS, default=None, help="initial parameters (sssc; default evo)"
    )
    m.add_argument(
        "--n-estimate-sweeps",
        type=int,
        default=None,
        help="search sweeps for patches not trained on, from fresh states (sssc)",
    )
    m.add_argument(
        "--n-warm-sweeps",
        type=int,
        default=None,
        help="search sweeps for a patch started from its neighbour's states (sssc; default 30)",
    )
    m.add_argument(
        "--search-patience",
        type=int,
        default=None,
        help="end a patch's estimation search after this many sweeps in a row that left its "
        "states unchanged (sssc; default 0: every sweep)",
    )
    m.add_argument(
        "--n-components", type=int, default=None, help="mixture components C (pmm, gpmm)"
    )
    m.add_argument("--max-iter", type=int, default=None, help="EM epochs (default: the model's)")
    m.add_argument(
        "--tol",
        type=float,
        default=None,
        help="stop early: relative change of the log-likelihood (pmm, gpmm) or free-energy gain "
        "in nats per pixel and epoch over 5 epochs (sssc)",
    )
    m.add_argument(
        "--learn-alpha",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="learn the Gamma shape (gpmm; default on)",
    )
    m.add_argument(
        "--class-alpha",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="one Gamma shape per component (gpmm)",
    )
    m.add_argument("--alpha-init", type=float, default=None, help="initial Gamma shape (gpmm)")
    m.add_argument("--alpha-max", type=float, default=None, help="cap of the Gamma shape (gpmm)")
    m.add_argument(
        "--gain",
        type=float,
        default=None,
        help="counts per grey level (pmm, gpmm and the count test of --model auto; default 1)",
    )
    m.add_argument(
        "--offset",
        type=float,
        default=None,
        help="detector dark level in grey values (pmm, gpmm and the count test; default 0)",
    )
    c = p.add_argument_group("checkpoints of long fits (sssc, pmm, gpmm)")
    c.add_argument(
        "--checkpoint",
        default=None,
        help="file the training state is written to every --checkpoint-every epochs (with "
        "several inputs: <name>.<stem><suffix> each)",
    )
    c.add_argument(
        "--checkpoint-every", type=int, default=None, help="epochs between checkpoints (default 10)"
    )
    c.add_argument(
        "--resume",
        action="store_true",
        default=None,
        help="continue from --checkpoint if it exists (bit-identical results)",
    )
    p.add_argument(
        "--n-train",
        type=_n_train,
        default="auto",
        help="patch positions to train on: an int, or auto (every patch up to 16384 for sssc, "
        "65536 for pmm/gpmm, a random subset of that many beyond; default)",
    )
    p.add_argument("--seed", type=int, default=0, help="random seed of the model (default: 0)")
    p.add_argument(
        "--n-threads",
        type=int,
        default=None,
        help="threads per process (default: all available; under MPI the node's CPUs shared "
        "by its ranks)",
    )
    p.add_argument(
        "--mpi",
        action="store_true",
        help="use every MPI rank (detected when started by mpirun/mpiexec/srun)",
    )
    p.add_argument("-q", "--quiet", action="store_true", help="no progress output")


def _add_input_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--page",
        type=int,
        default=None,
        help="only this page of a TIFF stack / section of an MRC stack",
    )
    p.add_argument(
        "--volume",
        action="store_true",
        help="treat a 3-D file as a volume (3-D patches) even if its header says stack",
    )
    p.add_argument(
        "--crop", default=None, help="region y0:y1,x0:x1 of every section (applied before --bin)"
    )
    p.add_argument(
        "--bin",
        type=int,
        default=1,
        help="average N x N blocks (IMOD's binning; a remainder is cropped, with a note)",
    )
    p.add_argument(
        "--decimate", type=int, default=1, help="keep every N-th pixel in each direction"
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="zse",
        description="Zero-shot enhancement of noisy electron-microscopy images.",
    )
    parser.add_argument("--version", action="version", version=f"zse {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser(
        "denoise",
        help="denoise images, stacks and volumes; per input <stem>_mean/<stem>_var, previews, "
        "<stem>_fields.png and <stem>.zse.json",
    )
    p.add_argument(
        "inputs",
        nargs="+",
        metavar="INPUT",
        help='TIFF, MRC, PNG or JPEG files or quoted patterns ("dir/*.mrc")',
    )
    p.add_argument("-o", "--output", required=True, help="output directory")
    p.add_argument(
        "--format",
        choices=("mrc", "tif"),
        default=None,
        help="output format (default: mrc for MRC inputs, else tif)",
    )
    p.add_argument(
        "--stats",
        type=_stats,
        default=("mean", "var"),
        help="comma-separated outputs: mean,median,var,pvar,count (default: mean,var)",
    )
    p.add_argument(
        "--model-file",
        default=None,
        help="apply a model written by zse fit instead of fitting one per input",
    )
    p.add_argument(
        "--per-section",
        action="store_true",
        help="stacks: fit a model for each section (default: one model from patches of all "
        "sections)",
    )
    _add_input_options(p)
    _add_model_options(p)
    p.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    p.set_defaults(func=cmd_denoise)

    p = sub.add_parser(
        "fit", help="fit one model on patches of every input and write it to a model file"
    )
    p.add_argument(
        "inputs", nargs="+", metavar="INPUT", help="TIFF, MRC, PNG or JPEG files or quoted patterns"
    )
    p.add_argument("-o", "--output", required=True, help="model file to write (e.g. model.zse)")
    _add_input_options(p)
    _add_model_options(p)
    p.add_argument("--overwrite", action="store_true", help="replace an existing model file")
    p.set_defaults(func=cmd_fit)

    p = sub.add_parser("demo", help="denoise a bundled example EM scene")
    p.add_argument(
        "-o", "--output", default="zse-demo", help="output directory (default: %(default)s)"
    )
    p.add_argument(
        "--stats",
        type=_stats,
        default=("mean", "var"),
        help="comma-separated outputs (default: mean,var)",
    )
    _add_model_options(p)
    p.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    p.set_defaults(max_iter=DEMO_MAX_ITER, func=cmd_demo)

    sub.add_parser(
        "relion",
        help="a RELION External job: --o JOB_DIR --in_mics STAR [--j THREADS] [--<option> "
        "VALUE ...] (zse relion --help)",
        add_help=False,
    )

    p = sub.add_parser("info", help="print version, OpenMP and thread configuration")
    p.set_defaults(func=cmd_info)
    return parser


class Terminated(BaseException):
    """SIGTERM (a batch system ending the job) turned into an exception, so outputs unwind."""


def _on_sigterm(signum, frame):
    raise Terminated


def main(argv=None) -> int:
    """Run the command line; returns the exit code.

    0: success; 2: an error of the input, options, files or memory (``zse: error: ...``);
    1: an internal error (a bug: the message asks to report it); 130/143: interrupted/terminated.
    """
    import signal

    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["relion"]:  # RELION's own option syntax (--o, --in_mics, --j): its parser
        from . import relion

        return relion.run(argv[1:])
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        previous = signal.signal(signal.SIGTERM, _on_sigterm)
    except ValueError:  # not the main thread: leave signals alone
        previous = None
    try:
        return args.func(args)
    except KeyboardInterrupt:
        print("zse: interrupted; no partial outputs were left", file=sys.stderr)
        return 130
    except Terminated:
        print("zse: terminated; no partial outputs were left", file=sys.stderr)
        return 143
    except Exception as error:  # noqa: BLE001 - reported as a user error (2) or a bug (1)
        return _report(None, error)
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


if __name__ == "__main__":
    sys.exit(main())
