"""Minimal scikit-learn-style estimator base, without depending on scikit-learn."""

from __future__ import annotations

import inspect


class NotFittedError(ValueError, AttributeError):
    """Raised when an estimator is used before ``fit``."""


class BaseEstimator:
    """``get_params``/``set_params``/``repr`` read from the ``__init__`` signature.

    Subclasses store every ``__init__`` argument unchanged under the same name and do no work in
    ``__init__``; learned values get a trailing underscore.
    """

    @classmethod
    def _param_names(cls) -> list[str]:
        signature = inspect.signature(cls.__init__)
        return [
            name
            for name, p in signature.parameters.items()
            if name != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
        ]

    def get_params(self, deep: bool = True) -> dict:
        return {name: getattr(self, name) for name in self._param_names()}

    def set_params(self, **params):
        valid = self._param_names()
        for name, value in params.items():
            if name not in valid:
                msg = f"invalid parameter {name!r} for {type(self).__name__}; valid: {valid}"
                raise ValueError(msg)
            setattr(self, name, value)
        return self

    def __repr__(self) -> str:
        defaults = {
            name: p.default for name, p in inspect.signature(type(self).__init__).parameters.items()
        }
        changed = [
            f"{name}={value!r}"
            for name, value in self.get_params().items()
            if defaults.get(name, inspect.Parameter.empty) is not value
            and defaults.get(name) != value
        ]
        return f"{type(self).__name__}({', '.join(changed)})"


def is_fitted(estimator) -> bool:
    """True when ``estimator`` has learned attributes (names ending in ``_``)."""
    if hasattr(estimator, "__sklearn_is_fitted__"):
        return bool(estimator.__sklearn_is_fitted__())
    return any(
        name.endswith("_") and not name.startswith("__") for name in vars(estimator)
    )


def check_is_fitted(estimator) -> None:
    if not is_fitted(estimator):
        msg = (
            f"this {type(estimator).__name__} instance is not fitted yet; "
            "call fit(patches) first"
        )
        raise NotFittedError(msg)
