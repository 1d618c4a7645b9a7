"""Interrupted and resumed fits: the estimator is left as it was, a resumed fit is bit-identical,
foreign or damaged checkpoints are refused."""

import json
import os
import signal
import subprocess
import sys

import numpy as np
import pytest
import tifffile

import zse
from helpers import (
    MODEL_FACTORIES,
    assert_same_learned,
    wait_for,
)
from zse.cli import main
from zse.models import CheckpointError


@pytest.mark.parametrize("name", sorted(MODEL_FACTORIES))
def test_keyboard_interrupt_during_fit_leaves_the_estimator_as_before(
    name, count_patches, monkeypatch
):
    make = MODEL_FACTORIES[name]
    fresh = make(max_iter=4)
    fitted = make(max_iter=4).fit(count_patches)
    snapshot = make(max_iter=4).fit(count_patches)
    for model, was_fitted in ((fresh, False), (fitted, True)):
        real = type(model)._em_epoch

        def interrupted(self, Y, epoch, n_threads, real=real):
            if epoch == 3:
                raise KeyboardInterrupt
            return real(self, Y, epoch, n_threads)

        monkeypatch.setattr(type(model), "_em_epoch", interrupted)
        before = dict(vars(model))
        with pytest.raises(KeyboardInterrupt):
            model.fit(count_patches[::-1].copy())
        monkeypatch.undo()
        assert vars(model).keys() == before.keys()
        if was_fitted:
            assert_same_learned(model, snapshot)
            np.testing.assert_array_equal(
                model.estimate(count_patches[:5]), snapshot.estimate(count_patches[:5])
            )
        else:
            with pytest.raises(zse.NotFittedError):
                model.estimate(count_patches[:5])


@pytest.mark.parametrize("name", sorted(MODEL_FACTORIES))
def test_resume_is_bit_identical_to_an_uninterrupted_fit(name, count_patches, tmp_path):
    make = MODEL_FACTORIES[name]
    ckpt = tmp_path / "fit.ckpt"
    full = make(max_iter=7).fit(count_patches)
    make(max_iter=4, checkpoint=ckpt, checkpoint_every=2).fit(count_patches)
    resumed = make(max_iter=7, checkpoint=ckpt, resume=True).fit(count_patches)
    assert_same_learned(full, resumed)
    np.testing.assert_array_equal(full.estimate(count_patches), resumed.estimate(count_patches))


def test_resume_after_sigint_in_another_process_is_bit_identical(count_patches, tmp_path):
    ckpt = tmp_path / "sig.ckpt"
    data = tmp_path / "Y.npy"
    np.save(data, count_patches)
    script = (
        "import sys, numpy as np, zse\n"
        "Y = np.load(sys.argv[1])\n"
        "zse.SSSC(6, n_states=8, n_parents=4, random_state=3, max_iter=10**6,"
        " checkpoint=sys.argv[2], checkpoint_every=1, verbose=True).fit(Y)\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", script, str(data), str(ckpt)],
        stderr=subprocess.PIPE,
        text=True,
        env=dict(os.environ, PYTHONUNBUFFERED="1"),
    )
    wait_for(proc, "epoch 3/")
    proc.send_signal(signal.SIGINT)
    proc.communicate(timeout=60)
    assert proc.returncode != 0
    assert not list(tmp_path.glob(".*.tmp"))  # no half-written checkpoint left behind
    with np.load(ckpt) as npz:
        epoch = json.loads(str(npz["meta"][()]))["epoch"]
    assert epoch >= 2
    target = epoch + 2
    resumed = MODEL_FACTORIES["sssc"](max_iter=target, checkpoint=ckpt, resume=True).fit(
        count_patches
    )
    full = MODEL_FACTORIES["sssc"](max_iter=target).fit(count_patches)
    assert_same_learned(full, resumed)


def test_resume_with_random_state_none_uses_the_checkpoints_seed(count_patches, tmp_path):
    ckpt = tmp_path / "n.ckpt"
    first = zse.PMM(4, max_iter=5, random_state=None, checkpoint=ckpt).fit(count_patches)
    again = zse.PMM(4, max_iter=5, random_state=None, checkpoint=ckpt, resume=True).fit(
        count_patches
    )
    assert_same_learned(first, again)


