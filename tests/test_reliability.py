"""Reliability battery: units, hostile files and values, thread counts, outputs, interrupts.

Every case asserts the exact behaviour (a result, or the exception and its message); the
property tests (hypothesis) cover the readers and the equivariance over ranges of values.
"""

import json
import os
import signal
import struct
import subprocess
import sys
import time
import zlib
from pathlib import Path

import mrcfile
import numpy as np
import pytest
import tifffile
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

import zse
from zse import io
from zse.cli import main
from zse.models import CheckpointError

# -- helpers ------------------------------------------------------------------------------------


def smooth_image(seed=0, shape=(36, 36), noise=1.0):
    rng = np.random.default_rng(seed)
    clean = rng.normal(size=shape).cumsum(axis=0).cumsum(axis=1) / 10
    return clean + rng.normal(scale=noise, size=shape), clean


def gamma_poisson_counts(n=400, d=9, seed=0):
    """Over-dispersed counts (a Gamma brightness per patch), so GPMM's shape stays finite."""
    rng = np.random.default_rng(seed)
    return rng.poisson(rng.gamma(3.0, 2.0, size=(n, 1)) * rng.uniform(0.5, 1.5, size=d)).astype(
        float
    )


def tiny_sssc(**kw):
    params = dict(n_states=8, n_parents=4, max_iter=6, random_state=1)
    params.update(kw)
    return zse.SSSC(8, **params)


def handmade_tiff(
    path,
    width,
    height,
    *,
    bits=8,
    compression=1,
    photometric=1,
    spp=1,
    strip=b"",
    byte_count=None,
    planar=1,
):
    """A little-endian one-strip TIFF whose tags say whatever the test needs."""
    entries = [
        (256, 4, width),
        (257, 4, height),
        (258, 3, bits),
        (259, 3, compression),
        (262, 3, photometric),
        (273, 4, 0),
        (277, 3, spp),
        (278, 4, height),
        (279, 4, len(strip) if byte_count is None else byte_count),
        (284, 3, planar),
    ]
    ifd_size = 2 + 12 * len(entries) + 4
    data_offset = 8 + ifd_size
    out = bytearray(b"II*\x00" + struct.pack("<I", 8) + struct.pack("<H", len(entries)))
    for tag, kind, value in entries:
        if tag == 273:
            value = data_offset
        if kind == 3:
            out += struct.pack("<HHIHH", tag, kind, 1, value, 0)
        else:
            out += struct.pack("<HHII", tag, kind, 1, value)
    out += struct.pack("<I", 0) + strip
    Path(path).write_bytes(bytes(out))
    return path


# -- 1. units: Gaussian models do not depend on the data's units ---------------------------------


@pytest.fixture(scope="module")
def unit_reference():
    noisy, _ = smooth_image()
    model = tiny_sssc()
    out = zse.reconstruct(noisy, model, patch_size=4, stats=("mean", "var", "pvar"))
    return noisy, model, out


@pytest.mark.parametrize("a", [1e-8, 1e-3, 0.37, 1e3, 1e8])
@pytest.mark.parametrize("b", [0.0, 5.0])
def test_reconstruct_is_equivariant_to_units(unit_reference, a, b):
    noisy, model0, ref = unit_reference
    model = tiny_sssc()
    out = zse.reconstruct(a * noisy + b * a, model, patch_size=4, stats=("mean", "var", "pvar"))
    span = np.ptp(ref["mean"])
    np.testing.assert_allclose(out["mean"], a * ref["mean"] + b * a, rtol=0, atol=1e-6 * a * span)
    for stat in ("var", "pvar"):
        np.testing.assert_allclose(
            out[stat], a * a * ref[stat], rtol=0, atol=1e-6 * a * a * ref[stat].max()
        )
    # Learned parameters come back in the data's units.
    np.testing.assert_allclose(
        model.W_, a * model0.W_, rtol=1e-6, atol=1e-6 * a * np.abs(model0.W_).max()
    )
    assert model.sigma2_ == pytest.approx(a * a * model0.sigma2_, rel=1e-6)
    np.testing.assert_allclose(model.bias_, a * model0.bias_ + b * a, rtol=0, atol=1e-6 * a * span)
    D = 16
    np.testing.assert_allclose(
        model.free_energies_, np.array(model0.free_energies_) - D * np.log(a), rtol=1e-9
    )


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(log_a=st.floats(-8, 8), shift=st.floats(-1e3, 1e3))
def test_equivariance_property(unit_reference, log_a, shift):
    noisy, _, ref = unit_reference
    a = 10.0**log_a
    out = zse.reconstruct(a * noisy + shift * a, tiny_sssc(), patch_size=4, stats=("mean", "var"))
    span = np.ptp(ref["mean"])
    # An offset 1e3 times the image's spread costs that many significant digits (rounding).
    tol = 1e-6 * a * span
    np.testing.assert_allclose(out["mean"], a * ref["mean"] + shift * a, rtol=0, atol=tol)
    np.testing.assert_allclose(
        out["var"], a * a * ref["var"], rtol=0, atol=1e-6 * a * a * ref["var"].max()
    )


