"""Stationary (coloured) noise over a patch: its covariance, learned from the image itself.

Real EM noise is correlated: a detector's MTF, interpolation, binning and a tomogram's filtered
back-projection correlate neighbouring pixels. A stationary noise has a covariance that depends
only on the offset between two pixels, Sigma_ij = c(p_j - p_i) (its autocovariance c, whose
Fourier transform is the noise power spectrum). SSSC with ``noise="correlated"`` models
y = b + W (s * z) + eps with eps ~ N(0, sigma2 C), C = c / c(0) a correlation of this form, and
runs its E-step on whitened patches L^-1 y (C = L L^T; ALGORITHM.md §3.14).

This module holds the pieces that do not depend on the model: the offsets of a patch's pixel
pairs, the projection of a D x D matrix onto stationary covariances (averaging over equal
offsets), a positive-definite stationary covariance from an autocovariance (its power spectrum
clipped at a floor), and the blind first estimate from the flattest patches of the image.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property

import numpy as np

__all__ = [
    "Anscombe",
    "StationaryNoise",
    "anscombe_for",
    "covariance",
    "flattest_patches_acf",
    "neighbour_correlations",
    "noise_level_function",
    "patch_extent",
    "positive_definite",
    "stationary_part",
]

# Offsets (in pixels along each axis) beyond which the first estimate and every M-step set the
# autocovariance to zero: the correlations of detectors, interpolation and binning reach a few
# pixels, while a smooth signal correlates over the whole patch (identifiability, §3.14).
DEFAULT_SUPPORT = 3
# The power spectrum is kept above this fraction of its maximum (positive definiteness).
PSD_FLOOR = 1e-3
# The first estimate uses this fraction of the training patches, the flattest ones.
FLAT_FRACTION = 0.1
MIN_FLAT_PATCHES = 256
FLAT_ROUNDS = 4
DETREND = 1  # the constant only: a slope removed too hides more of a strongly correlated noise
# noise="auto" takes the coloured model when the first estimate's correlation between
# neighbours (any axis) is at least this. Measured first estimates (bench/README.md, "Coloured
# and signal-dependent noise"): white noise on Set12 0.00-0.07; the real ssTEM slices of the
# Poisson table, whose flattest patches hold their own fine texture, 0.13-0.35; real EM noise
# 0.63-0.89. Between 0.1 and 0.4 a coloured noise is taken for white (a loss there: house with
# lag-1 0.39 noise reads 0.41, just above) rather than texture for noise.
AUTO_MIN_CORRELATION = 0.4


def patch_extent(shape) -> tuple:
    """The patch's extents along its axes of more than one pixel ((1, 8, 8) -> (8, 8))."""
    extent = tuple(int(n) for n in shape if int(n) > 1)
    return extent or (1,)


def pixel_coordinates(extent) -> np.ndarray:
    """(D, ndim) coordinates of a patch's pixels in row-major order."""
    grids = np.meshgrid(*[np.arange(n) for n in extent], indexing="ij")
    return np.stack([g.ravel() for g in grids], axis=1)


def offset_index(extent) -> np.ndarray:
    """(D, D) index of the offset p_j - p_i of every pixel pair on the flattened grid of
    offsets, whose shape is (2 n - 1 for n in extent) and whose centre is offset 0."""
    coords = pixel_coordinates(extent)
    delta = coords[None, :, :] - coords[:, None, :] + (np.asarray(extent) - 1)
    return np.ravel_multi_index(tuple(np.moveaxis(delta, -1, 0)), [2 * n - 1 for n in extent])


def offset_grid(extent) -> np.ndarray:
    """The offsets of the autocovariance grid, (2 n - 1, ..., ndim)."""
    axes = [np.arange(-(n - 1), n) for n in extent]
    return np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1)


def support_mask(extent, support: int) -> np.ndarray:
    """True on the autocovariance grid where every axis's offset is at most ``support``."""
    return np.all(np.abs(offset_grid(extent)) <= support, axis=-1)


