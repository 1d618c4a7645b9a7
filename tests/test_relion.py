"""zse relion: the RELION External job on small generated project trees (RELION 3.1 and 5)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import mrcfile
import numpy as np
import pytest

starfile = pytest.importorskip("starfile")
pd = pytest.importorskip("pandas")

import zse  # noqa: E402
from zse import cli  # noqa: E402
from zse.cli import relion  # noqa: E402

PIXEL = 1.35
FAST = ["--model", "pmm", "--n_components", "3", "--max_iter", "2", "--patch_size", "4"]


def _mrc(path: Path, data: np.ndarray, voxel=PIXEL, volume=False) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with mrcfile.new(path, overwrite=True) as mrc:
        mrc.set_data(data.astype(np.float32))
        if volume:
            mrc.set_volume()
        mrc.voxel_size = voxel


def _project(root: Path, names, style: str) -> Path:
    """A project with motion-corrected micrographs and their STAR file in RELION's layout."""
    rng = np.random.default_rng(0)
    for name in names:
        _mrc(root / name, rng.poisson(5.0, size=(24, 28)).astype(np.float32))
    mics = pd.DataFrame(
        {
            "rlnCtfPowerSpectrum": [n.replace(".mrc", "_PS.mrc") for n in names],
            "rlnMicrographName": list(names),
            "rlnMicrographMetadata": [n.replace(".mrc", ".star") for n in names],
            "rlnOpticsGroup": [1] * len(names),
        }
    )
    optics = pd.DataFrame(
        {
            "rlnOpticsGroupName": ["opticsGroup1"],
            "rlnOpticsGroup": [1],
            "rlnMicrographPixelSize": [PIXEL],
            "rlnVoltage": [300.0],
            "rlnSphericalAberration": [2.7],
            "rlnAmplitudeContrast": [0.1],
        }
    )
    if style == "relion5":
        optics["rlnMicrographOriginalPixelSize"] = [PIXEL / 2]
        optics["rlnMtfFileName"] = ["mtf_k3_standard_300kV.star"]
    star = root / "MotionCorr" / "job002" / "corrected_micrographs.star"
    starfile.write({"optics": optics, "micrographs": mics}, star)
    return star


NAMES = ["MotionCorr/job002/Movies/mic_001.mrc", "MotionCorr/job002/Movies/mic_002.mrc"]


