"""Volumes larger than memory: the compact merge, slab-wise estimation and the command line's
--slabs give the whole-volume results (bit for bit where the merge is the same)."""

import json
import shutil
import subprocess
import sys
import warnings

import mrcfile
import numpy as np
import pytest
import tifffile

import zse
from zse import _core
from zse.cli import main
from zse.models.base import Slab, stream_request
from zse.slabs import SlabPlan, VolumeSource, gather_training_patches, reconstruct_slabs

STATS = ["mean", "var", "pvar", "count"]


def counts_volume(shape=(13, 20, 18), seed=0):
    rng = np.random.default_rng(seed)
    z, r, c = np.indices(shape)
    rate = 6 + 3 * np.sin(c / 3.0 + z / 4.0) * np.cos(r / 5.0)
    return rng.poisson(rate).astype(np.float64)


@pytest.fixture(scope="module")
def fitted_gpmm():
    volume = counts_volume()
    model = zse.GPMM(n_components=4, max_iter=3, random_state=0)
    zse.reconstruct(volume, model, patch_size=(3, 3, 3), stats="mean")
    return volume, model


def _stream(model, volume, merge, n_threads=2, stats=STATS):
    request = stream_request(stats, "average", (0, 1), None)
    request.merge = merge
    return model._stream_volume(volume, (3, 3, 3), np.zeros(0, np.int64), n_threads, request)


def test_compact_merge_agrees_with_the_full_merge_to_rounding(fitted_gpmm):
    volume, model = fitted_gpmm
    full, compact = _stream(model, volume, "full"), _stream(model, volume, "compact")
    np.testing.assert_array_equal(compact["count"], full["count"])
    for stat in ("mean", "var", "pvar"):
        scale = np.abs(full[stat]).max()
        assert np.abs(compact[stat] - full[stat]).max() <= 1e-12 * scale, stat
    assert full["var"].max() > 0


def test_compact_merge_is_the_same_for_any_thread_count(fitted_gpmm):
    volume, model = fitted_gpmm
    one, two = _stream(model, volume, "compact", 1), _stream(model, volume, "compact", 2)
    for stat in STATS:
        np.testing.assert_array_equal(one[stat], two[stat])


def test_compact_merge_of_the_identity_model_is_the_input():
    volume = counts_volume((9, 11, 10), seed=3)
    model = zse.Identity().fit(np.zeros((1, 27)))
    out = _stream(model, volume, "compact", stats=["mean", "var", "count"])
    np.testing.assert_allclose(out["mean"], volume, rtol=0, atol=1e-12)
    assert np.abs(out["var"]).max() < 1e-20


def test_the_compact_merge_has_no_median_and_is_chosen_by_the_geometry_alone():
    volume = counts_volume((6, 8, 8))
    model = zse.Identity().fit(np.zeros((1, 27)))
    with pytest.raises(ValueError, match="median"):
        _stream(model, volume, "compact", stats=["median"])
    big, small = (64, 1024, 1024), (64, 128, 128)
    for threads in (1, 2, 16):
        assert _core.stream_plan(big, (4, 4, 4), False, False, "auto", threads)["compact"]
        assert not _core.stream_plan(small, (4, 4, 4), False, False, "auto", threads)["compact"]
        assert not _core.stream_plan(big, (4, 4, 4), False, True, "auto", threads)["compact"]
    full = _core.stream_plan(big, (4, 4, 4), False, False, "full", 1)["ring_bytes"]
    compact = _core.stream_plan(big, (4, 4, 4), False, False, "compact", 1)["ring_bytes"]
    assert compact * 8 < full  # 3 + 3 doubles per voxel and slice against D = 64


@pytest.mark.parametrize("merge", ["full", "compact"])
def test_slabs_of_a_volume_give_its_slices_bit_for_bit(fitted_gpmm, merge):
    volume, model = fitted_gpmm
    whole = _stream(model, volume, merge)
    plan = SlabPlan(volume.shape, (3, 3, 3), 4)
    for a, b in plan.slabs():
        first, last = plan.window(a, b)
        request = stream_request(STATS, "average", (0, 1), None, Slab(a, b, len(volume), first))
        request.merge = merge
        part = model._stream_volume(
            np.ascontiguousarray(volume[first:last]), (3, 3, 3), np.zeros(0, np.int64), 2, request
        )
        for stat in STATS:
            np.testing.assert_array_equal(part[stat], whole[stat][a:b])


