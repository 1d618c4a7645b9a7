"""zse against the denoisers people use today, on one declared list of cases: numbers for RESULTS.md.

    pip install -r bench/requirements.txt        # peers and metrics, benchmark environment only
    python bench/compare.py                      # full table (about 40 min on 2 cores), resumable
    python bench/compare.py --quick              # a few small cases, about a minute (CI runs this)

The zero-shot peers of bench/peers.py (ZS-N2N, Noise2Void, NLM calibrated by Noise2Self, bmnd,
BM4D) need bench/requirements-peers.txt; without their packages they are skipped and the report
says so.

Every (case, method) result is appended to the CSV as soon as it is measured, so an interrupted
run resumes where it stopped (``--fresh`` starts over; a row whose settings differ from the
current ones is recomputed). At the end the markdown report is written from the whole CSV:

    full:   bench/results/compare.csv        bench/RESULTS.md
    quick:  bench/results/compare_quick.csv  bench/results/RESULTS_quick.md

Outputs of the cases without ground truth (and of the real pair) are kept as float32 .npy files
under bench/results/outputs/ for bench/gallery.py; bench/results/ is not committed except for
compare.csv, so no picture of a restricted image leaves the machine.

Cases, noise and settings are declared below (CASES, zse_methods, PEERS); noise comes from
numpy.random.default_rng(0), a fresh generator per case.
"""

from __future__ import annotations

import argparse
import csv
import fnmatch
import re
import sys
import time
from pathlib import Path

import numpy as np

from _common import RESULTS, psnr, ssim
from compare_cases import (  # noqa: F401  (bench/gallery.py and others import them from here)
    CRYOET,
    Case,
    full_cases,
    output_path,
    phantom_volume,
    quick_cases,
    volume_case,
)
from compare_methods import Method, peer_methods, run_method, zse_methods
from compare_report import render_report

REPORT = Path(__file__).resolve().parent / "RESULTS.md"
FIELDS = [
    "group",
    "case",
    "method",
    "psnr",
    "ssim",
    "blur",
    "flat_noise",
    "seconds",
    "peak_mib",
    "settings",
    "learned_sigma",  # zse SSSC: sqrt(sigma2_) (Poisson cases: in the Anscombe domain, true 1)
    "var_spearman",  # Spearman(var image, clean |grad|^2 over the patch) where both exist
    "model_chosen",  # zse (defaults, model auto): the model the count test chose
]


# --------------------------------------------------------------------------- metrics


