"""The command line's parser. The model parameters' flags, help and defaults are generated from
the models' parameter tables (:mod:`zse.models.params`): a parameter added to a table gets its
flag here without an edit."""

from __future__ import annotations

import argparse

from .. import __version__
from ..models import REGISTRY
from .errors import UsageError

# The demo should finish in well under a minute on a laptop; the model's own default is longer.
DEMO_MAX_ITER = 30
# Flags the command line gives the parameters of the "common" place (cli="common").
COMMON_FLAGS = {"random_state": "--seed", "n_threads": "--n-threads", "verbose": "-q/--quiet"}


def parse_patch_size(text: str) -> tuple[int, ...]:
    """``6``, ``6x8`` or ``6,8`` (2-D); ``4x4x4`` or ``4,4,4`` (3-D: the input is a volume)."""
    parts = text.lower().replace("*", "x").replace(",", "x").split("x")
    try:
        sizes = [int(p) for p in parts]
    except ValueError:
        raise UsageError(f"--patch-size must look like 6, 6x8 or 4x4x4, got {text!r}") from None
    if len(sizes) == 1:
        sizes = sizes * 2
    if len(sizes) not in (2, 3) or min(sizes) < 1:
        raise UsageError(
            f"--patch-size must look like 6, 6x8 or 4x4x4 with sizes >= 1, got {text!r}"
        )
    return tuple(sizes)


def _n_train(text: str):
    if text == "auto":
        return text
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"--n-train must be auto or an int >= 1, got {text!r}"
        ) from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"--n-train must be auto or an int >= 1, got {text!r}")
    return value


def _stats(text: str) -> tuple[str, ...]:
    names = tuple(s.strip() for s in text.split(",") if s.strip())
    if not names:
        raise argparse.ArgumentTypeError("--stats needs at least one name")
    return names


def model_flags() -> dict:
    """Every model parameter with a flag, by parameter name: its place ("main" or "advanced"),
    the models that have it (command-line names), and their table rows."""
    flags: dict = {}
    for model_name, cls in REGISTRY.items():
        for row in cls.parameters:
            if row.cli not in ("main", "advanced"):
                continue
            entry = flags.setdefault(row.name, {"rows": [], "models": []})
            entry["rows"].append(row)
            entry["models"].append(model_name)
    for name, entry in flags.items():
        places = {row.cli for row in entry["rows"]}
        if len(places) != 1:
            msg = f"parameter {name} is 'main' in one model and 'advanced' in another"
            raise TypeError(msg)
        entry["place"] = places.pop()
    return flags


def flag_help(entry) -> str:
    """A flag's help from its rows: the help (per model where they differ), the models and the
    defaults (per model where they differ)."""
    rows, models = entry["rows"], entry["models"]
    helps = {}
    for row, model in zip(rows, models):
        helps.setdefault(row.help, []).append(model)
    if len(helps) == 1:
        text = next(iter(helps))
    else:
        text = "; ".join(f"{', '.join(m)}: {h}" for h, m in helps.items())
    defaults = {}
    for row, model in zip(rows, models):
        defaults.setdefault(row.default_label(), []).append(model)
    if len(defaults) == 1:
        default = f"default {next(iter(defaults))}"
    else:
        default = "default " + ", ".join(f"{' '.join(m)} {d}" for d, m in defaults.items())
    return f"{text} ({', '.join(models)}; {default})".replace("%", "%%")


def _per_model(value) -> str:
    """``value(model class)`` for the trained models, said once when they agree."""
    trained = {name: cls for name, cls in REGISTRY.items() if name != "identity"}
    values = {}
    for name, cls in trained.items():
        values.setdefault(value(cls), []).append(name)
    if len(values) == 1:
        return f"{next(iter(values))} for every model"
    return ", ".join(f"{v} for {'/'.join(names)}" for v, names in values.items())


def python_only_params() -> dict:
    """Parameters without a flag of their own, by model: listed in the help's epilog."""
    out = {}
    for model_name, cls in REGISTRY.items():
        for row in cls.parameters:
            if row.cli == "python":
                out.setdefault(row.name, []).append(model_name)
    return out


