"""Scale-out over MPI ranks (mpi4py, optional): checked collectives and the rank shares.

Every collective zse performs goes through a :class:`Team`: a rank first does its own part of the
work, then all ranks exchange either their results or the error they met. If any rank failed,
every rank raises :class:`RankError` with the failing rank's message, so an error on one rank
ends the job everywhere instead of leaving the others waiting in a collective. A team that has
failed stays failed: later collectives raise at once without communicating, which keeps ranks
that left nested work at different points from waiting for each other.

Results are bit-identical for any number of ranks because statistics are never summed per rank:
each rank returns one partial per fixed chunk of patches (chunks fixed by the data, ALGORITHM.md
§7.2), the partials of all ranks are concatenated in chunk order and summed in that order.

mpi4py is imported only by :func:`world` (the command line under ``mpirun``); the estimators take
any mpi4py communicator the caller made.
"""

from __future__ import annotations

import os

import numpy as np

from ._errors import OptionalDependencyError

# Environment variables set by the common launchers (MPICH/Hydra, Open MPI, Intel MPI, SLURM's
# srun with PMI). Their presence is how the command line knows it runs under mpirun.
_LAUNCHER_VARIABLES = (
    "PMI_RANK",
    "PMI_SIZE",
    "OMPI_COMM_WORLD_SIZE",
    "PMIX_RANK",
    "MPI_LOCALNRANKS",
)


class RankError(RuntimeError):
    """Raised on every rank when the work of one (or more) ranks failed.

    Attributes
    ----------
    rank : int
        The first rank that failed.
    kind : str
        The name of the exception type raised there.
    """

    def __init__(self, rank: int, kind: str, message: str, n_failed: int = 1):
        self.rank, self.kind = rank, kind
        others = f" (and {n_failed - 1} other rank(s))" if n_failed > 1 else ""
        super().__init__(f"rank {rank}{others} failed: {kind}: {message}")


def launched_by_mpi() -> bool:
    """True when this process was started by an MPI launcher (mpirun, mpiexec, srun)."""
    return any(name in os.environ for name in _LAUNCHER_VARIABLES)


def world():
    """``MPI.COMM_WORLD`` (imports mpi4py; a clear error when it is not installed)."""
    try:
        from mpi4py import MPI
    except ImportError as error:
        msg = (
            "running on several MPI ranks needs mpi4py: pip install 'zse[mpi]' (brings mpi4py "
            "and, on Linux, the MPICH wheel) or pip install mpi4py against the cluster's MPI"
        )
        raise OptionalDependencyError(msg) from error
    return MPI.COMM_WORLD


# One Team per communicator handle, so nested work (a fit inside a reconstruction) shares the
# failed state.
_teams: dict = {}


class Team:
    """The ranks of one communicator, with checked collectives (see the module docstring)."""

    def __init__(self, comm):
        self.comm = comm
        self.rank = int(comm.Get_rank())
        self.size = int(comm.Get_size())
        self.failure: RankError | None = None

    @property
    def share(self) -> tuple[int, int]:
        """(part, n_parts) of this rank for the kernels' ``share`` arguments."""
        return self.rank, self.size

    @property
    def is_root(self) -> bool:
        return self.rank == 0

    def run(self, work, *, gather: bool = True):
        """Runs ``work()`` on this rank, then checks all ranks succeeded.

        Returns the list of every rank's result (rank order) with ``gather``, else this rank's.
        Raises :class:`RankError` on every rank when any rank's work raised an Exception.
        """
        if self.failure is not None:
            raise self.failure
        value, error = None, None
        try:
            value = work()
        except Exception as caught:  # noqa: BLE001 - every error must reach the other ranks
            error = (type(caught).__name__, str(caught))
            local = caught
        outcomes = self.comm.allgather((error, value if gather else None))
        failed = [(rank, err) for rank, (err, _) in enumerate(outcomes) if err is not None]
        if failed:
            rank, (kind, message) = failed[0]
            self.failure = RankError(rank, kind, message, len(failed))
            if error is not None:
                raise self.failure from local
            raise self.failure
        return [v for _, v in outcomes] if gather else value

    def check(self) -> None:
        """A collective that only checks no rank has failed so far."""
        self.run(lambda: None, gather=False)

    def sum_chunk_partials(self, work, sum_in_order):
        """Runs ``work()`` (this rank's per-chunk partials, in chunk order), concatenates every
        rank's partials in rank (= chunk) order and sums them with ``sum_in_order`` (the
        kernels' own in-order sum), identically on every rank."""
        parts = self.run(work)
        return sum_in_order([p for rank_parts in parts for p in rank_parts])

    def allgather_rows(self, array: np.ndarray, begin: int, end: int) -> np.ndarray:
        """The full array, where each rank contributes its rows [begin, end) (rank order)."""
        pieces = self.run(lambda: np.ascontiguousarray(array[begin:end]))
        return np.ascontiguousarray(np.concatenate(pieces, axis=0))

    def gather_slices(self, local: np.ndarray, axis: int):
        """Concatenates every rank's float64 block along ``axis`` on rank 0 (None elsewhere).

        Blocks are contiguous shares of the slices in rank order (the streamed estimate's
        output). Uses a buffer-based Gatherv: no pickling of large images.
        """
        from mpi4py import MPI

        local = np.ascontiguousarray(np.moveaxis(local, axis, 0), dtype=np.float64)
        rows = self.run(lambda: local.shape[0])
        counts = [r * int(np.prod(local.shape[1:], dtype=np.int64)) for r in rows]
        full = None
        if self.is_root:
            full = np.empty((sum(rows), *local.shape[1:]), dtype=np.float64)
            self.comm.Gatherv(local, [full, counts, None, MPI.DOUBLE], root=0)
            return np.moveaxis(full, 0, axis)
        self.comm.Gatherv(local, None, root=0)
        return None


def team_of(comm) -> Team | None:
    """The Team of an mpi4py communicator; None for ``None`` or a communicator of one rank
    (one rank runs the ordinary single-process path: the results are the same)."""
    if comm is None:
        return None
    if not all(
        callable(getattr(comm, name, None)) for name in ("Get_rank", "Get_size", "allgather")
    ):
        msg = f"comm must be an mpi4py communicator (e.g. MPI.COMM_WORLD) or None, got {comm!r}"
        raise TypeError(msg)
    if comm.Get_size() == 1:
        return None
    key = comm.py2f() if callable(getattr(comm, "py2f", None)) else id(comm)
    if key not in _teams:
        _teams[key] = Team(comm)
    return _teams[key]
