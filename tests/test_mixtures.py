import math

import numpy as np
import pytest

import reference
import zse
from zse import _core


def sample_gpmm(rng, n, W, pi, alpha):
    c = rng.choice(len(pi), size=n, p=pi)
    z = rng.gamma(alpha, 1.0, size=n)
    return rng.poisson(z[:, None] * W[c]).astype(float), c


@pytest.fixture
def toy(rng):
    W = np.array(
        [[6, 1, 1, 6, 1, 1, 6, 1], [1, 7, 1, 1, 7, 1, 1, 7], [3, 3, 3, 1, 1, 1, 4, 4]], dtype=float
    )
    pi = np.array([0.5, 0.3, 0.2])
    Y, labels = sample_gpmm(rng, 3000, W, pi, 3.0)
    return Y, W, pi, labels


def test_pmm_posteriors_equal_brute_force(rng):
    Y = rng.poisson(3.0, size=(40, 5)).astype(float)
    model = zse.PMM(4, max_iter=3, random_state=1).fit(Y)
    expected = reference.responsibilities(reference.pmm_log_joint(Y, model.W_, model.pi_))
    np.testing.assert_allclose(model.predict_proba(Y), expected, rtol=1e-10, atol=1e-14)
    ll = reference.log_likelihood(reference.pmm_log_joint(Y, model.W_, model.pi_)) / len(Y)
    assert model.score(Y) == pytest.approx(ll, rel=1e-12)


# Whether a class's alpha hits its cap depends on the few patches it owns; either way is valid here.
@pytest.mark.filterwarnings("ignore:GPMM. alpha reached its cap")
@pytest.mark.parametrize("class_alpha", [False, True])
def test_gpmm_posteriors_equal_brute_force(rng, class_alpha):
    Y = rng.poisson(rng.gamma(2.0, 2.0, size=(60, 1)) * np.ones(6)).astype(float)
    model = zse.GPMM(3, max_iter=3, random_state=2, class_alpha=class_alpha, alpha_max=50.0).fit(Y)
    lj = reference.gpmm_log_joint(Y, model.W_, model.pi_, model.alpha_)
    np.testing.assert_allclose(
        model.predict_proba(Y), reference.responsibilities(lj), rtol=1e-9, atol=1e-14
    )
    assert model.score(Y) == pytest.approx(reference.log_likelihood(lj) / len(Y), rel=1e-12)


def test_gpmm_joint_equals_numerical_integration_over_z():
    y = np.array([[3.0, 0.0, 5.0, 1.0]])
    W = np.array([[0.8, 0.2, 1.5, 0.4]])
    alpha = 2.5
    model = zse.GPMM(1)
    model.W_, model.pi_, model.alpha_, model.n_features_in_ = W, np.array([1.0]), alpha, 4
    # p(y) = int Gamma(z; alpha, 1) prod_d Poisson(y_d; z W_d) dz on a fine grid.
    z = np.linspace(1e-9, 60.0, 2_000_001)
    log_integrand = (
        (alpha - 1) * np.log(z)
        - z
        - math.lgamma(alpha)
        + reference.log_poisson(y[0][:, None], z[None, :] * W[0][:, None]).sum(axis=0)
    )
    numerical = np.log(np.trapezoid(np.exp(log_integrand), z))
    assert model.score(y) == pytest.approx(numerical, abs=1e-9)


def test_pmm_one_em_iteration_matches_reference(rng):
    Y = rng.poisson(rng.uniform(0.5, 8, size=(5, 7))[rng.integers(0, 5, size=300)]).astype(float)
    seed = 123
    W0 = np.maximum(Y[_core.kmeans_plusplus(Y, 5, seed, 1)], 1e-10 * Y.mean())
    W1, pi1 = reference.pmm_em_step(Y, W0, np.full(5, 0.2))
    model = zse.PMM(5, max_iter=1, random_state=seed).fit(Y)
    np.testing.assert_allclose(model.W_, W1, rtol=1e-10, atol=0)
    np.testing.assert_allclose(model.pi_, pi1, rtol=1e-10, atol=0)
    ll0 = reference.log_likelihood(reference.pmm_log_joint(Y, W0, np.full(5, 0.2))) / len(Y)
    assert model.log_likelihoods_[0] == pytest.approx(ll0, rel=1e-12)


