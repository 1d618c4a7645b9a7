"""One contract for every zse estimator (SSSC, PMM, GPMM, Identity).

Each model is checked for the same things: the shapes of fit/estimate/score, determinism for a
seed, results that do not depend on the thread count (fit, estimate and the streamed
reconstruction, a capped huge count included), get_params/set_params and scikit-learn's clone,
clear errors before fit, and a pickled fitted model that estimates the same.
"""

from __future__ import annotations

import pickle
import warnings

import numpy as np
import pytest

import zse
from zse import _core


def counts(n=600, d=9, seed=0):
    rng = np.random.default_rng(seed)
    rates = rng.gamma(4.0, 1.5, size=(n, 1)) * rng.uniform(0.5, 1.5, size=(1, d))
    return rng.poisson(rates).astype(np.float64)


MODELS = {
    "SSSC": lambda **kw: zse.SSSC(
        H=4, n_states=6, n_parents=3, max_iter=3, mutation="cross_randflip", **kw
    ),
    "PMM": lambda **kw: zse.PMM(4, max_iter=4, **kw),
    "GPMM": lambda **kw: zse.GPMM(4, max_iter=4, class_alpha=True, **kw),
    "Identity": lambda **kw: zse.Identity(),
}
TRAINED = [name for name in MODELS if name != "Identity"]


def make(name, **kw):
    return MODELS[name](**({} if name == "Identity" else kw))


def fitted(name, Y, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # GPMM's alpha cap on small data
        return make(name, random_state=3, **kw).fit(Y)


@pytest.mark.parametrize("name", list(MODELS))
def test_fit_estimate_score_shapes(name):
    Y = counts()
    model = make(name, random_state=0)
    assert model.fit(Y) is model
    assert model.n_features_in_ == Y.shape[1]
    estimates = model.estimate(Y[:50])
    assert estimates.shape == (50, Y.shape[1]) and estimates.dtype == np.float64
    assert np.isfinite(estimates).all()
    if name in TRAINED:
        estimates, variance = model.estimate(Y[:50], return_variance=True)
        assert variance.shape == estimates.shape and (variance >= 0).all()
        assert np.isfinite(model.score(Y[:50]))
        assert (
            len(model.free_energies_) == model.n_iter_
            and len(model.epoch_seconds_) == model.n_iter_
        )
    with pytest.raises(ValueError, match="pixels|features"):
        model.estimate(Y[:5, :4])


@pytest.mark.parametrize("name", TRAINED)
def test_same_seed_same_model(name):
    Y = counts()
    a, b = fitted(name, Y), fitted(name, Y)
    np.testing.assert_array_equal(a.W_, b.W_)
    assert a.free_energies_ == b.free_energies_
    np.testing.assert_array_equal(a.estimate(Y), b.estimate(Y))


@pytest.mark.parametrize("name", list(MODELS))
def test_results_do_not_depend_on_the_thread_count(name):
    Y = counts(2500)
    one = fitted(name, Y, n_threads=1)
    two = fitted(name, Y, n_threads=2)
    others = [two]
    if name in TRAINED:
        with pytest.warns(RuntimeWarning, match="exceeds"):
            others.append(fitted(name, Y, n_threads=10**6))  # capped at the CPUs, with a warning
    for other in others:
        if name in TRAINED:
            np.testing.assert_array_equal(one.W_, other.W_)
            assert one.free_energies_ == other.free_energies_
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # the capped count warns again
            np.testing.assert_array_equal(one.estimate(Y), other.estimate(Y))
    image = np.random.default_rng(1).poisson(6.0, size=(40, 37)).astype(np.float64)
    stats = ("mean", "var", "pvar") if name != "Identity" else ("mean", "var")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # GPMM's alpha cap on this small image
        outputs = [
            zse.reconstruct(
                image, make(name, random_state=5), patch_size=3, stats=stats, n_threads=t
            )
            for t in (1, 2)
        ]
    for stat in stats:
        np.testing.assert_array_equal(outputs[0][stat], outputs[1][stat])


@pytest.mark.parametrize("name", list(MODELS))
def test_params_and_clone(name):
    from sklearn.base import clone

    model = make(name, random_state=7)
    params = model.get_params()
    copy = clone(model)
    assert type(copy) is type(model) and copy.get_params() == params
    if params:
        key = sorted(params)[0]
        assert model.set_params(**{key: params[key]}) is model
    with pytest.raises(ValueError, match="invalid parameter"):
        model.set_params(not_a_parameter=1)


@pytest.mark.parametrize("name", list(MODELS))
def test_not_fitted_errors(name):
    model = make(name, random_state=0)
    with pytest.raises(zse.NotFittedError, match="not fitted"):
        model.estimate(counts()[:3])
    if name in TRAINED:
        with pytest.raises(zse.NotFittedError):
            model.score(counts()[:3])
        with pytest.raises(zse.NotFittedError):
            model.sample(2)


@pytest.mark.parametrize("name", list(MODELS))
def test_pickled_fitted_model_estimates_the_same(name):
    Y = counts()
    model = fitted(name, Y)
    again = pickle.loads(pickle.dumps(model))
    np.testing.assert_array_equal(again.estimate(Y), model.estimate(Y))
    assert again.get_params() == model.get_params()


def test_kmeans_plusplus_is_thread_invariant():
    Y = counts(3000)
    assert list(_core.kmeans_plusplus(Y, 20, 9, 1)) == list(_core.kmeans_plusplus(Y, 20, 9, 2))
