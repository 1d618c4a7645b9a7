"""Issue 34, build item 4: training on groups, measured for the PMM. A NumPy prototype (the
package estimates with groups but trains every patch alone).

    python bench/nonlocal_training_study.py
    python bench/nonlocal_training_study.py --cases 'HRTEM S3_5 particle d2'

Per case and member rule: the PMM is fitted as zse fits it (C 256, 50 epochs, 8 x 8 patches,
seed 0) and the image estimated with groups of 8 (zse's nonlocal estimate). Then, from that
fit, 30 EM epochs whose E-step gives every training group (16 384 reference patches drawn with
seed 0, their groups matched on the first estimate as zse matches them) one responsibility
vector from the sum of its members' log-likelihoods (the shared-component hypothesis), and
whose M-step takes the rates from all members under it: W_c = sum_g r_gc sum_i y_i /
(K sum_g r_gc), pi_c proportional to sum_g r_gc (components without mass keep their rates). The
image is estimated with groups again.
"""

from __future__ import annotations

import argparse
import sys

import numpy as np
from scipy.special import gammaln, logsumexp

import zse
from _common import psnr
from compare_cases import full_cases
from zse import _core


def train_on_groups(model, Y, groups, epochs):
    W, pi = np.asarray(model.W_).copy(), np.asarray(model.pi_).copy()
    used = np.unique(groups)
    log_factorials = gammaln(Y[used] + 1).sum(axis=1)
    where = np.searchsorted(used, groups)
    for _ in range(epochs):
        lj = Y[used] @ np.log(W).T - W.sum(axis=1) + np.log(pi) - log_factorials[:, None]
        G = lj[where].sum(axis=1) - (groups.shape[1] - 1) * np.log(pi)
        r = np.exp(G - logsumexp(G, axis=1, keepdims=True))
        R = r.sum(axis=0)
        live = R > 1e-8
        W[live] = (r.T @ Y[groups].sum(axis=1))[live] / (R[live][:, None] * groups.shape[1])
        W = np.maximum(W, 1e-10)
        pi = np.maximum(R / R.sum(), 1e-12)
        pi /= pi.sum()
    model.W_, model.pi_ = W, pi


def grouped_psnr(model, noisy, clean, data_range) -> float:
    out = zse.reconstruct(noisy, model, stats=("mean",), patch_size=8, n_threads=2)
    return psnr(clean, out["mean"], data_range)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", default="HRTEM S3_5 particle d2,ISBI slice0 d5")
    parser.add_argument("--epochs", type=int, default=30)
    args = parser.parse_args(argv)
    cases = {c.name: c for c in full_cases()}
    print("| case | members | fitted alone, estimated in groups | trained on groups, in groups |")
    print("|---|---|---|---|")
    for name in args.cases.split(","):
        noisy, clean, data_range = cases[name].make()
        for members in ("nearest", "disjoint"):
            model = zse.PMM(256, max_iter=50, random_state=0, n_threads=2)
            guide = zse.reconstruct(noisy, model, stats=("mean",), patch_size=8, n_threads=2)
            model.set_params(group_size=8, group_members=members)
            before = grouped_psnr(model, noisy, clean, data_range)
            Y = zse.extract_patches(noisy, 8)
            rng = np.random.default_rng(0)
            references = np.sort(rng.choice(len(Y), size=min(16384, len(Y)), replace=False))
            groups = _core.block_match(
                np.ascontiguousarray(guide["mean"][None]),
                (1, 8, 8),
                references.astype(np.int64),
                (0, 10, 10),
                8,
                2,
                members == "disjoint",
            )
            train_on_groups(model, Y, groups, args.epochs)
            after = grouped_psnr(model, noisy, clean, data_range)
            print(f"| {name} | {members} | {before:.2f} | {after:.2f} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
