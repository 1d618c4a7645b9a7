"""The nonlocal estimate (ALGORITHM.md §3.16): block matching against a NumPy reference, a
group's log-joint against the direct Gaussian density over all 2^H states, the estimate against
brute force on a tiny model, determinism over threads and ranks, and a PSNR gain."""

import numpy as np
import pytest

import reference
import zse
from helpers import smooth_image
from test_sssc import core_params, random_params
from zse import _core


def match_reference(guide, patch, positions, window, k, disjoint=False):
    """The k most similar patches by a plain loop: the patch itself first, then ascending
    (distance, index); with ``disjoint`` only patches sharing no pixel with it."""
    Z, R, Q = guide.shape
    pz, ph, pw = patch
    Zc, Rc, Qc = Z - pz + 1, R - ph + 1, Q - pw + 1
    out = np.full((len(positions), k), -1, dtype=np.int64)
    for row, n in enumerate(positions):
        z0, r0, c0 = n // (Rc * Qc), (n // Qc) % Rc, n % Qc
        ref = guide[z0 : z0 + pz, r0 : r0 + ph, c0 : c0 + pw]
        found = []
        for z in range(max(0, z0 - window[0]), min(Zc - 1, z0 + window[0]) + 1):
            for r in range(max(0, r0 - window[1]), min(Rc - 1, r0 + window[1]) + 1):
                for c in range(max(0, c0 - window[2]), min(Qc - 1, c0 + window[2]) + 1):
                    m = (z * Rc + r) * Qc + c
                    overlaps = abs(z - z0) < pz and abs(r - r0) < ph and abs(c - c0) < pw
                    if m != n and not (disjoint and overlaps):
                        cand = guide[z : z + pz, r : r + ph, c : c + pw]
                        found.append((float(np.sum((cand - ref) ** 2)), m))
        found.sort()
        members = [n] + [m for _, m in found[: k - 1]]
        out[row, : len(members)] = members
    return out


@pytest.mark.parametrize("disjoint", [False, True])
@pytest.mark.parametrize(
    ("shape", "patch", "window", "k"),
    [
        ((1, 17, 19), (1, 3, 4), (0, 4, 3), 6),
        ((1, 12, 12), (1, 5, 5), (0, 20, 20), 200),  # the window holds fewer than k patches
        ((6, 9, 8), (2, 3, 3), (1, 2, 3), 5),
    ],
)
def test_block_matching_equals_a_plain_search(rng, shape, patch, window, k, disjoint):
    guide = rng.normal(size=shape)
    n_patches = np.prod([s - p + 1 for s, p in zip(shape, patch)])
    positions = np.arange(n_patches, dtype=np.int64)
    got = _core.block_match(guide, patch, positions, window, k, 2, disjoint)
    expected = match_reference(guide, patch, positions, window, k, disjoint)
    np.testing.assert_array_equal(got, expected)


def test_block_matching_breaks_ties_towards_the_lower_index():
    # A periodic image: many patches at distance 0 from each other.
    guide = np.tile(np.array([[0.0, 1.0, 5.0], [2.0, 0.5, 3.0], [1.0, 1.0, 0.0]]), (4, 4))[None]
    positions = np.arange((12 - 1) * (12 - 1), dtype=np.int64)
    got = _core.block_match(guide, (1, 2, 2), positions, (0, 6, 6), 7, 1)
    np.testing.assert_array_equal(got, match_reference(guide, (1, 2, 2), positions, (0, 6, 6), 7))
    assert np.all(got[:, 0] == positions)


def test_block_matching_refuses_non_finite_guides():
    guide = np.zeros((1, 8, 8))
    guide[0, 3, 3] = np.nan
    with pytest.raises(ValueError, match="finite"):
        _core.block_match(guide, (1, 3, 3), np.zeros(1, np.int64), (0, 2, 2), 3, 1)


def test_group_log_joint_over_all_states_is_the_prior_plus_every_members_likelihood(rng):
    D, H, K = 6, 4, 5
    p = random_params(rng, D, H)
    Y = rng.normal(size=(K, D)) * 2
    states = reference.all_states(H)
    got = _core.sssc_group_log_joint(Y, core_params(p), reference.pack_states(states))
    members = reference.sssc_log_joint(Y, p["W"], p["pi"], p["mu"], p["Psi"], p["sigma2"], states)
    log_prior = np.where(states, np.log(p["pi"]), np.log1p(-p["pi"])).sum(axis=1)
    np.testing.assert_allclose(got, members.sum(axis=0) - (K - 1) * log_prior, rtol=1e-11)
    # A group of one is one patch's log-joint.
    one = _core.sssc_group_log_joint(Y[:1], core_params(p), reference.pack_states(states))
    np.testing.assert_allclose(one, members[0], rtol=1e-12)


