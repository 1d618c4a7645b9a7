"""The estimator contract shared by every model, without depending on scikit-learn.

:class:`BaseEstimator` reads ``get_params``/``set_params``/``repr`` from the ``__init__``
signature. :class:`EMEstimator` owns the EM loop of the trained models (SSSC, PMM, GPMM): reset
of learned attributes, progress lines, checkpoints and resume, and the guarantee that an
interrupted ``fit`` (Ctrl-C or an error) leaves the estimator as it was before. The models
implement only the hooks in which they differ.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

from . import _files
from ._mpi import team_of
from ._progress import format_seconds, terminal_bar, time_left
from ._random import seed_from
from ._threads import effective_n_threads


class NotFittedError(ValueError, AttributeError):
    """Raised when an estimator is used before ``fit``."""


class CheckpointError(ValueError):
    """A checkpoint file that cannot be used to resume this fit."""


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

    def _check_params(self) -> None:
        """Validate the hyper-parameters (models with parameters override this)."""

    def _record_patch_shape(self, patch) -> None:
        """Remember the patch extents the model was fitted on (``patch_size_``)."""
        self.patch_size_ = tuple(int(p) for p in patch)

    def _check_patch_shape(self, patch) -> None:
        """ValueError when ``patch`` differs from the extents the model was fitted on (a 4 x 4
        model on 2 x 8 patches has the right pixel count and the wrong fields)."""
        known = getattr(self, "patch_size_", None)
        patch = tuple(int(p) for p in patch)
        if known is not None and _planar(known) != _planar(patch):
            msg = (
                f"the model was fitted on {'x'.join(map(str, known))} patches, not "
                f"{'x'.join(map(str, patch))}"
            )
            raise ValueError(msg)

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

    def __sklearn_tags__(self):
        """scikit-learn's estimator tags (used only when scikit-learn is installed).

        zse estimators are unsupervised transformers of patch matrices: ``fit(X, y=None)``,
        no target, float input without NaN.
        """
        from sklearn.utils import InputTags, Tags, TargetTags, TransformerTags

        return Tags(
            estimator_type=None,
            target_tags=TargetTags(required=False),
            transformer_tags=TransformerTags(),
            input_tags=InputTags(allow_nan=False),
            requires_fit=True,
        )

    def _more_tags(self) -> dict:
        # scikit-learn < 1.6 reads tags from here.
        return {"requires_y": False, "allow_nan": False, "X_types": ["2darray"]}


def _planar(patch) -> tuple:
    """A (1, rows, columns) patch of a stack's section is the (rows, columns) patch."""
    patch = tuple(int(p) for p in patch)
    return patch[1:] if len(patch) == 3 and patch[0] == 1 else patch


def is_fitted(estimator) -> bool:
    """True when ``estimator`` has learned attributes (names ending in ``_``)."""
    if hasattr(estimator, "__sklearn_is_fitted__"):
        return bool(estimator.__sklearn_is_fitted__())
    return any(name.endswith("_") and not name.startswith("__") for name in vars(estimator))


def check_is_fitted(estimator) -> None:
    if not is_fitted(estimator):
        msg = f"this {type(estimator).__name__} instance is not fitted yet; call fit(patches) first"
        raise NotFittedError(msg)


def check_n_features(estimator, n_features: int) -> None:
    """The fitted check and the patch-size check shared by every model's estimate."""
    check_is_fitted(estimator)
    if n_features != estimator.n_features_in_:
        msg = (
            f"patches have {n_features} pixels, the model was fitted on {estimator.n_features_in_}"
        )
        raise ValueError(msg)


def fingerprint(array: np.ndarray) -> str:
    """A digest of the values and shape of a C-contiguous array (identifies training data)."""
    digest = hashlib.blake2b(memoryview(array).cast("B"), digest_size=16).hexdigest()
    return digest + str(array.shape)


CHECKPOINT_FORMAT = "zse-checkpoint"
CHECKPOINT_VERSION = 1
# Settings that do not change what an epoch computes: a run may resume with other values.
_RESUMABLE_PARAMS = frozenset(
    {
        "n_threads",
        "verbose",
        "checkpoint",
        "checkpoint_every",
        "resume",
        "max_iter",
        "tol",
        "n_estimate_sweeps",
        "search_patience",
        "comm",
    }
)


