"""Example data generated at run time (no files, no network, no licence questions)."""

from __future__ import annotations

import numpy as np

__all__ = ["psnr", "synthetic_tem"]


def synthetic_tem(shape=(192, 192), *, dose=20.0, seed=0):
    """A synthetic TEM-like scene of virus particles at a cell surface, with shot noise.

    The clean scene is a transmission map in (0, 1]: a smooth cytoplasm background, a dark
    membrane band, and round virions (a dense envelope ring, a granular interior and surface
    spikes), all of which absorb electrons. The noisy image is Poisson-sampled counts at ``dose``
    electrons per pixel.

    Parameters
    ----------
    shape : (int, int)
        Image size in pixels.
    dose : float
        Mean electrons per pixel where nothing absorbs.
    seed : int
        Seed of the scene layout and the noise.

    Returns
    -------
    noisy : ndarray of float64, shape ``shape``
        Electron counts.
    clean : ndarray of float64, shape ``shape``
        The expected counts (``dose * transmission``), the noise-free reference.

    Examples
    --------
    >>> import zse
    >>> noisy, clean = zse.synthetic_tem((64, 64), dose=5.0, seed=1)
    >>> noisy.shape, bool((noisy == noisy.round()).all()), round(zse.psnr(clean, noisy), 1)
    ((64, 64), True, 4.4)
    """
    rng = np.random.default_rng(seed)
    rows, cols = shape
    y, x = np.mgrid[0:rows, 0:cols].astype(np.float64)
    transmission = 0.85 + 0.08 * np.sin(2 * np.pi * x / (1.7 * cols)) * np.cos(
        2 * np.pi * y / (2.3 * rows)
    )
    # Cell membrane: a gently curved dark band across the field.
    membrane_row = 0.72 * rows + 0.08 * rows * np.sin(2 * np.pi * x / cols)
    transmission -= 0.25 * np.exp(-0.5 * ((y - membrane_row) / 2.0) ** 2)
    transmission[y > membrane_row + 3] -= 0.12  # denser cytoplasm below the membrane

    n_virions = max(3, int(rows * cols / 4500))
    radius_mean = max(6.0, min(rows, cols) / 14)
    placed: list[tuple[float, float, float]] = []
    for _ in range(50 * n_virions):  # rejection sampling: virions touch at most
        if len(placed) == n_virions:
            break
        r = radius_mean * rng.uniform(0.85, 1.15)
        cy = rng.uniform(r + 4, max(r + 5, 0.72 * rows - r - 2))
        cx = rng.uniform(r + 4, max(r + 5, cols - r - 4))
        if any(np.hypot(cy - py, cx - px) < r + pr + 4 for py, px, pr in placed):
            continue
        placed.append((cy, cx, r))

    def window(cy, cx, half):
        """Slice of the pixels within ``half`` of (cy, cx): each feature is drawn only where it is
        not negligible (Gaussians cut beyond about 7 widths, below 1e-9), so the cost does not
        grow with the image area times the number of features."""
        r0, r1 = max(0, int(cy - half)), min(rows, int(cy + half) + 2)
        c0, c1 = max(0, int(cx - half)), min(cols, int(cx + half) + 2)
        return np.s_[r0:r1, c0:c1]

    for cy, cx, r in placed:
        box = window(cy, cx, r + 10)
        dist = np.hypot(y[box] - cy, x[box] - cx)
        view = transmission[box]
        view -= 0.30 * np.exp(-0.5 * ((dist - r) / 1.3) ** 2)  # envelope
        view[dist < r - 1.5] -= 0.10
        for _ in range(int(r * 1.2)):  # ribonucleoprotein granules
            gy, gx = cy + rng.uniform(-0.7, 0.7) * r, cx + rng.uniform(-0.7, 0.7) * r
            if np.hypot(gy - cy, gx - cx) < r - 2.5:
                g = window(gy, gx, 8)
                transmission[g] -= 0.18 * np.exp(-0.5 * (np.hypot(y[g] - gy, x[g] - gx) / 1.1) ** 2)
        for angle in rng.uniform(0, 2 * np.pi, size=int(r * 1.5)):  # spikes
            sy, sx = cy + (r + 2.5) * np.sin(angle), cx + (r + 2.5) * np.cos(angle)
            g = window(sy, sx, 7)
            transmission[g] -= 0.15 * np.exp(-0.5 * (np.hypot(y[g] - sy, x[g] - sx) / 1.0) ** 2)

    transmission = np.clip(transmission, 0.05, 1.0)
    clean = dose * transmission
    noisy = rng.poisson(clean).astype(np.float64)
    return noisy, clean


def psnr(reference, estimate, data_range=None) -> float:
    """Peak signal-to-noise ratio in dB (``data_range`` defaults to the reference's range)."""
    reference = np.asarray(reference, dtype=np.float64)
    estimate = np.asarray(estimate, dtype=np.float64)
    if reference.shape != estimate.shape:
        msg = f"shapes differ: {reference.shape} vs {estimate.shape}"
        raise ValueError(msg)
    if data_range is None:
        data_range = float(reference.max() - reference.min())
    mse = float(np.mean((reference - estimate) ** 2))
    return float("inf") if mse == 0 else float(10.0 * np.log10(data_range**2 / mse))