def stationary_part(S: np.ndarray, extent) -> np.ndarray:
    """The autocovariance that is closest to the D x D matrix ``S`` among stationary ones:
    the mean of S over the pixel pairs of each offset, symmetric (c(-d) = c(d))."""
    index = offset_index(extent)
    size = int(np.prod([2 * n - 1 for n in extent]))
    weights = np.asarray(S, dtype=np.float64).ravel()
    sums = np.bincount(index.ravel(), weights=weights, minlength=size)
    counts = np.bincount(index.ravel(), minlength=size)
    grid = (sums / np.maximum(counts, 1)).reshape([2 * n - 1 for n in extent])
    return 0.5 * (grid + np.flip(grid))


def positive_definite(acf: np.ndarray, extent, floor: float = PSD_FLOOR) -> tuple:
    """An autocovariance on the same grid whose power spectrum (on a periodic grid four times
    the patch) is at least ``floor`` times its maximum, and that spectrum: every covariance
    matrix built from it is positive definite."""
    torus = [max(1, int(2 ** np.ceil(np.log2(4 * n)))) if n > 1 else 1 for n in extent]
    embedded = np.zeros(torus)
    centre = [n - 1 for n in extent]
    for index in np.ndindex(*acf.shape):
        position = tuple((i - c) % t for i, c, t in zip(index, centre, torus))
        embedded[position] += acf[index]
    psd = np.real(np.fft.fftn(embedded))
    psd = np.maximum(psd, floor * max(float(psd.max()), np.finfo(np.float64).tiny))
    periodic = np.real(np.fft.ifftn(psd))
    out = np.empty_like(acf)
    for index in np.ndindex(*acf.shape):
        out[index] = periodic[tuple((i - c) % t for i, c, t in zip(index, centre, torus))]
    return 0.5 * (out + np.flip(out)), psd


def covariance(acf: np.ndarray, extent) -> np.ndarray:
    """The D x D covariance of a stationary noise with autocovariance ``acf``."""
    return np.ascontiguousarray(acf.ravel()[offset_index(extent)])


def neighbour_correlations(acf: np.ndarray, extent) -> list:
    """c(offset 1 along each axis) / c(0), the correlation of neighbouring pixels."""
    centre = tuple(n - 1 for n in extent)
    values = []
    for axis, n in enumerate(extent):
        if n < 2:
            continue
        one = list(centre)
        one[axis] += 1
        values.append(float(acf[tuple(one)] / acf[centre]))
    return values


