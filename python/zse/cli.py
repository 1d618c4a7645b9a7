"""The ``zse`` command line: ``zse denoise``, ``zse demo`` and ``zse info``."""

from __future__ import annotations

import argparse
import platform
import sys
import time
from pathlib import Path

import numpy as np

from . import __version__, io
from ._validation import as_image, as_volume
from .models import DEFAULT_MODEL, MODELS, make_model
from .reconstruct import DEFAULT_PATCH_SIZE, reconstruct


# The demo should finish in well under a minute on a laptop; the model's own default is longer.
DEMO_MAX_ITER = 30


class UsageError(ValueError):
    """A command-line value that cannot be used."""


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
        raise UsageError(f"--patch-size must look like 6, 6x8 or 4x4x4 with sizes >= 1, got {text!r}")
    return tuple(sizes)


def parse_crop(text: str, shape: tuple[int, int]) -> tuple[slice, slice]:
    """``"y0:y1,x0:x1"`` (ends may be left empty) -> slices; out-of-range crops are errors."""
    axes = text.split(",")
    if len(axes) != 2:
        raise UsageError(f"--crop must look like y0:y1,x0:x1, got {text!r}")
    slices = []
    for axis_text, size, axis in zip(axes, shape, ("y", "x")):
        ends = axis_text.split(":")
        if len(ends) != 2:
            raise UsageError(f"--crop must look like y0:y1,x0:x1, got {text!r}")
        try:
            start = int(ends[0]) if ends[0].strip() else 0
            stop = int(ends[1]) if ends[1].strip() else size
        except ValueError:
            raise UsageError(f"--crop bounds must be integers, got {text!r}") from None
        if not 0 <= start < stop <= size:
            raise UsageError(
                f"--crop {axis} range {start}:{stop} is empty or outside the image "
                f"(0:{size} along {axis}); nothing is clipped silently"
            )
        slices.append(slice(start, stop))
    return slices[0], slices[1]


def _output_names(stats, volume: bool = False) -> list[str]:
    names = ["input.png"]
    for stat in stats:
        names += [f"{stat}.mrc" if volume else f"{stat}.tif", f"{stat}.png"]
    names.append("run.json")
    return names


def _preview(array: np.ndarray) -> np.ndarray:
    """The central section of a volume (an image as it is), for the PNG previews."""
    return array[array.shape[0] // 2] if array.ndim == 3 else array


def _model_report(model) -> dict:
    report = {"name": type(model).__name__, "params": model.get_params() if hasattr(model, "get_params") else {}}
    for attr in ("free_energies_", "log_likelihoods_", "n_iter_"):
        value = getattr(model, attr, None)
        if value is not None:
            report[attr.rstrip("_")] = np.asarray(value).tolist()
    report["params"] = {k: (v if isinstance(v, (int, float, str, bool, type(None))) else repr(v)) for k, v in report["params"].items()}
    return report


def run_denoise(
    image,
    outdir: Path,
    *,
    model_name: str,
    patch_size: tuple[int, int],
    stats: tuple[str, ...],
    seed: int | None,
    n_threads: int | None,
    overwrite: bool,
    verbose: bool,
    record: dict,
    model_params: dict | None = None,
    extra_outputs: dict | None = None,
    finish_record=None,
    n_train="auto",
) -> dict:
    """Shared body of ``denoise`` and ``demo``: fit, merge, and write every output as one set.

    ``extra_outputs`` maps further file names to arrays written as float TIFFs (the demo's
    noisy and clean scenes); ``finish_record(record, results)`` may add to run.json. Nothing
    appears in ``outdir`` unless every file could be written (:class:`zse.io.OutputSet`).
    """
    timings = record.setdefault("timings_s", {})
    extra_outputs = extra_outputs or {}
    model = make_model(
        model_name, options=model_params or {}, random_state=seed, n_threads=n_threads,
        verbose=verbose,
    )
    volume = np.ndim(image) == 3
    names = list(extra_outputs) + _output_names(stats, volume)
    with io.OutputSet(outdir, names, overwrite=overwrite) as outputs:
        for name, array in extra_outputs.items():
            io.write_tiff(outputs.path(name), array)
        t = time.perf_counter()
        results = reconstruct(
            image, model, stats=stats, patch_size=patch_size, n_train=n_train,
            n_threads=n_threads, verbose=verbose,
        )
        timings["reconstruct"] = round(time.perf_counter() - t, 4)

        t = time.perf_counter()
        io.write_preview_png(outputs.path("input.png"), _preview(image))
        for stat, array in results.items():
            if volume:
                io.write_mrc(outputs.path(f"{stat}.mrc"), array)
            else:
                io.write_tiff(outputs.path(f"{stat}.tif"), array)
            io.write_preview_png(outputs.path(f"{stat}.png"), _preview(array))
        timings["write"] = round(time.perf_counter() - t, 4)
        record.update(
            {
                "model": _model_report(model),
                "patch_size": list(patch_size),
                "n_train": n_train,
                "stats": list(stats),
                "seed": seed,
                "n_threads": n_threads,
                "outputs": [str(outputs.final_path(n)) for n in names],
            }
        )
        if finish_record is not None:
            finish_record(record, results)
        io.write_json(outputs.path("run.json"), record)
    return results


def _base_record(command: str) -> dict:
    from . import _core

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
    }


