"""Are these electron counts? The evidence behind ``--model auto``.

Integers alone are not evidence: most published TEM images are 8- or 16-bit display images whose
noise is not Poisson in those units. Counts are non-negative integers whose noise variance
*equals* their local mean: across regions of different brightness the variance follows the mean
with slope 1 (shot noise), where display images show a variance that does not follow the mean
(Gaussian noise) or follows it with another factor (a gain).

The noise variance of each 16 x 16 block (8 x 8 in small images) is measured from the residual
of every pixel against the
mean of its four neighbours (r = x - mean(neighbours); var r = 1.25 sigma^2 for independent
noise), which smooth structure hardly disturbs; blocks are grouped by their mean brightness, and a
line variance = slope * mean + intercept is fitted through the groups' medians.
"""

from __future__ import annotations

import numpy as np

__all__ = ["bin_image", "count_evidence", "count_test_sections"]

BLOCK = 16
# Accepted as shot noise: the median ratio variance / mean is about 1, and the slope of variance
# against mean is not measurably away from 1: |slope - 1| <= max(SLOPE_TOLERANCE, 3 standard
# errors). Where the brightness hardly varies (large errors) the ratio decides alone. The
# tolerance leaves out gains of 0.6 or less and 1.6 or more (variance = mean / gain) and Gaussian
# noise (slope about 0); structure left in small blocks moves the slope of true counts by up to
# about 0.5 in 96 x 96 test scenes.
RATIO_RANGE = (0.7, 1.5)
SLOPE_TOLERANCE = 0.6
# Sections of a stack or volume the test looks at: all of them up to this many, else this many
# spread evenly over the whole.
TEST_SECTIONS = 16


def count_test_sections(n_sections: int) -> list[int]:
    """The sections (slices) of a stack or volume of ``n_sections`` that ``--model auto``
    tests for counts: all of them up to 16, else 16 spread evenly from the first to the last.

    Both the whole-volume path and the slab path read exactly these, so they decide alike.
    """
    n_sections = int(n_sections)
    if n_sections <= TEST_SECTIONS:
        return list(range(n_sections))
    spread = np.round(np.linspace(0, n_sections - 1, TEST_SECTIONS)).astype(np.int64)
    return [int(z) for z in np.unique(spread)]


