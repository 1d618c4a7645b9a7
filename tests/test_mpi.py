"""MPI scale-out: results bit-identical for any ranks x threads, errors reach every rank.

The multi-rank runs start ``mpiexec -n K python tests/mpi_worker.py`` (needs mpi4py and an MPI
launcher: ``pip install ".[mpi]"``); they are skipped, not failed, without them. The reference
is the ordinary single-process path in this process, computed from the same worker functions.
"""

from __future__ import annotations

import importlib.util
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import zse
from zse._mpi import RankError, Team, team_of

WORKER = Path(__file__).with_name("mpi_worker.py")
HAVE_MPI = importlib.util.find_spec("mpi4py") is not None and shutil.which("mpiexec") is not None
needs_mpi = pytest.mark.skipif(
    not HAVE_MPI, reason="needs mpi4py and mpiexec (pip install '.[mpi]')"
)


def mpiexec(n_ranks: int, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    command = ["mpiexec", "-n", str(n_ranks), sys.executable, str(WORKER), *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def reference():
    """What one process computes with comm=None (the worker's own functions)."""
    mpi_worker = _worker_module()
    image = mpi_worker.scene()
    out = {}
    for name, model in mpi_worker.models(None, 1).items():
        merged = zse.reconstruct(image, model, stats=("mean", "var"), n_threads=1)
        out[f"{name}_W"], out[f"{name}_F"] = model.W_, np.asarray(model.free_energies_)
        out[f"{name}_mean"], out[f"{name}_var"] = merged["mean"], merged["var"]
        if name == "sssc":
            out["sssc_K"] = model.K_
    volume = np.stack([image[:24, :24] + z for z in range(12)])
    merged = zse.reconstruct(
        volume,
        mpi_worker.models(None, 1)["pmm"],
        stats=("mean", "median"),
        patch_size=4,
        n_threads=1,
    )
    out["volume_mean"], out["volume_median"] = merged["mean"], merged["median"]
    return out


@needs_mpi
@pytest.mark.parametrize(("n_ranks", "n_threads"), [(2, 1), (2, 2), (3, 1)])
def test_ranks_and_threads_give_identical_results(reference, tmp_path, n_ranks, n_threads):
    path = tmp_path / "ranks.npz"
    run = mpiexec(n_ranks, "results", str(path), str(n_threads))
    assert run.returncode == 0, run.stdout + run.stderr
    with np.load(path) as got:
        assert sorted(got.files) == sorted(reference)
        for key, expected in reference.items():
            # Bit for bit: W_, free energies, state sets and every merged image.
            np.testing.assert_array_equal(got[key], expected, err_msg=key)


@needs_mpi
def test_an_error_on_one_rank_reaches_every_rank_and_ends_the_job():
    run = mpiexec(2, "fail", timeout=120)  # a hang would hit the timeout and fail the test
    # The ranks' lines may interleave in the launcher's output: match them anywhere.
    reports = re.findall(
        r"rank (\d) RankError: rank 1 failed: FloatingPointError: injected failure", run.stdout
    )
    assert sorted(reports) == ["0", "1"], run.stdout + run.stderr
    assert run.returncode != 0


@needs_mpi
def test_a_cancel_raised_on_one_rank_only_ends_the_fit_on_every_rank():
    """reconstruct(progress=) under MPI: a callback that raises on rank 1 alone is a collective
    cancel, not a hang of rank 0 in the next epoch's collectives."""
    run = mpiexec(2, "cancel", timeout=120)
    reports = re.findall(
        r"rank (\d) RankError: rank 1 failed: RuntimeError: cancelled on this rank", run.stdout
    )
    assert sorted(reports) == ["0", "1"], run.stdout + run.stderr
    assert run.returncode != 0


class FakeComm:
    """Just enough of a communicator for the single-process checks of Team."""

    def __init__(self, rank=0, size=2, others=None):
        self.rank, self.size, self.others = rank, size, others or []
        self.calls = 0

    def Get_rank(self):
        return self.rank

    def Get_size(self):
        return self.size

    def py2f(self):
        return id(self)

    def allgather(self, value):
        self.calls += 1
        return [value, *self.others]


def test_team_of_none_or_one_rank_is_the_single_process_path():
    assert team_of(None) is None
    assert team_of(FakeComm(size=1)) is None
    with pytest.raises(TypeError, match="mpi4py communicator"):
        team_of(object())
    with pytest.raises(TypeError, match="mpi4py communicator"):
        zse.reconstruct(np.zeros((8, 8)), zse.Identity(), comm="COMM_WORLD")


def test_a_failed_team_stays_failed_without_communicating():
    comm = FakeComm(others=[(("ValueError", "bad tile"), None)])
    team = Team(comm)
    with pytest.raises(RankError, match="rank 1 failed: ValueError: bad tile") as caught:
        team.run(lambda: 1)
    assert caught.value.rank == 1 and caught.value.kind == "ValueError"
    calls = comm.calls
    with pytest.raises(RankError):
        team.check()  # nested work that left early must not wait in a collective
    assert comm.calls == calls


def test_team_run_gathers_results_in_rank_order():
    team = Team(FakeComm(others=[(None, "from rank 1")]))
    assert team.run(lambda: "from rank 0") == ["from rank 0", "from rank 1"]
    assert team.run(lambda: "mine", gather=False) == "mine"


def _worker_module():
    """tests/mpi_worker.py imported as a module (its scene and models)."""
    sys.path.insert(0, str(WORKER.parent))
    try:
        import mpi_worker
    finally:
        sys.path.pop(0)
    return mpi_worker


@needs_mpi
def test_command_line_under_mpirun_spreads_files_and_shares_one(tmp_path):
    import tifffile

    from zse.cli import main

    mpi_worker = _worker_module()
    image = mpi_worker.scene().astype(np.uint16)
    for name in ("a", "b", "c"):
        tifffile.imwrite(tmp_path / f"{name}.tif", image + ord(name) - ord("a"))
    options = [
        "--model",
        "sssc",
        "--H",
        "6",
        "--n-states",
        "6",
        "--n-parents",
        "3",
        "--max-iter",
        "2",
        "-q",
    ]
    files = [str(tmp_path / f"{n}.tif") for n in ("a", "b", "c")]
    assert main(["denoise", *files, "-o", str(tmp_path / "one"), *options]) == 0
    zse_cli = [sys.executable, "-m", "zse", "denoise"]
    # Three files on two ranks: whole files per rank. One file: both ranks work on it.
    spread = subprocess.run(
        ["mpiexec", "-n", "2", *zse_cli, *files, "-o", str(tmp_path / "spread"), *options],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert spread.returncode == 0, spread.stderr
    shared = subprocess.run(
        ["mpiexec", "-n", "2", *zse_cli, files[0], "-o", str(tmp_path / "shared"), *options],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert shared.returncode == 0, shared.stderr
    for folder, names in (("spread", "abc"), ("shared", "a")):
        for name in names:
            for stat in ("mean", "var"):
                np.testing.assert_array_equal(
                    tifffile.imread(tmp_path / folder / f"{name}_{stat}.tif"),
                    tifffile.imread(tmp_path / "one" / f"{name}_{stat}.tif"),
                )
    import json

    assert json.loads((tmp_path / "shared" / "a.zse.json").read_text())["n_ranks"] == 2


@needs_mpi
def test_model_file_under_mpirun_matches_one_process(tmp_path):
    """--model-file under mpirun: both ranks apply the file's model to one input (no fit)."""
    import tifffile

    from zse.cli import main

    mpi_worker = _worker_module()
    tifffile.imwrite(tmp_path / "a.tif", mpi_worker.scene().astype(np.uint16))
    model = tmp_path / "m.zse"
    fit = ["fit", str(tmp_path / "a.tif"), "-o", str(model), "--model", "gpmm", "-q"]
    assert main([*fit, "--n-components", "6", "--max-iter", "3"]) == 0
    denoise = [str(tmp_path / "a.tif"), "--model-file", str(model), "-q"]
    assert main(["denoise", *denoise, "-o", str(tmp_path / "one")]) == 0
    shared = subprocess.run(
        ["mpiexec", "-n", "2", sys.executable, "-m", "zse", "denoise", *denoise]
        + ["-o", str(tmp_path / "two")],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert shared.returncode == 0, shared.stderr
    for stat in ("mean", "var"):
        np.testing.assert_array_equal(
            tifffile.imread(tmp_path / "two" / f"a_{stat}.tif"),
            tifffile.imread(tmp_path / "one" / f"a_{stat}.tif"),
        )