def cmd_denoise(args) -> int:
    _resolve_threads(args)
    if len(args.patch_size) == 3:
        return _denoise_volume(args)
    t = time.perf_counter()
    raw = io.read_image(args.input, page=args.page)
    record = _base_record("denoise")
    record["input"] = {
        "path": str(Path(args.input).resolve()),
        "page": args.page,
        "shape": list(raw.shape),
        "dtype": str(raw.dtype),
    }
    image = raw
    if args.crop:
        rows, cols = parse_crop(args.crop, image.shape)
        image = image[rows, cols]
        record["input"]["crop"] = [rows.start, rows.stop, cols.start, cols.stop]
    if args.bin < 1:
        raise UsageError(f"--bin must be >= 1, got {args.bin}")
    if args.bin > 1:
        # The reference's "omit every second pixel" downscaling: keep every n-th row and column.
        image = image[:: args.bin, :: args.bin]
    record["input"]["bin"] = args.bin
    image = as_image(image)
    record["input"]["processed_shape"] = list(image.shape)
    record.setdefault("timings_s", {})["read"] = round(time.perf_counter() - t, 4)
    if not args.quiet:
        print(f"[zse] read {args.input}: {raw.shape} {raw.dtype} -> {image.shape}", file=sys.stderr)
    return _denoise_and_report(args, image, record, "tif")


def _denoise_and_report(args, image, record, suffix) -> int:
    run_denoise(
        image,
        Path(args.output),
        model_name=args.model,
        patch_size=args.patch_size,
        stats=args.stats,
        seed=args.seed,
        n_threads=args.n_threads,
        overwrite=args.overwrite,
        verbose=not args.quiet,
        record=record,
        model_params=_model_params(args),
        n_train=args.n_train,
    )
    if not args.quiet:
        print(f"[zse] wrote {', '.join(f'{s}.{suffix}' for s in args.stats)} to {args.output}")
    return 0


def _denoise_volume(args) -> int:
    """``zse denoise tomogram.rec --patch-size 4x4x4``: the 3-D path, MRC volumes out."""
    if args.page is not None or args.crop or args.bin != 1:
        raise UsageError("--page, --crop and --bin apply to 2-D images, not to a 3-D --patch-size")
    t = time.perf_counter()
    volume = io.read_volume(args.input)
    record = _base_record("denoise")
    record["input"] = {
        "path": str(Path(args.input).resolve()),
        "shape": list(volume.shape),
        "dtype": str(volume.dtype),
    }
    volume = as_volume(volume)
    record.setdefault("timings_s", {})["read"] = round(time.perf_counter() - t, 4)
    if not args.quiet:
        print(f"[zse] read volume {args.input}: {volume.shape}", file=sys.stderr)
    return _denoise_and_report(args, volume, record, "mrc")