def test_gpmm_one_em_iteration_matches_reference(toy):
    Y = toy[0][:400]
    seed = 7
    model = zse.GPMM(3, max_iter=1, random_state=seed).fit(Y)
    totals = Y.sum(axis=1)
    alpha0 = float(
        np.clip(
            totals.mean() ** 2 / max(totals.var() - totals.mean(), 1e-12 * totals.mean()), 1e-3, 1e6
        )
    )
    W0 = np.maximum(Y[_core.kmeans_plusplus(Y, 3, seed, 1)], 1e-10 * Y.mean()) / alpha0
    pi0 = np.full(3, 1 / 3)
    r = reference.responsibilities(reference.gpmm_log_joint(Y, W0, pi0, alpha0))
    alpha1 = reference.bisect(lambda a: reference.gpmm_alpha_equation(a, totals, r), 1e-3, 1e4)
    assert model.alpha_ == pytest.approx(alpha1, rel=1e-6)  # finite-difference digamma limits this
    W1, pi1, _ = reference.gpmm_em_step(Y, W0, pi0, alpha0, model.alpha_)
    np.testing.assert_allclose(model.W_, W1, rtol=1e-10, atol=0)
    np.testing.assert_allclose(model.pi_, pi1, rtol=1e-10, atol=0)
    ll0 = reference.log_likelihood(reference.gpmm_log_joint(Y, W0, pi0, alpha0)) / len(Y)
    assert model.log_likelihoods_[0] == pytest.approx(ll0, rel=1e-12)


@pytest.mark.parametrize(
    "model", [zse.PMM(6, max_iter=40, random_state=0), zse.GPMM(6, max_iter=40, random_state=0)]
)
def test_em_never_decreases_the_log_likelihood(toy, model):
    model.fit(toy[0])
    ll = np.array(model.log_likelihoods_)
    assert len(ll) == 40
    assert len(model.epoch_seconds_) == model.n_iter_ == 40 and min(model.epoch_seconds_) > 0
    # Rounding noise only: a relative 1e-12 per step, far below any real decrease.
    assert np.all(np.diff(ll) >= -1e-12 * np.abs(ll[:-1])), np.diff(ll).min()
    assert ll[-1] > ll[0]


def test_gpmm_recovers_alpha_and_component_means(toy):
    Y, W, pi, _ = toy
    model = zse.GPMM(3, max_iter=300, random_state=3).fit(Y)
    assert model.alpha_ == pytest.approx(3.0, rel=0.10)
    # Component means E[z] W_c = alpha W_c, matched up to permutation.
    learned, true = model.alpha_ * model.W_, 3.0 * W
    order = [int(np.argmin(np.abs(learned - t).sum(axis=1))) for t in true]
    assert sorted(order) == [0, 1, 2]
    np.testing.assert_allclose(learned[order], true, rtol=0.15)
    np.testing.assert_allclose(model.pi_[order], pi, atol=0.05)


def test_gpmm_alpha_capped_for_under_dispersed_data(rng):
    Y = rng.poisson(4.0, size=(500, 6)).astype(float)  # pure Poisson: no Gamma brightness
    model = zse.GPMM(1, max_iter=5, random_state=0, alpha_max=1e5)
    with pytest.warns(UserWarning, match="alpha reached its cap"):
        model.fit(Y)
    assert model.alpha_capped_ and model.alpha_ == 1e5


def test_kmeans_plusplus_picks_distinct_patches(rng):
    Y = rng.poisson(2.0, size=(200, 4)).astype(float)
    idx = _core.kmeans_plusplus(Y, 30, 5, 2)
    assert len(set(map(tuple, Y[idx]))) == 30
    with pytest.raises(ValueError, match="fewer than C=3 distinct"):
        _core.kmeans_plusplus(np.ones((10, 2)), 3, 0, 1)