def test_a_slab_must_hold_the_slices_its_bands_read(fitted_gpmm):
    volume, model = fitted_gpmm
    with pytest.raises(ValueError, match="slab of input slices"):
        model.estimate_volume(
            np.ascontiguousarray(volume[4:8]),
            (3, 3, 3),
            ["mean"],
            np.zeros(0, np.int64),
            "average",
            1,
            slab=Slab(4, 8, len(volume), 4),  # bands 2 and 3 read slices 2 and 3 too
        )


@pytest.fixture
def volume_files(tmp_path):
    volume = counts_volume((12, 22, 19), seed=5).astype(np.float32)
    with mrcfile.new(tmp_path / "v.mrc") as mrc:
        mrc.set_data(volume)
        mrc.set_volume()
        mrc.voxel_size = 3.5
    tifffile.imwrite(tmp_path / "v.tif", volume)
    return volume, tmp_path


@pytest.mark.parametrize("name", ["v.mrc", "v.tif"])
def test_volume_source_reads_slabs_of_mrc_and_tiff(volume_files, name):
    volume, folder = volume_files
    source = VolumeSource(folder / name)
    assert source.shape == volume.shape
    np.testing.assert_array_equal(source.read(3, 7), volume[3:7].astype(np.float64))


def test_training_patches_gathered_slab_by_slab_are_the_whole_volumes(volume_files):
    volume, folder = volume_files
    source = VolumeSource(folder / "v.mrc")
    positions = zse.reconstruct.__globals__["training_positions"](10 * 20 * 17, 500, 3)
    whole = _core.gather_patches(volume.astype(np.float64), (3, 3, 3), positions, 1)
    for slab in (1, 4, 12):
        plan = SlabPlan(volume.shape, (3, 3, 3), slab)
        np.testing.assert_array_equal(gather_training_patches(source, plan, positions, 2), whole)


def test_reconstruct_slabs_fits_and_estimates_as_the_whole_volume(volume_files):
    volume, folder = volume_files
    kwargs = dict(n_states=6, n_parents=3, max_iter=3, random_state=4)
    whole = zse.reconstruct(
        volume, zse.SSSC(6, **kwargs), patch_size=(3, 3, 3), stats=STATS, n_train=700
    )
    images = {stat: np.empty(volume.shape) for stat in STATS}

    def write(first, slab):
        for stat, image in slab.items():
            images[stat][first : first + len(image)] = image

    model = reconstruct_slabs(
        VolumeSource(folder / "v.mrc"),
        zse.SSSC(6, **kwargs),
        write,
        stats=STATS,
        patch_size=(3, 3, 3),
        n_train=700,
        slab_slices=5,
    )
    np.testing.assert_array_equal(model.W_, whole.model.W_)
    for stat in STATS:
        np.testing.assert_array_equal(images[stat], whole[stat])


CLI = ["--model", "sssc", "--H", "6", "--n-states", "6", "--n-parents", "3", "--max-iter", "2"]


@pytest.mark.parametrize("name", ["v.mrc", "v.tif"])
def test_cli_slabs_write_the_whole_volume_outputs(volume_files, name):
    volume, folder = volume_files
    common = [str(folder / name), *CLI, "--patch-size", "3x3x3", "-q", "--stats", "mean,var,pvar"]
    assert main(["denoise", *common, "-o", str(folder / "whole")]) == 0
    assert main(["denoise", *common, "-o", str(folder / "slabs"), "--slabs", "4"]) == 0
    read = mrcfile.read if name.endswith(".mrc") else tifffile.imread
    ext = name.split(".")[1]
    for stat in ("mean", "var", "pvar"):
        a, b = (
            read(folder / "whole" / f"v_{stat}.{ext}"),
            read(folder / "slabs" / f"v_{stat}.{ext}"),
        )
        assert a.shape == volume.shape
        np.testing.assert_array_equal(a, b)
    listing = sorted(p.name for p in (folder / "slabs").iterdir())
    assert listing == sorted(p.name for p in (folder / "whole").iterdir())
    record = json.loads((folder / "slabs" / "v.zse.json").read_text())
    assert record["input"]["slab_slices"] == 4 and record["input"]["kind"] == "volume"
    if name.endswith(".mrc"):
        with mrcfile.open(folder / "slabs" / "v_mean.mrc") as mrc:
            assert mrc.voxel_size.x == pytest.approx(3.5)
            assert mrc.header.ispg == 1
            assert mrc.header.dmax == pytest.approx(float(mrc.data.max()))
            assert mrc.header.dmean == pytest.approx(float(mrc.data.mean()), rel=1e-5)
            labels = [bytes(x).decode() for x in mrc.header.label[: mrc.header.nlabl]]
            assert labels[-1].startswith("zse:")


