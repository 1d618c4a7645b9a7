"""Model parameters on the command line: small models adapt their defaults with a note, bad
values are refused with the parameter's name, every parameter reaches the model."""

import json

import pytest

from zse.cli import main


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