def test_estimates_and_predictive_variance_match_the_formulas(toy):
    Y = toy[0][:200]
    for model in (
        zse.PMM(3, max_iter=5, random_state=0).fit(Y),
        zse.GPMM(3, max_iter=5, random_state=0).fit(Y),
    ):
        est, var = model.estimate(Y, return_variance=True)
        r = model.predict_proba(Y)
        if isinstance(model, zse.GPMM):
            a = model.alpha_ + Y.sum(axis=1)[:, None]  # E[z | c, y] per patch (beta = 1)
            V = model.W_ / (1.0 + model.W_.sum(axis=1))[:, None]
            first = (r * a) @ V
            second = (r * a * (a + 1)) @ V**2
        else:
            first, second = r @ model.W_, r @ model.W_**2
        np.testing.assert_allclose(est, first, rtol=1e-10)
        np.testing.assert_allclose(var, np.maximum(second - first**2, 0), rtol=1e-8, atol=1e-10)


def test_gain_and_offset_convert_to_counts_and_back(toy):
    Y = toy[0][:500]
    grey = Y / 0.5 + 100.0  # 0.5 counts per grey level above a dark level of 100
    a = zse.PMM(3, max_iter=4, random_state=0).fit(Y)
    b = zse.PMM(3, max_iter=4, random_state=0, gain=0.5, offset=100.0).fit(grey)
    np.testing.assert_allclose(a.W_, b.W_, rtol=1e-12)
    np.testing.assert_allclose(b.estimate(grey), a.estimate(Y) / 0.5 + 100.0, rtol=1e-12)
    _, va = a.estimate(Y, return_variance=True)
    _, vb = b.estimate(grey, return_variance=True)
    np.testing.assert_allclose(vb, va / 0.25, rtol=1e-10)


@pytest.mark.parametrize("cls", [zse.PMM, zse.GPMM])
def test_bad_inputs(cls):
    Y = np.ones((20, 4))
    Y[3, 2] = -1.0
    with pytest.raises(ValueError, match="negative"):
        cls(2).fit(Y)
    with pytest.raises(ValueError, match="negative"):
        cls(2, offset=5.0).fit(np.full((20, 4), 3.0))
    Y[3, 2] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        cls(2).fit(Y)
    with pytest.raises(ValueError, match="exceeds the number of patches"):
        cls(30).fit(np.ones((20, 4)))
    with pytest.raises(ValueError, match="n_components"):
        cls(0).fit(np.ones((20, 4)))
    with pytest.raises(ValueError, match="gain"):
        cls(2, gain=0.0).fit(np.ones((20, 4)))
    with pytest.raises(zse.NotFittedError):
        cls(2).estimate(np.ones((3, 4)))
    with pytest.raises(ValueError, match="all counts are zero"):
        cls(1).fit(np.zeros((5, 4)))


def test_non_integer_counts_warn_about_the_poisson_assumption(rng):
    Y = rng.uniform(0, 5, size=(50, 4))
    with pytest.warns(UserWarning, match="Poisson model assumes electron counts"):
        zse.PMM(2, max_iter=2, random_state=0).fit(Y)


def test_low_dose_hrtem_denoising_gains_a_clear_margin(shared_data):
    clean = zse.io.read_image(
        shared_data / "em" / "sim_hrtem_PtCeO2_clean_S3_5_876x927_float32.tif"
    )
    clean = clean[300:428, 300:428].astype(np.float64)
    dose = 1.0  # electrons per pixel
    rate = dose * clean / clean.mean()
    noisy = np.random.default_rng(0).poisson(rate).astype(np.float64)
    for model in (
        zse.PMM(64, max_iter=20, random_state=0),
        zse.GPMM(64, max_iter=20, random_state=0),
    ):
        out = zse.reconstruct(noisy, model, stats=("mean",), patch_size=6)
        gain = zse.psnr(rate, out["mean"]) - zse.psnr(rate, noisy)
        assert gain > 6.0, (type(model).__name__, gain)