@pytest.mark.parametrize(
    ("change", "match"),
    [
        (lambda Y, kw: (Y + 1, kw), "other training data"),
        (lambda Y, kw: (Y, {**kw, "n_states": 6}), "other settings .*n_states"),
        (lambda Y, kw: (Y, {**kw, "random_state": 4}), "other settings .*random_state"),
        (lambda Y, kw: (Y, {**kw, "max_iter": 2}), "beyond max_iter=2"),
    ],
)
def test_checkpoints_of_other_data_or_settings_are_refused(count_patches, tmp_path, change, match):
    ckpt = tmp_path / "c.ckpt"
    kw = dict(max_iter=4, checkpoint=ckpt)
    zse.SSSC(6, n_states=8, n_parents=4, random_state=3, **kw).fit(count_patches)
    Y, kw = change(count_patches, {"n_states": 8, "random_state": 3, **kw})
    model = zse.SSSC(6, n_parents=4, resume=True, **kw)
    with pytest.raises(CheckpointError, match=match):
        model.fit(Y)
    assert not hasattr(model, "W_")


def test_checkpoint_of_another_model_corrupt_or_wrong_version_is_refused(count_patches, tmp_path):
    ckpt = tmp_path / "m.ckpt"
    zse.PMM(4, max_iter=2, random_state=0, checkpoint=ckpt).fit(count_patches)
    with pytest.raises(CheckpointError, match="of a PMM model, not GPMM"):
        zse.GPMM(4, max_iter=2, random_state=0, checkpoint=ckpt, resume=True).fit(count_patches)
    with np.load(ckpt) as npz:
        arrays = {k: npz[k] for k in npz.files}
    meta = json.loads(str(arrays["meta"][()]))
    meta["version"] = 99
    arrays["meta"] = np.array(json.dumps(meta))
    np.savez(tmp_path / "v.npz", **arrays)
    with pytest.raises(CheckpointError, match="version 99"):
        zse.PMM(4, max_iter=2, random_state=0, checkpoint=tmp_path / "v.npz", resume=True).fit(
            count_patches
        )
    (tmp_path / "bad.ckpt").write_bytes(b"garbage")
    with pytest.raises(CheckpointError, match="cannot be read"):
        zse.PMM(4, max_iter=2, random_state=0, checkpoint=tmp_path / "bad.ckpt", resume=True).fit(
            count_patches
        )


def test_checkpoint_parameter_errors(count_patches, tmp_path):
    with pytest.raises(ValueError, match="resume=True needs a checkpoint"):
        zse.PMM(4, max_iter=2, resume=True).fit(count_patches)
    with pytest.raises(ValueError, match="checkpoint_every"):
        zse.PMM(4, max_iter=2, checkpoint=tmp_path / "c", checkpoint_every=0).fit(count_patches)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        zse.PMM(4, max_iter=2, checkpoint=tmp_path / "nope" / "c").fit(count_patches)
    with pytest.raises(ValueError, match="is a directory"):
        zse.PMM(4, max_iter=2, checkpoint=tmp_path).fit(count_patches)


def test_resume_without_a_checkpoint_file_starts_from_scratch(count_patches, tmp_path):
    a = zse.PMM(4, max_iter=3, random_state=0, checkpoint=tmp_path / "new.ckpt", resume=True).fit(
        count_patches
    )
    b = zse.PMM(4, max_iter=3, random_state=0).fit(count_patches)
    assert_same_learned(a, b)
    assert (tmp_path / "new.ckpt").is_file()


def test_cli_checkpoint_and_resume_give_identical_outputs(tmp_path, small_tif):
    base = [
        "denoise",
        str(small_tif),
        "--H",
        "6",
        "--n-states",
        "8",
        "--n-parents",
        "4",
        "--patch-size",
        "3",
        "-q",
    ]
    assert main([*base, "-o", str(tmp_path / "full"), "--max-iter", "6"]) == 0
    ckpt = str(tmp_path / "run.ckpt")
    assert main([*base, "-o", str(tmp_path / "part"), "--max-iter", "3", "--checkpoint", ckpt]) == 0
    assert (
        main(
            [
                *base,
                "-o",
                str(tmp_path / "rest"),
                "--max-iter",
                "6",
                "--checkpoint",
                ckpt,
                "--resume",
            ]
        )
        == 0
    )
    for stat in ("in_mean.tif", "in_var.tif"):
        np.testing.assert_array_equal(
            tifffile.imread(tmp_path / "full" / stat), tifffile.imread(tmp_path / "rest" / stat)
        )
