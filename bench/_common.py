"""Shared helpers of the benchmark scripts: test images, noise, metrics, peer methods.

Benchmarks may read ../shared/data (the package never does). Peers (bm3d, scikit-image) are
installed in the benchmark environment only: pip install bm3d scikit-image
"""

from __future__ import annotations

import csv
import os
import platform
import time
from pathlib import Path

import numpy as np

import zse

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("ZSE_SHARED_DATA", REPO.parent / "shared" / "data"))
RESULTS = REPO / "bench" / "results"


def load(relative: str) -> np.ndarray:
    return zse.io.read_image(SHARED_DATA / relative).astype(np.float64)


def psnr(reference, estimate, data_range) -> float:
    return zse.psnr(reference, estimate, data_range=data_range)


def ssim(reference, estimate, data_range) -> float:
    from skimage.metrics import structural_similarity

    return float(structural_similarity(reference, estimate, data_range=data_range))


def anscombe(x):
    return 2.0 * np.sqrt(x + 3.0 / 8.0)


def inverse_anscombe_unbiased(d):
    """Closed-form approximation of the exact unbiased inverse (Makitalo & Foi, IEEE TIP 2011)."""
    d = np.maximum(d, 1e-6)
    s = np.sqrt(1.5)
    return 0.25 * d**2 + 0.25 * s / d - 11.0 / 8.0 / d**2 + 5.0 / 8.0 * s / d**3 - 1.0 / 8.0


def anscombe_bm3d(counts):
    """The usual Poisson pipeline: Anscombe, BM3D with the stabilised sigma = 1, unbiased inverse."""
    import bm3d

    return inverse_anscombe_unbiased(bm3d.bm3d(anscombe(counts), sigma_psd=1.0))


def timed(fn, *args, **kwargs):
    t = time.perf_counter()
    out = fn(*args, **kwargs)
    return out, time.perf_counter() - t


def machine_line() -> str:
    from zse import _core

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (
        f"{cpu}, {os.cpu_count()} CPUs, {_core.compiler()}, OpenMP {'on' if _core.has_openmp else 'off'}, "
        f"zse {zse.__version__}, {time.strftime('%Y-%m-%d')}"
    )


def write_csv(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def print_markdown_table(
    rows: list[dict], keys: tuple[str, str], header: tuple[str, str], fmt
) -> None:
    """One row per (keys) combination, one column per method; a mean-PSNR row at the end.

    ``fmt(row)`` renders one cell; rows are dicts with the key fields, "method" and "psnr".
    """
    methods = list(dict.fromkeys(r["method"] for r in rows))
    combos = list(dict.fromkeys((r[keys[0]], r[keys[1]]) for r in rows))
    print(
        f"| {header[0]} | {header[1]} | "
        + " | ".join(f"{m} PSNR / SSIM / s" for m in methods)
        + " |"
    )
    print("|---|---|" + "---|" * len(methods))
    for a, b in combos:
        cells = [
            fmt(next(r for r in rows if r[keys[0]] == a and r[keys[1]] == b and r["method"] == m))
            for m in methods
        ]
        print(f"| {a} | {b:g} | " + " | ".join(cells) + " |")
    means = {m: float(np.mean([r["psnr"] for r in rows if r["method"] == m])) for m in methods}
    print("| **mean PSNR** | | " + " | ".join(f"**{means[m]:.2f}**" for m in methods) + " |")
