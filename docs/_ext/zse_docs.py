"""Pages of the documentation generated from the code, so that they cannot drift from it: the
command-line reference (from the parsers, every flag of every command) and the parameter tables
(from the models' ``Param`` rows, the same rows the checks, the flags and the docstrings come
from).

Used by docs/conf.py at every build (a Sphinx extension) and by tests/test_docs.py (no Sphinx
needed): ``write_generated(folder)`` writes ``cli.md`` and ``parameters.md`` into ``folder``.
"""

from __future__ import annotations

import argparse
import os
import re
from pathlib import Path

GENERATED = Path(__file__).resolve().parent.parent / "_generated"


def _subparsers(parser: argparse.ArgumentParser) -> dict:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def _help(parser: argparse.ArgumentParser) -> str:
    # A fixed width: the page is the same on every terminal and machine.
    previous = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = "100"
    try:
        return parser.format_help()
    finally:
        if previous is None:
            del os.environ["COLUMNS"]
        else:
            os.environ["COLUMNS"] = previous


def command_parsers() -> dict:
    """Every ``zse`` command's parser by name, with the advanced (study) flags shown; ``relion``
    is its own parser (RELION's option style)."""
    from zse.cli import options, relion

    commands = _subparsers(options.build_parser(advanced=True))
    commands["relion"] = relion.build_parser()
    return commands


def flags_of(parser: argparse.ArgumentParser) -> set[str]:
    """Every option string a parser accepts (``--n-states``, ``-o``, ...)."""
    return {s for action in parser._actions for s in action.option_strings}


def cli_page() -> str:
    from zse.cli import options

    lines = [
        "# Command-line reference",
        "",
        "Generated from the parsers at every build (`docs/_ext/zse_docs.py`): each command's "
        "`--help` as the command prints it, with the advanced (study) flags of "
        "`zse denoise --help-advanced` included. The model flags come from the models' parameter "
        "tables ([](parameters.md)).",
        "",
        "## zse",
        "",
        "```text",
        _help(options.build_parser(advanced=True)).rstrip(),
        "```",
        "",
    ]
    for name, parser in command_parsers().items():
        lines += [f"## zse {name}", "", "```text", _help(parser).rstrip(), "```", ""]
        hidden = sorted(
            s
            for action in parser._actions
            if action.help == argparse.SUPPRESS
            for s in action.option_strings
        )
        if hidden:
            lines += [
                "Also accepted, without help of their own: "
                + ", ".join(f"`{flag}`" for flag in hidden)
                + " (`--pipeline_control`: RELION 4 and later pass the job folder; `--in_movies`: "
                "refused with the reason, zse denoises micrographs and tomograms, not movies).",
                "",
            ]
    return "\n".join(lines)


def _cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def parameters_page() -> str:
    from zse.models import REGISTRY

    lines = [
        "# Model parameters",
        "",
        "Generated from each model's parameter table (`Param` rows in `python/zse/models`) at "
        "every build: the same rows make the model's `__init__`, its checks, its docstring and "
        "its command-line flags. *Place*: `main` flags are in `zse denoise --help`, `advanced` "
        "ones in `--help-advanced`, `common` ones have the shared flags `--seed`, `--n-threads`, "
        "`-q`; `python` ones only the Python API takes.",
        "",
    ]
    for name, cls in REGISTRY.items():
        rows = getattr(cls, "parameters", ())
        lines += [f"## {cls.__name__} (`--model {name}`)", ""]
        if not rows:
            lines += ["No parameters.", ""]
            continue
        lines += [
            "| parameter | flag | default | valid values | place | what it does |",
            "|---|---|---|---|---|---|",
        ]
        for row in rows:
            flag = "" if row.cli == "python" else f"`{row.option}`"
            text = row.help[0].upper() + row.help[1:]
            text += ("" if text.endswith(".") else ".") + (f" {row.doc}" if row.doc else "")
            lines.append(
                f"| `{row.name}` | {flag} | `{_cell(row.default_label())}` | "
                f"{_cell(row.check.describe())} | {row.cli} | {_cell(text)} |"
            )
        lines.append("")
    return "\n".join(lines)


def write_generated(folder: Path = GENERATED) -> list[Path]:
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in (("cli.md", cli_page()), ("parameters.md", parameters_page())):
        path = folder / name
        if not path.exists() or path.read_text() != text:  # unchanged pages keep their mtime
            path.write_text(text)
        written.append(path)
    return written


def setup(app):
    app.connect("builder-inited", lambda app: write_generated())
    app.connect("autodoc-process-docstring", quote_learned_names, priority=400)
    return {"parallel_read_safe": True, "parallel_write_safe": True}


# Learned attributes end in "_" (W_, sigma2_): in reStructuredText a bare word ending in "_" is a
# link to a target of that name. Docstrings are written for the terminal (help(), IDEs), so the
# site quotes such words as code instead of every docstring escaping them.
_CODE = re.compile(r"(`+[^`]*`+)")
_TRAILING = re.compile(r"(?<![\w`*|])([A-Za-z][A-Za-z0-9]*(?:_[A-Za-z0-9]+)*_)(?![\w`])")
_HEADER = re.compile(r"^\s*[A-Za-z][\w, ]*_?\s*:\s")


def quote_learned_names(app, what, name, obj, options, lines) -> None:
    in_example = False
    for k, line in enumerate(lines):
        stripped = line.strip()
        # a doctest (from ">>>" to the next blank line) and "W_ : ndarray" stay as they are
        in_example = stripped.startswith(">>>") or (in_example and stripped != "")
        if in_example or _HEADER.match(line):
            continue
        parts = _CODE.split(line)
        lines[k] = "".join(
            part if i % 2 else _TRAILING.sub(r"``\1``", part) for i, part in enumerate(parts)
        )
