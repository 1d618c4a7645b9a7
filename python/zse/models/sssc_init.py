"""SSSC's initial parameters (ALGORITHM.md §3.7), on standardised patches."""

from __future__ import annotations

import numpy as np


def data_driven(Y, H, rng):
    """Data-driven initialisation (ALGORITHM.md §3.7): the mean patch as bias and H distinct
    training patches minus it as fields, with pi = min(1/2, 2/H), mu = 0, Psi = I and sigma2
    the mean per-pixel variance. Returns the parameters and the bias (standardised units)."""
    N, D = Y.shape
    mean = Y.mean(axis=0)
    chosen = rng.choice(N, size=H, replace=N < H)
    sigma2 = float(np.mean(np.var(Y, axis=0))) + 0.001
    fields = (Y[chosen] - mean).T
    # Constant patches would give zero fields: give those a little noise to break the tie.
    norms = np.linalg.norm(fields, axis=0)
    weak = norms < 1e-8
    if weak.any():
        fields[:, weak] = rng.normal(0.0, np.sqrt(sigma2) / 4.0, size=(D, int(weak.sum())))
    params = {
        "pi": np.full(H, min(0.5, 2.0 / H)),
        "mu": np.zeros(H),
        "Psi": np.eye(H),
        "sigma2": sigma2,
        "W": np.ascontiguousarray(fields),
    }
    return params, mean


def evo_standard(Y, H, rng):
    """tvlearn/evo's standard initialisation (ALGORITHM.md §3.7), on standardised patches."""
    D = Y.shape[1]
    sigma2 = float(np.mean(np.var(Y, axis=0, ddof=1 if len(Y) > 1 else 0))) + 0.001
    return {
        "pi": rng.uniform(0.1, 0.5, size=H),
        "mu": rng.normal(0.0, 1.0, size=H),
        "Psi": np.eye(H),
        "sigma2": sigma2,
        "W": Y.mean(axis=0)[:, None] + rng.normal(0.0, np.sqrt(sigma2) / 4.0, size=(D, H)),
    }
