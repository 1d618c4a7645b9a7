"""Slow, obvious NumPy references for the C++ kernels (test-only)."""

from __future__ import annotations

import math

import numpy as np

_lgamma = np.vectorize(math.lgamma, otypes=[float])


def log_poisson(y, rate):
    return y * np.log(rate) - rate - _lgamma(y + 1.0)


def pmm_log_joint(Y, W, pi):
    """log p(c, y_n) for every n, c: (N, C)."""
    return np.array(
        [[np.log(pi[c]) + log_poisson(y, W[c]).sum() for c in range(len(pi))] for y in Y]
    )


def gpmm_log_joint(Y, W, pi, alpha, beta=1.0):
    """Negative-multinomial log p(c, y_n) (ALGORITHM.md §6.2), alpha scalar or per class."""
    alpha = np.broadcast_to(np.asarray(alpha, dtype=float), pi.shape)
    out = np.empty((len(Y), len(pi)))
    for n, y in enumerate(Y):
        t = y.sum()
        for c in range(len(pi)):
            a = alpha[c]
            out[n, c] = (
                np.log(pi[c])
                + a * np.log(beta)
                - math.lgamma(a)
                + math.lgamma(a + t)
                - _lgamma(y + 1.0).sum()
                + (y * np.log(W[c])).sum()
                - (a + t) * np.log(beta + W[c].sum())
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
    return float(
        np.sum(digamma_fd(alpha + totals) - digamma_fd(np.full_like(totals, alpha)))
        + np.sum(R * np.log(alpha / (alpha + M)))
    )


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


# ---- SSSC --------------------------------------------------------------------------------------
def all_states(H):
    return np.array([[(s >> h) & 1 for h in range(H)] for s in range(2**H)], dtype=bool)


def pack_states(states):
    """(M, H) bool -> (M, words) uint64 as the C++ core stores them."""
    states = np.asarray(states, dtype=bool)
    words = (states.shape[1] + 63) // 64
    out = np.zeros((states.shape[0], words), dtype=np.uint64)
    for h in range(states.shape[1]):
        out[:, h // 64] |= states[:, h].astype(np.uint64) << np.uint64(h % 64)
    return out


def unpack_states(packed, H):
    packed = np.asarray(packed, dtype=np.uint64)
    return np.stack(
        [(packed[..., h // 64] >> np.uint64(h % 64)) & np.uint64(1) for h in range(H)], axis=-1
    ).astype(bool)


def state_posterior(y, W, mu, Psi, sigma2, A):
    """Covariance Lambda and mean kappa of z_A given y and the state with units A, directly."""
    Ws = W[:, A]
    Lam = np.linalg.inv(np.linalg.inv(Psi[np.ix_(A, A)]) + Ws.T @ Ws / sigma2)
    kappa = mu[A] + Lam @ Ws.T @ (y - Ws @ mu[A]) / sigma2
    return Lam, kappa


def sssc_log_joint(Y, W, pi, mu, Psi, sigma2, states):
    """log p(s, y) = log prior(s) + log N(y; W_s mu_s, sigma2 I + W_s Psi_s W_s^T), directly."""
    N, D = Y.shape
    out = np.empty((N, len(states)))
    for m, s in enumerate(states):
        A = np.flatnonzero(s)
        prior = np.sum(np.where(s, np.log(pi), np.log1p(-pi)))
        Ws = W[:, A]
        C = sigma2 * np.eye(D) + Ws @ Psi[np.ix_(A, A)] @ Ws.T
        mean = Ws @ mu[A]
        sign, logdet = np.linalg.slogdet(C)
        assert sign > 0
        diff = Y - mean
        quad = np.einsum("nd,nd->n", diff @ np.linalg.inv(C), diff)
        out[:, m] = prior - 0.5 * (D * np.log(2 * np.pi) + logdet + quad)
    return out


def sssc_exact_em_step(Y, W, pi, mu, Psi, sigma2, exact):
    """One EM step with the full posterior over all 2^H states and the M-step of ALGORITHM.md
    §3.6."""
    N, D = Y.shape
    H = len(pi)
    states = all_states(H)
    lj = sssc_log_joint(Y, W, pi, mu, Psi, sigma2, states)
    F = log_likelihood(lj) / N
    q = responsibilities(lj)
    a_s = np.zeros(H)
    a_sz = np.zeros(H)
    B_ss = np.zeros((H, H))
    B_szsz = np.zeros((H, H))
    B_mm = np.zeros((H, H))
    B_s_sz = np.zeros((H, H))
    Y_sz = np.zeros((D, H))
    for n in range(N):
        es = np.zeros(H)
        esz = np.zeros(H)
        ezz = np.zeros((H, H))
        ess = np.zeros((H, H))
        for m, s in enumerate(states):
            A = np.flatnonzero(s)
            if len(A) == 0:
                continue
            Lam, kappa = state_posterior(Y[n], W, mu, Psi, sigma2, A)
            es[A] += q[n, m]
            esz[A] += q[n, m] * kappa
            ess[np.ix_(A, A)] += q[n, m]
            ezz[np.ix_(A, A)] += q[n, m] * (Lam + np.outer(kappa, kappa))
        a_s += es
        a_sz += esz
        B_ss += ess
        B_szsz += ezz
        B_mm += np.outer(esz, esz)
        B_s_sz += np.outer(es, esz)
        Y_sz += np.outer(Y[n], esz)
    T_yy = np.sum(Y**2)
    W_new = np.linalg.solve(B_szsz, Y_sz.T).T
    pi_new = np.clip(a_s / N, 5e-5, 1 - 5e-5)
    mu_new = a_sz / (a_s + np.finfo(float).eps)
    if exact:
        Psi_new = np.diag(
            np.maximum((np.diag(B_szsz) - 2 * mu_new * a_sz + mu_new**2 * a_s) / a_s, 1e-5)
        )
        sigma2_new = (T_yy - 2 * np.sum(W_new * Y_sz) + np.trace(B_szsz @ W_new.T @ W_new)) / (
            N * D
        )
    else:
        M = np.outer(mu_new, mu_new) * B_ss + B_szsz - 2 * mu_new[:, None] * B_s_sz
        Psi_new = M * np.linalg.inv(B_ss + 1e-5 * np.eye(H)) + 1e-5 * np.eye(H)
        Psi_new = 0.5 * (Psi_new + Psi_new.T)
        Psi_new[np.diag_indices(H)] = np.maximum(np.diag(Psi_new), 1e-5)
        sigma2_new = (T_yy - np.trace(B_mm @ W_new.T @ W_new)) / (N * D) + 1e-5
    return {
        "W": W_new,
        "pi": pi_new,
        "mu": mu_new,
        "Psi": Psi_new,
        "sigma2": max(sigma2_new, 1e-5),
        "F": F,
    }
