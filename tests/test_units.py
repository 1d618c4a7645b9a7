"""Gaussian models do not depend on the data's units; Poisson models refuse what cannot be
counts."""

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import zse
from helpers import (
    smooth_image,
    tiny_sssc,
)


@pytest.fixture(scope="module")
def unit_reference():
    noisy, _ = smooth_image()
    model = tiny_sssc()
    out = zse.reconstruct(noisy, model, patch_size=4, stats=("mean", "var", "pvar"))
    return noisy, model, out


@pytest.mark.parametrize("a", [1e-8, 1e-3, 0.37, 1e3, 1e8])
@pytest.mark.parametrize("b", [0.0, 5.0])
def test_reconstruct_is_equivariant_to_units(unit_reference, a, b):
    noisy, model0, ref = unit_reference
    model = tiny_sssc()
    out = zse.reconstruct(a * noisy + b * a, model, patch_size=4, stats=("mean", "var", "pvar"))
    span = np.ptp(ref["mean"])
    np.testing.assert_allclose(out["mean"], a * ref["mean"] + b * a, rtol=0, atol=1e-6 * a * span)
    for stat in ("var", "pvar"):
        np.testing.assert_allclose(
            out[stat], a * a * ref[stat], rtol=0, atol=1e-6 * a * a * ref[stat].max()
        )
    # Learned parameters come back in the data's units.
    np.testing.assert_allclose(
        model.W_, a * model0.W_, rtol=1e-6, atol=1e-6 * a * np.abs(model0.W_).max()
    )
    assert model.sigma2_ == pytest.approx(a * a * model0.sigma2_, rel=1e-6)
    np.testing.assert_allclose(model.bias_, a * model0.bias_ + b * a, rtol=0, atol=1e-6 * a * span)
    D = 16
    np.testing.assert_allclose(
        model.free_energies_, np.array(model0.free_energies_) - D * np.log(a), rtol=1e-9
    )


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(log_a=st.floats(-8, 8), shift=st.floats(-1e3, 1e3))
def test_equivariance_property(unit_reference, log_a, shift):
    noisy, _, ref = unit_reference
    a = 10.0**log_a
    out = zse.reconstruct(a * noisy + shift * a, tiny_sssc(), patch_size=4, stats=("mean", "var"))
    span = np.ptp(ref["mean"])
    # An offset 1e3 times the image's spread costs that many significant digits (rounding).
    tol = 1e-6 * a * span
    np.testing.assert_allclose(out["mean"], a * ref["mean"] + shift * a, rtol=0, atol=tol)
    np.testing.assert_allclose(
        out["var"], a * a * ref["var"], rtol=0, atol=1e-6 * a * a * ref["var"].max()
    )


def test_small_noise_in_normalised_units_is_still_denoised():
    # Normalised float data (values near 1e-2, noise std 1e-3) are denoised, not flattened.
    noisy, clean = smooth_image(seed=3, shape=(48, 48), noise=1.0)
    scale = 1e-3
    out = zse.reconstruct(noisy * scale, tiny_sssc(max_iter=10), patch_size=4, stats=("mean",))
    before = np.mean((noisy * scale - clean * scale) ** 2)
    after = np.mean((out["mean"] - clean * scale) ** 2)
    assert after < 0.6 * before
    assert np.std(out["mean"]) > 0.5 * np.std(clean * scale)  # structure kept


@pytest.mark.parametrize("scale", [1e-300, 1e80, 1e299])
def test_extreme_scales_give_the_right_mean(scale, unit_reference):
    noisy, _, ref = unit_reference
    with np.errstate(all="ignore"), pytest.warns(RuntimeWarning) if scale != 1e80 else _nothing():
        out = zse.reconstruct(noisy * scale, tiny_sssc(), patch_size=4, stats=("mean",))
    np.testing.assert_allclose(
        out["mean"] / scale, ref["mean"], rtol=0, atol=1e-6 * np.ptp(ref["mean"])
    )


class _nothing:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


@pytest.mark.parametrize("scale", [1e-300, 1e299])
def test_variance_out_of_float64_range_is_refused_before_work(scale, unit_reference):
    noisy = unit_reference[0]
    with pytest.raises(ValueError, match="squares leave float64's range"):
        zse.reconstruct(noisy * scale, tiny_sssc(), patch_size=4, stats=("mean", "var"))


def test_poisson_models_refuse_values_that_cannot_be_counts():
    values = np.random.default_rng(0).uniform(0, 1, size=(200, 4)) * 1e-300
    for cls in (zse.PMM, zse.GPMM):
        with pytest.raises(ValueError, match="not electron counts"):
            cls(3, max_iter=2).fit(values)


def test_poisson_models_warn_on_non_integer_counts():
    values = np.random.default_rng(0).uniform(0, 10, size=(200, 4))
    with pytest.warns(UserWarning, match="not integer counts"):
        zse.PMM(3, max_iter=2, random_state=0).fit(values)
