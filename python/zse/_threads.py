"""Resolve the user's ``n_threads`` into the thread count handed to the C++ kernels."""

from __future__ import annotations

import numbers
import os
import warnings

from . import _core

_warned_no_openmp = False


def available_cpus() -> int:
    """CPUs this process may run on (affinity-aware where the OS supports it)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def effective_n_threads(n_threads: int | None) -> int:
    """Resolve ``n_threads`` like scikit-learn does.

    ``None`` means the smaller of OpenMP's default (so ``OMP_NUM_THREADS`` is honoured) and the
    CPUs available to this process; a negative ``n`` means ``n_cpus + 1 + n`` (``-1`` = all);
    ``0`` is an error; more threads than available CPUs are capped to the CPU count with a
    ``RuntimeWarning``. Without OpenMP every request resolves to 1, with a one-time warning when
    more than one thread was asked for explicitly.
    """
    global _warned_no_openmp
    if n_threads is not None and (
        isinstance(n_threads, bool) or not isinstance(n_threads, numbers.Integral)
    ):
        msg = f"n_threads must be an int or None, got {type(n_threads).__name__}"
        raise TypeError(msg)
    n_cpus = available_cpus()
    if n_threads is None:
        resolved = min(_core.omp_max_threads(), n_cpus)
    elif n_threads == 0:
        msg = "n_threads=0 is not allowed; use None for the default or -1 for all CPUs"
        raise ValueError(msg)
    elif n_threads < 0:
        resolved = n_cpus + 1 + int(n_threads)
        if resolved < 1:
            msg = f"n_threads={n_threads} leaves no thread on a machine with {n_cpus} CPUs"
            raise ValueError(msg)
    else:
        resolved = int(n_threads)
        if resolved > n_cpus:
            # Threads beyond the CPUs only add overhead, and a huge request (10**6) makes the
            # OpenMP runtime fail to create threads and crash the interpreter.
            warnings.warn(
                f"n_threads={n_threads} exceeds the {n_cpus} CPU(s) available to this process; "
                f"using {n_cpus}",
                RuntimeWarning,
                stacklevel=3,
            )
            resolved = n_cpus
    if not _core.has_openmp:
        if resolved > 1 and n_threads is not None and not _warned_no_openmp:
            warnings.warn(
                "zse was built without OpenMP; running on 1 thread", RuntimeWarning, stacklevel=3
            )
            _warned_no_openmp = True
        return 1
    return max(1, resolved)
