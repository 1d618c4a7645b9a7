"""The ``zse`` command line: ``zse denoise``, ``zse demo`` and ``zse info``."""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np

from . import __version__, io
from ._validation import as_image
from .models import DEFAULT_MODEL, MODELS, make_model
from .reconstruct import DEFAULT_PATCH_SIZE, reconstruct


# The demo should finish in well under a minute on a laptop; the model's own default is longer.
DEMO_MAX_ITER = 30


class UsageError(ValueError):
    """A command-line value that cannot be used."""


def parse_patch_size(text: str) -> tuple[int, int]:
    parts = text.lower().replace("*", "x").split("x")
    try:
        sizes = [int(p) for p in parts]
    except ValueError:
        raise UsageError(f"--patch-size must look like 6 or 6x8, got {text!r}") from None
    if len(sizes) == 1:
        sizes = sizes * 2
    if len(sizes) != 2 or min(sizes) < 1:
        raise UsageError(f"--patch-size must look like 6 or 6x8 with sizes >= 1, got {text!r}")
    return sizes[0], sizes[1]


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


def _output_paths(outdir: Path, stats) -> list[Path]:
    names = ["input.png"]
    for stat in stats:
        names += [f"{stat}.tif", f"{stat}.png"]
    names.append("run.json")
    return [outdir / n for n in names]


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
) -> dict:
    """Shared body of ``denoise`` and ``demo``: fit, merge, write outputs and run.json."""
    timings = record.setdefault("timings_s", {})
    model_params = model_params or {}
    outdir = io.ensure_output_dir(outdir)
    paths = _output_paths(outdir, stats)
    existing = [str(p) for p in paths if p.exists()]
    if existing and not overwrite:
        raise FileExistsError(
            "outputs exist already: " + ", ".join(existing) + "; pass --overwrite to replace them"
        )
    model = make_model(
        model_name, options=model_params, random_state=seed, n_threads=n_threads, verbose=verbose
    )
    t = time.perf_counter()
    results = reconstruct(
        image, model, stats=stats, patch_size=patch_size, n_threads=n_threads, verbose=verbose
    )
    timings["reconstruct"] = round(time.perf_counter() - t, 4)

    t = time.perf_counter()
    io.write_preview_png(outdir / "input.png", image, overwrite=overwrite)
    written = [str(outdir / "input.png")]
    for stat, array in results.items():
        written.append(str(io.write_tiff(outdir / f"{stat}.tif", array, overwrite=overwrite)))
        written.append(str(io.write_preview_png(outdir / f"{stat}.png", array, overwrite=overwrite)))
    timings["write"] = round(time.perf_counter() - t, 4)
    record.update(
        {
            "model": _model_report(model),
            "patch_size": list(patch_size),
            "stats": list(stats),
            "seed": seed,
            "n_threads": n_threads,
            "outputs": written + [str(outdir / "run.json")],
        }
    )
    (outdir / "run.json").write_text(json.dumps(record, indent=2) + "\n")
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
    )
    if not args.quiet:
        print(f"[zse] wrote {', '.join(f'{s}.tif' for s in args.stats)} to {args.output}")
    return 0


def cmd_demo(args) -> int:
    from .data import psnr, synthetic_tem

    outdir = io.ensure_output_dir(args.output)
    for name in ("noisy.tif", "clean.tif"):
        if (outdir / name).exists() and not args.overwrite:
            raise FileExistsError(f"{outdir / name} exists; pass --overwrite to replace it")
    noisy, clean = synthetic_tem(seed=args.seed if args.seed is not None else 0)
    io.write_tiff(outdir / "noisy.tif", noisy, overwrite=args.overwrite)
    io.write_tiff(outdir / "clean.tif", clean, overwrite=args.overwrite)
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
    results = run_denoise(
        noisy,
        outdir,
        model_name=args.model,
        patch_size=args.patch_size,
        stats=args.stats,
        seed=args.seed,
        n_threads=args.n_threads,
        overwrite=args.overwrite,
        verbose=True,
        record=record,
        model_params=_model_params(args),
    )
    quality = {"psnr_noisy_db": round(psnr(clean, noisy), 3)}
    if "mean" in results:
        quality["psnr_mean_db"] = round(psnr(clean, results["mean"]), 3)
    record["quality"] = quality
    (outdir / "run.json").write_text(json.dumps(record, indent=2) + "\n")
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


def _model_params(args) -> dict:
    """Model options given on the command line (an option the model lacks is an error)."""
    names = ("H", "n_states", "updates", "n_components", "max_iter", "gain", "offset")
    return {name: getattr(args, name) for name in names if getattr(args, name, None) is not None}


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
    p.add_argument("--patch-size", type=parse_patch_size, default=(DEFAULT_PATCH_SIZE, DEFAULT_PATCH_SIZE), help="patch size, e.g. 6 or 6x8 (default: 6)")
    p.add_argument("--stats", type=_stats, default=("mean", "var"), help="comma-separated outputs: mean,median,var,pvar,count (default: mean,var)")
    p.add_argument("--H", type=int, default=None, help="latent units H (sssc; default 64)")
    p.add_argument("--n-states", type=int, default=None, help="states kept per patch S (sssc; default 32)")
    p.add_argument("--updates", choices=["exact", "reference"], default=None, help="M-step variant (sssc)")
    p.add_argument("--n-components", type=int, default=None, help="mixture components C (pmm, gpmm)")
    p.add_argument("--max-iter", type=int, default=None, help="EM epochs (default: the model's)")
    p.add_argument("--gain", type=float, default=None, help="counts per grey level (pmm, gpmm; default 1)")
    p.add_argument("--offset", type=float, default=None, help="detector dark level in grey values (pmm, gpmm; default 0)")
    p.add_argument("--seed", type=int, default=0, help="random seed of the model (default: 0)")
    p.add_argument("--n-threads", type=int, default=None, help="threads (default: all available)")
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


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except (ValueError, TypeError, FileNotFoundError, FileExistsError) as error:
        print(f"zse: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("zse: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
