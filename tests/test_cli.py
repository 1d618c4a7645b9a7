import json
import subprocess
import sys

import numpy as np
import pytest
import tifffile

import zse
from zse.cli import main, parse_crop


@pytest.fixture
def tiny_tif(tmp_path, rng):
    data = rng.integers(0, 4000, size=(24, 30)).astype(np.uint16)
    path = tmp_path / "tiny.tif"
    tifffile.imwrite(path, data)
    return path, data


def test_denoise_writes_outputs_and_run_json(tmp_path, tiny_tif, capsys):
    path, data = tiny_tif
    out = tmp_path / "out"
    assert (
        main(
            [
                "denoise",
                str(path),
                "-o",
                str(out),
                "--model",
                "identity",
                "--patch-size",
                "4x5",
                "--stats",
                "mean,median,var",
            ]
        )
        == 0
    )
    for name in (
        "tiny_mean.tif",
        "tiny_median.tif",
        "tiny_var.tif",
        "tiny_mean.png",
        "tiny_var.png",
        "tiny_input.png",
        "tiny.zse.json",
    ):
        assert (out / name).is_file(), name
    np.testing.assert_array_equal(tifffile.imread(out / "tiny_mean.tif"), data.astype(np.float32))
    record = json.loads((out / "tiny.zse.json").read_text())
    assert record["zse_version"] == zse.__version__
    assert record["patch_size"] == [4, 5] and record["stats"] == ["mean", "median", "var"]
    assert record["model"]["name"] == "Identity" and "reconstruct" in record["timings_s"]
    assert "estimated and merged every patch" in capsys.readouterr().err  # progress output


def test_denoise_refuses_to_overwrite(tmp_path, tiny_tif, capsys):
    path, _ = tiny_tif
    args = ["denoise", str(path), "-o", str(tmp_path / "o"), "-q"]
    assert main(args) == 0
    assert main(args) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert main([*args, "--overwrite"]) == 0


def test_crop_and_decimate(tmp_path, tiny_tif):
    path, data = tiny_tif
    out = tmp_path / "o"
    assert (
        main(
            [
                "denoise",
                str(path),
                "-o",
                str(out),
                "--crop",
                "2:20,3:",
                "--decimate",
                "2",
                "-q",
                "--patch-size",
                "3",
                "--model",
                "identity",
            ]
        )
        == 0
    )
    np.testing.assert_array_equal(
        tifffile.imread(out / "tiny_mean.tif"), data[2:20, 3:][::2, ::2].astype(np.float32)
    )
    record = json.loads((out / "tiny.zse.json").read_text())
    assert record["input"]["crop"] == [2, 20, 3, 30] and record["input"]["processed_shape"] == [
        9,
        14,
    ]


def test_bin_averages_blocks_and_says_what_it_cropped(tmp_path, tiny_tif, capsys):
    path, data = tiny_tif  # 24 x 30: --bin 4 crops 2 columns
    out = tmp_path / "o"
    assert (
        main(
            [
                "denoise",
                str(path),
                "-o",
                str(out),
                "--bin",
                "4",
                "--patch-size",
                "3",
                "--model",
                "identity",
            ]
        )
        == 0
    )
    expected = data[:, :28].astype(np.float64).reshape(6, 4, 7, 4).mean(axis=(1, 3))
    np.testing.assert_allclose(tifffile.imread(out / "tiny_mean.tif"), expected.astype(np.float32))
    assert (
        "0 row(s) and 2 column(s) do not fill a block and were cropped" in capsys.readouterr().err
    )
    assert (
        main(
            ["denoise", str(path), "-o", str(tmp_path / "p"), "--bin", "2", "--decimate", "2", "-q"]
        )
        == 2
    )


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--crop", "0:100,0:10"], "outside the image"),
        (["--crop", "5:5,0:10"], "empty"),
        (["--crop", "a:b,0:1"], "integers"),
        (["--bin", "0"], "--bin"),
        (["--decimate", "0"], "--decimate"),
        (["--patch-size", "40"], "smaller than the patch"),
        (["--stats", "mean,mode"], "unknown stat 'mode'"),
        (["--page", "4"], "page 4 does not exist"),
    ],
)
def test_denoise_bad_arguments(tmp_path, tiny_tif, capsys, extra, message):
    path, _ = tiny_tif
    assert main(["denoise", str(path), "-o", str(tmp_path / "o"), "-q", *extra]) == 2
    assert message in capsys.readouterr().err