def _central_section(image):
    """A volume's flat-region and sharpness figures are taken on its central section."""
    image = np.asarray(image)
    return image[image.shape[0] // 2] if image.ndim == 3 else image


def flat_tiles(noisy, tile=16, fraction=0.1):
    """The fraction of tiles with the least structure, judged on a smoothed copy of the noisy image."""
    from scipy.ndimage import gaussian_filter

    noisy = _central_section(noisy)
    smooth = gaussian_filter(noisy, 2.0)
    rows, cols = noisy.shape[0] // tile, noisy.shape[1] // tile
    scores = (
        smooth[: rows * tile, : cols * tile]
        .reshape(rows, tile, cols, tile)
        .var(axis=(1, 3))
        .ravel()
    )
    order = np.argsort(scores, kind="stable")[: max(1, int(round(fraction * scores.size)))]
    return [(int(k // cols) * tile, int(k % cols) * tile) for k in order], tile


def flat_noise(image, tiles) -> float:
    """RMS over the flat tiles of the residual standard deviation after removing a fitted plane."""
    positions, tile = tiles
    image = _central_section(image)
    r, c = np.mgrid[0:tile, 0:tile]
    design = np.column_stack([np.ones(tile * tile), r.ravel(), c.ravel()])
    variances = []
    for top, left in positions:
        block = image[top : top + tile, left : left + tile].ravel()
        coef, *_ = np.linalg.lstsq(design, block, rcond=None)
        variances.append(np.var(block - design @ coef))
    return float(np.sqrt(np.mean(variances)))


def blur(image) -> float:
    from skimage.measure import blur_effect

    return float(blur_effect(image))


class PeakMemory:
    """Peak resident memory above the starting point, from the kernel's high-water mark.

    Writing 5 to /proc/self/clear_refs resets VmHWM to the current RSS (Linux >= 4.0), so
    native allocations of the C++ kernels count too. glibc's malloc_trim first hands memory freed
    by earlier methods back to the system, so that reusing it counts as well. None where /proc
    does not allow it.
    """

    def __enter__(self):
        self.start = None
        try:
            import ctypes

            ctypes.CDLL("libc.so.6").malloc_trim(0)
        except (OSError, AttributeError):
            pass
        try:
            Path("/proc/self/clear_refs").write_text("5")
            self.start = self._read("VmRSS")
        except OSError:
            pass
        return self

    def __exit__(self, *exc):
        self.peak_mib = None
        if self.start is not None:
            self.peak_mib = (self._read("VmHWM") - self.start) / 1024.0

    @staticmethod
    def _read(key) -> int:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
        raise OSError(key)


# --------------------------------------------------------------------------- runner


def read_rows(path: Path) -> list[dict]:
    if not path.exists():
        return []
    with path.open(newline="") as f:
        rows = list(csv.DictReader(f))
    return [{k: (r.get(k) or "") for k in FIELDS} for r in rows]  # older files lack new fields


def append_row(path: Path, row: dict) -> None:
    if path.exists():
        with path.open(newline="") as f:
            header = next(csv.reader(f), [])
        if header != FIELDS:  # a file of an older layout: rewrite it with the current fields
            rows = read_rows(path)
            path.unlink()
            for r in rows:
                append_row(path, r)
    new = not path.exists()
    with path.open("a", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=FIELDS)
        if new:
            writer.writeheader()
        writer.writerow(row)


def measure(case: Case, method: Method | None, noisy, clean, data_range, tiles):
    if method is None:  # the noisy input itself
        out, seconds, peak = {"mean": noisy}, 0.0, 0.0
    else:
        with PeakMemory() as memory:
            start = time.perf_counter()
            out = run_method(method, case, noisy)
            seconds = time.perf_counter() - start
        peak = memory.peak_mib
    learned_sigma = out.pop("_learned_sigma", None)
    chosen = out.pop("_chosen", "")
    estimate = out["mean"]
    spearman = ""
    if clean is not None and "var" in out:
        spearman = f"{var_spearman(out['var'], clean):.3f}"
    row = {
        "group": case.group,
        "case": case.name,
        "method": method.name if method else "noisy",
        "psnr": f"{psnr(clean, estimate, data_range):.3f}" if clean is not None else "",
        "ssim": f"{ssim(clean, estimate, data_range):.4f}" if clean is not None else "",
        "blur": f"{blur(estimate):.4f}",
        "flat_noise": f"{flat_noise(estimate, tiles):.4g}",
        "seconds": f"{seconds:.2f}",
        "peak_mib": "" if peak is None else f"{peak:.0f}",
        "settings": method.settings if method else "",
        "learned_sigma": "" if learned_sigma is None else f"{learned_sigma:.4f}",
        "var_spearman": spearman,
        "model_chosen": chosen,
    }
    return row, out


VAR_PATCH = 8  # the zse models' patch size in the full table


def var_spearman(var, clean, patch: int = VAR_PATCH) -> float:
    """Spearman rank correlation of a variance image with the clean image's local edge energy
    (|gradient|^2 averaged over the patch; over a cube in a volume): does the variance trace
    structure, not noise?"""
    from scipy.ndimage import uniform_filter
    from scipy.stats import spearmanr

    gradients = np.gradient(np.asarray(clean, dtype=np.float64))
    energy = uniform_filter(sum(g**2 for g in gradients), size=patch)
    return float(spearmanr(np.asarray(var).ravel(), energy.ravel()).statistic)


def run(cases, methods, csv_path: Path, verify: bool, rerun: bool = False) -> int:
    """Measure every missing (case, method) row, or with ``verify`` re-measure and compare PSNRs."""
    import bm3d  # noqa: F401  (imported before timing: no import cost in the first peer's row)
    import skimage.measure  # noqa: F401
    import skimage.restoration  # noqa: F401

    stored = {(r["case"], r["method"]): r for r in read_rows(csv_path)}

    def wanted(case, method):
        if method is not None and not method.applies(case):
            return False
        name, settings = (method.name, method.settings) if method else ("noisy", "")
        if verify and method is not None and not method.reproducible:
            return False
        if verify:  # results do not depend on the thread count: verify across thread counts too
            same = lambda a, b: re.sub(r", \d+ threads$", "", a) == re.sub(r", \d+ threads$", "", b)  # noqa: E731
            return (case.name, name) in stored and same(
                stored[(case.name, name)]["settings"], settings
            )
        row = stored.get((case.name, name))
        outputs_missing = (
            case.keep_outputs
            and method is not None
            and not output_path(case, name, "mean").exists()
        )
        return rerun or row is None or row["settings"] != settings or outputs_missing

    todo = sum(wanted(c, m) for c in cases for m in [None, *methods])
    verb = "to verify against" if verify else "to run ->"
    print(
        f"compare: {len(cases)} cases x {len(methods) + 1} methods, {todo} rows {verb} {csv_path}",
        file=sys.stderr,
    )
    started, finished, worst = time.perf_counter(), 0, 0.0
    for case in cases:
        noisy = None
        for method in [None, *methods]:
            if not wanted(case, method):
                continue
            name = method.name if method else "noisy"
            if noisy is None:
                noisy, clean, data_range = case.make()
                tiles = flat_tiles(noisy)
                if case.keep_outputs and not verify:
                    output_path(case, "noisy", "mean").parent.mkdir(parents=True, exist_ok=True)
                    np.save(output_path(case, "noisy", "mean"), noisy.astype(np.float32))
            row, out = measure(case, method, noisy, clean, data_range, tiles)
            finished += 1
            elapsed = time.perf_counter() - started
            if verify:
                # PSNR where there is a reference, else the blur metric: both are deterministic.
                key = "psnr" if row["psnr"] else "blur"
                diff = abs(float(row[key]) - float(stored[(case.name, name)][key]))
                worst = max(worst, diff if key == "psnr" else 0.0)
                print(
                    f"[{finished:3d}/{todo}] {case.name:22s} {name:20s} {key} {row[key]} vs stored "
                    f"{stored[(case.name, name)][key]}  (diff {diff:.4f})",
                    file=sys.stderr,
                    flush=True,
                )
                if (key == "psnr" and diff > 0.01) or (key == "blur" and diff > 1e-3):
                    print("compare: not reproduced", file=sys.stderr)
                    return 1
                continue
            if case.keep_outputs and method is not None:
                for stat, image in out.items():
                    np.save(output_path(case, name, stat), np.asarray(image, dtype=np.float32))
            if (case.name, name) in stored:  # a stale row: rewrite the file without it
                kept = [
                    r for r in read_rows(csv_path) if (r["case"], r["method"]) != (case.name, name)
                ]
                csv_path.unlink()
                for r in kept:
                    append_row(csv_path, r)
            append_row(csv_path, row)
            print(
                f"[{finished:3d}/{todo}] {case.name:22s} {name:20s} PSNR {row['psnr'] or '-':>7s}  "
                f"SSIM {row['ssim'] or '-':>6s}  blur {row['blur']}  {row['seconds']:>7s} s  "
                f"{row['peak_mib'] or '-':>5s} MiB  (elapsed {elapsed / 60:5.1f} min)",
                file=sys.stderr,
                flush=True,
            )
    if verify:
        print(
            f"compare: {finished} rows reproduced (largest PSNR difference {worst:.4f} dB)",
            file=sys.stderr,
        )
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--quick", action="store_true", help="four small cases and small models (about a minute)"
    )
    parser.add_argument("--fresh", action="store_true", help="ignore the rows already in the CSV")
    parser.add_argument(
        "--cases", default="*", help="globs on case names, e.g. 'house*,boat*' (default: all)"
    )
    parser.add_argument(
        "--methods", default="*", help="glob on method names, e.g. 'zse*' (default: all)"
    )
    parser.add_argument(
        "--n-threads", type=int, default=None, help="zse threads (default: all cores)"
    )
    parser.add_argument(
        "--report-only", action="store_true", help="write the report from the CSV, run nothing"
    )
    parser.add_argument(
        "--rerun",
        action="store_true",
        help="re-measure the selected rows even when the CSV has them (replacing them)",
    )
    parser.add_argument(
        "--verify",
        action="store_true",
        help="re-run the selected rows and check the stored PSNRs to 0.01 dB (writes nothing)",
    )
    args = parser.parse_args()

    from zse._threads import effective_n_threads

    n_threads = effective_n_threads(args.n_threads)
    csv_path = RESULTS / ("compare_quick.csv" if args.quick else "compare.csv")
    report_path = RESULTS / "RESULTS_quick.md" if args.quick else REPORT
    RESULTS.mkdir(parents=True, exist_ok=True)
    if args.fresh and csv_path.exists() and not args.verify:
        csv_path.unlink()
    all_cases = quick_cases() if args.quick else full_cases()
    peer_list, skipped = peer_methods(args.quick, n_threads)
    if skipped:
        print(
            f"compare: skipped (packages missing, see bench/requirements-peers.txt): "
            f"{', '.join(skipped)}",
            file=sys.stderr,
        )
    methods = zse_methods(args.quick, n_threads) + peer_list
    if not args.report_only:
        cases = [
            c for c in all_cases if any(fnmatch.fnmatch(c.name, g) for g in args.cases.split(","))
        ]
        chosen = [m for m in methods if fnmatch.fnmatch(m.name, args.methods)]
        status = run(cases, chosen, csv_path, args.verify, args.rerun)
        if args.verify or status:
            return status

    declared = {c.name for c in all_cases}
    rows = [
        r for r in read_rows(csv_path) if r["case"] in declared
    ]  # rows of retired cases are ignored
    # A peer skipped here (its packages missing) keeps the rows an earlier run measured, shown
    # with the settings they were measured with.
    for name in skipped:
        stored = [r for r in rows if r["method"] == name]
        if stored:
            methods.append(Method(name, None, settings=stored[-1]["settings"]))
    if not rows:
        print("compare: no rows to report", file=sys.stderr)
        return 1
    report_path.write_text(render_report(rows, all_cases, methods, args.quick, n_threads, skipped))
    print(f"compare: wrote {report_path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
