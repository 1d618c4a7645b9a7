"""A model's parameters, declared once.

Each model lists its hyper-parameters as rows of :class:`Param` in ``parameters``; from that
table follow the model's ``__init__`` (its signature, which ``get_params`` reads), the checks of
every value (``_check_params``), the "Parameters" section of its docstring, the command-line flag
of each parameter with its help and default (:mod:`zse.cli.options`), which parameters a model
file stores, which a checkpoint may resume with other values, and which apply to a fitted model
read from a file. Adding a parameter to a model means adding one row.

Relations between parameters (SSSC's ``n_parents <= n_states``) stay in the model's own
``_check_relations``.
"""

from __future__ import annotations

import inspect
import numbers
import os
from dataclasses import dataclass, field

import numpy as np

# Where a parameter appears on the command line: "main" in ``zse denoise --help``, "advanced"
# only in ``--help-advanced`` (study switches), "common" under a general flag of its own
# (``--seed``, ``--n-threads``, ``-q``), "python" nowhere (listed in the help's epilog).
CLI_PLACES = ("main", "advanced", "common", "python")
# The largest value of an Int without an upper bound of its own (the kernels' C int).
C_INT_MAX = 2**31 - 1


class Check:
    """Validates one value and returns it converted (ValueError or TypeError naming it)."""

    none_ok = False

    def __call__(self, value, name: str):
        if value is None:
            if self.none_ok:
                return None
            msg = f"{name} must be {self.describe()}, got None"
            raise ValueError(msg)
        return self.convert(value, name)

    def expected(self) -> str:
        """What the error message says a value must be (None included where it may be)."""
        described = self.describe()
        return f"None or {described}" if self.none_ok and described != "a value" else described

    def convert(self, value, name):
        return value

    def describe(self) -> str:
        return "a value"

    # what the command line parses the flag's text with (None: a switch or free text)
    cli_type = None
    cli_choices = None


@dataclass(frozen=True)
class Int(Check):
    low: int
    high: int | None = None
    none_ok: bool = False
    cli_type = int

    def describe(self):
        bounds = f">= {self.low}" if self.high is None else f"in [{self.low}, {self.high}]"
        return f"an int {bounds}"

    def convert(self, value, name):
        if (
            isinstance(value, bool)
            or not isinstance(value, numbers.Integral)
            or value < self.low
            or (self.high is not None and value > self.high)
        ):
            msg = f"{name} must be {self.expected()}, got {value!r}"
            raise ValueError(msg)
        if self.high is None and value > C_INT_MAX:
            # The kernels take these counts as C ints: a larger value is refused by name here,
            # not by the bindings' "incompatible function arguments".
            msg = f"{name} must be {self.expected()} and at most {C_INT_MAX}, got {value!r}"
            raise ValueError(msg)
        return int(value)


@dataclass(frozen=True)
class Real(Check):
    """A finite real number in the interval (low, high), open or closed at each end."""

    low: float = -np.inf
    high: float = np.inf
    low_open: bool = False
    high_open: bool = False
    none_ok: bool = False
    cli_type = float

    def describe(self):
        if self.low == -np.inf and self.high == np.inf:
            return "a finite number"
        if self.high == np.inf:
            return f"a finite number {'>' if self.low_open else '>='} {self.low:g}"
        left = "(" if self.low_open else "["
        right = ")" if self.high_open else "]"
        return f"a number in {left}{self.low:g}, {self.high:g}{right}"

    def convert(self, value, name):
        try:
            number = float(value)
        except (TypeError, ValueError):
            number = np.nan
        if isinstance(value, bool) or not np.isfinite(number):
            ok = False
        else:
            ok = (number > self.low if self.low_open else number >= self.low) and (
                number < self.high if self.high_open else number <= self.high
            )
        if not ok:
            msg = f"{name} must be {self.expected()}, got {value!r}"
            raise ValueError(msg)
        return value


@dataclass(frozen=True)
class Choice(Check):
    values: tuple

    def describe(self):
        return f"one of {self.values}"

    def convert(self, value, name):
        if value not in self.values:
            msg = f"{name} must be one of {self.values}, got {value!r}"
            raise ValueError(msg)
        return value

    @property
    def cli_choices(self):
        return self.values