@pytest.fixture
def project(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # RELION runs jobs in the project directory, paths are relative
    return tmp_path


@pytest.mark.parametrize("style", ["relion31", "relion5"])
def test_denoises_every_micrograph_and_writes_relion_outputs(project, style):
    star = _project(project, NAMES, style)
    job = "External/job010/"
    code = cli.main(
        ["relion", "--o", job, "--in_mics", str(star.relative_to(project)), "--j", "2"]
        + FAST
        + ["--pipeline_control", job]
    )
    assert code == 0
    job_dir = project / job
    assert (job_dir / relion.SUCCESS).exists() and not (job_dir / relion.FAILURE).exists()
    out = starfile.read(job_dir / "micrographs.star", always_dict=True)
    original = starfile.read(star, always_dict=True)
    # the optics block and every original column kept; the image column moved, variance added
    pd.testing.assert_frame_equal(out["optics"], original["optics"])
    mics = out["micrographs"]
    assert list(mics.columns) == [*original["micrographs"].columns, relion.VARIANCE_COLUMN]
    for column in ("rlnCtfPowerSpectrum", "rlnMicrographMetadata", "rlnOpticsGroup"):
        assert list(mics[column]) == list(original["micrographs"][column])
    for name, denoised, variance in zip(
        NAMES, mics["rlnMicrographName"], mics[relion.VARIANCE_COLUMN]
    ):
        stem = Path(name).stem
        assert denoised == f"External/job010/MotionCorr/job002/Movies/{stem}_mean.mrc"
        assert variance == f"External/job010/MotionCorr/job002/Movies/{stem}_var.mrc"
        with mrcfile.open(denoised) as mrc, mrcfile.open(name) as raw:
            assert mrc.data.shape == raw.data.shape
            assert np.isclose(float(mrc.voxel_size.x), PIXEL, atol=1e-4)  # pixel size kept
            assert np.isfinite(mrc.data).all() and mrc.data.std() < raw.data.std()
        assert Path(variance).is_file()
    nodes = starfile.read(job_dir / "RELION_OUTPUT_NODES.star")
    assert list(nodes["rlnPipeLineNodeName"]) == ["External/job010/micrographs.star"]
    assert list(nodes["rlnPipeLineNodeTypeLabel"]) == ["MicrographGroupMetadata.star.relion"]


def test_rerun_skips_finished_micrographs_without_rewriting_them(project):
    star = _project(project, NAMES, "relion5")
    argv = ["relion", "--o", "External/job011", "--in_mics", str(star)] + FAST
    assert cli.main(argv) == 0
    first = project / "External/job011/MotionCorr/job002/Movies/mic_001_mean.mrc"
    stamp = first.stat().st_mtime_ns
    os.remove(project / "External/job011/MotionCorr/job002/Movies/mic_002.zse.json")
    os.remove(project / "External/job011/MotionCorr/job002/Movies/mic_002_mean.mrc")
    os.remove(project / "External/job011/MotionCorr/job002/Movies/mic_002_var.mrc")
    assert cli.main(argv) == 0
    assert first.stat().st_mtime_ns == stamp  # not rewritten
    log = (project / "External/job011" / relion.LOG_NAME).read_text()
    assert "1 denoised, 1 finished before and skipped, 0 failed" in log
    assert (project / "External/job011/MotionCorr/job002/Movies/mic_002_mean.mrc").is_file()


def test_failing_micrograph_leaves_failure_marker_with_reason(project, capsys):
    star = _project(project, NAMES, "relion31")
    broken = project / NAMES[1]
    broken.write_bytes(b"not an MRC file at all")
    code = cli.main(["relion", "--o", "External/job012", "--in_mics", str(star)] + FAST)
    assert code == 2
    job_dir = project / "External/job012"
    assert (job_dir / relion.FAILURE).exists() and not (job_dir / relion.SUCCESS).exists()
    assert not (job_dir / "micrographs.star").exists()
    log = (job_dir / relion.LOG_NAME).read_text()
    assert (
        f"failed: {NAMES[1]}" in log
        and "1 denoised, 0 finished before and skipped, 1 failed" in log
    )
    assert f"failed: {NAMES[1]}" in capsys.readouterr().err  # RELION's run.err
    # the micrograph fixed, a re-run finishes the job and clears the failure marker
    _mrc(broken, np.random.default_rng(1).poisson(5.0, size=(24, 28)))
    assert cli.main(["relion", "--o", "External/job012", "--in_mics", str(star)] + FAST) == 0
    assert (job_dir / relion.SUCCESS).exists() and not (job_dir / relion.FAILURE).exists()


def test_tomograms_of_relion5(project):
    rng = np.random.default_rng(0)
    names = ["Tomograms/job007/tomograms/rec_TS_01.mrc"]
    _mrc(project / names[0], rng.poisson(4.0, size=(10, 20, 22)), voxel=10.0, volume=True)
    tomos = pd.DataFrame(
        {
            "rlnTomoName": ["TS_01"],
            "rlnTomoTomogramBinning": [4.0],
            "rlnTomoReconstructedTomogram": names,
        }
    )
    star = project / "Tomograms/job007/tomograms.star"
    starfile.write({"global": tomos}, star)
    volume_options = [*FAST[:-1], "4x4x4"]
    code = cli.main(
        ["relion", "--o", "External/job013", "--in_tomograms", str(star)] + volume_options
    )
    assert code == 0
    out = starfile.read(project / "External/job013/tomograms.star", always_dict=True)["global"]
    assert list(out["rlnTomoReconstructedTomogram"]) == names  # the input column is kept
    denoised = out["rlnTomoReconstructedTomogramDenoised"][0]
    assert denoised == "External/job013/Tomograms/job007/tomograms/rec_TS_01_mean.mrc"
    with mrcfile.open(denoised) as mrc:
        assert mrc.data.shape == (10, 20, 22) and np.isclose(float(mrc.voxel_size.x), 10.0)


def test_refusals_are_clear(project, capsys):
    star = _project(project, NAMES, "relion31")
    assert cli.main(["relion", "--o", "External/job014", "--in_movies", str(star)]) == 2
    assert "not movies" in (project / "External/job014" / relion.LOG_NAME).read_text()
    assert (project / "External/job014" / relion.FAILURE).exists()
    # a STAR file without the image column
    other = project / "other.star"
    starfile.write({"micrographs": pd.DataFrame({"rlnOpticsGroup": [1]})}, other)
    assert cli.main(["relion", "--o", "External/job015", "--in_mics", str(other)]) == 2
    assert "no rlnMicrographName column" in capsys.readouterr().err
    # an unknown option of zse denoise is an error of the job, not silently dropped
    argv = ["relion", "--o", "External/job016", "--in_mics", str(star), "--no_such", "1"]
    assert cli.main(argv) == 2
    assert "unrecognized arguments: --no-such 1" in capsys.readouterr().err


def test_output_star_never_replaces_a_file_zse_did_not_write(project):
    star = _project(project, NAMES, "relion31")
    job_dir = project / "External/job017"
    job_dir.mkdir(parents=True)
    (job_dir / "micrographs.star").write_text("data_\nsomebody's file\n")
    assert cli.main(["relion", "--o", str(job_dir), "--in_mics", str(star)] + FAST) == 2
    assert (job_dir / "micrographs.star").read_text() == "data_\nsomebody's file\n"
    assert (job_dir / relion.FAILURE).exists()


@pytest.mark.parametrize(
    ("option", "says"),
    [
        (["--j", "1.5"], "argument --j: invalid int value: '1.5'"),
        (["--j", "abc"], "argument --j: invalid int value: 'abc'"),
        (["--no_such_option", "3"], "unrecognized arguments: --no-such-option 3"),
        (["--model", "nonsense"], "invalid choice: 'nonsense'"),
        (["--n_train", "-4"], "--n-train must be auto or an int >= 1"),
    ],
)
def test_usage_errors_leave_a_failure_marker_and_a_log_line(project, capsys, option, says):
    star = _project(project, NAMES, "relion31")
    job_dir = project / "External/job020"
    code = cli.main(["relion", "--o", "External/job020/", "--in_mics", str(star), *option])
    assert code == 2
    assert (job_dir / relion.FAILURE).exists() and not (job_dir / relion.SUCCESS).exists()
    assert says in (job_dir / relion.LOG_NAME).read_text()
    assert says in capsys.readouterr().err  # RELION's run.err
    assert not list(job_dir.rglob("*_mean.mrc"))


def test_an_unusable_job_directory_is_a_clear_error(project, capsys):
    star = _project(project, NAMES, "relion31")
    (project / "External").mkdir()
    (project / "External/job021").write_text("a file, not a folder")
    assert cli.main(["relion", "--o", "External/job021", "--in_mics", str(star)]) == 2
    err = capsys.readouterr().err
    assert "--o External/job021 exists and is not a directory" in err and "Traceback" not in err
    assert cli.main(["relion", "--o", "External/job021/sub", "--in_mics", str(star)]) == 2
    err = capsys.readouterr().err
    assert "cannot be made: External/job021 is not a directory" in err and "Traceback" not in err
    assert (project / "External/job021").read_text() == "a file, not a folder"


def test_the_input_jobs_folder_is_refused_and_left_untouched(project, capsys):
    star = _project(project, NAMES, "relion31")
    upstream = star.parent  # MotionCorr/job002/, RELION's finished motion correction
    (upstream / relion.SUCCESS).touch()
    nodes = "data_output_nodes\nloop_\n_rlnPipeLineNodeName #1\n_rlnPipeLineNodeTypeLabel #2\n"
    (upstream / "RELION_OUTPUT_NODES.star").write_text(nodes)
    before = sorted(p.relative_to(project) for p in project.rglob("*"))
    code = cli.main(["relion", "--o", "MotionCorr/job002/", "--in_mics", str(star)] + FAST)
    assert code == 2
    err = capsys.readouterr().err
    assert "holds another job's RELION_JOB_EXIT_SUCCESS, RELION_OUTPUT_NODES.star" in err
    assert (upstream / relion.SUCCESS).exists() and not (upstream / relion.FAILURE).exists()
    assert (upstream / "RELION_OUTPUT_NODES.star").read_text() == nodes
    assert sorted(p.relative_to(project) for p in project.rglob("*")) == before


def test_the_input_star_inside_the_job_folder_is_refused_before_any_work(project):
    star = _project(project, NAMES, "relion31")
    job_dir = project / "External/job022"
    job_dir.mkdir(parents=True)
    inside = job_dir / "micrographs.star"  # the STAR the job would write, given as its input
    inside.write_bytes(star.read_bytes())
    code = cli.main(["relion", "--o", "External/job022", "--in_mics", str(inside)] + FAST)
    assert code == 2
    assert inside.read_bytes() == star.read_bytes()
    log = (job_dir / relion.LOG_NAME).read_text()
    assert "the job's micrographs.star would be written to" in log and "which is the input" in log
    assert (job_dir / relion.FAILURE).exists()
    assert not list(job_dir.rglob("*.mrc")) and not list(job_dir.rglob("*.zse.json"))


def test_a_listed_input_is_never_replaced_by_another_inputs_output(project):
    """Data loss: a STAR listing a.mrc and a_mean.mrc with --o at their folder would write a's
    mean image over a_mean.mrc; the job refuses before any work."""
    rng = np.random.default_rng(4)
    _mrc(project / "Denoise/job030/a.mrc", rng.poisson(5.0, size=(24, 28)))
    # a listed input that zse once wrote (an earlier job's mean image): zse's own file, which
    # --overwrite-like re-runs may replace, but never while it is an input of this job
    zse.io.write_mrc(
        project / "Denoise/job030/a_mean.mrc",
        rng.poisson(5.0, size=(24, 28)).astype(np.float32),
        label="zse: an earlier job's mean",
    )
    listed = ["Denoise/job030/a.mrc", "Denoise/job030/a_mean.mrc"]
    star = project / "mics.star"
    starfile.write({"micrographs": pd.DataFrame({"rlnMicrographName": listed})}, star)
    kept = (project / listed[1]).read_bytes()
    code = cli.main(["relion", "--o", ".", "--in_mics", str(star)] + FAST)
    assert code == 2
    assert (project / listed[1]).read_bytes() == kept
    log = (project / relion.LOG_NAME).read_text()
    assert "the output a_mean.mrc of Denoise/job030/a.mrc would be written to" in log
    assert not (project / "Denoise/job030/a.zse.json").exists()


def test_model_file_is_applied_to_every_micrograph(project):
    star = _project(project, NAMES, "relion31")
    model_file = project / "m.zse"
    fit = ["fit", NAMES[0], "-o", str(model_file), "--model", "pmm", "--n-components", "3"]
    assert cli.main([*fit, "--max-iter", "2", "--patch-size", "4", "-q"]) == 0
    job = "External/job023"
    code = cli.main(["relion", "--o", job, "--in_mics", str(star), "--model_file", str(model_file)])
    assert code == 0
    applied = zse.load_model(model_file)
    for name in NAMES:
        out = project / job / Path(name).parent
        record = json.loads((out / f"{Path(name).stem}.zse.json").read_text())
        assert record["model_file"] == str(model_file)
        assert record["model"]["name"] == "PMM" and record["patch_size"] == [4, 4]
        expected = zse.reconstruct(mrcfile.read(name), applied, stats="mean", patch_size=4)
        np.testing.assert_allclose(
            mrcfile.read(out / f"{Path(name).stem}_mean.mrc"), expected["mean"], rtol=1e-6
        )


def test_checkpoint_is_one_file_per_micrograph_and_resumes(project):
    star = _project(project, NAMES, "relion31")
    job = "External/job024"
    argv = ["relion", "--o", job, "--in_mics", str(star), *FAST, "--checkpoint", "c.ckpt"]
    assert cli.main([*argv, "--resume"]) == 0
    assert sorted(p.name for p in project.glob("c*.ckpt")) == ["c.mic_001.ckpt", "c.mic_002.ckpt"]
    for name in NAMES:  # a second run (after a crash, say) resumes each from its own checkpoint
        (project / job / Path(name).parent / f"{Path(name).stem}.zse.json").unlink()
    assert cli.main([*argv, "--resume"]) == 0
    assert "2 denoised, 0 finished before" in (project / job / relion.LOG_NAME).read_text()


def test_star_values_are_written_back_as_they_were_read(project):
    rng = np.random.default_rng(0)
    names = ["Tomograms/job007/tomograms/rec_001.mrc"]
    _mrc(project / names[0], rng.poisson(4.0, size=(10, 20, 22)), voxel=10.0, volume=True)
    star = project / "Tomograms/job007/tomograms.star"
    star.write_text(
        "\ndata_global\n\nloop_\n_rlnTomoName #1\n_rlnTomoTomogramBinning #2\n"
        "_rlnTomoReconstructedTomogram #3\n_rlnOpticsGroupName #4\n"
        f"001\t4.000\t{names[0]}\t0042\n"
    )
    argv = ["relion", "--o", "External/job025", "--in_tomograms", str(star), *FAST[:-1], "4x4x4"]
    assert cli.main(argv) == 0
    text = (project / "External/job025/tomograms.star").read_text()
    row = [line for line in text.splitlines() if names[0] in line][0].split()
    assert row[:4] == ["001", "4.000", names[0], "0042"]
