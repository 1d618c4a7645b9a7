"""Issue 34, a measurement before the build: do similar patches sharing their binary state
(the spike) help SSSC, and by how much? A NumPy prototype over zse's kernels (not the package's
path: it loops over groups in Python and holds the image's patch matrix).

    python bench/nonlocal_study.py                       # house sigma 25, cameraman sigma 15
    python bench/nonlocal_study.py --images house --sigmas 25 --k 8,16 --window 10

Per image: SSSC at zse's defaults fitted as zse.reconstruct fits it (seed 0), today's mean image
(the pilot), then the groups: reference patches on a grid (``--stride``), each with its K most
similar patches in a (2 window + 1)^2 search window by the squared distance of the pilot's
patches (BM3D's second stage and NL-Bayes match on a first estimate). A group's candidate states
are its members' best ``--top`` states from today's estimation search. For each candidate s the
group's log-joint is log p(s) + sum_i log p(y_i | s) (each member with its own slab z integrated
out: sum_i log-joint_i(s) - (K - 1) log p(s), ALGORITHM.md §3.2), the shared posterior q(s) is
its softmax over the candidates, and each member's estimate is sum_s q(s) E[W s z | y_i, s]
(every member at its own position). The mean image merges every member's group estimates and
every patch's own estimate (a group of one is today's estimator).
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np

import zse
from _common import load, psnr
from compare_cases import SET12
from zse import _core
from zse.models.sssc_estimate import states_for


def block_match(pilot, patch, window, stride, k):
    """Reference positions (r, c) on a grid and, per reference, its k most similar patch
    positions (itself first) by the squared distance of the pilot's patches."""
    from scipy.ndimage import uniform_filter

    rows, cols = pilot.shape[0] - patch + 1, pilot.shape[1] - patch + 1
    refs = [(r, c) for r in range(0, rows, stride) for c in range(0, cols, stride)]
    if refs[-1][0] != rows - 1:
        refs += [(rows - 1, c) for c in range(0, cols, stride)]
    offsets = [(dy, dx) for dy in range(-window, window + 1) for dx in range(-window, window + 1)]
    distance = np.full((len(offsets), rows, cols), np.inf)
    padded = np.pad(pilot, window, mode="constant", constant_values=np.nan)
    for o, (dy, dx) in enumerate(offsets):
        shifted = padded[
            window + dy : window + dy + pilot.shape[0], window + dx : window + dx + pilot.shape[1]
        ]
        sq = (pilot - shifted) ** 2
        box = uniform_filter(
            np.nan_to_num(sq, nan=1e30), size=patch, mode="constant", origin=-(patch // 2)
        )
        distance[o] = box[:rows, :cols]
    r = np.array([p[0] for p in refs])
    c = np.array([p[1] for p in refs])
    d = distance[:, r, c].T  # (refs, offsets)
    order = np.argsort(d, axis=1, kind="stable")[:, :k]
    dy = np.array([o[0] for o in offsets])[order]
    dx = np.array([o[1] for o in offsets])[order]
    members = (r[:, None] + dy) * cols + (c[:, None] + dx)
    return members, rows, cols


def log_prior(states, pi, H):
    bits = np.unpackbits(states.view(np.uint8), axis=-1, bitorder="little")[..., :H].astype(bool)
    return np.where(bits, np.log(pi), np.log1p(-pi)).sum(axis=-1)


def own_estimates(noisy, model, patch, n_threads):
    """Today's estimation of every patch (the patch-matrix path): the standardised patches, the
    final state sets, their log-joints and the estimates (standardised units)."""
    Y = zse.extract_patches(noisy, patch)
    work = model._centred(Y)
    K, sweeps = states_for(model, Y, n_threads, estimation=True)
    res = model._estep(
        work,
        K,
        10**9,
        n_sweeps=sweeps,
        want_lpj=True,
        want_estimates=True,
        n_threads=n_threads,
        estimation=True,
    )
    return Y, work, K, res["lpj"], res["estimates"]


def nonlocal_mean(noisy, model, patch, members, top, n_threads, own_weight=1.0, search=0):
    Y, work, K, lpj, own = own_estimates(noisy, model, patch, n_threads)
    best = np.argsort(-lpj, axis=1, kind="stable")[:, :top]
    H = model.pi_.shape[0]
    kernel = model._kernel_model()
    sums = np.zeros_like(own)
    weights = np.zeros(len(Y))
    words = K.shape[2]
    chunk = 512
    for start in range(0, len(members), chunk):
        group_rows, group_states, group_q = [], [], []
        for g in members[start : start + chunk]:
            cand = K[g[:, None], best[g]].reshape(-1, words)
            cand = np.unique(cand, axis=0)
            yg = np.ascontiguousarray(work[g])
            lj = _core.sssc_log_joint(yg, kernel, cand, n_threads)
            G = lj.sum(axis=0) - (len(g) - 1) * log_prior(cand, model.pi_, H)
            for _ in range(search):
                # every single-unit change of the group's best state, scored on the group
                flips = np.repeat(cand[int(np.argmax(G))][None], H, axis=0)
                for h in range(H):
                    flips[h, h // 64] ^= np.uint64(1) << np.uint64(h % 64)
                fresh = ~(flips[:, None, :] == cand[None]).all(axis=2).any(axis=1)
                if not fresh.any():
                    break
                flips = flips[fresh]
                lj_f = _core.sssc_log_joint(yg, kernel, flips, n_threads)
                G_f = lj_f.sum(axis=0) - (len(g) - 1) * log_prior(flips, model.pi_, H)
                improved = G_f.max() > G.max()
                cand, G = np.concatenate([cand, flips]), np.concatenate([G, G_f])
                if not improved:
                    break
            q = np.exp(G - G.max())
            q /= q.sum()
            keep = q > 1e-6 * q.max()
            cand, q = cand[keep], q[keep] / q[keep].sum()
            group_rows.append(np.repeat(g, len(cand)))
            group_states.append(np.tile(cand, (len(g), 1)))
            group_q.append(np.tile(q, len(g)))
        rows = np.concatenate(group_rows)
        states = np.ascontiguousarray(np.concatenate(group_states)[:, None, :])
        q = np.concatenate(group_q)
        est = model._estep(
            np.ascontiguousarray(work[rows]),
            states,
            10**9,
            evolve=False,
            want_estimates=True,
            n_threads=n_threads,
        )["estimates"]
        np.add.at(sums, rows, q[:, None] * est)
        np.add.at(weights, rows, q)
    grouped = weights > 0
    combined = own.copy()  # a patch in no group keeps its own estimate
    combined[grouped] = (own[grouped] * own_weight + sums[grouped]) / (
        own_weight + weights[grouped]
    )[:, None]
    out = combined * model.data_scale_ + model.bias_
    return zse.merge_patches(out, noisy.shape, patch, stats=("mean",))["mean"]


def shared_mean(noisy, model, patch, members, n_threads, own_weight=1.0):
    """Members share the state and the slab (y_i = b + W_s z + eps_i): the group's evidence is
    that of its mean patch with noise sigma2 / K (the scatter around the mean does not depend on
    s or z), estimated by today's kernel; every member gets that estimate at its position."""
    Y = zse.extract_patches(noisy, patch)
    work = model._centred(Y)
    K, sweeps = states_for(model, Y, n_threads, estimation=True)
    own = model._estep(
        work, K, 10**9, n_sweeps=sweeps, want_estimates=True, n_threads=n_threads, estimation=True
    )["estimates"]
    k = members.shape[1]
    means = np.ascontiguousarray(work[members].mean(axis=1))
    states = np.ascontiguousarray(K[members[:, 0]])
    saved = model._sigma2_std
    model._sigma2_std = saved / k
    try:
        est = model._estep(
            means,
            states,
            10**9,
            n_sweeps=sweeps,
            want_estimates=True,
            n_threads=n_threads,
            estimation=True,
        )["estimates"]
    finally:
        model._sigma2_std = saved
    sums = own * own_weight
    weights = np.full(len(Y), own_weight)
    np.add.at(sums, members.ravel(), np.repeat(est, k, axis=0))
    np.add.at(weights, members.ravel(), 1.0)
    out = sums / weights[:, None] * model.data_scale_ + model.bias_
    return zse.merge_patches(out, noisy.shape, patch, stats=("mean",))["mean"]


def hierarchical_mean(noisy, model, patch, members, top, n_threads, spread, own_weight=1.0):
    """Members share the state s (the group's most probable candidate, as in shared-s) and
    their slabs are tied: z_i = m + delta_i, m ~ N(mu_s, Psi_s), delta_i ~ N(0, spread Psi_s)
    (spread 0: one shared slab; large: today's independent slabs). Each member's posterior
    mean E[W z_i | Y_group] at its own position."""
    Y, work, K, lpj, own = own_estimates(noisy, model, patch, n_threads)
    best = np.argsort(-lpj, axis=1, kind="stable")[:, :top]
    H = model.pi_.shape[0]
    kernel = model._kernel_model()
    W, s2 = model._W_std, float(model._sigma2_std)
    mu, Psi = np.asarray(model.mu_), np.asarray(model.Psi_)
    words = K.shape[2]
    sums = own * own_weight
    weights = np.full(len(Y), own_weight)
    for g in members:
        cand = np.unique(K[g[:, None], best[g]].reshape(-1, words), axis=0)
        lj = _core.sssc_log_joint(np.ascontiguousarray(work[g]), kernel, cand, n_threads)
        G = lj.sum(axis=0) - (len(g) - 1) * log_prior(cand, model.pi_, H)
        state = cand[int(np.argmax(G))]
        bits = np.unpackbits(state.view(np.uint8), bitorder="little")[:H].astype(bool)
        A = np.flatnonzero(bits)
        if len(A) == 0:
            est = np.zeros((len(g), W.shape[0]))
        else:
            WA, PsiA, muA = W[:, A], Psi[np.ix_(A, A)], mu[A]
            T = spread * PsiA
            yg = work[g]
            # y_i | m ~ N(WA m, s2 I + WA T WA^T): the shared part's posterior
            C = s2 * np.eye(W.shape[0]) + WA @ T @ WA.T
            Ci_W = np.linalg.solve(C, WA)
            prec_m = np.linalg.inv(PsiA) + len(g) * WA.T @ Ci_W
            rhs = np.linalg.solve(PsiA, muA) + Ci_W.T @ yg.sum(axis=0)
            m = np.linalg.solve(prec_m, rhs)
            # z_i | m, y_i: precision T^-1 + WA^T WA / s2
            Tinv = np.linalg.inv(T)
            prec_z = Tinv + WA.T @ WA / s2
            z = np.linalg.solve(prec_z, (Tinv @ m)[:, None] + WA.T @ yg.T / s2).T
            est = z @ WA.T
            if model._noise_L is not None:
                est = est @ model._noise_L.T
        np.add.at(sums, g, est)
        np.add.at(weights, g, 1.0)
    out = sums / weights[:, None] * model.data_scale_ + model.bias_
    return zse.merge_patches(out, noisy.shape, patch, stats=("mean",))["mean"]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", nargs="+", default=["house", "cameraman"])
    parser.add_argument("--sigmas", type=lambda s: [float(v) for v in s.split(",")], default=None)
    parser.add_argument("--k", type=lambda s: [int(v) for v in s.split(",")], default=[8, 16])
    parser.add_argument("--window", type=int, default=10)
    parser.add_argument("--stride", type=int, default=3)
    parser.add_argument("--top", type=int, default=4)
    parser.add_argument("--n-threads", type=int, default=2)
    parser.add_argument(
        "--variant", choices=("shared-s", "shared-z", "hierarchical"), default="shared-s"
    )
    parser.add_argument("--spread", type=float, default=0.1)
    parser.add_argument("--search", type=int, default=0, help="group state-search sweeps")
    parser.add_argument("--own-weight", type=float, default=1.0)
    args = parser.parse_args(argv)
    default_sigma = {"house": 25.0, "cameraman": 15.0, "peppers": 50.0, "barbara": 25.0}
    print("| image | σ | today (defaults) | K | nonlocal | gain | s (groups) | BM3D true σ |")
    print("|---|---|---|---|---|---|---|---|")
    for name in args.images:
        clean = load(SET12[name])
        for sigma in args.sigmas or [default_sigma.get(name, 25.0)]:
            noisy = clean + np.random.default_rng(0).normal(0.0, sigma, clean.shape)
            model = zse.SSSC(random_state=0, n_threads=args.n_threads)
            pilot = zse.reconstruct(noisy, model, stats="mean", n_threads=args.n_threads)["mean"]
            patch = model.patch_size_[0]
            import bm3d

            reference = psnr(clean, bm3d.bm3d(noisy, sigma_psd=sigma), 255)
            for k in args.k:
                t = time.perf_counter()
                members, _, _ = block_match(pilot, patch, args.window, args.stride, k)
                if args.variant == "hierarchical":
                    out = hierarchical_mean(
                        noisy, model, patch, members, args.top, args.n_threads, args.spread
                    )
                elif args.variant == "shared-z":
                    out = shared_mean(noisy, model, patch, members, args.n_threads)
                else:
                    out = nonlocal_mean(
                        noisy,
                        model,
                        patch,
                        members,
                        args.top,
                        args.n_threads,
                        own_weight=args.own_weight,
                        search=args.search,
                    )
                seconds = time.perf_counter() - t
                today, new = psnr(clean, pilot, 255), psnr(clean, out, 255)
                print(
                    f"| {name} | {sigma:g} | {today:.2f} | {k} | {new:.2f} | {new - today:+.2f} | "
                    f"{seconds:.0f} | {reference:.2f} |",
                    flush=True,
                )
    return 0


if __name__ == "__main__":
    sys.exit(main())