def _jsonable(value):
    if isinstance(value, (bool, int, float, str, type(None))):
        return value
    if isinstance(value, (np.integer, np.floating)):
        return value.item()
    return repr(value)


class EMEstimator(BaseEstimator):
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
        team = getattr(self, "_team", None)
        if self.verbose and (team is None or team.is_root):
            print(f"[zse] {type(self).__name__}: {message}", file=sys.stderr, flush=True)

    def fit(self, patches, y=None, *, progress=None):
        """Learn the model's parameters from the patches (n_patches, n_features).

        Parameters
        ----------
        patches : array_like of shape (n_patches, n_features)
        y : None
            Ignored; present for scikit-learn compatibility.
        progress : callable, optional
            Called after every epoch as ``progress(epoch, max_iter)``; an exception it raises
            stops the fit (the estimator is left as it was).

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
        before = dict(vars(self))
        try:
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
        path = getattr(self, "checkpoint", None)
        every = getattr(self, "checkpoint_every", 10)
        resume = bool(getattr(self, "resume", False))
        if path is not None:
            if not isinstance(path, (str, os.PathLike)):
                msg = f"checkpoint must be a path or None, got {path!r}"
                raise TypeError(msg)
            path = Path(path)
            if path.is_dir():
                msg = f"checkpoint {path} is a directory; give a file name"
                raise ValueError(msg)
            if not path.parent.is_dir():
                msg = f"the directory of checkpoint {path} does not exist"
                raise FileNotFoundError(msg)
        from ._validation import check_int

        every = check_int(every, "checkpoint_every", 1)
        if resume and path is None:
            msg = "resume=True needs a checkpoint path to resume from"
            raise ValueError(msg)
        if path is not None and not resume:
            # Refused before any work: a checkpoint replaces only a zse checkpoint (to resume,
            # the file is read first and must be one).
            _files.check_target(path, kind="checkpoint")
        return path, every, resume

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
        self._team = team_of(getattr(self, "comm", None))

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
                if progress is not None:
                    progress(epoch, max_iter)
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
        from ._random import seed_from

        return np.random.default_rng(seed_from(random_state))

    # -- checkpoints ---------------------------------------------------------------------------
    def _checkpoint_settings(self) -> dict:
        params = {
            name: _jsonable(value)
            for name, value in self.get_params().items()
            if name not in _RESUMABLE_PARAMS
        }
        if params.get("random_state") is None or not isinstance(self.random_state, int):
            params.pop("random_state", None)  # None/Generator: the checkpoint's seed is used
        return params

    def _write_checkpoint(self, path: Path, data_id, epoch, objectives, seconds, converged):
        from . import __version__

        meta = {
            "format": CHECKPOINT_FORMAT,
            "version": CHECKPOINT_VERSION,
            "zse_version": __version__,
            "model": type(self).__name__,
            "settings": self._checkpoint_settings(),
            "data": data_id,
            "seed": int(self._seed),
            "epoch": int(epoch),
            "objectives": [float(v) for v in objectives],
            "epoch_seconds": [float(v) for v in seconds],
            "converged": bool(converged),
        }
        # _state_arrays is collective under MPI (the state sets are gathered); rank 0 writes.
        arrays = {f"state__{k}": np.asarray(v) for k, v in self._state_arrays().items()}
        team = self._team

        def write():
            _files.check_target(path, kind="checkpoint")
            tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
            try:
                with open(tmp, "wb") as handle:
                    np.savez(handle, meta=np.array(json.dumps(meta)), **arrays)
                os.replace(tmp, path)
            finally:
                if tmp.exists():
                    tmp.unlink()

        if team is None:
            write()
        else:
            team.run(lambda: write() if team.is_root else None, gather=False)

    def _read_checkpoint(self, path: Path, data_id) -> dict:
        try:
            with np.load(path, allow_pickle=False) as npz:
                if not hasattr(npz, "files") or "meta" not in npz.files:
                    msg = "no 'meta' header"
                    raise ValueError(msg)
                meta = json.loads(str(npz["meta"][()]))
                arrays = {k[len("state__") :]: npz[k] for k in npz.files if k.startswith("state__")}
        except Exception as error:  # noqa: BLE001 - any decoding failure is a bad checkpoint
            msg = f"checkpoint {path} cannot be read (corrupt or not a zse checkpoint): {error}"
            raise CheckpointError(msg) from error
        if not isinstance(meta, dict):
            msg = f"checkpoint {path}: the header is a {type(meta).__name__}, not an object"
            raise CheckpointError(msg)
        if meta.get("format") != CHECKPOINT_FORMAT or meta.get("version") != CHECKPOINT_VERSION:
            msg = (
                f"checkpoint {path} has format {meta.get('format')!r} version "
                f"{meta.get('version')!r}; this zse reads {CHECKPOINT_FORMAT!r} version "
                f"{CHECKPOINT_VERSION}"
            )
            raise CheckpointError(msg)
        _check_checkpoint_fields(meta, path)
        if meta.get("model") != type(self).__name__:
            msg = f"checkpoint {path} is of a {meta.get('model')} model, not {type(self).__name__}"
            raise CheckpointError(msg)
        if meta.get("data") != data_id:
            msg = (
                f"checkpoint {path} was written for other training data; it cannot resume this fit"
            )
            raise CheckpointError(msg)
        settings = self._checkpoint_settings()
        differ = sorted(
            k
            for k in set(settings) | set(meta["settings"])
            if settings.get(k) != meta["settings"].get(k)
        )
        if differ:
            detail = ", ".join(
                f"{k}: checkpoint {meta['settings'].get(k)!r}, now {settings.get(k)!r}"
                for k in differ
            )
            msg = f"checkpoint {path} was written with other settings ({detail})"
            raise CheckpointError(msg)
        return {"meta": meta, "arrays": arrays}

    def _check_state_arrays(self, arrays: dict, path: Path) -> None:
        """The checkpoint's arrays against this fit's own state: names, shapes and kinds."""
        expected = {k: np.asarray(v) for k, v in self._state_arrays().items()}
        missing = sorted(set(expected) - set(arrays))
        extra = sorted(set(arrays) - set(expected))
        if missing or extra:
            msg = (
                f"checkpoint {path} does not hold this model's state: "
                + (f"missing {', '.join(map(repr, missing))}" if missing else "")
                + ("; " if missing and extra else "")
                + (f"unexpected {', '.join(map(repr, extra))}" if extra else "")
            )
            raise CheckpointError(msg)
        for name, reference in expected.items():
            value = arrays[name]
            if value.shape != reference.shape or value.dtype.kind != reference.dtype.kind:
                msg = (
                    f"checkpoint {path}: field {name!r} is {value.dtype} of shape {value.shape}, "
                    f"this fit needs {reference.dtype} of shape {reference.shape}"
                )
                raise CheckpointError(msg)
            if value.dtype.kind == "f" and not np.all(np.isfinite(value)):
                msg = f"checkpoint {path}: field {name!r} holds non-finite values"
                raise CheckpointError(msg)


# The header of a checkpoint: each field and the check it must pass.
def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_numbers(v) -> bool:
    return isinstance(v, list) and all(
        isinstance(x, (int, float)) and not isinstance(x, bool) and np.isfinite(x) for x in v
    )


_CHECKPOINT_FIELDS = {
    "model": (lambda v: isinstance(v, str), "a string"),
    "settings": (lambda v: isinstance(v, dict), "an object"),
    "seed": (lambda v: _is_int(v) and v >= 0, "an int >= 0"),
    "epoch": (lambda v: _is_int(v) and v >= 1, "an int >= 1"),
    "objectives": (_is_numbers, "a list of finite numbers"),
    "epoch_seconds": (_is_numbers, "a list of finite numbers"),
    "converged": (lambda v: isinstance(v, bool), "true or false"),
}


def _check_checkpoint_fields(meta: dict, path) -> None:
    for name, (valid, expected) in _CHECKPOINT_FIELDS.items():
        if name not in meta or not valid(meta[name]):
            found = repr(meta[name]) if name in meta else "missing"
            msg = f"checkpoint {path}: field {name!r} must be {expected}, got {found}"
            raise CheckpointError(msg)
    if not (len(meta["objectives"]) == len(meta["epoch_seconds"]) == meta["epoch"]):
        msg = (
            f"checkpoint {path}: {len(meta['objectives'])} objectives and "
            f"{len(meta['epoch_seconds'])} epoch times for epoch {meta['epoch']}"
        )
        raise CheckpointError(msg)