def cmd_demo(args) -> int:
    from .data import psnr, synthetic_tem

    _resolve_threads(args)
    noisy, clean = synthetic_tem(seed=args.seed if args.seed is not None else 0)
    record = _base_record("demo")
    record["input"] = {
        "synthetic": "zse.data.synthetic_tem",
        "shape": list(noisy.shape),
        "dose_e_per_px": 20.0,
    }
    print(
        f"[zse] demo: synthetic TEM scene {noisy.shape[0]}x{noisy.shape[1]} px, "
        f"shot noise at 20 e-/px, model {args.model}",
        file=sys.stderr,
    )
    quality = {"psnr_noisy_db": round(psnr(clean, noisy), 3)}

    def add_quality(record, results):
        if "mean" in results:
            quality["psnr_mean_db"] = round(psnr(clean, results["mean"]), 3)
        record["quality"] = quality

    run_denoise(
        noisy,
        Path(args.output),
        model_name=args.model,
        patch_size=args.patch_size,
        stats=args.stats,
        seed=args.seed,
        n_threads=args.n_threads,
        overwrite=args.overwrite,
        verbose=True,
        record=record,
        model_params=_model_params(args),
        extra_outputs={"noisy.tif": noisy, "clean.tif": clean},
        finish_record=add_quality,
        n_train=args.n_train,
    )
    outdir = Path(args.output)
    print(f"[zse] PSNR against the clean scene: noisy {quality['psnr_noisy_db']:.2f} dB", end="")
    if "psnr_mean_db" in quality:
        print(f", denoised mean {quality['psnr_mean_db']:.2f} dB", end="")
    print()
    print(f"[zse] outputs in {outdir.resolve()}: " + ", ".join(sorted(p.name for p in outdir.iterdir())))
    return 0


def cmd_info(args) -> int:
    from . import show_config

    show_config()
    return 0


