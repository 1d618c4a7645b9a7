"""An SSSC fit's checkpoint arrays: what is saved every ``checkpoint_every`` epochs and set back
on a resumed fit (ALGORITHM.md §7.3)."""

from __future__ import annotations

import numpy as np

from .checkpoints import CheckpointError
from .sssc_noise import set_noise


def state_arrays(model) -> dict:
    """What a checkpoint of an SSSC fit holds (ALGORITHM.md §7.3): the standardised parameters,
    every training patch's state set and the noise, from which C is rebuilt bit for bit."""
    return {
        "W": model._W_std,
        "pi": model.pi_,
        "mu": model.mu_,
        "Psi": model.Psi_,
        "sigma2": np.float64(model._sigma2_std),
        "K": model._full_state_sets(),
        "bias": model._bias_std,
        "n_dead_units": np.int64(model.n_dead_units_),
        # the noise's autocorrelation and variance, from which C is rebuilt bit for bit
        "noise_grid": np.zeros(0) if model._noise is None else model._noise.correlation,
        "noise_variance": np.float64(0.0 if model._noise is None else model._noise.variance),
    }


def load_state_arrays(model, arrays) -> None:
    """Set a checkpoint's arrays on a fit being resumed (its shapes checked first)."""
    if arrays["W"].shape != model._W_std.shape or arrays["K"].shape != model._K.shape:
        msg = "the checkpoint's arrays do not match this model's shapes"
        raise CheckpointError(msg)
    model._W_std = np.ascontiguousarray(arrays["W"], dtype=np.float64)
    model.pi_ = np.ascontiguousarray(arrays["pi"], dtype=np.float64)
    model.mu_ = np.ascontiguousarray(arrays["mu"], dtype=np.float64)
    model.Psi_ = np.ascontiguousarray(arrays["Psi"], dtype=np.float64)
    model._sigma2_std = float(arrays["sigma2"])
    model._K = np.ascontiguousarray(arrays["K"], dtype=np.uint64)
    model._bias_std = np.ascontiguousarray(arrays["bias"], dtype=np.float64)
    model.n_dead_units_ = int(arrays["n_dead_units"])
    if model._noise is not None:
        set_noise(
            model, model._noise.restored(arrays["noise_grid"], float(arrays["noise_variance"]))
        )