def test_small_noise_in_normalised_units_is_still_denoised():
    # Normalised float data (values near 1e-2, noise std 1e-3) are denoised, not flattened.
    noisy, clean = smooth_image(seed=3, shape=(48, 48), noise=1.0)
    scale = 1e-3
    out = zse.reconstruct(noisy * scale, tiny_sssc(max_iter=10), patch_size=4, stats=("mean",))
    before = np.mean((noisy * scale - clean * scale) ** 2)
    after = np.mean((out["mean"] - clean * scale) ** 2)
    assert after < 0.6 * before
    assert np.std(out["mean"]) > 0.5 * np.std(clean * scale)  # structure kept


@pytest.mark.parametrize("scale", [1e-300, 1e80, 1e299])
def test_extreme_scales_give_the_right_mean(scale, unit_reference):
    noisy, _, ref = unit_reference
    with np.errstate(all="ignore"), pytest.warns(RuntimeWarning) if scale != 1e80 else _nothing():
        out = zse.reconstruct(noisy * scale, tiny_sssc(), patch_size=4, stats=("mean",))
    np.testing.assert_allclose(
        out["mean"] / scale, ref["mean"], rtol=0, atol=1e-6 * np.ptp(ref["mean"])
    )


class _nothing:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


@pytest.mark.parametrize("scale", [1e-300, 1e299])
def test_variance_out_of_float64_range_is_refused_before_work(scale, unit_reference):
    noisy = unit_reference[0]
    with pytest.raises(ValueError, match="squares leave float64's range"):
        zse.reconstruct(noisy * scale, tiny_sssc(), patch_size=4, stats=("mean", "var"))


def test_poisson_models_refuse_values_that_cannot_be_counts():
    values = np.random.default_rng(0).uniform(0, 1, size=(200, 4)) * 1e-300
    for cls in (zse.PMM, zse.GPMM):
        with pytest.raises(ValueError, match="not electron counts"):
            cls(3, max_iter=2).fit(values)


def test_poisson_models_warn_on_non_integer_counts():
    values = np.random.default_rng(0).uniform(0, 10, size=(200, 4))
    with pytest.warns(UserWarning, match="not integer counts"):
        zse.PMM(3, max_iter=2, random_state=0).fit(values)


# -- 2. thread counts ---------------------------------------------------------------------------


def test_huge_thread_count_is_capped_with_a_warning():
    image = np.arange(64.0).reshape(8, 8)
    with pytest.warns(RuntimeWarning, match=r"n_threads=1000000 exceeds the \d+ CPU"):
        patches = zse.extract_patches(image, 3, n_threads=10**6)
    np.testing.assert_array_equal(patches, zse.extract_patches(image, 3, n_threads=1))
    with pytest.warns(RuntimeWarning, match="exceeds"):
        merged = zse.merge_patches(patches, image.shape, 3, n_threads=10**6)
    np.testing.assert_array_equal(merged["mean"], image)


def test_cli_caps_threads_with_one_note(tmp_path, capsys):
    path = tmp_path / "a.tif"
    tifffile.imwrite(path, np.random.default_rng(0).normal(size=(12, 12)).astype(np.float32))
    assert (
        main(
            [
                "denoise",
                str(path),
                "-o",
                str(tmp_path / "o"),
                "--model",
                "identity",
                "--patch-size",
                "3",
                "--n-threads",
                str(10**6),
            ]
        )
        == 0
    )
    err = capsys.readouterr().err
    assert err.count("exceeds the") == 1 and "[zse] note:" in err


