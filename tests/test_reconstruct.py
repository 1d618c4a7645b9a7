import numpy as np
import pytest

import zse


def test_identity_reconstruct_returns_input(rng):
    image = rng.normal(size=(23, 31))
    out = zse.reconstruct(
        image, zse.Identity(), stats=("mean", "median", "var", "count"), patch_size=(4, 3)
    )
    assert list(out) == ["mean", "median", "var", "count"]
    np.testing.assert_array_equal(out["mean"], image)
    np.testing.assert_array_equal(out["median"], image)
    np.testing.assert_array_equal(out["var"], 0.0)
    assert out["count"].max() == 12


def test_default_model_and_patch_size(rng):
    image = 100.0 + 10.0 * rng.normal(size=(40, 40))  # Gaussian noise: auto picks SSSC
    out = zse.reconstruct(image)
    assert set(out) == {"mean", "var"}
    assert out["mean"].shape == image.shape
    assert out["var"].max() > 0  # a real model, not the identity
    assert isinstance(out.model, zse.SSSC) and out.model.patch_size_ == (8, 8)
    assert out.model_choice["model"] == "sssc" and out.model_choice["counts"] is False


def test_reconstruct_fits_unfitted_model_and_reuses_fitted(rng):
    model = zse.Identity()
    image = rng.normal(size=(10, 10))
    zse.reconstruct(image, model, patch_size=3)
    assert model.n_features_in_ == 9
    out = zse.reconstruct(image + 1, model, patch_size=3, stats="mean")
    np.testing.assert_allclose(out["mean"], image + 1)


def test_reconstruct_does_not_modify_input(rng):
    image = rng.normal(size=(12, 12))
    copy = image.copy()
    zse.reconstruct(image, zse.Identity(), patch_size=3)
    np.testing.assert_array_equal(image, copy)


class NoisyEstimates(zse.Identity):
    """Patch + a known per-patch offset: makes the variance image non-trivial and predictable."""

    provides_variance = True

    def estimate(self, patches, *, return_variance=False):
        est = super().estimate(patches) + np.arange(len(patches))[:, None] % 2
        if return_variance:
            return est, np.full_like(est, 0.25)
        return est


def test_pvar_is_mean_predictive_variance_plus_across_patch_variance(rng):
    image = rng.normal(size=(9, 9))
    out = zse.reconstruct(image, NoisyEstimates(), stats=("pvar", "var"), patch_size=3)
    np.testing.assert_allclose(out["pvar"], out["var"] + 0.25, rtol=1e-15)
    assert out["var"].max() > 0


def test_estimator_params_and_repr():
    model = zse.Identity()
    assert model.get_params() == {}
    assert repr(model) == "Identity()"
    with pytest.raises(ValueError, match="invalid parameter"):
        model.set_params(H=3)


def test_show_config(capsys):
    zse.show_config()
    text = capsys.readouterr().out
    assert zse.__version__ in text and "OpenMP" in text and "threads" in text
