"""Slow, obvious NumPy references for the C++ kernels (test-only)."""

from __future__ import annotations

import math

import numpy as np

_lgamma = np.vectorize(math.lgamma, otypes=[float])


def log_poisson(y, rate):
    return y * np.log(rate) - rate - _lgamma(y + 1.0)


def pmm_log_joint(Y, W, pi):
    """log p(c, y_n) for every n, c: (N, C)."""
    return np.array([[np.log(pi[c]) + log_poisson(y, W[c]).sum() for c in range(len(pi))] for y in Y])


def gpmm_log_joint(Y, W, pi, alpha, beta=1.0):
    """Negative-multinomial log p(c, y_n) (ALGORITHM.md §6.2), alpha scalar or per class."""
    alpha = np.broadcast_to(np.asarray(alpha, dtype=float), pi.shape)
    out = np.empty((len(Y), len(pi)))
    for n, y in enumerate(Y):
        t = y.sum()
        for c in range(len(pi)):
            a = alpha[c]
            out[n, c] = (
                np.log(pi[c]) + a * np.log(beta) - math.lgamma(a) + math.lgamma(a + t)
                - _lgamma(y + 1.0).sum() + (y * np.log(W[c])).sum() - (a + t) * np.log(beta + W[c].sum())
            )
    return out


def responsibilities(log_joint):
    shifted = log_joint - log_joint.max(axis=1, keepdims=True)
    r = np.exp(shifted)
    return r / r.sum(axis=1, keepdims=True)


def log_likelihood(log_joint):
    m = log_joint.max(axis=1, keepdims=True)
    return float(np.sum(m[:, 0] + np.log(np.exp(log_joint - m).sum(axis=1))))


def pmm_em_step(Y, W, pi):
    r = responsibilities(pmm_log_joint(Y, W, pi))
    R = r.sum(axis=0)
    return (r.T @ Y) / R[:, None], R / len(Y)


def digamma_fd(x, h=1e-5):
    """psi(x) by a central difference of math.lgamma: independent of the C++ digamma."""
    return (_lgamma(x + h) - _lgamma(x - h)) / (2 * h)


def gpmm_alpha_equation(alpha, totals, r):
    """g(alpha) of ALGORITHM.md §6.5 with responsibilities r (N, C)."""
    R = r.sum(axis=0)
    M = (r * totals[:, None]).sum(axis=0) / R
    return float(np.sum(digamma_fd(alpha + totals) - digamma_fd(np.full_like(totals, alpha)))
                 + np.sum(R * np.log(alpha / (alpha + M))))


def gpmm_em_step(Y, W, pi, alpha, new_alpha):
    """One GPMM EM step given the alpha the M-step chose (W = m / alpha, beta = 1)."""
    r = responsibilities(gpmm_log_joint(Y, W, pi, alpha))
    R = r.sum(axis=0)
    return (r.T @ Y) / R[:, None] / new_alpha, R / len(Y), r


def bisect(f, lo, hi, iters=200):
    f_lo = f(lo)
    for _ in range(iters):
        mid = math.sqrt(lo * hi)
        f_mid = f(mid)
        if (f_mid > 0) == (f_lo > 0):
            lo, f_lo = mid, f_mid
        else:
            hi = mid
    return math.sqrt(lo * hi)
