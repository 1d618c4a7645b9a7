"""The command line's errors and exit codes: 2 for errors of inputs, options, files or memory,
1 for anything else (a bug), 130/143 for an interrupt or termination."""

from __future__ import annotations

import sys

from .. import __version__


class UsageError(ValueError):
    """A command-line value that cannot be used."""


class Terminated(BaseException):
    """SIGTERM (a batch system ending the job) turned into an exception, so outputs unwind."""


def on_sigterm(signum, frame):
    raise Terminated


def error_code(error: BaseException) -> int:
    """2 for errors of inputs, options, files or memory; 1 for anything else (a bug)."""
    from .._errors import OptionalDependencyError
    from .._mpi import RankError
    from ..models import CheckpointError
    from ..models.files import ModelFileError

    if isinstance(error, RankError):
        return (
            2
            if error.kind
            in (
                "ValueError",
                "TypeError",
                "FileNotFoundError",
                "OSError",
                "MemoryError",
                "CheckpointError",
                "ModelFileError",
                "InputError",
                "UsageError",
                "FileExistsError",
                "WriteRefused",
                "OptionalDependencyError",
            )
            else 1
        )
    user = (
        MemoryError,
        ValueError,
        TypeError,
        OSError,
        CheckpointError,
        ModelFileError,
        OptionalDependencyError,
    )
    return 2 if isinstance(error, user) else 1


def report(path, error: BaseException) -> int:
    code = error_code(error)
    where = f"{path}: " if path is not None else ""
    if isinstance(error, MemoryError):
        detail = str(error) or "an allocation failed"
        print(
            f"zse: error: {where}not enough memory: {detail}; try --crop, --bin, a smaller "
            "--patch-size or fewer --stats",
            file=sys.stderr,
        )
    elif code == 2:
        print(f"zse: error: {where}{error}", file=sys.stderr)
    else:
        import traceback

        traceback.print_exception(type(error), error, error.__traceback__, file=sys.stderr)
        print(
            f"zse: internal error: {where}{type(error).__name__}: {error}\n"
            f"This is a bug in zse {__version__}; please report it with the command line above.",
            file=sys.stderr,
        )
    return code
