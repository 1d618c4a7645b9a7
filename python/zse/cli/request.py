"""What a command asks for, as a typed value: built once from the parsed arguments (or by the
RELION job and the demo), never changed on the way, and the only thing the per-input work reads.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ..models import model_class, unknown_params
from .errors import UsageError
from .options import model_flags

# Parameters an auto-chosen model may lack: they serve the count test of --model auto.
COUNT_TEST_PARAMS = ("gain", "offset")


@dataclass(frozen=True)
class Request:
    """One ``zse denoise``/``fit``/``demo`` call (or one RELION job's settings)."""

    inputs: tuple[Path, ...] = ()
    output: Path = Path(".")
    stats: tuple[str, ...] = ("mean", "var")
    format: str | None = None
    model_file: Path | None = None
    per_section: bool = False
    overwrite: bool = False
    # how each input is read
    page: int | None = None
    volume: bool = False
    crop: str | None = None
    bin: int = 1
    decimate: int = 1
    slabs: int | None = None  # slices per slab of a volume read and written slab by slab
    # the model
    model: str = "auto"
    counts: bool | None = None
    patch_size: tuple[int, ...] | None = None
    params: dict = field(default_factory=dict)  # model parameters given, by name
    n_train: int | str = "auto"
    seed: int | None = 0
    n_threads: int | None = None
    mpi: bool = False
    quiet: bool = False

    @property
    def n_inputs(self) -> int:
        return len(self.inputs)

    @property
    def gain(self):
        return self.params.get("gain")

    @property
    def offset(self):
        return self.params.get("offset")

    @property
    def checkpoint(self):
        return self.params.get("checkpoint")


def request_from_args(args, inputs=(), **changes) -> Request:
    """The request of parsed arguments (``inputs``: the expanded input paths); ``changes``
    replace fields (the RELION job's output folder, the demo's input)."""
    params = {
        name: getattr(args, name) for name in model_flags() if getattr(args, name, None) is not None
    }
    if params.get("resume") is False:
        params.pop("resume")
    values = {
        "inputs": tuple(Path(p) for p in inputs),
        "output": Path(args.output),
        "stats": tuple(args.stats) if "stats" in vars(args) else ("mean", "var"),
        "format": vars(args).get("format"),
        "model_file": Path(args.model_file) if vars(args).get("model_file") else None,
        "per_section": bool(vars(args).get("per_section", False)),
        "overwrite": bool(args.overwrite),
        "page": vars(args).get("page"),
        "volume": bool(vars(args).get("volume", False)),
        "crop": vars(args).get("crop"),
        "bin": int(vars(args).get("bin", 1)),
        "decimate": int(vars(args).get("decimate", 1)),
        "slabs": vars(args).get("slabs"),
        "model": args.model,
        "counts": args.counts,
        "patch_size": tuple(args.patch_size) if args.patch_size is not None else None,
        "params": params,
        "n_train": args.n_train,
        "seed": args.seed,
        "n_threads": args.n_threads,
        "mpi": bool(args.mpi),
        "quiet": bool(args.quiet),
    }
    values.update(changes)
    request = Request(**values)
    for name in ("bin", "decimate"):
        if getattr(request, name) < 1:
            raise UsageError(f"--{name} must be >= 1, got {getattr(request, name)}")
    if request.slabs is not None and request.slabs < 1:
        raise UsageError(f"--slabs must be >= 1, got {request.slabs}")
    if request.bin > 1 and request.decimate > 1:
        raise UsageError("--bin averages blocks and --decimate keeps every n-th pixel: give one")
    return request


def flag_of(name: str) -> str:
    return "--" + name.replace("_", "-")


def model_params(request: Request, model_name: str, note=None) -> dict:
    """The model parameters the request gives ``model_name``, checked to be its parameters, with
    the defaults the model lowers for small settings (:meth:`fitting_defaults`, each with a note).

    With ``--model auto``, ``--gain``/``--offset`` serve the count test and go only to the
    models that have them.
    """
    cls = model_class(model_name)
    params = dict(request.params)
    if request.model == "auto":
        for name in COUNT_TEST_PARAMS:
            if name in params and name not in cls._param_names():
                params.pop(name)
    unknown = unknown_params(cls, params)
    if unknown:
        raise UsageError(
            f"{', '.join(flag_of(u) for u in unknown)} does not apply to model {model_name!r}"
        )
    for name, value, reason in cls.fitting_defaults(params):
        params[name] = value
        if note is not None:
            note(f"{reason}: using {flag_of(name)} {value}")
    return params
