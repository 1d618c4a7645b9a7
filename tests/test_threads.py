"""Thread counts: capped with one note, bad values refused, results independent of them."""

import numpy as np
import pytest
import tifffile

import zse
from zse.cli import main


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