def tiny_nonlocal(**kw):
    params = dict(
        H=2,
        n_states=4,
        n_parents=2,
        max_iter=5,
        noise="white",
        random_state=0,
        n_estimate_states=4,
        group_size=3,
        group_window=2,
    )
    params.update(kw)
    return zse.SSSC(**params)


def test_nonlocal_estimate_equals_both_hypotheses_by_brute_force():
    """H = 2 with all four states kept: every group's candidates and every patch's own set are
    all 2^H states, so each patch's estimate is exactly rho * sum_s q(s | group) E[W s z | y, s]
    + (1 - rho) * sum_s p(s | y) E[W s z | y, s], rho the posterior probability that the group
    shares its spike (prior odds 1:1) against its members being unrelated."""
    noisy, _ = smooth_image(seed=3, shape=(14, 15), noise=0.5)
    model = tiny_nonlocal()
    got = zse.reconstruct(noisy, model, stats=("mean",), patch_size=3, n_threads=2)["mean"]
    guide = zse.reconstruct(
        noisy, model.set_params(group_size=1), stats=("mean",), patch_size=3, n_threads=1
    )["mean"]
    Y = zse.extract_patches(noisy, 3)
    work = model._centred(Y)
    W, s2 = model._W_std, model._sigma2_std
    mu, Psi, pi = model.mu_, model.Psi_, model.pi_
    states = reference.all_states(2)
    positions = np.arange(len(Y), dtype=np.int64)
    groups = _core.block_match(guide[None], (1, 3, 3), positions, (0, 2, 2), 3, 1)
    lj = reference.sssc_log_joint(work, W, pi, mu, Psi, s2, states)
    evidence = np.logaddexp.reduce(lj, axis=1)
    log_prior = np.where(states, np.log(pi), np.log1p(-pi)).sum(axis=1)
    per_state = np.zeros((len(Y), len(states), work.shape[1]))
    for m, s in enumerate(states):
        A = np.flatnonzero(s)
        for n in range(len(Y)):
            if len(A):
                _, kappa = reference.state_posterior(work[n], W, mu, Psi, s2, A)
                per_state[n, m] = W[:, A] @ kappa
    estimates = np.zeros_like(work)
    shared_weights = []
    for n, members in enumerate(groups):
        group = lj[members].sum(axis=0) - (len(members) - 1) * log_prior
        rho = 1.0 / (1.0 + np.exp(evidence[members].sum() - np.logaddexp.reduce(group)))
        q_group = np.exp(group - group.max())
        q_own = np.exp(lj[n] - lj[n].max())
        shared = (q_group / q_group.sum()) @ per_state[n]
        own = (q_own / q_own.sum()) @ per_state[n]
        estimates[n] = rho * shared + (1 - rho) * own
        shared_weights.append(rho)
    expected = zse.merge_patches(
        estimates * model.data_scale_ + model.bias_, noisy.shape, 3, stats=("mean",)
    )["mean"]
    np.testing.assert_allclose(got, expected, rtol=1e-9, atol=1e-9)
    # Both hypotheses matter somewhere on this image (the test checks the weighting).
    assert 0.0 < np.mean(shared_weights) < 1.0


def test_a_group_of_one_is_every_patch_alone():
    noisy, _ = smooth_image(seed=1, shape=(20, 20), noise=0.5)
    alone = zse.reconstruct(noisy, tiny_nonlocal(group_size=1), stats=("mean", "pvar"))
    grouped = zse.reconstruct(noisy, tiny_nonlocal(group_size=4), stats=("mean", "pvar"))
    assert not np.array_equal(alone["mean"], grouped["mean"])
    assert np.all(grouped["pvar"] >= 0) and np.all(np.isfinite(grouped["pvar"]))


@pytest.mark.parametrize(
    ("patch_size", "members"), [(3, "nearest"), (3, "disjoint"), ((2, 3, 3), "nearest")]
)
def test_nonlocal_results_do_not_depend_on_threads(patch_size, members):
    noisy, _ = smooth_image(seed=2, shape=(24, 26), noise=0.5)
    image = noisy if np.ndim(patch_size) == 0 else np.stack([noisy[:, :20] + z for z in range(5)])
    settings = dict(H=6, n_states=8, n_estimate_states=4, group_size=5, group_members=members)
    outs = [
        zse.reconstruct(
            image,
            tiny_nonlocal(**settings),
            stats=("mean", "var", "pvar"),
            patch_size=patch_size,
            n_threads=n,
        )
        for n in (1, 2)
    ]
    for key in ("mean", "var", "pvar"):
        np.testing.assert_array_equal(outs[0][key], outs[1][key], err_msg=key)