def test_denoise_missing_input_and_unwritable_output(tmp_path, tiny_tif, capsys):
    assert main(["denoise", str(tmp_path / "missing.tif"), "-o", str(tmp_path / "o")]) == 2
    assert "not found" in capsys.readouterr().err
    path, _ = tiny_tif
    blocker = tmp_path / "blocker"
    blocker.write_text("")
    assert main(["denoise", str(path), "-o", str(blocker / "sub"), "-q"]) == 2
    assert "cannot write" in capsys.readouterr().err


def test_parse_crop_full_range():
    rows, cols = parse_crop(":,:", (5, 6))
    assert (rows.start, rows.stop, cols.start, cols.stop) == (0, 5, 0, 6)


def test_demo_and_module_entry_point(tmp_path):
    out = tmp_path / "demo"
    result = subprocess.run(
        [sys.executable, "-m", "zse", "demo", "-o", str(out)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr
    assert "PSNR" in result.stdout
    for name in (
        "noisy.tif",
        "clean.tif",
        "demo_mean.tif",
        "demo_var.tif",
        "demo_fields.png",
        "demo.zse.json",
    ):
        assert (out / name).is_file()
    record = json.loads((out / "demo.zse.json").read_text())
    assert "psnr_noisy_db" in record["quality"]
    # The demo scene holds electron counts: --model auto picks the Poisson model and says why.
    assert record["model"]["name"] == "GPMM" and record["model_choice"]["counts"] is True
    again = subprocess.run(
        [sys.executable, "-m", "zse", "demo", "-o", str(out)], capture_output=True, text=True
    )
    assert again.returncode == 2 and "--overwrite" in again.stderr


def test_version_flag(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0
    assert zse.__version__ in capsys.readouterr().out


def test_mixture_model_options(tmp_path, rng, capsys):
    counts = rng.poisson(rng.uniform(1, 9, size=(1, 40)).repeat(40, axis=0)).astype(np.uint16)
    path = tmp_path / "counts.tif"
    tifffile.imwrite(path, counts)
    out = tmp_path / "o"
    args = [
        "denoise",
        str(path),
        "-o",
        str(out),
        "-q",
        "--model",
        "gpmm",
        "--n-components",
        "8",
        "--max-iter",
        "3",
        "--stats",
        "mean,var,pvar",
    ]
    assert main(args) == 0
    record = json.loads((out / "counts.zse.json").read_text())
    assert (
        record["model"]["params"]["n_components"] == 8
        and len(record["model"]["log_likelihoods"]) == 3
    )
    assert (out / "counts_pvar.tif").is_file()
    assert (
        main(
            [
                "denoise",
                str(path),
                "-o",
                str(tmp_path / "p"),
                "-q",
                "--model",
                "identity",
                "--gain",
                "2",
            ]
        )
        == 2
    )
    assert "--gain does not apply to model 'identity'" in capsys.readouterr().err
    grey = (counts.astype(float) * 4 + 100).astype(
        np.uint16
    )  # 0.25 counts per grey level, dark level 100
    tifffile.imwrite(tmp_path / "grey.tif", grey)
    assert (
        main(
            [
                "denoise",
                str(tmp_path / "grey.tif"),
                "-o",
                str(tmp_path / "g"),
                "-q",
                "--model",
                "pmm",
                "--n-components",
                "8",
                "--max-iter",
                "2",
                "--gain",
                "0.25",
                "--offset",
                "100",
            ]
        )
        == 0
    )
    assert (
        main(
            [
                "denoise",
                str(tmp_path / "grey.tif"),
                "-o",
                str(tmp_path / "h"),
                "-q",
                "--model",
                "pmm",
                "--n-components",
                "8",
                "--offset",
                "5000",
            ]
        )
        == 2
    )
    assert "negative" in capsys.readouterr().err
