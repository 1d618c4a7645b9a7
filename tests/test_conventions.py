"""scikit-learn conventions of every model: score(X, y=None), cloning by get_params, tags."""

import numpy as np
import pytest

import zse
from helpers import (
    MODEL_FACTORIES,
)


@pytest.mark.parametrize("name", sorted(MODEL_FACTORIES))
def test_score_takes_y_none(name, count_patches):
    model = MODEL_FACTORIES[name](max_iter=2).fit(count_patches, None)
    assert np.isfinite(model.score(count_patches, y=None))
    assert np.isfinite(model.score(count_patches, None))


@pytest.mark.parametrize("name", sorted(MODEL_FACTORIES))
def test_clone_by_get_params_gives_an_unfitted_equal_estimator(name, count_patches):
    model = MODEL_FACTORIES[name](max_iter=2).fit(count_patches)
    clone = type(model)(**model.get_params())
    assert clone.get_params() == model.get_params() and not hasattr(clone, "W_")
    assert {"checkpoint", "checkpoint_every", "resume"} <= set(model.get_params())


def test_sklearn_tags_without_and_with_sklearn():
    model = zse.SSSC()
    assert model._more_tags()["requires_y"] is False
    sklearn = pytest.importorskip("sklearn")
    tags = model.__sklearn_tags__()
    assert tags.target_tags.required is False and tags.input_tags.allow_nan is False
    assert sklearn.base.clone(model).get_params() == model.get_params()