def flattest_patches_acf(
    Y: np.ndarray, extent, support: int = DEFAULT_SUPPORT, fraction: float = FLAT_FRACTION
) -> np.ndarray:
    """A first, blind estimate of the noise's autocovariance from the patches ``Y`` (N, D).

    Each patch loses its best-fitting plane (a constant and a slope along each axis, which a
    smooth signal is locally); the flattest FLAT_FRACTION of them (least residual energy) are
    taken as noise. Their residual covariance is E = Q Sigma Q for the projector Q that removes
    planes, linear in the autocovariance on the support: solved by least squares, so that the
    plane removal does not bias the estimate. Selecting the flattest patches underestimates the
    noise's scale; the model learns that (sigma2) and this gives the shape.
    """
    Y = np.asarray(Y, dtype=np.float64)
    coords = pixel_coordinates(extent).astype(np.float64)
    design = np.column_stack([np.ones(len(coords)), coords - coords.mean(axis=0)])[:, :DETREND]
    Q = np.eye(len(coords)) - design @ np.linalg.pinv(design)
    residual = Y @ Q
    count = min(len(Y), max(MIN_FLAT_PATCHES, int(fraction * len(Y))))
    index = offset_index(extent)
    mask = support_mask(extent, support).ravel()
    grid_size = mask.size
    canonical = np.minimum(np.arange(grid_size), grid_size - 1 - np.arange(grid_size))
    unknowns = np.unique(canonical[mask])
    basis = np.column_stack(
        [(Q @ (canonical[index] == u).astype(np.float64) @ Q).ravel() for u in unknowns]
    )
    # Selecting the flattest patches by their plain energy favours noise that looks white (the
    # directions of large noise variance are the ones a low energy leaves out): the estimate
    # comes out less correlated than the noise. Selected by the energy whitened with the current
    # estimate instead, the selection treats every direction of the noise alike, and the
    # estimate's shape is unbiased at the fixed point; a few rounds reach it.
    metric = Q
    for _ in range(FLAT_ROUNDS):
        energy = np.sum((residual @ metric) * residual, axis=1)  # no N x D x D temporary
        flat = np.sort(np.argsort(energy, kind="stable")[:count])
        E = residual[flat].T @ residual[flat] / count
        values = np.linalg.lstsq(basis, E.ravel(), rcond=None)[0]
        flat_acf = np.zeros(grid_size)
        for u, value in zip(unknowns, values):
            flat_acf[canonical == u] = value
        shaped, _ = positive_definite(flat_acf.reshape([2 * n - 1 for n in extent]), extent)
        metric = np.linalg.pinv(Q @ covariance(shaped, extent) @ Q, hermitian=True)
    # Selected by whitened energy, Gaussian noise keeps its shape but loses scale: a spherical
    # Gaussian cut at the f-quantile of its squared radius (chi-square with k = D - ndim - 1
    # degrees of freedom, the rank of Q) keeps E[chi2 | chi2 <= q_f] / k of its variance.
    k = int(round(np.trace(Q)))
    fraction_kept = count / len(Y)
    flat_acf /= truncated_chi2_mean(k, fraction_kept) / k
    return flat_acf.reshape([2 * n - 1 for n in extent])


def _chi2_cdf(k: int, x: float) -> float:
    """P(chi2_k <= x): the regularised lower incomplete gamma P(k/2, x/2) by its series."""
    a, h = 0.5 * k, 0.5 * x
    if h <= 0:
        return 0.0
    term = total = 1.0 / a
    n = 1
    while term > 1e-17 * total and n < 10000:
        term *= h / (a + n)
        total += term
        n += 1
    return float(np.exp(a * np.log(h) - h - math.lgamma(a)) * total)


def truncated_chi2_mean(k: int, fraction: float) -> float:
    """E[X | X <= q] for X ~ chi2_k and q its ``fraction`` quantile (k P_{k+2}(q) / P_k(q))."""
    if fraction >= 1.0:
        return float(k)
    low, high = 0.0, float(k + 50 * np.sqrt(2 * k) + 50)
    for _ in range(200):  # the quantile by bisection
        mid = 0.5 * (low + high)
        low, high = (mid, high) if _chi2_cdf(k, mid) < fraction else (low, mid)
    q = 0.5 * (low + high)
    return k * _chi2_cdf(k + 2, q) / _chi2_cdf(k, q)