def _add_flag(group, row, help_text) -> None:
    check = row.check
    if check.cli_type is None and check.cli_choices is None and isinstance(row.default, bool):
        group.add_argument(
            row.option, action=argparse.BooleanOptionalAction, default=None, help=help_text
        )
    else:
        group.add_argument(
            row.option,
            type=check.cli_type,
            choices=check.cli_choices,
            default=None,
            dest=row.name,
            help=help_text,
        )


def _add_model_options(p: argparse.ArgumentParser, advanced: bool) -> None:
    p.add_argument(
        "--model",
        default="auto",
        choices=["auto", *sorted(REGISTRY)],
        help="patch model; auto (default): gpmm for electron counts (tested on the "
        "data, see --counts), else sssc",
    )
    p.add_argument(
        "--counts",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="with --model auto: the input holds electron counts (--counts) or not "
        "(--no-counts) instead of testing the data",
    )
    p.add_argument(
        "--patch-size",
        type=parse_patch_size,
        default=None,
        help="patch size: 6 or 6x8 for images and stacks, 4x4x4 for a volume (default: "
        + _per_model(lambda cls: "x".join(map(str, cls.default_patch(2))))
        + " for images and stacks; "
        + _per_model(lambda cls: "x".join(map(str, cls.default_patch(3))))
        + " for volumes)",
    )
    main = p.add_argument_group(
        "model parameters (see the model's docstring; default: the model's)"
    )
    study = p.add_argument_group(
        "advanced model parameters (studies of the algorithm; zse denoise --help-advanced)"
    )
    for entry in model_flags().values():
        row = entry["rows"][0]
        shown = entry["place"] == "main" or advanced
        _add_flag(
            main if entry["place"] == "main" else study,
            row,
            flag_help(entry) if shown else argparse.SUPPRESS,
        )
    p.add_argument(
        "--n-train",
        type=_n_train,
        default="auto",
        help="patch positions to train on: an int, or auto (every patch up to "
        + _per_model(lambda cls: str(cls.auto_train_size))
        + ", a random subset of that many beyond; default)",
    )
    p.add_argument("--seed", type=int, default=0, help="random seed of the model (default: 0)")
    p.add_argument(
        "--n-threads",
        type=int,
        default=None,
        help="threads per process (default: all available; under MPI the node's CPUs shared "
        "by its ranks)",
    )
    p.add_argument(
        "--mpi",
        action="store_true",
        help="use every MPI rank (detected when started by mpirun/mpiexec/srun)",
    )
    p.add_argument("-q", "--quiet", action="store_true", help="no progress output")
    p.add_argument(
        "--help-advanced",
        action=_AdvancedHelp,
        help="show the help with the advanced model parameters, and exit",
    )


class _AdvancedHelp(argparse.Action):
    def __init__(self, option_strings, dest, **kwargs):
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, **kwargs)

    def __call__(self, parser, namespace, values, option_string=None):
        command = parser.prog.split()[-1]
        build_parser(advanced=True)._subparsers._group_actions[0].choices[command].print_help()
        parser.exit()


def _epilog() -> str:
    common = ", ".join(f"{name} ({flag})" for name, flag in COMMON_FLAGS.items())
    python = "; ".join(
        f"{name} ({', '.join(models)})" for name, models in python_only_params().items()
    )
    return (
        f"Model parameters under general flags: {common}. Python-only model parameters (no "
        f"flag): {python}. Study switches: --help-advanced."
    )


def _add_input_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--page",
        type=int,
        default=None,
        help="only this page of a TIFF stack / section of an MRC stack",
    )
    p.add_argument(
        "--volume",
        action="store_true",
        help="treat a 3-D file as a volume (3-D patches) even if its header says stack",
    )
    p.add_argument(
        "--crop", default=None, help="region y0:y1,x0:x1 of every section (applied before --bin)"
    )
    p.add_argument(
        "--bin",
        type=int,
        default=1,
        help="average N x N blocks (IMOD's binning; a remainder is cropped, with a note)",
    )
    p.add_argument(
        "--decimate", type=int, default=1, help="keep every N-th pixel in each direction"
    )


