"""Run under ``mpiexec -n K`` by tests/test_mpi.py (not collected by pytest itself).

python mpi_worker.py results OUT.npz N_THREADS   fit every model and reconstruct on all ranks;
                                                 rank 0 writes what it learned and merged
python mpi_worker.py fail                        rank 1's E-step raises; every rank must see
                                                 a RankError naming it (and exit 3)
"""

from __future__ import annotations

import sys

import numpy as np
from mpi4py import MPI

import zse
from zse import _core


def scene() -> np.ndarray:
    """A 96 x 96 count image: 91^2 = 8281 patches of 6 x 6, several chunks and bands each."""
    noisy, _ = zse.synthetic_tem((96, 96), dose=20.0, seed=3)
    return np.asarray(noisy, dtype=np.float64)


def models(comm, n_threads):
    common = dict(random_state=7, n_threads=n_threads, comm=comm)
    return {
        "sssc": zse.SSSC(
            H=8, n_states=8, n_parents=4, max_iter=3, n_warm_sweeps=2, n_estimate_sweeps=2, **common
        ),
        # The nonlocal estimate: every rank's groups reach into other ranks' bands.
        "sssc_nonlocal": zse.SSSC(
            H=8,
            n_states=8,
            n_parents=4,
            max_iter=2,
            n_warm_sweeps=2,
            n_estimate_sweeps=2,
            group_size=4,
            group_window=3,
            **common,
        ),
        "pmm": zse.PMM(n_components=8, max_iter=4, **common),
        "gpmm": zse.GPMM(n_components=8, max_iter=4, class_alpha=True, **common),
    }


def results(comm, path: str, n_threads: int) -> None:
    image = scene()
    out = {}
    for name, model in models(comm, n_threads).items():
        merged = zse.reconstruct(
            image, model, stats=("mean", "var"), n_threads=n_threads, comm=comm
        )
        out[f"{name}_W"] = model.W_
        out[f"{name}_F"] = np.asarray(model.free_energies_)
        if name == "sssc":
            out["sssc_K"] = model.K_
        if comm.Get_rank() == 0:
            out[f"{name}_mean"], out[f"{name}_var"] = merged["mean"], merged["var"]
        elif merged is not None:
            raise AssertionError("ranks other than 0 must get None")
    volume = np.stack([scene()[:24, :24] + z for z in range(12)])  # a 12 x 24 x 24 volume
    merged = zse.reconstruct(
        volume,
        models(comm, n_threads)["pmm"],
        stats=("mean", "median"),
        patch_size=4,
        n_threads=n_threads,
        comm=comm,
    )
    if comm.Get_rank() == 0:
        out["volume_mean"], out["volume_median"] = merged["mean"], merged["median"]
        np.savez(path, **out)


def fail(comm) -> None:
    if comm.Get_rank() == 1:

        def broken(*args, **kwargs):
            raise FloatingPointError("injected failure on this rank")

        _core.sssc_estep = broken
    try:
        zse.SSSC(H=4, n_states=4, n_parents=2, max_iter=2, random_state=0, comm=comm).fit(
            zse.extract_patches(scene(), 6)
        )
    except zse.RankError as error:
        print(f"rank {comm.Get_rank()} RankError: {error}", flush=True)
        sys.exit(3)
    print(f"rank {comm.Get_rank()} finished without an error", flush=True)


def cancel(comm) -> None:
    """A progress callback that cancels on rank 1 only, after the first epoch."""

    def progress(phase, done, total):
        if comm.Get_rank() == 1 and phase == "fit" and done == 1:
            raise RuntimeError("cancelled on this rank")

    model = zse.SSSC(H=4, n_states=4, n_parents=2, max_iter=3, random_state=0)
    try:
        zse.reconstruct(scene(), model, stats="mean", n_threads=1, comm=comm, progress=progress)
    except zse.RankError as error:
        print(f"rank {comm.Get_rank()} RankError: {error}", flush=True)
        sys.exit(3)
    print(f"rank {comm.Get_rank()} finished without an error", flush=True)


if __name__ == "__main__":
    world = MPI.COMM_WORLD
    if sys.argv[1] == "results":
        results(world, sys.argv[2], int(sys.argv[3]))
    elif sys.argv[1] == "fail":
        fail(world)
    elif sys.argv[1] == "cancel":
        cancel(world)