@dataclass
class StationaryNoise:
    """A stationary noise correlation over one patch shape (unit variance: C = acf / acf(0)),
    with its Cholesky factor L (C = L L^T) and log det L."""

    extent: tuple
    correlation: np.ndarray  # the autocorrelation on the offset grid, 1 at offset 0
    psd: np.ndarray  # its power spectrum on the periodic grid (relative units)
    variance: float = 1.0  # the noise's variance c(0) where it was estimated

    @classmethod
    def from_acf(cls, acf: np.ndarray, extent, support: int) -> StationaryNoise:
        kept = np.where(support_mask(extent, support), acf, 0.0)
        centre = tuple(n - 1 for n in extent)
        if not kept[centre] > 0:
            msg = "the noise's estimated variance is not positive"
            raise ValueError(msg)
        variance = float(kept[centre])
        kept = kept / variance
        clipped, psd = positive_definite(kept, extent)
        scale = float(clipped[centre])
        return cls(tuple(extent), clipped / scale, psd / scale, variance * scale)

    @cached_property
    def C(self) -> np.ndarray:
        return covariance(self.correlation, self.extent)

    @cached_property
    def L(self) -> np.ndarray:
        return np.ascontiguousarray(np.linalg.cholesky(self.C))

    @property
    def log_det_L(self) -> float:
        return float(np.sum(np.log(np.diag(self.L))))

    def whiten(self, Y: np.ndarray, out=None) -> np.ndarray:
        """L^-1 y for every row y of Y (in place into ``out`` when given)."""
        white = np.linalg.solve(self.L, np.asarray(Y).T).T
        if out is None:
            return np.ascontiguousarray(white)
        out[...] = white
        return out

    def neighbour_correlations(self) -> list:
        return neighbour_correlations(self.correlation, self.extent)

    def restored(self, correlation: np.ndarray, variance: float) -> StationaryNoise:
        """The same kind of noise with a stored autocorrelation grid and variance (a
        checkpoint's): C is rebuilt from them bit for bit."""
        if correlation.shape != self.correlation.shape:
            msg = "the checkpoint's noise correlation does not match the patch shape"
            raise ValueError(msg)
        _, psd = positive_definite(correlation, self.extent)
        return StationaryNoise(self.extent, np.array(correlation), psd, float(variance))


# -- signal-dependent noise: the noise-level function and the generalized Anscombe transform --
# noise="auto" transforms the data when the noise variance grows with the brightness by at
# least this factor between the 10th and the 90th percentile of the patches' means, and the
# slope is at least this many standard errors away from zero.
AUTO_MIN_VARIANCE_RATIO = 1.5
AUTO_MIN_SLOPE_ERRORS = 3.0


@dataclass
class Anscombe:
    """The generalized Anscombe transform of data whose noise variance is
    alpha (x - offset) + alpha^2 s2 (Poisson counts scaled by alpha above an offset, plus
    Gaussian noise of variance alpha^2 s2): f(x) = 2 sqrt((x - offset) / alpha + 3/8 + s2)
    has noise of about unit variance whatever the brightness (ALGORITHM.md §3.15)."""

    alpha: float
    offset: float
    s2: float

    @property
    def parameters(self) -> np.ndarray:
        return np.array([self.alpha, self.offset, self.s2], dtype=np.float64)

    def forward(self, x):
        return 2.0 * np.sqrt(
            np.maximum((np.asarray(x) - self.offset) / self.alpha + 0.375 + self.s2, 0.0)
        )

    def inverse(self, D):
        """The closed-form unbiased inverse (Mäkitalo & Foi, IEEE TIP 2013) of denoised values
        D (the algebraic inverse below D = 1), never below ``offset``; as the C++
        anscombe_inverse."""
        D = np.asarray(D, dtype=np.float64)
        r = np.sqrt(1.5)
        safe = np.maximum(D, 1.0)
        exact = 0.25 * safe**2 + 0.25 * r / safe - 1.375 / safe**2 + 0.625 * r / safe**3 - 0.125
        algebraic = 0.25 * D**2 - 0.375
        z = np.where(D >= 1.0, exact, algebraic) - self.s2
        return self.alpha * np.maximum(z, 0.0) + self.offset

    def sample_inverse(self, D):
        """The algebraic inverse (x whose transform is D): for samples, not for estimates."""
        z = 0.25 * np.asarray(D, dtype=np.float64) ** 2 - 0.375 - self.s2
        return self.alpha * z + self.offset

    def inverse_slope(self, D):
        """dx/dD of the inverse (the algebraic inverse's alpha D / 2), for variances."""
        return self.alpha * 0.5 * np.asarray(D, dtype=np.float64)

    def log_slope(self, x):
        """log f'(x) per value: a density of f(x) plus the sum of these is one of x."""
        z = np.maximum((np.asarray(x) - self.offset) / self.alpha + 0.375 + self.s2, 1e-12)
        return -np.log(self.alpha) - 0.5 * np.log(z)


