"""Spike-and-slab sparse coding trained by evolutionary truncated variational EM (ES3C).

The C++ core evolves every patch's set of S latent states, computes truncated posteriors with a
per-state cache in the k x k form, accumulates the sufficient statistics and performs the M-step
(ALGORITHM.md §3-§4). Python runs the epoch loop only.
"""

from __future__ import annotations

import hashlib
import sys
import time

import numpy as np

from . import _core
from ._base import BaseEstimator, check_is_fitted
from ._random import seed_from
from ._threads import effective_n_threads
from ._validation import as_patches, check_int

SELECTIONS = ("fit", "rand")
MUTATIONS = ("randflip", "sparseflip", "cross", "cross_randflip", "cross_sparseflip")
UPDATES = ("exact", "reference")


def _fingerprint(Y: np.ndarray) -> str:
    return hashlib.blake2b(memoryview(Y).cast("B"), digest_size=16).hexdigest() + str(Y.shape)


class SSSC(BaseEstimator):
    """Spike-and-slab sparse coding of image patches, trained by evolutionary EM (ES3C).

    A patch y (D pixels) is generated as y = W (s * z) + noise with binary s_h ~ Bernoulli(pi_h),
    Gaussian slabs z ~ N(mu, Psi) and white noise of variance sigma2, all learned from the noisy
    patches themselves (the noise level is never given). Each patch keeps a set of S latent
    states that an evolutionary search improves every epoch; the posterior is truncated to that
    set (Drefs, Guiraud & Lücke, JMLR 2022; ALGORITHM.md §3-§4).

    Parameters
    ----------
    H : int
        Number of latent units (generative fields), 1..256.
    n_states : int
        States S kept per patch (at most 2^H; S = 2^H gives exact EM).
    n_parents, n_children, n_generations : int
        Evolutionary search per epoch: parents drawn per generation, children per parent
        (flip mutations), generations.
    selection : {"fit", "rand"}
        Parent selection: fitness-proportional without replacement, or uniform.
    mutation : {"randflip", "sparseflip", "cross", "cross_randflip", "cross_sparseflip"}
    bitflip_prob : float, optional
        Overall bit-flip probability of the sparseflip operators (required by them).
    p_init : float, optional
        Probability of an active unit in the initial states (default 1/H).
    max_iter : int
        EM epochs.
    updates : {"reference", "exact"}
        M-step variant: the published updates (full Psi, sigma2 from outer products of posterior
        means, which over-estimates the noise and smooths a little more), or exact EM with a
        diagonal Psi and the exact sigma2 (the free energy cannot decrease with all states; about
        30% faster). The default is the one with the higher mean PSNR on bench/denoise_table.py
        (29.20 vs 29.17 dB on house, peppers and cameraman at sigma 15, 25, 50; see
        bench/README.md).
    n_estimate_sweeps : int
        Evolutionary sweeps (with the learned parameters fixed) used to find states for patches
        other than the training patches in :meth:`estimate` and :meth:`score`.
    random_state : None, int or numpy.random.Generator
    n_threads : int, optional
        Threads of the C++ kernels; results do not depend on it.
    verbose : bool
        Print the free energy, noise level, search statistics and time of every epoch.

    Attributes
    ----------
    W_ : ndarray of shape (n_features, H)
    pi_, mu_ : ndarray of shape (H,)
    Psi_ : ndarray of shape (H, H)
    sigma2_ : float
    free_energies_ : list of float
        Truncated free energy per patch at every epoch (computed with the parameters before that
        epoch's M-step, after the state search).
    epoch_seconds_ : list of float
        Wall-clock seconds of every epoch (E-step, state search and M-step).
    n_iter_ : int
    n_dead_units_ : int
        Units that received no posterior mass in the last M-step (their fields were kept).
    K_ : ndarray of shape (n_patches, n_states, words), uint64
        The training patches' final state sets (packed bits).
    """

    _provides_variance = True

    def __init__(
        self,
        H=64,
        *,
        n_states=32,
        n_parents=10,
        n_children=2,
        n_generations=1,
        selection="fit",
        mutation="randflip",
        bitflip_prob=None,
        p_init=None,
        max_iter=100,
        updates="reference",
        n_estimate_sweeps=10,
        random_state=None,
        n_threads=None,
        verbose=False,
    ):
        self.H = H
        self.n_states = n_states
        self.n_parents = n_parents
        self.n_children = n_children
        self.n_generations = n_generations
        self.selection = selection
        self.mutation = mutation
        self.bitflip_prob = bitflip_prob
        self.p_init = p_init
        self.max_iter = max_iter
        self.updates = updates
        self.n_estimate_sweeps = n_estimate_sweeps
        self.random_state = random_state
        self.n_threads = n_threads
        self.verbose = verbose

    # -- checks and initialisation -----------------------------------------------------------
    def _check_params(self):
        H = check_int(self.H, "H", 1, 256)
        S = check_int(self.n_states, "n_states", 1)
        if H < 63 and S > 2**H:
            msg = f"n_states={S} exceeds the 2^H={2**H} possible states"
            raise ValueError(msg)
        n_parents = check_int(self.n_parents, "n_parents", 1)
        if n_parents > S:
            msg = f"n_parents={n_parents} exceeds n_states={S}"
            raise ValueError(msg)
        check_int(self.n_children, "n_children", 1)
        check_int(self.n_generations, "n_generations", 1)
        check_int(self.max_iter, "max_iter", 1)
        check_int(self.n_estimate_sweeps, "n_estimate_sweeps", 1)
        if self.selection not in SELECTIONS:
            msg = f"selection must be one of {SELECTIONS}, got {self.selection!r}"
            raise ValueError(msg)
        if self.mutation not in MUTATIONS:
            msg = f"mutation must be one of {MUTATIONS}, got {self.mutation!r}"
            raise ValueError(msg)
        if self.mutation == "randflip" and self.n_children > H:
            msg = f"randflip needs n_children <= H, got {self.n_children} > {H}"
            raise ValueError(msg)
        if "sparseflip" in self.mutation and not (
            self.bitflip_prob is not None and 0 < float(self.bitflip_prob) < 1
        ):
            msg = f"mutation {self.mutation!r} needs bitflip_prob in (0, 1)"
            raise ValueError(msg)
        if self.updates not in UPDATES:
            msg = f"updates must be one of {UPDATES}, got {self.updates!r}"
            raise ValueError(msg)
        p_init = 1.0 / H if self.p_init is None else float(self.p_init)
        if not 0 < p_init < 1:
            msg = f"p_init must be in (0, 1), got {self.p_init!r}"
            raise ValueError(msg)
        return H, S, p_init

    @staticmethod
    def _initial_params(Y, H, rng):
        """tvlearn/evo's standard initialisation (ALGORITHM.md §3.7)."""
        D = Y.shape[1]
        sigma2 = float(np.mean(np.var(Y, axis=0, ddof=1 if len(Y) > 1 else 0))) + 0.001
        return {
            "pi": rng.uniform(0.1, 0.5, size=H),
            "mu": rng.normal(0.0, 1.0, size=H),
            "Psi": np.eye(H),
            "sigma2": sigma2,
            "W": Y.mean(axis=0)[:, None] + rng.normal(0.0, np.sqrt(sigma2) / 4.0, size=(D, H)),
        }

    def _log(self, message: str) -> None:
        if self.verbose:
            print(f"[zse] SSSC: {message}", file=sys.stderr, flush=True)

    def _estep(self, Y, K, epoch, *, evolve=True, n_sweeps=1, want_stats=False,
               want_estimates=False, want_variance=False, want_lpj=False, n_threads=1):
        return _core.sssc_estep(
            Y, self.W_, self.pi_, self.mu_, self.Psi_, float(self.sigma2_), K, self._seed, epoch,
            evolve, n_sweeps, int(self.n_parents), int(self.n_children), int(self.n_generations),
            self.selection, self.mutation, float(self.bitflip_prob or 0.0), want_stats,
            want_estimates, want_variance, want_lpj, n_threads,
        )

    # -- public API ----------------------------------------------------------------------------
    def fit(self, patches, y=None):
        """Learn W, pi, mu, Psi and sigma2 from the patches (N, D); returns ``self``."""
        H, S, p_init = self._check_params()
        Y = as_patches(patches)
        N = Y.shape[0]
        n_threads = effective_n_threads(self.n_threads)
        seed = seed_from(self.random_state)
        for name in list(vars(self)):
            if name.endswith("_") and not name.startswith("_"):
                delattr(self, name)
        self._seed = seed
        params = self._initial_params(Y, H, np.random.default_rng(seed))
        self.W_, self.pi_, self.mu_ = params["W"], params["pi"], params["mu"]
        self.Psi_, self.sigma2_ = params["Psi"], params["sigma2"]
        K = _core.sssc_init_states(N, S, H, p_init, seed, n_threads)
        self.free_energies_ = []
        self.epoch_seconds_ = []
        t_start = time.perf_counter()
        for epoch in range(1, int(self.max_iter) + 1):
            t = time.perf_counter()
            stats = self._estep(Y, K, epoch, want_stats=True, n_threads=n_threads)["stats"]
            self.free_energies_.append(stats.log_joint_sum / N)
            update = _core.sssc_mstep(
                stats, N, self.W_, self.pi_, self.mu_, self.Psi_, float(self.sigma2_),
                self.updates == "exact",
            )
            self.W_, self.pi_, self.mu_ = update["W"], update["pi"], update["mu"]
            self.Psi_, self.sigma2_ = update["Psi"], update["sigma2"]
            self.n_dead_units_ = update["n_dead_units"]
            self.epoch_seconds_.append(time.perf_counter() - t)
            self._log(
                f"epoch {epoch}/{self.max_iter}  F/N {self.free_energies_[-1]:.4f}  "
                f"sigma {np.sqrt(self.sigma2_):.4g}  new states/patch {stats.n_new_states / N:.2f}  "
                f"replaced/patch {stats.n_replaced / N:.2f}  ({self.epoch_seconds_[-1]:.2f} s)"
            )
            if stats.n_invalid:
                self._log(f"{stats.n_invalid} state(s) had a non-positive-definite covariance")
        self.n_iter_ = int(self.max_iter)
        self.K_ = K
        self.n_features_in_ = Y.shape[1]
        self._train_fingerprint = _fingerprint(Y)
        if self.n_dead_units_:
            self._log(f"{self.n_dead_units_} unit(s) were never active in the last epoch")
        self._log(f"fitted in {time.perf_counter() - t_start:.2f} s")
        return self

    def _states_for(self, Y, n_threads):
        """State sets for Y: the training sets if Y is the training data, else fresh ones."""
        if _fingerprint(Y) == self._train_fingerprint:
            return self.K_.copy(), 1
        p_init = 1.0 / self.H if self.p_init is None else float(self.p_init)
        K = _core.sssc_init_states(Y.shape[0], self.K_.shape[1], self.H, p_init, self._seed + 1, n_threads)
        return K, int(self.n_estimate_sweeps)

    def _prepare(self, patches):
        check_is_fitted(self)
        Y = as_patches(patches)
        if Y.shape[1] != self.n_features_in_:
            msg = f"patches have {Y.shape[1]} pixels, the model was fitted on {self.n_features_in_}"
            raise ValueError(msg)
        return Y

    def estimate(self, patches, *, return_variance=False):
        """Posterior-mean estimate W <s z> of every noise-free patch (ALGORITHM.md §3.8).

        For the training patches the learned state sets are refined by one more evolutionary
        sweep with the final parameters; other patches get ``n_estimate_sweeps`` sweeps from
        fresh states.

        Parameters
        ----------
        patches : array_like of shape (n_patches, n_features)
        return_variance : bool
            Also return the posterior variance of every noise-free pixel (sigma2 not included).

        Returns
        -------
        estimates : ndarray of shape (n_patches, n_features)
        variance : ndarray of shape (n_patches, n_features), only with ``return_variance``
        """
        Y = self._prepare(patches)
        n_threads = effective_n_threads(self.n_threads)
        K, sweeps = self._states_for(Y, n_threads)
        out = self._estep(Y, K, 10**9, n_sweeps=sweeps, want_estimates=True,
                          want_variance=bool(return_variance), n_threads=n_threads)
        if return_variance:
            return out["estimates"], out["variance"]
        return out["estimates"]

    def score(self, patches) -> float:
        """Truncated free energy per patch (a lower bound of the log-likelihood per patch)."""
        Y = self._prepare(patches)
        n_threads = effective_n_threads(self.n_threads)
        K, sweeps = self._states_for(Y, n_threads)
        return self._estep(Y, K, 10**9, n_sweeps=sweeps, n_threads=n_threads)["stats"].log_joint_sum / Y.shape[0]