@pytest.mark.parametrize("value", ["0", "-100000", "x"])
def test_cli_bad_thread_counts(tmp_path, value, capsys):
    path = tmp_path / "a.tif"
    tifffile.imwrite(path, np.zeros((8, 8), np.float32))
    args = [
        "denoise",
        str(path),
        "-o",
        str(tmp_path / "o"),
        "--model",
        "identity",
        "--n-threads",
        value,
    ]
    if value == "x":
        with pytest.raises(SystemExit) as exit_info:
            main(args)
        assert exit_info.value.code == 2
    else:
        assert main(args) == 2
        assert "n_threads" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


# -- 3. files -----------------------------------------------------------------------------------


def test_planar_rgb_tiff_with_colour_is_refused(tmp_path):
    rgb = np.random.default_rng(0).integers(0, 255, size=(3, 10, 12), dtype=np.uint8)
    tifffile.imwrite(tmp_path / "p.tif", rgb, photometric="rgb", planarconfig="separate")
    with pytest.raises(ValueError, match="colour image"):
        io.read_image(tmp_path / "p.tif")


def test_planar_rgb_tiff_with_equal_channels_reads_as_grey(tmp_path):
    grey = np.random.default_rng(0).integers(0, 255, size=(10, 12), dtype=np.uint8)
    tifffile.imwrite(
        tmp_path / "p.tif", np.stack([grey] * 3), photometric="rgb", planarconfig="separate"
    )
    np.testing.assert_array_equal(io.read_image(tmp_path / "p.tif"), grey)


def test_contiguous_rgb_tiff_with_equal_channels_reads_as_grey(tmp_path):
    grey = np.random.default_rng(1).integers(0, 255, size=(9, 7), dtype=np.uint8)
    tifffile.imwrite(tmp_path / "c.tif", np.stack([grey] * 3, axis=-1), photometric="rgb")
    np.testing.assert_array_equal(io.read_image(tmp_path / "c.tif"), grey)


@pytest.mark.parametrize("planar", ["contig", "separate"])
def test_grey_plus_constant_alpha_tiff_reads_the_grey_channel(tmp_path, planar):
    grey = np.random.default_rng(0).integers(0, 60000, size=(10, 12), dtype=np.uint16)
    alpha = np.full_like(grey, 65535)
    data = np.stack([grey, alpha], axis=0 if planar == "separate" else -1)
    tifffile.imwrite(
        tmp_path / "ga.tif",
        data,
        photometric="minisblack",
        planarconfig=planar,
        extrasamples=["unassalpha"],
    )
    out = io.read_image(tmp_path / "ga.tif")
    assert out.shape == (10, 12)
    np.testing.assert_array_equal(out, grey)


def test_grey_plus_varying_alpha_tiff_is_refused(tmp_path):
    rng = np.random.default_rng(0)
    data = rng.integers(0, 255, size=(10, 12, 2), dtype=np.uint8)
    tifffile.imwrite(
        tmp_path / "ga.tif", data, photometric="minisblack", extrasamples=["unassalpha"]
    )
    with pytest.raises(ValueError, match="extra \\(alpha\\) channel"):
        io.read_image(tmp_path / "ga.tif")


def test_la_png_with_varying_alpha_is_refused_and_constant_alpha_is_read(tmp_path):
    rng = np.random.default_rng(0)
    grey = rng.integers(0, 255, size=(8, 9), dtype=np.uint8)
    varying = np.stack([grey, rng.integers(0, 255, size=(8, 9), dtype=np.uint8)], axis=-1)
    Image.fromarray(varying, mode="LA").save(tmp_path / "v.png")
    with pytest.raises(ValueError, match="alpha"):
        io.read_image(tmp_path / "v.png")
    Image.fromarray(np.stack([grey, np.full_like(grey, 255)], axis=-1), mode="LA").save(
        tmp_path / "c.png"
    )
    np.testing.assert_array_equal(io.read_image(tmp_path / "c.png"), grey)


def test_cmyk_jpeg_is_refused(tmp_path):
    Image.new("CMYK", (16, 16), (10, 20, 30, 40)).save(tmp_path / "c.jpg")
    with pytest.raises(ValueError, match="CMYK"):
        io.read_image(tmp_path / "c.jpg")


def test_cmyk_and_palette_tiffs_are_refused(tmp_path):
    tifffile.imwrite(tmp_path / "c.tif", np.zeros((6, 6, 4), np.uint8), photometric="separated")
    with pytest.raises(ValueError, match="CMYK"):
        io.read_image(tmp_path / "c.tif")
    Image.new("P", (6, 6)).save(tmp_path / "p.tif")
    with pytest.raises(ValueError, match="palette"):
        io.read_image(tmp_path / "p.tif")


