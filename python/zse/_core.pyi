# Generated from the compiled module by pybind11-stubgen (pip install pybind11-stubgen;
# pybind11-stubgen zse._core -o stubs); tests/test_docs.py checks it names every entry point.
"""
zse compiled core (private; use the zse package)
"""

from __future__ import annotations

import collections.abc
import typing

import numpy
import numpy.typing

__all__: list[str] = [
    "EStepRequest",
    "MixtureModel",
    "MixtureStats",
    "SSSCModel",
    "SSSCStats",
    "SearchOptions",
    "StreamRequest",
    "TotalsIndex",
    "VolumeSearch",
    "chunk_share_patches",
    "compiler",
    "evo_mutate",
    "evo_select",
    "extract_patches",
    "gather_patches",
    "has_openmp",
    "identity_estimate_volume",
    "index_totals",
    "kmeans_plusplus",
    "merge_patches",
    "merge_volume",
    "mixture_estep",
    "mixture_estimate",
    "mixture_estimate_volume",
    "mixture_responsibilities",
    "omp_max_threads",
    "solve_alpha",
    "sssc_estep",
    "sssc_estimate_volume",
    "sssc_init_states",
    "sssc_log_joint",
    "sssc_mstep",
    "stream_plan",
    "sum_log_factorials",
    "sum_mixture_stats",
    "sum_sssc_stats",
]

class SSSCModel:
    """
    SSSC's parameters in the kernels' units (private)
    """
    def __init__(
        self,
        W: numpy.typing.NDArray[numpy.float64],
        pi: numpy.typing.NDArray[numpy.float64],
        mu: numpy.typing.NDArray[numpy.float64],
        Psi: numpy.typing.NDArray[numpy.float64],
        sigma2: typing.SupportsFloat | typing.SupportsIndex,
        bias: typing.Any = None,
        scale: typing.SupportsFloat | typing.SupportsIndex = 1.0,
        W_out: typing.Any = None,
        whiten: typing.Any = None,
        gat: typing.Any = None,
    ) -> None: ...
    @property
    def W(self) -> numpy.typing.NDArray[numpy.float64]: ...
    @property
    def scale(self) -> float: ...
    @property
    def sigma2(self) -> float: ...

class MixtureModel:
    """
    A (Gamma-)Poisson mixture's parameters (private)
    """
    def __init__(
        self,
        W: numpy.typing.NDArray[numpy.float64],
        log_pi: numpy.typing.NDArray[numpy.float64],
        alpha: typing.Any = None,
        beta: typing.SupportsFloat | typing.SupportsIndex = 1.0,
    ) -> None: ...
    @property
    def W(self) -> numpy.typing.NDArray[numpy.float64]: ...

class SearchOptions:
    """
    The state search (private)
    """

    method: str
    mutation: str
    selection: str
    def __init__(self, **kwargs) -> None: ...
    @property
    def bitflip_prob(self) -> float: ...
    @bitflip_prob.setter
    def bitflip_prob(self, arg0: typing.SupportsFloat | typing.SupportsIndex) -> None: ...
    @property
    def n_children(self) -> int: ...
    @n_children.setter
    def n_children(self, arg0: typing.SupportsInt | typing.SupportsIndex) -> None: ...
    @property
    def n_generations(self) -> int: ...
    @n_generations.setter
    def n_generations(self, arg0: typing.SupportsInt | typing.SupportsIndex) -> None: ...
    @property
    def n_parents(self) -> int: ...
    @n_parents.setter
    def n_parents(self, arg0: typing.SupportsInt | typing.SupportsIndex) -> None: ...

class EStepRequest:
    """
    What an SSSC E-step returns (private)
    """

    evolve: bool
    want_estimates: bool
    want_lpj: bool
    want_stats: bool
    want_variance: bool
    def __init__(self, **kwargs) -> None: ...
    @property
    def epoch(self) -> int: ...
    @epoch.setter
    def epoch(self, arg0: typing.SupportsInt | typing.SupportsIndex) -> None: ...
    @property
    def n_sweeps(self) -> int: ...
    @n_sweeps.setter
    def n_sweeps(self, arg0: typing.SupportsInt | typing.SupportsIndex) -> None: ...
    @property
    def seed(self) -> int: ...
    @seed.setter
    def seed(self, arg0: typing.SupportsInt | typing.SupportsIndex) -> None: ...