def noise_level_function(Y: np.ndarray, patch_shape) -> dict:
    """The noise variance against the brightness, from patches (N, D) of the given shape.

    Per patch: its mean and the variance of each inner pixel's residual against the mean of its
    four in-plane neighbours (divided by 1.25, the factor of white noise; a correlated noise
    shrinks it alike at every brightness, which changes the line's scale, not its shape). The
    patches are grouped into eight by brightness and a line variance = slope * mean + intercept
    is fitted through the groups' medians.
    """
    from ._scaling import data_scaling
    from .counts import _line

    shape = tuple(int(n) for n in patch_shape)
    # The line is fitted in standardised units (no square of the data's scale can leave
    # float64's range) and its parameters are mapped back without squaring it.
    offset, scale = data_scaling(Y)
    cube = ((np.asarray(Y, dtype=np.float64) - offset) / scale).reshape(
        len(Y), -1, shape[-2], shape[-1]
    )
    if shape[-2] < 3 or shape[-1] < 3:
        return {"measurable": False, "reason": "patches narrower than 3 pixels"}
    inner = cube[:, :, 1:-1, 1:-1]
    around = 0.25 * (
        cube[:, :, :-2, 1:-1] + cube[:, :, 2:, 1:-1] + cube[:, :, 1:-1, :-2] + cube[:, :, 1:-1, 2:]
    )
    variance = np.mean((inner - around) ** 2, axis=(1, 2, 3)) / 1.25
    means = cube.mean(axis=(1, 2, 3))
    edges = np.quantile(means, np.linspace(0, 1, 9))
    group = np.clip(np.searchsorted(edges, means, side="right") - 1, 0, 7)
    centres = np.array([np.median(means[group == g]) for g in range(8) if np.any(group == g)])
    levels = np.array([np.median(variance[group == g]) for g in range(8) if np.any(group == g)])
    slope, intercept, error = _line(centres, levels)
    low, high = np.quantile(means, [0.1, 0.9])
    at_low, at_high = slope * low + intercept, slope * high + intercept
    with np.errstate(over="ignore"):  # display only: the groups in the data's units
        groups = {
            "brightness": [float(offset + scale * c) for c in centres],
            "variance": [float(scale * scale * v) for v in levels],
        }
    return {
        "measurable": bool(np.isfinite(slope)),
        "slope": float(slope),  # in standardised units: (x - data_offset) / data_scale
        "intercept": float(intercept),
        "slope_error": float(error),
        "variance_ratio": float(at_high / at_low) if at_low > 0 else float("inf"),
        "data_offset": float(offset),
        "data_scale": float(scale),
        "brightness_low": float(offset + scale * low),  # 10th and 90th percentile, data units
        "brightness_high": float(offset + scale * high),
        "groups": groups,
    }


def anscombe_for(level: dict, Y: np.ndarray) -> Anscombe | None:
    """The transform of a noise-level function (None where it is not signal-dependent, or the
    data reach far below the offset where their variance would vanish)."""
    slope, intercept = level["slope"], level["intercept"]
    if not (level["measurable"] and slope > 0):
        return None
    # In standardised units alpha' = slope and offset' = -intercept / slope where the
    # intercept is negative; x = data_offset + data_scale x' maps both back (s2 is unitless).
    offset = 0.0 if intercept >= 0 else -intercept / slope
    transform = Anscombe(
        float(level["data_scale"] * slope),
        float(level["data_offset"] + level["data_scale"] * offset),
        max(float(intercept), 0.0) / slope**2,
    )
    below = np.mean((np.asarray(Y) - transform.offset) / transform.alpha + 0.375 + transform.s2 < 0)
    return transform if below <= 0.01 else None
