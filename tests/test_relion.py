"""zse relion: the RELION External job on small generated project trees (RELION 3.1 and 5)."""

from __future__ import annotations

import os
from pathlib import Path

import mrcfile
import numpy as np
import pytest

starfile = pytest.importorskip("starfile")
pd = pytest.importorskip("pandas")

from zse import cli, relion  # noqa: E402

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
    with pytest.raises(SystemExit):
        cli.main(["relion", "--o", "External/job016", "--in_mics", str(star), "--no_such", "1"])


def test_output_star_never_replaces_a_file_zse_did_not_write(project):
    star = _project(project, NAMES, "relion31")
    job_dir = project / "External/job017"
    job_dir.mkdir(parents=True)
    (job_dir / "micrographs.star").write_text("data_\nsomebody's file\n")
    assert cli.main(["relion", "--o", str(job_dir), "--in_mics", str(star)] + FAST) == 2
    assert (job_dir / "micrographs.star").read_text() == "data_\nsomebody's file\n"
    assert (job_dir / relion.FAILURE).exists()