class VolumeSearch:
    """
    Starts and lengths of the streamed searches (private)
    """
    def __init__(self, **kwargs) -> None: ...
    @property
    def fresh_seed(self) -> int: ...
    @fresh_seed.setter
    def fresh_seed(self, arg0: typing.SupportsInt | typing.SupportsIndex) -> None: ...
    @property
    def fresh_sweeps(self) -> int: ...
    @fresh_sweeps.setter
    def fresh_sweeps(self, arg0: typing.SupportsInt | typing.SupportsIndex) -> None: ...
    @property
    def n_states(self) -> int: ...
    @n_states.setter
    def n_states(self, arg0: typing.SupportsInt | typing.SupportsIndex) -> None: ...
    @property
    def p_init(self) -> float: ...
    @p_init.setter
    def p_init(self, arg0: typing.SupportsFloat | typing.SupportsIndex) -> None: ...
    @property
    def patience(self) -> int: ...
    @patience.setter
    def patience(self, arg0: typing.SupportsInt | typing.SupportsIndex) -> None: ...
    @property
    def seed(self) -> int: ...
    @seed.setter
    def seed(self, arg0: typing.SupportsInt | typing.SupportsIndex) -> None: ...
    @property
    def train_sweeps(self) -> int: ...
    @train_sweeps.setter
    def train_sweeps(self, arg0: typing.SupportsInt | typing.SupportsIndex) -> None: ...
    @property
    def warm_sweeps(self) -> int: ...
    @warm_sweeps.setter
    def warm_sweeps(self, arg0: typing.SupportsInt | typing.SupportsIndex) -> None: ...

class StreamRequest:
    """
    Outputs, share and progress of a streamed estimate (private)
    """

    median_kind: str
    merge: str
    progress: typing.Any
    def __init__(self, **kwargs) -> None: ...
    @property
    def input_first_slice(self) -> int: ...
    @input_first_slice.setter
    def input_first_slice(self, arg0: typing.SupportsInt | typing.SupportsIndex) -> None: ...
    @property
    def n_parts(self) -> int: ...
    @n_parts.setter
    def n_parts(self, arg0: typing.SupportsInt | typing.SupportsIndex) -> None: ...
    @property
    def part(self) -> int: ...
    @part.setter
    def part(self, arg0: typing.SupportsInt | typing.SupportsIndex) -> None: ...
    @property
    def slice_begin(self) -> int: ...
    @slice_begin.setter
    def slice_begin(self, arg0: typing.SupportsInt | typing.SupportsIndex) -> None: ...
    @property
    def slice_end(self) -> int: ...
    @slice_end.setter
    def slice_end(self, arg0: typing.SupportsInt | typing.SupportsIndex) -> None: ...
    @property
    def stats(self) -> list[str]: ...
    @stats.setter
    def stats(self, arg0: collections.abc.Sequence[str]) -> None: ...
    @property
    def volume_slices(self) -> int: ...
    @volume_slices.setter
    def volume_slices(self, arg0: typing.SupportsInt | typing.SupportsIndex) -> None: ...

class TotalsIndex:
    """
    Distinct patch totals (private)
    """
    @property
    def counts(self) -> numpy.typing.NDArray[numpy.float64]: ...
    @property
    def values(self) -> numpy.typing.NDArray[numpy.float64]: ...

class MixtureStats:
    """
    Statistics of one chunk of a mixture E-step (private)
    """
    def __getstate__(self) -> tuple[list[float], list[float], list[float], list[float], float]: ...
    def __setstate__(self, arg0: tuple) -> None: ...

