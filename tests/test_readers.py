"""Hostile and unusual input files: every reader refuses clearly or reads exactly (hypothesis
property tests over mutated files)."""

import struct
import time
import zlib

import mrcfile
import numpy as np
import pytest
import tifffile
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from helpers import (
    handmade_tiff,
)
from zse import io
from zse.cli import main


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


def _page_by_page_tiff(path, n_pages=4, shape=(16, 16), seed=0):
    """A stack written one page at a time, as many acquisition programs write them (each page
    its own series in tifffile's eyes)."""
    rng = np.random.default_rng(seed)
    pages = rng.poisson(5.0, size=(n_pages, *shape)).astype(np.float32)
    for page in pages:
        tifffile.imwrite(path, page, append=True)
    return pages


def test_tiff_written_page_by_page_is_the_same_stack_for_every_reader(tmp_path, capsys):
    from zse.slabs import VolumeSource

    path = tmp_path / "appended.tif"
    pages = _page_by_page_tiff(path)
    assert io.read_info(path).n_sections == 4
    np.testing.assert_array_equal(io.read_volume(path), pages)
    np.testing.assert_array_equal(VolumeSource(path).read(0, 4), pages)
    np.testing.assert_array_equal(io.read_image(path, page=2), pages[2])
    # the command line: as a stack of sections and as a volume, every page denoised
    common = ["--model", "pmm", "--n-components", "2", "--max-iter", "2", "-q"]
    assert main(["denoise", str(path), "-o", str(tmp_path / "stack"), *common]) == 0
    assert tifffile.imread(tmp_path / "stack" / "appended_mean.tif").shape == (4, 16, 16)
    argv = ["denoise", str(path), "-o", str(tmp_path / "vol"), "--volume", *common]
    assert main([*argv, "--patch-size", "3x3x3"]) == 0
    assert tifffile.imread(tmp_path / "vol" / "appended_mean.tif").shape == (4, 16, 16)


@pytest.mark.parametrize("written", ["page_by_page", "at_once"])
def test_truncated_multi_page_tiff_is_an_error_naming_the_page(tmp_path, capsys, written):
    from zse.slabs import VolumeSource

    whole = tmp_path / "whole.tif"
    if written == "page_by_page":
        _page_by_page_tiff(whole)
    else:
        stack = np.random.default_rng(1).normal(100.0, 5.0, size=(4, 16, 16)).astype(np.float32)
        tifffile.imwrite(whole, stack, photometric="minisblack")
    cut = tmp_path / "cut.tif"
    for length in (1500, 2300, 3000):
        cut.write_bytes(whole.read_bytes()[:length])
        for reader in (io.read_info, io.read_volume, io.read_image, VolumeSource):
            with pytest.raises(ValueError, match=r"cut\.tif.* page \d+"):
                reader(cut)
        assert main(["denoise", str(cut), "-o", str(tmp_path / "o"), "-q"]) == 2
        err = capsys.readouterr().err
        assert "cut.tif" in err and "page" in err and "truncated or corrupt" in err
        assert not (tmp_path / "o").exists()


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