@dataclass(frozen=True)
class Flag(Check):
    def describe(self):
        return "True or False"

    def convert(self, value, name):
        if not isinstance(value, (bool, np.bool_)):
            msg = f"{name} must be True or False, got {value!r}"
            raise TypeError(msg)
        return bool(value)


@dataclass(frozen=True)
class FilePath(Check):
    none_ok: bool = True

    def describe(self):
        return "a path or None"

    def convert(self, value, name):
        if not isinstance(value, (str, os.PathLike)):
            msg = f"{name} must be a path or None, got {value!r}"
            raise TypeError(msg)
        return value


@dataclass(frozen=True)
class Free(Check):
    """Checked where it is used (a seed by zse._random, a communicator by zse._mpi)."""

    none_ok: bool = True
    what: str = "a value"

    def describe(self):
        return self.what


@dataclass(frozen=True)
class Param:
    """One hyper-parameter of a model.

    ``help`` is one line (the flag's help and the docstring's first line); ``doc`` adds the
    docstring's detail. ``learned=False``: the value changes nothing a fit learns, so a
    checkpoint resumes with another value. ``stored=False``: how a fit runs (threads, logging,
    checkpoints), not written to model files. ``estimation=True``: it changes how a fitted
    model estimates, so it applies to a model read from a file.
    """

    name: str
    default: object
    check: Check
    help: str
    doc: str = ""
    cli: str = "main"
    flag: str | None = None
    positional: bool = False
    learned: bool = True
    stored: bool = True
    estimation: bool = False
    default_text: str | None = None
    kind: str = field(default="", repr=False)  # the docstring's type, e.g. "int"

    def __post_init__(self):
        if self.cli not in CLI_PLACES:
            msg = f"Param {self.name}: cli must be one of {CLI_PLACES}"
            raise ValueError(msg)

    @property
    def option(self) -> str:
        """The command-line flag (``--n-states``)."""
        return self.flag or "--" + self.name.replace("_", "-")

    def default_label(self) -> str:
        if self.default_text is not None:
            return self.default_text
        if isinstance(self.default, bool):
            return "on" if self.default else "off"
        return (
            "none"
            if self.default is None
            else f"{self.default:g}"
            if isinstance(self.default, float)
            else str(self.default)
        )


def shared(rows, **changes) -> tuple:
    """Rows of another table, with fields replaced by name: ``{"max_iter": {"default": 50}}``."""
    from dataclasses import replace

    return tuple(replace(row, **changes.get(row.name, {})) for row in rows)


def make_init(rows):
    """An ``__init__`` taking the table's parameters (the first ``positional`` ones by position,
    the rest by keyword) and storing each unchanged under its name."""
    names = [row.name for row in rows]
    self_parameter = inspect.Parameter("self", inspect.Parameter.POSITIONAL_OR_KEYWORD)
    signature = inspect.Signature(
        [self_parameter]
        + [
            inspect.Parameter(
                row.name,
                inspect.Parameter.POSITIONAL_OR_KEYWORD
                if row.positional
                else inspect.Parameter.KEYWORD_ONLY,
                default=row.default,
            )
            for row in rows
        ]
    )

    def __init__(self, *args, **kwargs):
        bound = signature.bind(self, *args, **kwargs)
        bound.apply_defaults()
        for name in names:
            setattr(self, name, bound.arguments[name])

    __init__.__signature__ = signature
    return __init__


def docstring_section(rows) -> str:
    """The numpydoc "Parameters" entries of a table."""
    lines = []
    for row in rows:
        kind = row.kind or _kind_of(row)
        lines.append(f"{row.name} : {kind}")
        text = row.help[0].upper() + row.help[1:]
        text += "." if not text.endswith(".") else ""
        text += f" Default: {row.default_label()}."
        if row.doc:
            text += " " + row.doc
        lines.extend("    " + part for part in _wrap(text, 92))
    return "\n".join(lines)


def _kind_of(row) -> str:
    check = row.check
    optional = ", optional" if check.none_ok and row.default is None else ""
    if isinstance(check, Int):
        return "int" + optional
    if isinstance(check, Real):
        return "float" + optional
    if isinstance(check, Choice):
        return "{" + ", ".join(repr(v) for v in check.values) + "}"
    if isinstance(check, Flag):
        return "bool"
    if isinstance(check, FilePath):
        return "str or path-like, optional"
    return check.describe()


def _wrap(text: str, width: int) -> list[str]:
    import textwrap

    return textwrap.wrap(text, width) or [""]