def test_cli_slabs_refuses_images_and_bad_counts(tmp_path, capsys):
    tifffile.imwrite(tmp_path / "a.tif", np.ones((20, 20), np.float32))
    assert (
        main(["denoise", str(tmp_path / "a.tif"), "-o", str(tmp_path / "o"), "--slabs", "4"]) == 2
    )
    assert "--slabs applies to volumes" in capsys.readouterr().err
    volume = tmp_path / "v.mrc"
    with mrcfile.new(volume) as mrc:
        mrc.set_data(np.ones((6, 10, 10), np.float32))
        mrc.set_volume()
    assert main(["denoise", str(volume), "-o", str(tmp_path / "p"), "--slabs", "0"]) == 2
    assert "--slabs must be >= 1" in capsys.readouterr().err


def test_non_finite_values_in_a_slab_are_a_clear_error(tmp_path, capsys):
    data = np.ones((6, 10, 10), np.float32)
    data[4, 2, 2] = np.nan
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # mrcfile on the NaN it is given
        with mrcfile.new(tmp_path / "v.mrc") as mrc:
            mrc.set_data(data)
            mrc.set_volume()
    code = main(["denoise", str(tmp_path / "v.mrc"), "-o", str(tmp_path / "o"), "--slabs", "2",
                 "--model", "gpmm", "--n-components", "2", "--max-iter", "1", "-q"])  # fmt: skip
    assert code == 2
    assert "NaN or infinite" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()  # no partial output set


def test_volume_writer_takes_slabs_in_order(tmp_path):
    writer = zse.io.VolumeWriter(tmp_path / "w.mrc", (4, 3, 3), fmt="mrc")
    writer.write(0, np.zeros((2, 3, 3)))
    with pytest.raises(ValueError, match="does not follow"):
        writer.write(3, np.zeros((1, 3, 3)))
    writer.write(2, np.ones((2, 3, 3)))
    writer.close()
    np.testing.assert_array_equal(mrcfile.read(tmp_path / "w.mrc")[2:], 1)


