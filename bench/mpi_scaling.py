"""Strong scaling over MPI ranks against OpenMP threads, measured side by side in one run.

    python bench/mpi_scaling.py                 # training (setting b) and a 2048^2 reconstruction
    python bench/mpi_scaling.py --quick         # small sizes (CI smoke: the harness runs)
    python bench/mpi_scaling.py --part train    # one part only

Three configurations per part, each a fresh process group started here one after the other:
1 rank x 1 thread, 2 ranks x 1 thread (mpiexec -n 2), 1 rank x 2 threads. Parts:

- ``train``: SSSC training epochs on every 6x6 patch of a 1024x1024 image (bench_estep's setting
  b: H=64, S=32, 10 parents x 2 children, smooth random scene in [0, 255] plus sigma-25 noise);
  the figure is the median seconds per epoch of ``--epochs`` epochs.
- ``reconstruct``: ``zse.reconstruct`` of a 2048x2048 synthetic TEM scene at 20 e-/px with SSSC
  (``--fit-epochs`` epochs on the auto subset of 65 536 patches, then every patch estimated);
  the figure is the wall time of the whole call.

Every configuration must give the same learned W_ (train) and mean image (reconstruct) bit for
bit; the script checks it (a digest per run). Results go to bench/results/mpi_scaling.csv
and, as a table with ratios, to stdout (paste into bench/README.md).
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results"
CONFIGS = [(1, 1), (2, 1), (1, 2)]  # (ranks, threads)


def setting_b_image(size: int) -> np.ndarray:
    """bench_estep's setting-b scene: smooth random field in [0, 255] plus sigma-25 noise."""
    rng = np.random.default_rng(0)
    field = rng.normal(size=(size // 16 + 2, size // 16 + 2))
    y = np.linspace(0, field.shape[0] - 2, size)
    x = np.linspace(0, field.shape[1] - 2, size)
    y0, x0 = y.astype(int), x.astype(int)
    fy, fx = (y - y0)[:, None], (x - x0)[None, :]
    smooth = (
        (1 - fy) * (1 - fx) * field[y0][:, x0]
        + fy * (1 - fx) * field[y0 + 1][:, x0]
        + (1 - fy) * fx * field[y0][:, x0 + 1]
        + fy * fx * field[y0 + 1][:, x0 + 1]
    )
    smooth = (smooth - smooth.min()) / (smooth.max() - smooth.min()) * 255
    return smooth + rng.normal(0, 25, smooth.shape)


def digest(array: np.ndarray) -> str:
    return hashlib.blake2b(np.ascontiguousarray(array).tobytes(), digest_size=8).hexdigest()


def worker(part: str, size: int, epochs: int, threads: int) -> None:
    """One configuration (runs on every rank; rank 0 prints a JSON line)."""
    import zse

    comm = None
    if "PMI_RANK" in os.environ or "OMPI_COMM_WORLD_SIZE" in os.environ:
        from mpi4py import MPI

        comm = MPI.COMM_WORLD
    rank = 0 if comm is None else comm.Get_rank()
    ranks = 1 if comm is None else comm.Get_size()
    if part == "train":
        patches = zse.extract_patches(setting_b_image(size), 6)
        model = zse.SSSC(
            H=64,
            n_states=32,
            n_parents=10,
            n_children=2,
            max_iter=epochs,
            random_state=0,
            n_threads=threads,
            comm=comm,
        )
        t = time.perf_counter()
        model.fit(patches)
        total = time.perf_counter() - t
        figure = float(np.median(model.epoch_seconds_))
        check = digest(model.W_)
        n = len(patches)
    else:
        noisy, _ = zse.synthetic_tem((size, size), seed=0)
        model = zse.SSSC(max_iter=epochs, random_state=0, n_threads=threads)
        t = time.perf_counter()
        out = zse.reconstruct(noisy, model, n_threads=threads, comm=comm)
        total = figure = time.perf_counter() - t
        check = digest(out["mean"]) if rank == 0 else ""
        n = (size - 5) ** 2
    if rank == 0:
        print(
            json.dumps(
                {
                    "part": part,
                    "size": size,
                    "ranks": ranks,
                    "threads": threads,
                    "n_patches": n,
                    "epochs": epochs,
                    "seconds": round(figure, 3),
                    "total_seconds": round(total, 3),
                    "digest": check,
                }
            ),
            flush=True,
        )


def run_config(part, size, epochs, ranks, threads) -> dict:
    command = [
        sys.executable,
        __file__,
        "--worker",
        part,
        "--size",
        str(size),
        "--epochs",
        str(epochs),
        "--threads",
        str(threads),
    ]
    if ranks > 1:
        command = ["mpiexec", "-n", str(ranks), *command]
    env = dict(os.environ, OMP_NUM_THREADS=str(threads))
    done = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--part", choices=("train", "reconstruct", "both"), default="both")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--worker", choices=("train", "reconstruct"))
    parser.add_argument("--size", type=int)
    parser.add_argument("--epochs", type=int)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    if args.worker:
        worker(args.worker, args.size, args.epochs, args.threads)
        return
    parts = ["train", "reconstruct"] if args.part == "both" else [args.part]
    sizes = {"train": 128 if args.quick else 1024, "reconstruct": 128 if args.quick else 2048}
    epochs = {"train": 2 if args.quick else 4, "reconstruct": 2 if args.quick else 10}
    rows = []
    for part in parts:
        results = [run_config(part, sizes[part], epochs[part], r, t) for r, t in CONFIGS]
        if len({r["digest"] for r in results}) != 1:
            raise SystemExit(f"{part}: results differ between configurations: {results}")
        base = results[0]["seconds"]
        for r in results:
            r["speedup"] = round(base / r["seconds"], 3)
            r["machine"] = f"{platform.machine()} {os.cpu_count()} CPUs"
            rows.append(r)
        two_ranks, two_threads = results[1]["seconds"], results[2]["seconds"]
        print(
            f"| {part} ({sizes[part]}^2) | "
            + " | ".join(f"{r['seconds']:.2f} s" for r in results)
            + f" | {base / two_ranks:.2f}x | {two_ranks / two_threads:.2f} |"
        )
    if not args.quick:
        RESULTS.mkdir(parents=True, exist_ok=True)
        path = RESULTS / "mpi_scaling.csv"
        with open(path, "w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
