"""The EM loop shared by the trained models (SSSC, PMM, GPMM): reset of learned attributes,
progress lines, checkpoints and resume, and the guarantee that an interrupted ``fit`` (Ctrl-C or
an error) leaves the estimator as it was before. The models implement only the hooks in which
they differ."""

from __future__ import annotations

import contextlib
import sys
import time
from pathlib import Path

import numpy as np

from .. import _files
from .._mpi import team_of
from .._progress import format_seconds, terminal_bar, time_left
from .._random import seed_from
from .._threads import effective_n_threads
from .._validation import check_progress
from .base import BaseEstimator
from .checkpoints import CheckpointError, Checkpoints
from .params import FilePath, Flag, Free, Int, Param, Real


def em_parameters(*, max_iter: int, tol_help: str, verbose_help: str) -> tuple:
    """The rows every EM-trained model shares: epochs, stopping, seed, threads, logging,
    checkpoints and MPI (a model's table adds its own rows in front)."""
    return (
        Param("max_iter", max_iter, Int(1), "EM epochs", learned=False),
        Param("tol", None, Real(0.0, none_ok=True), tol_help, learned=False, default_text="off"),
        Param(
            "random_state",
            None,
            Free(what="None, an int or a numpy.random.Generator"),
            "seed of the initialisation and the state search",
            cli="common",
            flag="--seed",
            kind="None, int or numpy.random.Generator",
        ),
        Param(
            "n_threads",
            None,
            Int(1, none_ok=True),
            "threads of the C++ kernels; results do not depend on it",
            cli="common",
            learned=False,
            stored=False,
            default_text="all available",
        ),
        Param(
            "verbose",
            False,
            Flag(),
            verbose_help,
            cli="common",
            flag="-q",
            learned=False,
            stored=False,
        ),
        Param(
            "checkpoint",
            None,
            FilePath(),
            "file the training state is written to (atomically) every checkpoint_every epochs "
            "and after the last",
            learned=False,
            stored=False,
        ),
        Param(
            "checkpoint_every",
            10,
            Int(1),
            "epochs between checkpoints",
            learned=False,
            stored=False,
        ),
        Param(
            "resume",
            False,
            Flag(),
            "continue from the checkpoint when it exists (bit-identical results)",
            doc="A checkpoint of other data or settings is refused; max_iter may be raised to "
            "extend a finished run.",
            learned=False,
            stored=False,
        ),
        Param(
            "comm",
            None,
            Free(what="an mpi4py communicator or None"),
            "train on the MPI ranks of this communicator",
            doc="Every rank calls fit with the same patches and runs the E-step of its share of "
            "them (with its own n_threads); the learned parameters are bit-identical to a run on "
            "one rank, for any number of ranks and threads (README 'On a cluster').",
            cli="python",
            learned=False,
            stored=False,
            kind="mpi4py communicator, optional",
        ),
    )