@pytest.mark.skipif(
    shutil.which("mpiexec") is None or not __import__("importlib").util.find_spec("mpi4py"),
    reason="needs mpi4py and mpiexec (pip install '.[mpi]')",
)
def test_slabs_under_mpirun_match_one_process(volume_files):
    volume, folder = volume_files
    common = [str(folder / "v.mrc"), *CLI, "--patch-size", "3x3x3", "-q", "--slabs", "5"]
    assert main(["denoise", *common, "-o", str(folder / "one")]) == 0
    run = subprocess.run(
        ["mpiexec", "-n", "2", sys.executable, "-m", "zse", "denoise", *common, "-o",
         str(folder / "two")],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    for stat in ("mean", "var"):
        np.testing.assert_array_equal(
            mrcfile.read(folder / "two" / f"v_{stat}.mrc"),
            mrcfile.read(folder / "one" / f"v_{stat}.mrc"),
        )
    assert json.loads((folder / "two" / "v.zse.json").read_text())["n_ranks"] == 2


def test_cli_slabs_with_model_auto_tests_the_central_slices(tmp_path):
    volume = counts_volume((10, 20, 20), seed=7).astype(np.float32)
    with mrcfile.new(tmp_path / "c.mrc") as mrc:
        mrc.set_data(volume)
        mrc.set_volume()
    argv = ["denoise", str(tmp_path / "c.mrc"), "-o", str(tmp_path / "o"), "--slabs", "3"]
    assert main([*argv, "--n-components", "3", "--max-iter", "2", "-q"]) == 0
    record = json.loads((tmp_path / "o" / "c.zse.json").read_text())
    assert record["model"]["name"] == "GPMM" and record["model_choice"]["counts"]
    assert "sections_tested" not in record["model_choice"]  # 10 slices: all of them tested


def test_slabs_and_whole_volume_test_the_same_slices_for_model_auto(tmp_path):
    """A volume whose central slices hold counts and the others Gaussian noise: --slabs and the
    whole-volume run test the same slices, so they pick the same model (and the same images)."""
    rng = np.random.default_rng(3)
    volume = rng.normal(100.0, 4.0, size=(40, 24, 24))
    volume[12:28] = counts_volume((16, 24, 24), seed=5)
    with mrcfile.new(tmp_path / "m.mrc") as mrc:
        mrc.set_data(volume.astype(np.float32))
        mrc.set_volume()
    common = [str(tmp_path / "m.mrc"), "--patch-size", "3x3x3", "--max-iter", "2", "-q"]
    assert main(["denoise", *common, "-o", str(tmp_path / "whole")]) == 0
    assert main(["denoise", *common, "-o", str(tmp_path / "slabs"), "--slabs", "7"]) == 0
    whole = json.loads((tmp_path / "whole" / "m.zse.json").read_text())
    slabs = json.loads((tmp_path / "slabs" / "m.zse.json").read_text())
    assert whole["model_choice"] == slabs["model_choice"]
    assert whole["model_choice"]["sections_tested"] == zse.counts.count_test_sections(40)
    assert whole["model"]["name"] == slabs["model"]["name"]
    np.testing.assert_array_equal(
        mrcfile.read(tmp_path / "whole" / "m_mean.mrc"),
        mrcfile.read(tmp_path / "slabs" / "m_mean.mrc"),
    )


def test_cli_never_drops_crop_or_bin_on_a_volume(volume_files, capsys):
    """--crop on a volume is refused (the whole-volume path's rule), never ignored by slabs."""
    _, folder = volume_files
    argv = ["denoise", str(folder / "v.mrc"), "-o", str(folder / "o"), "--crop", "0:10,0:10"]
    assert main([*argv, "--slabs", "4"]) == 2
    assert "apply to images and stacks" in capsys.readouterr().err
    assert main(argv) == 2
    assert "apply to images and stacks" in capsys.readouterr().err


@pytest.mark.parametrize("suffix", ["mrc", "tif"])
def test_zse_fit_gathers_training_patches_slab_by_slab(tmp_path, monkeypatch, suffix):
    """zse fit never reads a stack or volume whole: its patches are the whole volume's."""
    from zse.cli.request import Request
    from zse.cli.run import training_patches
    from zse.reconstruct import training_positions

    volume = counts_volume((30, 20, 18), seed=2).astype(np.float32)
    path = tmp_path / f"v.{suffix}"
    if suffix == "mrc":
        with mrcfile.new(path) as mrc:
            mrc.set_data(volume)
            mrc.set_volume()
    else:
        for section in volume:
            tifffile.imwrite(path, section, append=True)

    def whole_read_refused(*args, **kwargs):
        raise AssertionError("zse fit read the whole volume")

    monkeypatch.setattr(zse.io, "read_volume", whole_read_refused)
    monkeypatch.setattr("zse.slabs.default_slab_slices", lambda shape, n_stats: 4)
    request = Request(inputs=(path,), volume=True, patch_size=(3, 3, 3), n_train=500)
    patches, patch, model_name, evidence = training_patches([path], request)
    assert model_name == "gpmm" and evidence["counts"] and patch == (3, 3, 3)
    positions = training_positions(28 * 18 * 16, 500, 0)
    expected = _core.gather_patches(volume.astype(np.float64), (3, 3, 3), positions, 1)
    np.testing.assert_array_equal(patches, expected)
    monkeypatch.undo()
    model_file = tmp_path / "m.zse"
    argv = ["fit", str(path), "-o", str(model_file), "--patch-size", "3x3x3", "--max-iter", "2"]
    assert main([*argv, "--n-components", "3", "-q"]) == 0
    assert zse.load_model(model_file).patch_size_ == (3, 3, 3)
