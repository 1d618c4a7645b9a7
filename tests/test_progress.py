"""Progress for people: bars on a terminal, lines with the time left elsewhere, cancel."""

from __future__ import annotations

import io

import numpy as np
import pytest

import zse
from zse import _core
from zse._progress import Progress, format_seconds, terminal_bar, time_left


class FakeTerminal(io.StringIO):
    def isatty(self):
        return True


def _image(shape=(40, 36), seed=0):
    return np.random.default_rng(seed).poisson(6.0, size=shape).astype(np.float64)


def test_time_left_and_formatting():
    assert time_left(10.0, 0, 4) is None
    assert time_left(10.0, 1, 4) == pytest.approx(30.0)
    assert time_left(10.0, 4, 4) == 0.0
    assert format_seconds(42.4) == "42 s"
    assert format_seconds(600) == "10.0 min"
    assert format_seconds(7200) == "2.0 h"


def test_plain_lines_name_the_phase_the_count_and_the_time_left():
    stream = io.StringIO()
    progress = Progress("estimating", "band", stream=stream, every_s=0.0)
    for done in (1, 2, 4):
        progress(done, 4)
    lines = stream.getvalue().splitlines()
    assert len(lines) == 3
    assert lines[0].startswith("[zse] estimating: 1/4 bands (25 %)") and "left" in lines[0]
    assert lines[-1].startswith("[zse] estimating: 4/4 bands (100 %)")
    assert "left" not in lines[-1]


def test_plain_lines_are_rate_limited_but_the_last_is_always_written():
    stream = io.StringIO()
    progress = Progress("estimating", "band", stream=stream, every_s=3600.0)
    for done in range(1, 11):
        progress(done, 10)
    lines = stream.getvalue().splitlines()
    assert [line.split(":")[1].split()[0] for line in lines] == ["10/10"]


def test_disabled_progress_writes_nothing():
    stream = io.StringIO()
    Progress("estimating", "band", enabled=False, stream=stream)(1, 2)
    assert stream.getvalue() == ""


def test_a_terminal_gets_a_bar():
    pytest.importorskip("tqdm")
    stream = FakeTerminal()
    assert terminal_bar(3, "x", "band", stream=stream) is not None
    with Progress("estimating", "band", stream=stream) as progress:
        for done in (1, 2, 3):
            progress(done, 3)
    text = stream.getvalue()
    assert "[zse] estimating" in text and "3/3" in text
    assert terminal_bar(3, "x", "band", stream=io.StringIO()) is None  # not a terminal


@pytest.mark.parametrize("shape", [(40, 36), (6, 14, 12)])
def test_kernels_report_every_band_and_results_do_not_change(shape):
    volume = _image(shape).reshape((1, *shape) if len(shape) == 2 else shape)
    patch = (1, 4, 4) if len(shape) == 2 else (2, 4, 4)
    calls = []
    reporting = _core.StreamRequest(
        stats=["mean", "var"], progress=lambda d, t: calls.append((d, t))
    )
    with_progress = _core.identity_estimate_volume(volume, patch, reporting, 2)
    plain = _core.identity_estimate_volume(volume, patch, _core.StreamRequest(), 2)
    for name in ("mean", "var"):
        assert np.array_equal(with_progress[name], plain[name])
    done = [d for d, _ in calls]
    totals = {t for _, t in calls}
    assert len(totals) == 1 and done == sorted(done) and done[-1] == totals.pop()


def test_every_model_reports_progress_through_reconstruct(capsys):
    image = _image((48, 40))
    for model in (
        zse.PMM(3, max_iter=2, random_state=0, verbose=True),
        zse.SSSC(H=4, n_states=4, n_parents=2, max_iter=2, random_state=0, verbose=True),
    ):
        zse.reconstruct(image, model, patch_size=4, verbose=True)
        err = capsys.readouterr().err
        assert "[zse] estimating:" in err and "bands (100 %)" in err
        assert "epoch 1/2" in err and "left)" in err  # the fit's lines say the time left


def test_quiet_reconstruct_writes_no_progress(capsys):
    zse.reconstruct(_image(), zse.PMM(3, max_iter=2, random_state=0), patch_size=4)
    assert capsys.readouterr().err == ""


def test_an_exception_of_the_progress_callable_stops_the_kernel():
    class Cancelled(Exception):
        pass

    def cancel(done, total):
        raise Cancelled("stopped by the user")

    volume = _image((64, 40)).reshape(1, 64, 40)
    model = zse.PMM(3, max_iter=2, random_state=0).fit(zse.extract_patches(volume[0], 4)[:200])
    with pytest.raises(Cancelled, match="stopped by the user"):
        model.estimate_volume(
            volume, (1, 4, 4), ["mean"], np.zeros(0, np.int64), "average", 1, progress=cancel
        )


def test_reconstruct_reports_fit_epochs_and_bands_and_results_do_not_change():
    image = _image((48, 40))
    calls = []
    model = zse.SSSC(H=4, n_states=4, n_parents=2, max_iter=3, random_state=0)
    reported = zse.reconstruct(image, model, patch_size=4, progress=lambda *a: calls.append(a))
    plain = zse.reconstruct(
        image, zse.SSSC(H=4, n_states=4, n_parents=2, max_iter=3, random_state=0), patch_size=4
    )
    for name in ("mean", "var"):
        assert np.array_equal(reported[name], plain[name])
    assert [c for c in calls if c[0] == "fit"] == [("fit", e, 3) for e in (1, 2, 3)]
    bands = [c for c in calls if c[0] == "estimate"]
    assert bands and bands[-1][1] == bands[-1][2] and calls.index(bands[0]) > 2


@pytest.mark.parametrize("phase", ["fit", "estimate"])
def test_a_cancel_during_reconstruct_stops_it_and_leaves_the_model_unfitted(phase):
    class Cancelled(Exception):
        pass

    def cancel(where, done, total):
        if where == phase:
            raise Cancelled(where)

    model = zse.PMM(3, max_iter=4, random_state=0)
    with pytest.raises(Cancelled, match=phase):
        zse.reconstruct(_image(), model, patch_size=4, progress=cancel)
    if phase == "fit":
        assert not zse.models.is_fitted(model)  # fit leaves the estimator as it was


@pytest.mark.parametrize("cls", [zse.SSSC, zse.PMM, zse.GPMM])
def test_every_model_fit_reports_its_epochs(cls):
    rng = np.random.default_rng(0)
    rates = rng.gamma(2.0, 3.0, size=(400, 1)) * rng.uniform(0.5, 1.5, size=(1, 9))
    patches = rng.poisson(rates).astype(np.float64)  # over-dispersed: GPMM's alpha stays finite
    model = cls(H=3, n_states=4, n_parents=2, max_iter=2) if cls is zse.SSSC else cls(3, max_iter=2)
    calls = []
    model.fit(patches, progress=lambda done, total: calls.append((done, total)))
    assert calls == [(1, 2), (2, 2)]