class SSSCStats:
    """
    Sufficient statistics of an SSSC E-step (private)
    """
    def __getstate__(
        self,
    ) -> tuple[
        int,
        int,
        list[float],
        list[float],
        list[float],
        list[float],
        list[float],
        list[float],
        list[float],
        float,
        float,
        tuple[int, int, int, int],
    ]: ...
    def __setstate__(self, arg0: tuple) -> None: ...
    @property
    def B_mm(self) -> numpy.typing.NDArray[numpy.float64]: ...
    @property
    def B_s_sz(self) -> numpy.typing.NDArray[numpy.float64]: ...
    @property
    def B_ss(self) -> numpy.typing.NDArray[numpy.float64]: ...
    @property
    def B_szsz(self) -> numpy.typing.NDArray[numpy.float64]: ...
    @property
    def T_yy(self) -> float: ...
    @property
    def Y_sz(self) -> numpy.typing.NDArray[numpy.float64]: ...
    @property
    def a_s(self) -> numpy.typing.NDArray[numpy.float64]: ...
    @property
    def a_sz(self) -> numpy.typing.NDArray[numpy.float64]: ...
    @property
    def log_joint_sum(self) -> float: ...
    @property
    def n_invalid(self) -> int: ...
    @property
    def n_lpj(self) -> int: ...
    @property
    def n_new_states(self) -> int: ...
    @property
    def n_replaced(self) -> int: ...

def chunk_share_patches(
    kernel: str,
    N: typing.SupportsInt | typing.SupportsIndex,
    part: typing.SupportsInt | typing.SupportsIndex,
    n_parts: typing.SupportsInt | typing.SupportsIndex,
) -> tuple:
    """
    The patches [begin, end) of part `part`'s chunks of an E-step over N patches
    """

def compiler() -> str: ...
def evo_mutate(
    parents: numpy.typing.NDArray[numpy.uint64],
    H: typing.SupportsInt | typing.SupportsIndex,
    mutation: str,
    n_children: typing.SupportsInt | typing.SupportsIndex,
    bitflip_prob: typing.SupportsFloat | typing.SupportsIndex,
    crowdedness: typing.SupportsFloat | typing.SupportsIndex,
    seed: typing.SupportsInt | typing.SupportsIndex,
) -> numpy.typing.NDArray[numpy.uint64]: ...
def evo_select(
    lpj: numpy.typing.NDArray[numpy.float64],
    n_parents: typing.SupportsInt | typing.SupportsIndex,
    selection: str,
    seed: typing.SupportsInt | typing.SupportsIndex,
    item: typing.SupportsInt | typing.SupportsIndex = 0,
) -> numpy.typing.NDArray[numpy.int64]: ...
def extract_patches(
    image: numpy.typing.NDArray[numpy.float64],
    patch_rows: typing.SupportsInt | typing.SupportsIndex,
    patch_cols: typing.SupportsInt | typing.SupportsIndex,
    n_threads: typing.SupportsInt | typing.SupportsIndex,
) -> numpy.typing.NDArray[numpy.float64]:
    """
    All overlapping patches, shape (N, D)
    """

def gather_patches(
    volume: numpy.typing.NDArray[numpy.float64],
    patch: tuple[
        typing.SupportsInt | typing.SupportsIndex,
        typing.SupportsInt | typing.SupportsIndex,
        typing.SupportsInt | typing.SupportsIndex,
    ],
    positions: numpy.typing.NDArray[numpy.int64],
    n_threads: typing.SupportsInt | typing.SupportsIndex,
) -> numpy.typing.NDArray[numpy.float64]:
    """
    The patches at the given global indices, shape (M, D)
    """

