"""zse: zero-shot enhancement of single noisy electron-microscopy images.

A probabilistic generative model is learned from the overlapping patches of one noisy image;
every pixel is then estimated from the posteriors of all patches covering it. The average of
those estimates is the denoised image, their spread the variance image.
"""

from __future__ import annotations

from . import _core

__version__ = _core.__version__

from . import io  # noqa: E402
from ._mpi import RankError  # noqa: E402
from .data import psnr, synthetic_tem  # noqa: E402
from .models import GPMM, PMM, SSSC, Identity, NotFittedError  # noqa: E402
from .models.files import ModelFileError, load_model, save_model  # noqa: E402
from .patches import extract_patches, merge_patches  # noqa: E402
from .reconstruct import reconstruct  # noqa: E402


def show_config(file=None) -> None:
    """Print the zse version, OpenMP support, thread counts and compiler."""
    import sys

    from ._threads import available_cpus, effective_n_threads

    out = file or sys.stdout
    print(f"zse {__version__}", file=out)
    print(f"  OpenMP:             {'on' if _core.has_openmp else 'off'}", file=out)
    print(f"  default threads:    {effective_n_threads(None)}", file=out)
    print(f"  available CPUs:     {available_cpus()}", file=out)
    print(f"  OpenMP max threads: {_core.omp_max_threads()}", file=out)
    print(f"  compiler:           {_core.compiler()}", file=out)


__all__ = [
    "GPMM",
    "Identity",
    "PMM",
    "SSSC",
    "NotFittedError",
    "RankError",
    "__version__",
    "extract_patches",
    "io",
    "load_model",
    "merge_patches",
    "ModelFileError",
    "psnr",
    "reconstruct",
    "save_model",
    "show_config",
    "synthetic_tem",
]
