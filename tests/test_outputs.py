"""Outputs appear completely or not at all: failing writes, overwrites, signals, internal errors."""

import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tifffile

import zse
from helpers import wait_for
from zse import io
from zse.cli import main


def _fail_on_call(k, real):
    calls = {"n": 0}

    def wrapper(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == k:
            raise OSError(28, "No space left on device")
        return real(*args, **kwargs)

    return wrapper


@pytest.mark.parametrize("k", [1, 2, 3])
def test_a_failing_write_leaves_no_partial_set_and_no_new_folder(
    tmp_path, small_tif, monkeypatch, capsys, k
):
    monkeypatch.setattr(io, "write_preview_png", _fail_on_call(k, io.write_preview_png))
    out = tmp_path / "new" / "deeper"
    assert (
        main(
            [
                "denoise",
                str(small_tif),
                "-o",
                str(out),
                "--model",
                "identity",
                "--patch-size",
                "3",
                "-q",
            ]
        )
        == 2
    )
    assert "No space left" in capsys.readouterr().err
    assert not (tmp_path / "new").exists()


def test_a_failing_write_into_an_existing_folder_leaves_it_as_it_was(
    tmp_path, small_tif, monkeypatch
):
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    monkeypatch.setattr(io, "write_json", _fail_on_call(1, io.write_json))
    assert (
        main(
            [
                "denoise",
                str(small_tif),
                "-o",
                str(out),
                "--model",
                "identity",
                "--patch-size",
                "3",
                "-q",
            ]
        )
        == 2
    )
    assert sorted(p.name for p in out.iterdir()) == ["keep.txt"]


def test_overwrite_replaces_the_whole_set_and_failure_keeps_the_old_one(
    tmp_path, small_tif, monkeypatch
):
    out = tmp_path / "o"
    base = [
        "denoise",
        str(small_tif),
        "-o",
        str(out),
        "--model",
        "identity",
        "--patch-size",
        "3",
        "-q",
    ]
    assert main(base) == 0
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    monkeypatch.setattr(io, "write_tiff", _fail_on_call(2, io.write_tiff))
    assert main([*base, "--overwrite"]) == 2
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


def test_existing_outputs_are_refused_before_any_work(tmp_path, small_tif, monkeypatch, capsys):
    out = tmp_path / "o"
    out.mkdir()
    (out / "in_mean.tif").write_bytes(b"old")
    monkeypatch.setattr(zse.cli.run, "reconstruct", lambda *a, **k: pytest.fail("work started"))
    assert main(["denoise", str(small_tif), "-o", str(out), "-q"]) == 2
    assert "exists and is not a zse output" in capsys.readouterr().err
    assert (out / "in_mean.tif").read_bytes() == b"old"
    # Even --overwrite replaces only files zse wrote.
    assert main(["denoise", str(small_tif), "-o", str(out), "-q", "--overwrite"]) == 2
    assert "zse replaces only files it wrote" in capsys.readouterr().err
    assert (out / "in_mean.tif").read_bytes() == b"old"


def test_unwritable_output_folder_is_a_clear_error(tmp_path, small_tif, capsys):
    (tmp_path / "file").write_text("x")
    assert (
        main(
            [
                "denoise",
                str(small_tif),
                "-o",
                str(tmp_path / "file" / "o"),
                "--model",
                "identity",
                "-q",
            ]
        )
        == 2
    )
    assert "zse: error:" in capsys.readouterr().err


def test_write_tiff_is_atomic(tmp_path, monkeypatch):
    def broken(path, data, **kwargs):
        Path(path).write_bytes(b"half a file")
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(tifffile, "imwrite", broken)
    with pytest.raises(OSError, match="Input/output"):
        io.write_tiff(tmp_path / "x.tif", np.zeros((3, 3)))
    assert list(tmp_path.iterdir()) == []


def test_internal_errors_exit_1_with_a_report_hint(tmp_path, small_tif, monkeypatch, capsys):
    def bug(*args, **kwargs):
        raise RuntimeError("kaboom")

    monkeypatch.setattr(zse.cli.run, "reconstruct", bug)
    assert main(["denoise", str(small_tif), "-o", str(tmp_path / "o"), "-q"]) == 1
    err = capsys.readouterr().err
    assert (
        "zse: internal error: " in err
        and "RuntimeError: kaboom" in err
        and "please report it" in err
    )
    assert not (tmp_path / "o").exists()


def _start_cli(tmp_path, out, extra=()):
    image = tmp_path / "big.tif"
    tifffile.imwrite(
        image, np.random.default_rng(0).normal(100, 10, size=(64, 64)).astype(np.float32)
    )
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "zse",
            "denoise",
            str(image),
            "-o",
            str(out),
            "--max-iter",
            "100000",
            "--H",
            "16",
            "--n-states",
            "8",
            "--n-parents",
            "4",
            *extra,
        ],
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


@pytest.mark.parametrize(
    ("sig", "code", "word"),
    [(signal.SIGINT, 130, "interrupted"), (signal.SIGTERM, 143, "terminated")],
)
def test_signals_during_a_cli_run_leave_no_outputs(tmp_path, sig, code, word):
    out = tmp_path / "out"
    proc = _start_cli(tmp_path, out)
    wait_for(proc, "epoch 2/")
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == code, err
    assert word in err
    assert not out.exists()