def test_slabs_are_refused_with_a_reason(tmp_path):
    from zse.slabs import Slab

    volume = np.random.default_rng(0).normal(size=(6, 12, 12))
    model = tiny_nonlocal()
    model.fit(zse.extract_patches(volume[0], 3))
    with pytest.raises(ValueError, match="whole image in memory"):
        model.estimate_volume(
            volume[:4],
            (1, 3, 3),
            ("mean",),
            np.zeros(0, np.int64),
            "average",
            1,
            slab=Slab(begin=0, end=2, first_slice=0, n_slices=6),
        )


def test_nonlocal_estimate_gains_on_house(shared_data):
    clean = zse.io.read_image(shared_data / "classic" / "set12_02_house_256.png").astype(float)
    clean = clean[64:192, 64:192]
    noisy = clean + np.random.default_rng(0).normal(0.0, 25.0, clean.shape)
    psnr = {}
    for group_size in (1, 8):
        model = zse.SSSC(random_state=0, group_size=group_size, n_threads=2)
        mean = zse.reconstruct(noisy, model, stats=("mean",), n_threads=2)["mean"]
        psnr[group_size] = zse.psnr(clean, mean, data_range=255)
    # Measured: 31.0 alone, +0.2 dB with groups of 8 (bench/README.md "Nonlocal SSSC").
    assert psnr[8] > psnr[1] + 0.1, psnr


def test_pmm_nonlocal_estimate_equals_both_hypotheses_by_brute_force():
    """The mixtures' exact posteriors: rho * sum_c r_c(group) W_c + (1 - rho) * sum_c r_c(y) W_c,
    rho the posterior probability that the group shares one component."""
    counts = (
        np.random.default_rng(4)
        .poisson(
            3.0 + 2.0 * np.sin(np.arange(18)[:, None] / 3.0) * np.cos(np.arange(17)[None] / 4.0) + 2
        )
        .astype(float)
    )
    model = zse.PMM(n_components=5, max_iter=8, random_state=0, group_size=4, group_window=3)
    got = zse.reconstruct(counts, model, stats=("mean",), patch_size=3, n_threads=2)["mean"]
    guide = zse.reconstruct(
        counts, model.set_params(group_size=1), stats=("mean",), patch_size=3, n_threads=1
    )["mean"]
    Y = zse.extract_patches(counts, 3)
    W, pi = np.asarray(model.W_), np.asarray(model.pi_)
    lj = reference.pmm_log_joint(Y, W, pi)
    groups = _core.block_match(
        guide[None], (1, 3, 3), np.arange(len(Y), dtype=np.int64), (0, 3, 3), 4, 1
    )
    estimates = np.empty_like(Y)
    rhos = []
    for n, members in enumerate(groups):
        group = lj[members].sum(axis=0) - (len(members) - 1) * np.log(pi)
        unrelated = np.logaddexp.reduce(lj[members], axis=1).sum()
        rho = 1.0 / (1.0 + np.exp(unrelated - np.logaddexp.reduce(group)))
        shared = np.exp(group - np.logaddexp.reduce(group)) @ W
        own = np.exp(lj[n] - np.logaddexp.reduce(lj[n])) @ W
        estimates[n] = rho * shared + (1 - rho) * own
        rhos.append(rho)
    expected = zse.merge_patches(estimates, counts.shape, 3, stats=("mean",))["mean"]
    np.testing.assert_allclose(got, expected, rtol=1e-9, atol=1e-9)
    assert 0.0 < np.mean(rhos) < 1.0


@pytest.mark.parametrize("model_class", [zse.PMM, zse.GPMM])
def test_mixture_nonlocal_results_do_not_depend_on_threads(model_class):
    counts, _ = zse.synthetic_tem((40, 44), dose=5.0, seed=1)
    outs = [
        zse.reconstruct(
            np.asarray(counts, float),
            model_class(n_components=6, max_iter=4, random_state=0, group_size=6),
            stats=("mean", "var", "pvar"),
            patch_size=4,
            n_threads=n,
        )
        for n in (1, 2)
    ]
    for key in ("mean", "var", "pvar"):
        np.testing.assert_array_equal(outs[0][key], outs[1][key], err_msg=key)
    assert np.all(outs[0]["pvar"] >= 0)