def count_evidence(image, *, gain: float = 1.0, offset: float = 0.0) -> dict:
    """Decide whether ``(image - offset) * gain`` holds electron counts.

    Parameters
    ----------
    image : array_like, 2-D or 3-D (sections)
    gain, offset : float
        The conversion of grey values into counts (as the Poisson models use it).

    Returns
    -------
    dict
        ``counts`` (bool), ``reason`` (one sentence), and the measured evidence: ``integer``,
        ``non_negative``, ``ratio`` (median noise variance / mean), ``slope`` (with its
        standard error ``slope_error``) and ``intercept`` of variance against mean,
        ``n_blocks``.
    """
    values = (np.asarray(image, dtype=np.float64) - float(offset)) * float(gain)
    sections = values if values.ndim == 3 else values[None]
    evidence = {
        "gain": float(gain),
        "offset": float(offset),
        "non_negative": bool(np.all(values >= 0)),
        "integer": bool(np.all(np.abs(values - np.round(values)) < 1e-6)),
    }
    means, variances = [], []
    # 16 x 16 blocks, or 8 x 8 where that leaves fewer than 16 blocks (small images).
    block = BLOCK if sum(_n_blocks(s.shape, BLOCK) for s in sections) >= 16 else BLOCK // 2
    for section in sections:
        m, v = _block_noise(section, block)
        means.append(m)
        variances.append(v)
    means, variances = np.concatenate(means), np.concatenate(variances)
    keep = means > 0
    means, variances = means[keep], variances[keep]
    evidence["n_blocks"] = int(len(means))
    if len(means) < 4:
        evidence.update(
            counts=False,
            reason="the image is too small to measure its noise "
            f"(fewer than 4 blocks of {block}x{block} pixels with a positive mean)",
        )
        return evidence
    ratio = float(np.median(variances / means))
    n_groups = int(min(8, max(2, len(means) // 8)))
    edges = np.quantile(means, np.linspace(0, 1, n_groups + 1))
    group = np.clip(np.searchsorted(edges, means, side="right") - 1, 0, n_groups - 1)
    centres = np.array(
        [np.median(means[group == g]) for g in range(n_groups) if np.any(group == g)]
    )
    noise = np.array(
        [np.median(variances[group == g]) for g in range(n_groups) if np.any(group == g)]
    )
    slope, intercept, slope_error = _line(centres, noise)
    evidence.update(
        ratio=round(ratio, 4),
        slope=round(slope, 4),
        slope_error=round(slope_error, 4),
        intercept=round(intercept, 4),
    )
    measurable = slope_error * 3 < SLOPE_TOLERANCE
    if not evidence["non_negative"]:
        reason = "some values are negative"
    elif not evidence["integer"]:
        reason = "the values are not integers"
    elif not RATIO_RANGE[0] <= ratio <= RATIO_RANGE[1]:
        reason = f"the noise variance is {ratio:.2f} x the mean, not about 1 x (shot noise)"
    elif abs(slope - 1.0) > max(SLOPE_TOLERANCE, 3 * slope_error):
        reason = (
            f"the noise variance does not follow the brightness as shot noise does "
            f"(slope {slope:.2f} +- {slope_error:.2f} instead of 1)"
        )
    else:
        how = (
            f"and follows the brightness with slope {slope:.2f} +- {slope_error:.2f}"
            if measurable
            else "(the brightness varies too little to measure how the "
            "variance follows it; --no-counts overrides)"
        )
        evidence.update(
            counts=True,
            reason=(f"non-negative integers whose noise variance is {ratio:.2f} x the mean {how}"),
        )
        return evidence
    evidence.update(counts=False, reason=reason)
    return evidence


def _line(x: np.ndarray, y: np.ndarray) -> tuple[float, float, float]:
    """Least-squares line y = slope x + intercept and the slope's standard error (inf when it
    cannot be measured)."""
    if len(x) < 3 or np.ptp(x) == 0:
        return float("nan"), float("nan"), float("inf")
    slope, intercept = np.polyfit(x, y, 1)
    residual = y - (slope * x + intercept)
    error = np.sqrt(np.sum(residual**2) / (len(x) - 2) / np.sum((x - x.mean()) ** 2))
    return float(slope), float(intercept), float(error)


def _n_blocks(shape, block: int) -> int:
    return max(0, (shape[0] - 2) // block) * max(0, (shape[1] - 2) // block)


def _block_noise(image: np.ndarray, block: int = BLOCK):
    """Per block: mean and noise variance (four-neighbour residual / 1.25)."""
    rows, cols = image.shape
    if rows < 3 or cols < 3:
        return np.zeros(0), np.zeros(0)
    inner = image[1:-1, 1:-1]
    neighbours = 0.25 * (image[:-2, 1:-1] + image[2:, 1:-1] + image[1:-1, :-2] + image[1:-1, 2:])
    residual2 = (inner - neighbours) ** 2 / 1.25
    br, bc = inner.shape[0] // block, inner.shape[1] // block
    if br == 0 or bc == 0:
        return np.zeros(0), np.zeros(0)

    def blocks(a):
        return a[: br * block, : bc * block].reshape(br, block, bc, block).mean(axis=(1, 3)).ravel()

    return blocks(inner), blocks(residual2)


def bin_image(image: np.ndarray, factor: int) -> tuple[np.ndarray, tuple[int, int]]:
    """Average ``factor`` x ``factor`` blocks (IMOD's binning) of a 2-D image or of every
    section of a 3-D stack; the rows and columns beyond the last whole block are cropped.

    Returns the binned image and the number of (rows, columns) cropped.
    """
    image = np.asarray(image, dtype=np.float64)
    rows, cols = image.shape[-2:]
    out_r, out_c = rows // factor, cols // factor
    if out_r < 1 or out_c < 1:
        msg = f"--bin {factor} leaves no pixel of a {rows} x {cols} image"
        raise ValueError(msg)
    cropped = image[..., : out_r * factor, : out_c * factor]
    shape = (*image.shape[:-2], out_r, factor, out_c, factor)
    binned = cropped.reshape(shape).mean(axis=(-3, -1))
    return binned, (rows - out_r * factor, cols - out_c * factor)
