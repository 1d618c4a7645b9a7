"""Checkpoints of an EM fit: the state after an epoch, written atomically, and the checks
that make a resumed fit bit-identical to an uninterrupted one (or refuse the file)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from .. import _files


class CheckpointError(ValueError):
    """A checkpoint file that cannot be used to resume this fit."""


CHECKPOINT_FORMAT = "zse-checkpoint"
CHECKPOINT_VERSION = 1


def _jsonable(value):
    if isinstance(value, (bool, int, float, str, type(None))):
        return value
    if isinstance(value, (np.integer, np.floating)):
        return value.item()
    return repr(value)


class Checkpoints:
    """The checkpoint methods of :class:`zse.models.em.EMEstimator`."""

    # -- checkpoints ---------------------------------------------------------------------------
    def _checkpoint_settings(self) -> dict:
        params = {
            name: _jsonable(value)
            for name, value in self.get_params().items()
            if name in self.learned_params()
        }
        if params.get("random_state") is None or not isinstance(self.random_state, int):
            params.pop("random_state", None)  # None/Generator: the checkpoint's seed is used
        return params

    def _write_checkpoint(self, path: Path, data_id, epoch, objectives, seconds, converged):
        from .. import __version__

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
