"""The trivial model: every patch estimated as itself (tests the patch/merge pipeline)."""

from __future__ import annotations

from .. import _core
from .._validation import as_patches
from .base import BaseEstimator, check_is_fitted, check_n_features


class Identity(BaseEstimator):
    """The trivial model whose estimate of a patch is the patch itself.

    Useful to test the patch/merge pipeline: ``reconstruct(img, Identity())`` returns the input
    as ``"mean"`` and ``"median"`` and zero ``"var"``. It does not denoise.

    Attributes
    ----------
    n_features_in_ : int
        Patch dimension D seen in ``fit``.
    """

    parameters = ()

    _model_file_fields = {"n_features_in_": "count"}

    def _after_load(self):
        self.n_features_in_ = int(self.n_features_in_)

    def fit(self, patches, y=None, *, progress=None, patch_shape=None):
        """Record the patch dimension; returns ``self``."""
        patches = as_patches(patches)
        self.n_features_in_ = patches.shape[1]
        return self

    def estimate(self, patches, *, return_variance=False):
        """Return a float64 copy of ``patches``."""
        check_is_fitted(self)
        if return_variance:
            msg = "Identity provides no predictive variance"
            raise ValueError(msg)
        patches = as_patches(patches)
        check_n_features(self, patches.shape[1])
        return patches.copy()

    def _stream_volume(self, volume, patch, positions, n_threads, stream):
        """Streamed merge of every patch of a (Z, R, Q) volume: the input's statistics."""
        check_is_fitted(self)
        return _core.identity_estimate_volume(volume, patch, stream, n_threads)