def test_tiff_declaring_8000_squared_in_zero_length_strips_is_refused_fast(tmp_path):
    path = handmade_tiff(tmp_path / "z.tif", 8000, 8000, compression=8, strip=b"", byte_count=0)
    start = time.perf_counter()
    with pytest.raises(ValueError, match="hold no data"):
        io.read_image(path)
    assert time.perf_counter() - start < 5  # refused from the tags, nothing decoded


def test_uncompressed_tiff_declaring_more_than_the_file_holds_is_refused(tmp_path):
    path = handmade_tiff(tmp_path / "u.tif", 10**6, 10**6, strip=b"\x00" * 100)
    with pytest.raises(ValueError, match="holds only 100 bytes"):
        io.read_image(path)


def test_strip_beyond_the_end_of_the_file_is_refused(tmp_path):
    path = handmade_tiff(tmp_path / "e.tif", 10, 10, strip=b"\x00" * 10, byte_count=100)
    with pytest.raises(ValueError, match="file has .* bytes"):
        io.read_image(path)


def test_compressed_tiff_declaring_a_huge_image_is_refused_before_decoding(tmp_path):
    path = handmade_tiff(
        tmp_path / "h.tif", 10**6, 10**6, compression=8, strip=zlib.compress(b"\x00" * 1000)
    )
    with pytest.raises(MemoryError, match="needs .* but only .* available"):
        io.read_image(path)