def identity_estimate_volume(
    volume: numpy.typing.NDArray[numpy.float64],
    patch: tuple[
        typing.SupportsInt | typing.SupportsIndex,
        typing.SupportsInt | typing.SupportsIndex,
        typing.SupportsInt | typing.SupportsIndex,
    ],
    stream: StreamRequest,
    n_threads: typing.SupportsInt | typing.SupportsIndex,
) -> dict: ...
def index_totals(Y: numpy.typing.NDArray[numpy.float64]) -> TotalsIndex: ...
def kmeans_plusplus(
    Y: numpy.typing.NDArray[numpy.float64],
    C: typing.SupportsInt | typing.SupportsIndex,
    seed: typing.SupportsInt | typing.SupportsIndex,
    n_threads: typing.SupportsInt | typing.SupportsIndex,
    max_candidates: typing.SupportsInt | typing.SupportsIndex = 0,
) -> numpy.typing.NDArray[numpy.int64]: ...
def merge_patches(
    estimates: numpy.typing.NDArray[numpy.float64],
    image_rows: typing.SupportsInt | typing.SupportsIndex,
    image_cols: typing.SupportsInt | typing.SupportsIndex,
    patch_rows: typing.SupportsInt | typing.SupportsIndex,
    patch_cols: typing.SupportsInt | typing.SupportsIndex,
    stats: collections.abc.Sequence[str],
    weights: typing.Any,
    median_kind: str,
    n_threads: typing.SupportsInt | typing.SupportsIndex,
) -> dict:
    """
    Per-pixel statistics of per-patch estimates
    """

def merge_volume(
    estimates: numpy.typing.NDArray[numpy.float64],
    shape: tuple[
        typing.SupportsInt | typing.SupportsIndex,
        typing.SupportsInt | typing.SupportsIndex,
        typing.SupportsInt | typing.SupportsIndex,
    ],
    patch: tuple[
        typing.SupportsInt | typing.SupportsIndex,
        typing.SupportsInt | typing.SupportsIndex,
        typing.SupportsInt | typing.SupportsIndex,
    ],
    stats: collections.abc.Sequence[str],
    variances: typing.Any,
    median_kind: str,
    n_threads: typing.SupportsInt | typing.SupportsIndex,
) -> dict:
    """
    Per-voxel statistics of per-patch estimates of a volume
    """

def mixture_estep(
    Y: numpy.typing.NDArray[numpy.float64],
    model: MixtureModel,
    log_factorials: numpy.typing.NDArray[numpy.float64],
    totals: TotalsIndex,
    want_hist: bool,
    n_threads: typing.SupportsInt | typing.SupportsIndex,
    share: typing.Any = None,
) -> typing.Any:
    """
    Exact E-step; with share=(part, n_parts) the per-chunk statistics of that part only
    """

def mixture_estimate(
    Y: numpy.typing.NDArray[numpy.float64],
    model: MixtureModel,
    want_variance: bool,
    n_threads: typing.SupportsInt | typing.SupportsIndex,
) -> tuple: ...
def mixture_estimate_volume(
    volume: numpy.typing.NDArray[numpy.float64],
    patch: tuple[
        typing.SupportsInt | typing.SupportsIndex,
        typing.SupportsInt | typing.SupportsIndex,
        typing.SupportsInt | typing.SupportsIndex,
    ],
    model: MixtureModel,
    offset: typing.SupportsFloat | typing.SupportsIndex,
    gain: typing.SupportsFloat | typing.SupportsIndex,
    stream: StreamRequest,
    n_threads: typing.SupportsInt | typing.SupportsIndex,
) -> dict: ...
def mixture_responsibilities(
    Y: numpy.typing.NDArray[numpy.float64],
    model: MixtureModel,
    n_threads: typing.SupportsInt | typing.SupportsIndex,
) -> numpy.typing.NDArray[numpy.float64]: ...
def omp_max_threads() -> int:
    """
    OpenMP's default thread count (honours OMP_NUM_THREADS); 1 without OpenMP
    """