class EMEstimator(Checkpoints, BaseEstimator):
    """An estimator trained by an EM loop; subclasses fill in the hooks.

    Hooks (all take and return plain arrays; the loop owns timing, logging and checkpoints):

    ``_check_params()``
        Validate the hyper-parameters (raise ``ValueError``/``TypeError``).
    ``_fit_data(patches)``
        Validate and convert the patches to the array the epochs work on.
    ``_initialise(Y, seed, n_threads)``
        Set the initial parameters and any working state.
    ``_em_epoch(Y, epoch, n_threads) -> (objective, message)``
        One E-step and M-step; the objective per patch (in the data's units) is recorded in
        ``free_energies_`` and the message is logged.
    ``_state_arrays() -> dict`` / ``_load_state_arrays(dict)``
        Everything a later epoch depends on, for checkpoints (bit-identical resume).
    ``_finish(Y)``
        Set the remaining learned attributes.
    ``_converged(objectives) -> bool``
        Early stopping (default: never).
    """

    def _log(self, message: str) -> None:
        team = vars(self).get("_team")
        if self.verbose and (team is None or team.is_root):
            print(f"[zse] {type(self).__name__}: {message}", file=sys.stderr, flush=True)

    def fit(self, patches, y=None, *, progress=None, patch_shape=None):
        """Learn the model's parameters from the patches (n_patches, n_features).

        Parameters
        ----------
        patches : array_like of shape (n_patches, n_features)
        y : None
            Ignored; present for scikit-learn compatibility.
        progress : callable, optional
            Called after every epoch as ``progress(epoch, max_iter)``; an exception it raises
            stops the fit (the estimator is left as it was).
        patch_shape : tuple of int, optional
            The patches' extents ((rows, columns) or (z, rows, columns)), for models whose
            noise model depends on the pixels' offsets (SSSC with ``noise`` other than
            "white"); square patches are assumed when not given. ``zse.reconstruct`` passes it.

        Returns
        -------
        self

        Notes
        -----
        If ``fit`` is interrupted (KeyboardInterrupt) or fails, the estimator is left exactly
        as it was before the call. With ``checkpoint`` set, the state after every
        ``checkpoint_every`` epochs (and after the last) is written there atomically; with
        ``resume=True`` a fit continues from that file and gives bit-identical results to an
        uninterrupted run.
        """
        check_progress(progress, "progress(epoch, max_iter)")
        before = dict(vars(self))
        try:
            self._fit_patch_shape = None if patch_shape is None else tuple(patch_shape)
            self._fit(patches, progress)
        except BaseException:
            vars(self).clear()
            vars(self).update(before)
            raise
        return self

    def _reset(self) -> None:
        for name in list(vars(self)):
            if name.endswith("_") and not name.startswith("__"):
                delattr(self, name)

    def _check_checkpoint_params(self):
        path, every, resume = self.checkpoint, self.checkpoint_every, self.resume
        if path is not None:
            path = Path(path)
            if path.is_dir():
                msg = f"checkpoint {path} is a directory; give a file name"
                raise ValueError(msg)
            if not path.parent.is_dir():
                msg = f"the directory of checkpoint {path} does not exist"
                raise FileNotFoundError(msg)
        if resume and path is None:
            msg = "resume=True needs a checkpoint path to resume from"
            raise ValueError(msg)
        if path is not None and not resume:
            # Refused before any work: a checkpoint replaces only a zse checkpoint (to resume,
            # the file is read first and must be one).
            _files.check_target(path, kind="checkpoint")
        return path, every, resume

    def summary(self) -> dict:
        summary = super().summary()
        for attr in ("free_energies_", "log_likelihoods_", "n_iter_", "converged_"):
            value = vars(self).get(attr)
            if value is not None:
                summary[attr.rstrip("_")] = np.asarray(value).tolist()
        return summary

    @contextlib.contextmanager
    def fitting_on(self, comm):
        """Fit on ``comm``'s ranks inside the block when the model's own ``comm`` is unset."""
        if comm is None or self.comm is not None:
            yield
            return
        self.comm = comm
        try:
            yield
        finally:
            self.comm = None

    def _fit(self, patches, progress=None) -> None:
        self._check_params()
        checkpoint, every, resume = self._check_checkpoint_params()
        max_iter = int(self.max_iter)
        Y = self._fit_data(patches)
        n_threads = effective_n_threads(self.n_threads)
        seed = seed_from(self.random_state)
        data_id = self._train_fingerprint
        self._reset()
        # With an MPI communicator each rank runs its share of every E-step (ALGORITHM.md §7.2).
        self._team = team_of(self.comm)

        start_epoch, objectives, seconds, converged = 1, [], [], False
        stored = None
        if resume and checkpoint.exists():
            stored = self._read_checkpoint(checkpoint, data_id)
            seed = stored["meta"]["seed"]
        elif resume:
            self._log(f"no checkpoint at {checkpoint} yet: starting from epoch 1")
        self._seed = seed
        self._initialise(Y, seed, n_threads)
        if stored is not None:
            meta = stored["meta"]
            if meta["epoch"] > max_iter:
                msg = (
                    f"checkpoint {checkpoint} is at epoch {meta['epoch']}, beyond "
                    f"max_iter={max_iter}; raise max_iter to resume from it"
                )
                raise CheckpointError(msg)
            self._check_state_arrays(stored["arrays"], checkpoint)
            self._load_state_arrays(stored["arrays"])
            start_epoch = meta["epoch"] + 1
            objectives, seconds = list(meta["objectives"]), list(meta["epoch_seconds"])
            converged = bool(meta["converged"])
            self._log(f"resumed from {checkpoint} after epoch {meta['epoch']}")

        t_start = time.perf_counter()
        epoch = start_epoch - 1
        # A bar on a terminal; elsewhere a line per epoch with the time left (logs, batch jobs).
        team = self._team
        bar = None
        if self.verbose and (team is None or team.is_root) and not converged:
            bar = terminal_bar(max_iter - start_epoch + 1, f"{type(self).__name__} fit", "epoch")
        try:
            for epoch in range(start_epoch, max_iter + 1):
                if converged:
                    break
                t = time.perf_counter()
                objective, message = self._em_epoch(Y, epoch, n_threads)
                objectives.append(float(objective))
                seconds.append(time.perf_counter() - t)
                if bar is not None:
                    bar.set_postfix_str(message, refresh=False)
                    bar.update(1)
                else:
                    left = time_left(
                        time.perf_counter() - t_start,
                        epoch - start_epoch + 1,
                        max_iter - start_epoch + 1,
                    )
                    tail = f"; about {format_seconds(left)} left" if left else ""
                    self._log(f"epoch {epoch}/{max_iter}  {message}  ({seconds[-1]:.2f} s{tail})")
                converged = self._converged(objectives)
                if progress is not None and team is None:
                    progress(epoch, max_iter)
                elif progress is not None:
                    # A collective cancel flag: a callback that raises on some ranks only
                    # (a cancel seen by one process) stops the fit on every rank (RankError)
                    # instead of leaving the others waiting in the next epoch's collectives.
                    team.run(lambda done=epoch: progress(done, max_iter), gather=False)
                if checkpoint is not None and (
                    epoch % every == 0 or epoch == max_iter or converged
                ):
                    self._write_checkpoint(
                        checkpoint, data_id, epoch, objectives, seconds, converged
                    )
        finally:
            if bar is not None:
                bar.close()
        self.free_energies_ = objectives
        self.epoch_seconds_ = seconds
        self.n_iter_ = len(objectives)
        self.converged_ = converged
        self._finish(Y)
        self._log(f"fitted in {time.perf_counter() - t_start:.2f} s")
        del self._team  # a fitted model holds no communicator state (it can be pickled)

    def _converged(self, objectives) -> bool:
        return False

    # -- model files (zse.save_model / zse.load_model) ------------------------------------------
    # Every value a model file holds, by name, and its kind ("int", "count" (an int >= 0),
    # "float", "bool", "floats" (a list), "array", "float_or_array"): save_model writes exactly
    # these, load_model sets nothing else and checks each one's type before use.
    _model_file_fields: dict = {
        "n_features_in_": "count",
        "free_energies_": "floats",
        "epoch_seconds_": "floats",
        "n_iter_": "count",
        "converged_": "bool",
        "_seed": "count",
    }

    def _check_fitted_shapes(self) -> None:
        """Raise ValueError when learned arrays disagree with each other or the parameters."""

    def _after_load(self) -> None:
        """Validate and complete the state read from a model file."""
        self.n_features_in_ = int(self.n_features_in_)
        self._seed = int(self._seed)
        self._train_fingerprint = None  # nothing was trained on in this process
        self._check_fitted_shapes()

    def _rng(self, random_state):
        return np.random.default_rng(seed_from(random_state))
