"""Error types shared by the library and the command line."""

from __future__ import annotations


class OptionalDependencyError(ImportError):
    """An optional dependency (an extra such as ``zse[mpi]``) is needed but not installed.

    A problem of the user's environment, not a bug: the command line reports it as
    ``zse: error: ...`` with exit code 2, naming what to install.
    """