def solve_alpha(
    values: numpy.typing.NDArray[numpy.float64],
    weights: numpy.typing.NDArray[numpy.float64],
    R: numpy.typing.NDArray[numpy.float64],
    T: numpy.typing.NDArray[numpy.float64],
    alpha_min: typing.SupportsFloat | typing.SupportsIndex,
    alpha_max: typing.SupportsFloat | typing.SupportsIndex,
) -> tuple: ...
def sssc_estep(
    Y: numpy.typing.NDArray[numpy.float64],
    model: SSSCModel,
    K: numpy.typing.NDArray[numpy.uint64],
    search: SearchOptions,
    request: EStepRequest,
    n_threads: typing.SupportsInt | typing.SupportsIndex,
    share: typing.Any = None,
) -> dict:
    """
    Truncated E-step (optionally with the evolutionary search) over patches Y (N, D); K (N, S, words) is updated in place. Returns a dict with 'stats' (or 'chunk_stats' with share=(part, n_parts)) and the requested 'estimates', 'variance', 'lpj'
    """

def sssc_estimate_volume(
    volume: numpy.typing.NDArray[numpy.float64],
    patch: tuple[
        typing.SupportsInt | typing.SupportsIndex,
        typing.SupportsInt | typing.SupportsIndex,
        typing.SupportsInt | typing.SupportsIndex,
    ],
    model: SSSCModel,
    train_states: numpy.typing.NDArray[numpy.uint64],
    train_positions: numpy.typing.NDArray[numpy.int64],
    search: SearchOptions,
    plan: VolumeSearch,
    stream: StreamRequest,
    n_threads: typing.SupportsInt | typing.SupportsIndex,
) -> dict:
    """
    Streamed estimate and merge of every patch of a (Z, R, Q) volume with SSSC
    """

def sssc_init_states(
    N: typing.SupportsInt | typing.SupportsIndex,
    S: typing.SupportsInt | typing.SupportsIndex,
    H: typing.SupportsInt | typing.SupportsIndex,
    p_init: typing.SupportsFloat | typing.SupportsIndex,
    seed: typing.SupportsInt | typing.SupportsIndex,
    n_threads: typing.SupportsInt | typing.SupportsIndex,
) -> numpy.typing.NDArray[numpy.uint64]: ...
def sssc_log_joint(
    Y: numpy.typing.NDArray[numpy.float64],
    model: SSSCModel,
    states: numpy.typing.NDArray[numpy.uint64],
    n_threads: typing.SupportsInt | typing.SupportsIndex,
) -> numpy.typing.NDArray[numpy.float64]: ...
def sssc_mstep(
    stats: SSSCStats, N: typing.SupportsInt | typing.SupportsIndex, model: SSSCModel, exact: bool
) -> dict: ...
def stream_plan(
    shape: tuple[
        typing.SupportsInt | typing.SupportsIndex,
        typing.SupportsInt | typing.SupportsIndex,
        typing.SupportsInt | typing.SupportsIndex,
    ],
    patch: tuple[
        typing.SupportsInt | typing.SupportsIndex,
        typing.SupportsInt | typing.SupportsIndex,
        typing.SupportsInt | typing.SupportsIndex,
    ],
    want_variances: bool,
    want_median: bool,
    merge: str,
    n_threads: typing.SupportsInt | typing.SupportsIndex,
) -> dict:
    """
    Bands, wave and buffer sizes of the streamed estimation (for memory estimates)
    """

def sum_log_factorials(
    Y: numpy.typing.NDArray[numpy.float64], n_threads: typing.SupportsInt | typing.SupportsIndex
) -> numpy.typing.NDArray[numpy.float64]: ...
def sum_mixture_stats(
    partials: collections.abc.Sequence[MixtureStats],
    C: typing.SupportsInt | typing.SupportsIndex,
    D: typing.SupportsInt | typing.SupportsIndex,
    K: typing.SupportsInt | typing.SupportsIndex,
) -> dict:
    """
    Sums per-chunk statistics in chunk order (the same sums as mixture_estep)
    """

def sum_sssc_stats(
    partials: collections.abc.Sequence[SSSCStats],
    H: typing.SupportsInt | typing.SupportsIndex,
    D: typing.SupportsInt | typing.SupportsIndex,
) -> SSSCStats:
    """
    Sums per-chunk statistics in chunk order (the same sums as sssc_estep)
    """

__version__: str = "0.1.0"
has_openmp: bool = True