class RaisingParser(argparse.ArgumentParser):
    """A parser whose errors raise :class:`UsageError` instead of printing the usage and exiting
    (``zse relion`` records them in the job's log and marks the job failed)."""

    def error(self, message):
        raise UsageError(f"{self.prog}: {message}")


def build_parser(advanced: bool = False, parser_class=argparse.ArgumentParser):
    """The ``zse`` parser; ``advanced`` shows the study switches in the help; ``parser_class``
    :class:`RaisingParser` for errors that raise. Each command's function is
    :data:`zse.cli.commands.COMMANDS` [``args.command``]."""
    parser = parser_class(
        prog="zse",
        description="Zero-shot enhancement of noisy electron-microscopy images.",
    )
    parser.add_argument("--version", action="version", version=f"zse {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser(
        "denoise",
        help="denoise images, stacks and volumes; per input <stem>_mean/<stem>_var, previews, "
        "<stem>_fields.png, <stem>_noise.png (SSSC) and <stem>.zse.json",
        epilog=_epilog(),
    )
    p.add_argument(
        "inputs",
        nargs="+",
        metavar="INPUT",
        help='TIFF, MRC, PNG or JPEG files or quoted patterns ("dir/*.mrc")',
    )
    p.add_argument("-o", "--output", required=True, help="output directory")
    p.add_argument(
        "--format",
        choices=("mrc", "tif"),
        default=None,
        help="output format (default: mrc for MRC inputs, else tif)",
    )
    p.add_argument(
        "--stats",
        type=_stats,
        default=("mean", "var"),
        help="comma-separated outputs: mean,median,var,pvar,count (default: mean,var)",
    )
    p.add_argument(
        "--model-file",
        default=None,
        help="apply a model written by zse fit instead of fitting one per input",
    )
    p.add_argument(
        "--per-section",
        action="store_true",
        help="stacks: fit a model for each section (default: one model from patches of all "
        "sections)",
    )
    _add_input_options(p)
    p.add_argument(
        "--slabs",
        type=int,
        default=None,
        metavar="N",
        help="volumes: read, denoise and write N slices at a time, so memory holds a slab, not "
        "the volume (the same results; default: slab by slab only when the volume does not "
        "fit in memory, with slabs of about 256 MB)",
    )
    _add_model_options(p, advanced)
    p.add_argument("--overwrite", action="store_true", help="replace existing outputs")

    p = sub.add_parser(
        "fit",
        help="fit one model on patches of every input and write it to a model file",
        epilog=_epilog(),
    )
    p.add_argument(
        "inputs", nargs="+", metavar="INPUT", help="TIFF, MRC, PNG or JPEG files or quoted patterns"
    )
    p.add_argument("-o", "--output", required=True, help="model file to write (e.g. model.zse)")
    _add_input_options(p)
    _add_model_options(p, advanced)
    p.add_argument("--overwrite", action="store_true", help="replace an existing model file")

    p = sub.add_parser("demo", help="denoise a bundled example EM scene", epilog=_epilog())
    p.add_argument(
        "-o", "--output", default="zse-demo", help="output directory (default: %(default)s)"
    )
    p.add_argument(
        "--stats",
        type=_stats,
        default=("mean", "var"),
        help="comma-separated outputs (default: mean,var)",
    )
    _add_model_options(p, advanced)
    p.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    p.set_defaults(max_iter=DEMO_MAX_ITER)

    sub.add_parser(
        "relion",
        help="a RELION External job: --o JOB_DIR --in_mics STAR [--j THREADS] [--<option> "
        "VALUE ...] (zse relion --help)",
        add_help=False,
    )

    sub.add_parser("info", help="print version, OpenMP and thread configuration")
    return parser