def test_cli_turns_memory_errors_into_a_clear_exit_2(tmp_path, capsys):
    path = handmade_tiff(
        tmp_path / "h.tif", 10**6, 10**6, compression=8, strip=zlib.compress(b"\x00" * 1000)
    )
    assert main(["denoise", str(path), "-o", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("zse: error: ") and "not enough memory" in err and "Traceback" not in err
    assert not (tmp_path / "o").exists()


def test_truncated_mrc_is_refused(tmp_path):
    with mrcfile.new(tmp_path / "t.mrc") as mrc:
        mrc.set_data(np.zeros((32, 32), np.float32))
    raw = (tmp_path / "t.mrc").read_bytes()
    (tmp_path / "t.mrc").write_bytes(raw[:-100])
    with pytest.raises(ValueError, match="truncated|could not read"):
        io.read_image(tmp_path / "t.mrc")


def test_mrc_header_declaring_a_huge_stack_is_refused(tmp_path):
    with mrcfile.new(tmp_path / "h.mrc") as mrc:
        mrc.set_data(np.zeros((8, 8), np.float32))
    raw = bytearray((tmp_path / "h.mrc").read_bytes())
    raw[0:12] = struct.pack("<3i", 100000, 100000, 1000)
    (tmp_path / "h.mrc").write_bytes(bytes(raw))
    with pytest.raises(ValueError, match="truncated or corrupt|could not read"):
        io.read_image(tmp_path / "h.mrc", page=0)


def test_mrc_stack_on_the_command_line_is_every_section_or_one_page(tmp_path, capsys):
    data = np.random.default_rng(0).normal(size=(3, 12, 12)).astype(np.float32)
    with mrcfile.new(tmp_path / "s.mrc") as mrc:
        mrc.set_data(data)
        mrc.set_image_stack()
    assert (
        main(
            [
                "denoise",
                str(tmp_path / "s.mrc"),
                "-o",
                str(tmp_path / "o"),
                "--model",
                "identity",
                "--patch-size",
                "3",
            ]
        )
        == 0
    )
    assert "stack (3, 12, 12)" in capsys.readouterr().err
    with mrcfile.open(tmp_path / "o" / "s_mean.mrc") as mrc:
        np.testing.assert_array_equal(mrc.data, data)
        assert mrc.is_image_stack()
    assert (
        main(
            [
                "denoise",
                str(tmp_path / "s.mrc"),
                "-o",
                str(tmp_path / "p"),
                "--model",
                "identity",
                "--page",
                "2",
                "--patch-size",
                "3",
                "-q",
            ]
        )
        == 0
    )
    with mrcfile.open(tmp_path / "p" / "s_mean.mrc") as mrc:
        np.testing.assert_array_equal(mrc.data, data[2])


@pytest.mark.parametrize(
    "content", [b"", b"II*\x00", b"\x89PNG\r\n\x1a\n" + b"\x00" * 20, b"not an image at all"]
)
@pytest.mark.parametrize("suffix", [".tif", ".png", ".mrc"])
def test_garbage_files_give_a_clear_error(tmp_path, content, suffix):
    path = tmp_path / f"g{suffix}"
    path.write_bytes(content)
    with pytest.raises(ValueError, match=str(path).replace("\\", "\\\\")):
        io.read_image(path)


@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_mutated_tiffs_never_crash_the_reader(tmp_path_factory, data):
    folder = tmp_path_factory.mktemp("fuzz")
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    image = rng.integers(
        0, 255, size=(data.draw(st.integers(1, 20)), data.draw(st.integers(1, 20))), dtype=np.uint8
    )
    path = folder / "f.tif"
    tifffile.imwrite(path, image, compression=data.draw(st.sampled_from([None, "zlib"])))
    raw = bytearray(path.read_bytes())
    for _ in range(data.draw(st.integers(1, 6))):
        raw[data.draw(st.integers(0, len(raw) - 1))] = data.draw(st.integers(0, 255))
    path.write_bytes(bytes(raw))
    try:
        out = io.read_image(path)
    except (ValueError, TypeError, MemoryError):
        return
    assert out.ndim == 2


@settings(max_examples=25, deadline=None)
@given(
    rows=st.integers(1, 40),
    cols=st.integers(1, 40),
    dtype=st.sampled_from(["uint8", "uint16", "int16", "float32"]),
    kind=st.sampled_from([".tif", ".mrc", ".png"]),
    seed=st.integers(0, 2**32 - 1),
)
def test_written_images_read_back_exactly(tmp_path_factory, rows, cols, dtype, kind, seed):
    if kind == ".png" and dtype not in ("uint8", "uint16"):
        dtype = "uint8"
    data = (np.random.default_rng(seed).uniform(0, 250, size=(rows, cols))).astype(dtype)
    path = tmp_path_factory.mktemp("rt") / f"x{kind}"
    if kind == ".tif":
        tifffile.imwrite(path, data)
    elif kind == ".mrc":
        with mrcfile.new(path) as mrc:
            mrc.set_data(data if dtype != "uint8" else data.astype(np.uint8))
    else:
        Image.fromarray(data).save(path)
    np.testing.assert_array_equal(io.read_image(path), data)


# -- 4. outputs are atomic ----------------------------------------------------------------------


@pytest.fixture
def small_tif(tmp_path):
    path = tmp_path / "in.tif"
    tifffile.imwrite(
        path, np.random.default_rng(0).normal(100, 5, size=(16, 16)).astype(np.float32)
    )
    return path


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


def _wait_for(proc, text, limit=120):
    deadline = time.time() + limit
    seen = []
    while time.time() < deadline:
        line = proc.stderr.readline()
        if not line:
            break
        seen.append(line)
        if text in line:
            return
    proc.kill()
    pytest.fail(f"never saw {text!r}; stderr: {''.join(seen)[-2000:]}")


@pytest.mark.parametrize(
    ("sig", "code", "word"),
    [(signal.SIGINT, 130, "interrupted"), (signal.SIGTERM, 143, "terminated")],
)
def test_signals_during_a_cli_run_leave_no_outputs(tmp_path, sig, code, word):
    out = tmp_path / "out"
    proc = _start_cli(tmp_path, out)
    _wait_for(proc, "epoch 2/")
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == code, err
    assert word in err
    assert not out.exists()


# -- 5. interrupted and resumed fits ------------------------------------------------------------


@pytest.fixture(scope="module")
def count_patches():
    return gamma_poisson_counts(400)


MODEL_FACTORIES = {
    "sssc": lambda **kw: zse.SSSC(6, n_states=8, n_parents=4, random_state=3, **kw),
    "pmm": lambda **kw: zse.PMM(4, random_state=3, **kw),
    "gpmm": lambda **kw: zse.GPMM(4, random_state=3, **kw),
}


def _learned(model):
    return {k: v for k, v in vars(model).items() if k.endswith("_") and k != "epoch_seconds_"}


def _assert_same_learned(a, b):
    la, lb = _learned(a), _learned(b)
    assert la.keys() == lb.keys()
    for key in la:
        np.testing.assert_array_equal(np.asarray(la[key]), np.asarray(lb[key]), err_msg=key)


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
            _assert_same_learned(model, snapshot)
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
    _assert_same_learned(full, resumed)
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
    _wait_for(proc, "epoch 3/")
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
    _assert_same_learned(full, resumed)


def test_resume_with_random_state_none_uses_the_checkpoints_seed(count_patches, tmp_path):
    ckpt = tmp_path / "n.ckpt"
    first = zse.PMM(4, max_iter=5, random_state=None, checkpoint=ckpt).fit(count_patches)
    again = zse.PMM(4, max_iter=5, random_state=None, checkpoint=ckpt, resume=True).fit(
        count_patches
    )
    _assert_same_learned(first, again)


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
    _assert_same_learned(a, b)
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


# -- 6. conventions -----------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(MODEL_FACTORIES))
def test_score_takes_y_none(name, count_patches):
    model = MODEL_FACTORIES[name](max_iter=2).fit(count_patches, None)
    assert np.isfinite(model.score(count_patches, y=None))
    assert np.isfinite(model.score(count_patches, None))


@pytest.mark.parametrize("name", sorted(MODEL_FACTORIES))
def test_clone_by_get_params_gives_an_unfitted_equal_estimator(name, count_patches):
    model = MODEL_FACTORIES[name](max_iter=2).fit(count_patches)
    clone = type(model)(**model.get_params())
    assert clone.get_params() == model.get_params() and not hasattr(clone, "W_")
    assert {"checkpoint", "checkpoint_every", "resume"} <= set(model.get_params())


def test_sklearn_tags_without_and_with_sklearn():
    model = zse.SSSC()
    assert model._more_tags()["requires_y"] is False
    sklearn = pytest.importorskip("sklearn")
    tags = model.__sklearn_tags__()
    assert tags.target_tags.required is False and tags.input_tags.allow_nan is False
    assert sklearn.base.clone(model).get_params() == model.get_params()


def test_cli_small_h_adapts_defaults_with_a_note(tmp_path, small_tif, capsys):
    assert (
        main(
            [
                "denoise",
                str(small_tif),
                "-o",
                str(tmp_path / "o"),
                "--H",
                "3",
                "--max-iter",
                "2",
                "--patch-size",
                "3",
            ]
        )
        == 0
    )
    err = capsys.readouterr().err
    assert "using --n-states 8" in err and "using --n-parents 8" in err
    record = json.loads((tmp_path / "o" / "in.zse.json").read_text())
    assert (
        record["model"]["params"]["n_states"] == 8 and record["model"]["params"]["n_parents"] == 8
    )


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--H", "3", "--n-states", "9"], "n_states=9 exceeds the 2\\^H=8"),
        (["--n-states", "4", "--n-parents", "5"], "n_parents=5 exceeds n_states=4"),
        (["--mutation", "sparseflip"], "bitflip_prob"),
        (["--alpha-max", "10"], "--alpha-max does not apply to model 'sssc'"),
        (["--tol", "-1"], "tol must be None or a finite number >= 0"),
        (["--model", "pmm", "--n-parents", "3"], "--n-parents does not apply"),
        (["--resume"], "resume=True needs a checkpoint"),
    ],
)
def test_cli_model_parameter_errors(tmp_path, small_tif, capsys, extra, message):
    assert (
        main(
            ["denoise", str(small_tif), "-o", str(tmp_path / "o"), "--max-iter", "2", "-q", *extra]
        )
        == 2
    )
    assert message.replace("\\", "") in capsys.readouterr().err.replace("\\", "") or pytest.fail(
        message
    )
    assert not (tmp_path / "o").exists()


def test_cli_reaches_every_parameter_of_a_valid_small_model(tmp_path, small_tif):
    assert (
        main(
            [
                "denoise",
                str(small_tif),
                "-o",
                str(tmp_path / "o"),
                "-q",
                "--H",
                "4",
                "--n-states",
                "6",
                "--n-parents",
                "3",
                "--n-children",
                "1",
                "--n-generations",
                "2",
                "--selection",
                "rand",
                "--mutation",
                "cross_sparseflip",
                "--bitflip-prob",
                "0.2",
                "--p-init",
                "0.3",
                "--updates",
                "exact",
                "--init",
                "patches",
                "--tol",
                "1e-4",
                "--n-estimate-sweeps",
                "2",
                "--max-iter",
                "2",
                "--patch-size",
                "3",
            ]
        )
        == 0
    )
    params = json.loads((tmp_path / "o" / "in.zse.json").read_text())["model"]["params"]
    assert (
        params["selection"] == "rand"
        and params["n_generations"] == 2
        and params["bitflip_prob"] == 0.2
        and params["init"] == "patches"
        and params["tol"] == 1e-4
    )