# Command-line names of every model parameter that a valid setting may need.
MODEL_OPTIONS = (
    "H", "n_states", "n_parents", "n_children", "n_generations", "selection", "mutation",
    "bitflip_prob", "p_init", "updates", "n_estimate_sweeps", "n_components", "max_iter", "tol",
    "learn_alpha", "class_alpha", "alpha_init", "alpha_max", "gain", "offset", "checkpoint",
    "checkpoint_every", "resume",
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


def _model_params(args) -> dict:
    """Model options given on the command line (an option the model lacks is an error).

    For SSSC, defaults that a small H or S cannot take (more states than 2^H, more parents
    than states, more single-bit children than units) are lowered to the largest valid value,
    with a note; values the user gave are never changed.
    """
    params = {
        name: getattr(args, name) for name in MODEL_OPTIONS if getattr(args, name, None) is not None
    }
    if params.get("resume") is False:
        params.pop("resume")
    if args.model == "sssc":
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
        raise argparse.ArgumentTypeError(f"--n-train must be auto or an int >= 1, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"--n-train must be auto or an int >= 1, got {text!r}")
    return value


def _stats(text: str) -> tuple[str, ...]:
    names = tuple(s.strip() for s in text.split(",") if s.strip())
    if not names:
        raise argparse.ArgumentTypeError("--stats needs at least one name")
    return names


def _add_common(p: argparse.ArgumentParser, default_output: str | None) -> None:
    if default_output is None:
        p.add_argument("-o", "--output", required=True, help="output directory")
    else:
        p.add_argument("-o", "--output", default=default_output, help="output directory (default: %(default)s)")
    p.add_argument("--model", default=DEFAULT_MODEL, choices=sorted(MODELS), help="patch model (default: %(default)s)")
    p.add_argument("--patch-size", type=parse_patch_size, default=(DEFAULT_PATCH_SIZE, DEFAULT_PATCH_SIZE), help="patch size: 6 or 6x8 for an image, 4x4x4 for a volume (MRC in, MRC volumes out; default: 6)")
    p.add_argument("--stats", type=_stats, default=("mean", "var"), help="comma-separated outputs: mean,median,var,pvar,count (default: mean,var)")
    from .sssc import MUTATIONS, SELECTIONS, UPDATES

    m = p.add_argument_group("model parameters (see the model's docstring; default: the model's)")
    m.add_argument("--H", type=int, default=None, help="latent units H (sssc; default 64)")
    m.add_argument("--n-states", type=int, default=None, help="states kept per patch S (sssc; default 32, at most 2^H)")
    m.add_argument("--n-parents", type=int, default=None, help="parents per generation (sssc; default 10, at most S)")
    m.add_argument("--n-children", type=int, default=None, help="children per parent (sssc; default 2)")
    m.add_argument("--n-generations", type=int, default=None, help="generations per epoch (sssc; default 1)")
    m.add_argument("--selection", choices=SELECTIONS, default=None, help="parent selection (sssc)")
    m.add_argument("--mutation", choices=MUTATIONS, default=None, help="mutation operator (sssc)")
    m.add_argument("--bitflip-prob", type=float, default=None, help="bit-flip probability of the sparseflip mutations (sssc)")
    m.add_argument("--p-init", type=float, default=None, help="probability of an active unit in the initial states (sssc; default 1/H)")
    m.add_argument("--updates", choices=UPDATES, default=None, help="M-step variant (sssc)")
    m.add_argument("--n-estimate-sweeps", type=int, default=None, help="search sweeps for patches not trained on (sssc)")
    m.add_argument("--n-components", type=int, default=None, help="mixture components C (pmm, gpmm)")
    m.add_argument("--max-iter", type=int, default=None, help="EM epochs (default: the model's)")
    m.add_argument("--tol", type=float, default=None, help="stop when the log-likelihood changes by less than this, relatively (pmm, gpmm)")
    m.add_argument("--learn-alpha", action=argparse.BooleanOptionalAction, default=None, help="learn the Gamma shape (gpmm; default on)")
    m.add_argument("--class-alpha", action=argparse.BooleanOptionalAction, default=None, help="one Gamma shape per component (gpmm)")
    m.add_argument("--alpha-init", type=float, default=None, help="initial Gamma shape (gpmm)")
    m.add_argument("--alpha-max", type=float, default=None, help="cap of the Gamma shape (gpmm)")
    m.add_argument("--gain", type=float, default=None, help="counts per grey level (pmm, gpmm; default 1)")
    m.add_argument("--offset", type=float, default=None, help="detector dark level in grey values (pmm, gpmm; default 0)")
    c = p.add_argument_group("checkpoints of long fits (sssc, pmm, gpmm)")
    c.add_argument("--checkpoint", default=None, help="file the training state is written to every --checkpoint-every epochs")
    c.add_argument("--checkpoint-every", type=int, default=None, help="epochs between checkpoints (default 10)")
    c.add_argument("--resume", action="store_true", default=None, help="continue from --checkpoint if it exists (bit-identical results)")
    p.add_argument("--n-train", type=_n_train, default="auto", help="patch positions to train on: an int, or auto (every patch up to 65536, a random subset beyond; default)")
    p.add_argument("--seed", type=int, default=0, help="random seed of the model (default: 0)")
    p.add_argument("--n-threads", type=int, default=None, help="threads (default: all available; capped at the CPUs)")
    p.add_argument("--overwrite", action="store_true", help="replace existing outputs")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="zse",
        description="Zero-shot enhancement of a single noisy electron-microscopy image.",
    )
    parser.add_argument("--version", action="version", version=f"zse {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("denoise", help="denoise an image file; writes mean/var TIFFs, PNG previews and run.json")
    p.add_argument("input", help="input image: TIFF, MRC, PNG or JPEG")
    _add_common(p, None)
    p.add_argument("--page", type=int, default=None, help="page of a TIFF stack / section of an MRC stack")
    p.add_argument("--crop", default=None, help="region y0:y1,x0:x1 (applied before --bin)")
    p.add_argument("--bin", type=int, default=1, help="keep every n-th pixel in each direction (default: 1)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress output")
    p.set_defaults(func=cmd_denoise)

    p = sub.add_parser("demo", help="denoise a bundled example EM scene")
    _add_common(p, "zse-demo")
    p.set_defaults(max_iter=DEMO_MAX_ITER)
    p.set_defaults(func=cmd_demo)

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

    from ._base import CheckpointError

    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        previous = signal.signal(signal.SIGTERM, _on_sigterm)
    except ValueError:  # not the main thread: leave signals alone
        previous = None
    try:
        return args.func(args)
    except MemoryError as error:
        detail = str(error) or "an allocation failed"
        print(
            f"zse: error: not enough memory: {detail}; try --crop, --bin, a smaller --patch-size "
            "or fewer --stats",
            file=sys.stderr,
        )
        return 2
    except (ValueError, TypeError, OSError, CheckpointError) as error:
        print(f"zse: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("zse: interrupted; no partial outputs were left", file=sys.stderr)
        return 130
    except Terminated:
        print("zse: terminated; no partial outputs were left", file=sys.stderr)
        return 143
    except Exception as error:  # noqa: BLE001 - the last line of defence reports the bug
        import traceback

        traceback.print_exc(file=sys.stderr)
        print(
            f"zse: internal error: {type(error).__name__}: {error}\n"
            f"This is a bug in zse {__version__}; please report it with the command line above.",
            file=sys.stderr,
        )
        return 1
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


if __name__ == "__main__":
    sys.exit(main())
