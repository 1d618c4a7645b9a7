"""The file rule (zse._files, docs/reliability.md): nothing zse writes replaces an input of the
same call or a file zse did not write; damaged model files and checkpoints are clear errors."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tifffile

import zse
from zse import _files
from zse.cli import main


def run_zse(*args, cwd):
    return subprocess.run(
        [sys.executable, "-m", "zse.cli", *map(str, args)],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
    )


def write_image(path, seed=0, shape=(40, 40)):
    image = 100 + 10 * np.random.default_rng(seed).normal(size=shape)
    tifffile.imwrite(path, image.astype(np.float32))
    return path.read_bytes()


class Folder:
    """A folder of a user's files and their bytes, to check that none changed."""

    def __init__(self, path):
        self.path = path
        self.bytes = {}

    def add(self, name, seed):
        self.bytes[name] = write_image(self.path / name, seed)

    def assert_unchanged(self):
        for name, content in self.bytes.items():
            assert (self.path / name).read_bytes() == content, f"{name} was changed"


@pytest.fixture
def folder(tmp_path):
    """A folder with two user images a.tif and b.tif."""
    folder = Folder(tmp_path)
    folder.add("a.tif", 0)
    folder.add("b.tif", 1)
    return folder


# -- the data-loss cases of issue 21, as a user types them ------------------------------------
def test_checkpoint_named_like_the_input_is_refused(folder):
    result = run_zse(
        "denoise", "a.tif", "-o", "out", "--checkpoint", "a.tif", "--model", "pmm", cwd=folder.path
    )
    assert result.returncode == 2, result.stderr
    assert "zse: error:" in result.stderr and "is the input" in result.stderr
    folder.assert_unchanged()
    assert not (folder.path / "out").exists()  # refused before any work


def test_checkpoint_over_a_users_file_is_refused_before_work(folder):
    (folder.path / "notes.txt").write_text("mine")
    folder.bytes["notes.txt"] = b"mine"
    result = run_zse(
        "denoise",
        "a.tif",
        "-o",
        "out",
        "--checkpoint",
        "notes.txt",
        "--model",
        "pmm",
        cwd=folder.path,
    )
    assert result.returncode == 2, result.stderr
    assert "not a zse checkpoint" in result.stderr
    folder.assert_unchanged()


def test_fit_onto_its_input_is_refused_even_with_overwrite(folder):
    for extra in ([], ["--overwrite"]):
        result = run_zse("fit", "a.tif", "-o", "a.tif", "--model", "pmm", *extra, cwd=folder.path)
        assert result.returncode == 2, result.stderr
        assert "zse: error:" in result.stderr
        folder.assert_unchanged()


def test_one_inputs_output_named_like_another_input_is_refused_naming_both(folder):
    # a_mean.tif is an input and the mean image of a.tif: refused before any work.
    folder.add("a_mean.tif", 5)
    result = run_zse(
        "denoise", "a.tif", "a_mean.tif", "-o", ".", "--overwrite", "--model", "identity",
        cwd=folder.path,
    )  # fmt: skip
    assert result.returncode == 2, result.stderr
    assert "a_mean.tif of a.tif" in result.stderr and "which is the input" in result.stderr
    folder.assert_unchanged()
    assert not (folder.path / "a_mean_mean.tif").exists()  # nothing was denoised


def test_outputs_through_a_link_or_dotdot_to_an_input_are_refused(folder):
    out = folder.path / "out"
    out.mkdir()
    os.symlink(folder.path / "b.tif", out / "a_mean.tif")  # the output name resolves to b.tif
    result = run_zse(
        "denoise",
        "a.tif",
        "b.tif",
        "-o",
        "out",
        "--overwrite",
        "--model",
        "identity",
        cwd=folder.path,
    )
    assert result.returncode == 2, result.stderr
    assert "b.tif" in result.stderr
    folder.assert_unchanged()
    # "sub/.." is the folder of the inputs: a.tif's mean is the input a_mean.tif.
    (folder.path / "sub").mkdir()
    folder.add("a_mean.tif", 6)
    result = run_zse(
        "denoise", "a.tif", "a_mean.tif", "-o", "sub/..", "--overwrite", "--model", "identity",
        cwd=folder.path,
    )  # fmt: skip
    assert result.returncode == 2 and "which is the input" in result.stderr
    folder.assert_unchanged()


def test_overwrite_replaces_zse_outputs_only(folder, capsys):
    out = folder.path / "out"
    args = ["denoise", str(folder.path / "a.tif"), "-o", str(out), "--model", "identity", "-q"]
    assert main(args) == 0
    first = (out / "a_mean.tif").read_bytes()
    assert _files.written_by_zse(out / "a_mean.tif")
    assert _files.written_by_zse(out / "a_mean.png")
    assert _files.written_by_zse(out / "a.zse.json")
    assert main(args) == 2
    assert "outputs exist already" in capsys.readouterr().err
    assert main([*args, "--overwrite"]) == 0
    assert (out / "a_mean.tif").read_bytes() == first
    # A user's file in place of an output is never replaced, even with --overwrite.
    (out / "a_var.tif").write_bytes(b"user data")
    assert main([*args, "--overwrite"]) == 2
    assert "not a zse output" in capsys.readouterr().err
    assert (out / "a_var.tif").read_bytes() == b"user data"


@pytest.mark.parametrize("suffix", [".tif", ".mrc", ".png", ".json"])
def test_markers_of_each_output_kind(tmp_path, suffix):
    image = np.arange(64, dtype=np.float64).reshape(8, 8)
    path = tmp_path / f"x{suffix}"
    if suffix == ".tif":
        zse.io.write_tiff(path, image)
    elif suffix == ".mrc":
        zse.io.write_mrc(path, image)
    elif suffix == ".png":
        zse.io.write_preview_png(path, image)
    else:
        zse.io.write_json(path, {"a": 1})
    assert _files.written_by_zse(path)
    foreign = tmp_path / f"y{suffix}"
    if suffix == ".tif":
        tifffile.imwrite(foreign, image.astype(np.float32))
    elif suffix == ".mrc":
        import mrcfile

        with mrcfile.new(foreign) as mrc:
            mrc.set_data(image.astype(np.float32))
    elif suffix == ".png":
        from PIL import Image

        Image.fromarray(image.astype(np.uint8)).save(foreign)
    else:
        foreign.write_text(json.dumps({"a": 1}))
    assert not _files.written_by_zse(foreign)
    with pytest.raises(_files.WriteRefused):
        _files.check_target(foreign, overwrite=True)
    _files.check_target(path, overwrite=True)  # zse's own file: allowed


def test_checkpoints_replace_only_checkpoints(tmp_path):
    patches = np.random.default_rng(0).poisson(5.0, size=(300, 9)).astype(float)
    ckpt = tmp_path / "c.ckpt"
    zse.PMM(3, max_iter=2, random_state=0, checkpoint=ckpt).fit(patches)
    zse.PMM(3, max_iter=2, random_state=1, checkpoint=ckpt).fit(patches)  # a checkpoint: replaced
    model_file = tmp_path / "m.zse"
    zse.save_model(zse.PMM(3, max_iter=2).fit(patches), model_file)
    before = model_file.read_bytes()
    with pytest.raises(_files.WriteRefused, match="not a zse checkpoint"):
        zse.PMM(3, max_iter=2, checkpoint=model_file).fit(patches)
    assert model_file.read_bytes() == before
    # and model files replace only model files
    with pytest.raises(_files.WriteRefused, match="not a zse model file"):
        zse.save_model(zse.PMM(3, max_iter=2).fit(patches), ckpt, overwrite=True)
    with pytest.raises(FileExistsError, match="overwrite"):
        zse.save_model(zse.PMM(3, max_iter=2).fit(patches), model_file, overwrite=False)


# -- --model-file with --per-section, volumes; per-section checkpoints -------------------------
def write_stack(path, n=3, shape=(24, 24)):
    import mrcfile

    stack = np.random.default_rng(3).poisson(8.0, size=(n, *shape)).astype(np.float32)
    with mrcfile.new(path) as mrc:
        mrc.set_data(stack)
        mrc.set_image_stack()
    return stack


def test_model_file_is_used_per_section(tmp_path, capsys):
    write_stack(tmp_path / "s.mrcs")
    model = tmp_path / "m.zse"
    fit = ["fit", str(tmp_path / "s.mrcs"), "-o", str(model), "--model", "pmm", "--n-components"]
    assert main([*fit, "4", "--max-iter", "3", "-q"]) == 0
    common = ["--model-file", str(model), "--stats", "mean", "-q"]
    assert main(["denoise", str(tmp_path / "s.mrcs"), "-o", str(tmp_path / "a"), *common]) == 0
    assert (
        main(
            [
                "denoise",
                str(tmp_path / "s.mrcs"),
                "-o",
                str(tmp_path / "b"),
                "--per-section",
                *common,
            ]
        )
        == 0
    )
    import mrcfile

    with (
        mrcfile.open(tmp_path / "a" / "s_mean.mrc") as a,
        mrcfile.open(tmp_path / "b" / "s_mean.mrc") as b,
    ):
        np.testing.assert_array_equal(a.data, b.data)  # the file's model, not fresh fits
    record = json.loads((tmp_path / "b" / "s.zse.json").read_text())
    assert record["model_file"] == str(model) and record["per_section"] is True
    assert record["model"]["params"]["n_components"] == 4


def test_per_section_fits_get_a_checkpoint_each(tmp_path):
    write_stack(tmp_path / "s.mrcs", n=2)
    ckpt = tmp_path / "c.ckpt"
    args = ["denoise", str(tmp_path / "s.mrcs"), "-o", str(tmp_path / "o"), "--per-section"]
    args += ["--model", "pmm", "--n-components", "3", "--max-iter", "2", "-q"]
    assert main([*args, "--checkpoint", str(ckpt)]) == 0
    assert sorted(p.name for p in tmp_path.glob("c.*.ckpt")) == ["c.s.0.ckpt", "c.s.1.ckpt"]
    # resuming every section from its own checkpoint reproduces the outputs
    first = (tmp_path / "o" / "s_mean.mrc").read_bytes()
    assert main([*args, "--checkpoint", str(ckpt), "--resume", "--overwrite"]) == 0
    assert (tmp_path / "o" / "s_mean.mrc").read_bytes()[1024:] == first[1024:]


def test_a_2d_model_file_on_a_volume_is_refused_with_the_reason(tmp_path, capsys):
    import mrcfile

    volume = np.random.default_rng(0).poisson(8.0, size=(8, 16, 16)).astype(np.float32)
    with mrcfile.new(tmp_path / "v.mrc") as mrc:
        mrc.set_data(volume)
        mrc.set_volume()
    tifffile.imwrite(tmp_path / "i.tif", volume[0])
    model = tmp_path / "m.zse"
    fit = ["fit", str(tmp_path / "i.tif"), "-o", str(model), "--model", "pmm", "-q"]
    assert main([*fit, "--n-components", "4", "--max-iter", "2"]) == 0
    assert main(["denoise", str(tmp_path / "v.mrc"), "-o", str(tmp_path / "o"),
                 "--model-file", str(model), "-q"]) == 2  # fmt: skip
    assert "cannot denoise a volume" in capsys.readouterr().err


# -- loaded models check the whole patch shape --------------------------------------------------
def test_loaded_model_refuses_patches_of_another_shape(tmp_path):
    image = np.random.default_rng(0).poisson(6.0, size=(30, 30)).astype(float)
    model = zse.PMM(3, max_iter=2, random_state=0)
    zse.reconstruct(image, model, patch_size=(4, 4), stats="mean")
    assert model.patch_size_ == (4, 4)
    with pytest.raises(ValueError, match="fitted on 4x4 patches, not 2x8"):
        zse.reconstruct(image, model, patch_size=(2, 8), stats="mean")
    zse.save_model(model, tmp_path / "m.zse")
    loaded = zse.load_model(tmp_path / "m.zse")
    assert loaded.patch_size_ == (4, 4)
    with pytest.raises(ValueError, match="fitted on 4x4 patches, not 2x8"):
        zse.reconstruct(image, loaded, patch_size=(2, 8), stats="mean")
    with pytest.raises(ValueError, match="fitted on 4x4 patches, not 2x2x4"):
        zse.reconstruct(np.stack([image] * 3), loaded, patch_size=(2, 2, 4), stats="mean")
    # a stack's (1, 4, 4) patches are the model's 4 x 4 patches
    zse.reconstruct(np.stack([image] * 2), loaded, patch_size=(1, 4, 4), stats="mean")


# -- every error a user can cause is exit 2 ------------------------------------------------------
def test_tiff_without_a_page_directory_and_unequal_pages_are_user_errors(tmp_path, capsys):
    import struct

    (tmp_path / "empty.tif").write_bytes(b"II*\x00" + struct.pack("<I", 0))
    (tmp_path / "folder.tif").mkdir()
    with tifffile.TiffWriter(tmp_path / "pages.tif") as tif:
        tif.write(np.zeros((32, 32), np.uint8))
        tif.write(np.zeros((16, 16), np.uint8))
    expected = {
        "empty.tif": "without any readable image",
        "folder.tif": "is a directory",
        "pages.tif": "pages that differ",
    }
    for name, message in expected.items():
        code = main(["denoise", str(tmp_path / name), "-o", str(tmp_path / "o"), "-q"])
        err = capsys.readouterr().err
        assert code == 2 and message in err and "bug" not in err, (name, err)


def test_mpi_without_mpi4py_is_a_user_error(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "mpi4py", None)  # import mpi4py now fails
    write_image(tmp_path / "a.tif")
    code = main(["denoise", str(tmp_path / "a.tif"), "-o", str(tmp_path / "o"), "--mpi", "-q"])
    err = capsys.readouterr().err
    assert code == 2 and "zse[mpi]" in err and "bug" not in err


# -- MRC headers after --crop, --bin, --decimate (IMOD's convention) ----------------------------
@pytest.mark.parametrize(
    "options, origin, voxel, shape",
    [
        # crop rows 4:60 and columns 8:72: the origin moves by -(8 * 2, 4 * 3) Å
        (["--crop", "4:60,8:72"], (10 - 16, 20 - 12, 30), (2, 3, 4), (56, 64)),
        # binning keeps the first pixel's corner: origin unchanged, pixels twice as large
        (["--bin", "2"], (10, 20, 30), (4, 6, 4), (32, 40)),
        # crop, then bin
        (["--crop", "4:60,8:72", "--bin", "2"], (-6, 8, 30), (4, 6, 4), (28, 32)),
        # keep every 3rd pixel: the new pixel's corner is one old pixel before the sample's
        (["--decimate", "3"], (10 + 2, 20 + 3, 30), (6, 9, 4), (22, 27)),
    ],
)
def test_mrc_origin_after_crop_bin_and_decimate(tmp_path, options, origin, voxel, shape):
    import mrcfile

    data = np.random.default_rng(0).normal(100, 10, (64, 80)).astype(np.float32)
    with mrcfile.new(tmp_path / "m.mrc") as mrc:
        mrc.set_data(data)
        mrc.voxel_size = (2.0, 3.0, 4.0)
        mrc.header.origin = (10.0, 20.0, 30.0)
    args = ["denoise", str(tmp_path / "m.mrc"), "-o", str(tmp_path / "o"), "--model", "identity"]
    assert main([*args, "--stats", "mean", "-q", *options]) == 0
    with mrcfile.open(tmp_path / "o" / "m_mean.mrc") as mrc:
        header = mrc.header
        assert tuple(float(v) for v in (header.origin.x, header.origin.y, header.origin.z)) == (
            pytest.approx(origin)
        )
        assert tuple(float(v) for v in mrc.voxel_size.item()) == pytest.approx(voxel)
        assert mrc.data.shape == shape


# -- the API and the command line choose the same model -----------------------------------------
@pytest.mark.parametrize("counts", [True, False])
def test_reconstruct_and_the_command_line_choose_the_same_model(tmp_path, counts, monkeypatch):
    import importlib

    reconstruct_module = importlib.import_module("zse.reconstruct")
    from zse.data import synthetic_tem

    def short_fits(name, **kw):  # the choice is the test, not a converged model
        return zse.models.make_model(name, options={"max_iter": 2})

    monkeypatch.setattr(reconstruct_module, "make_model", short_fits)

    noisy, clean = synthetic_tem(shape=(128, 128), seed=1)
    if not counts:  # the clean scene with Gaussian noise, as grey values
        noisy = 100 + 400 * clean + np.random.default_rng(0).normal(0, 8, clean.shape)
    tifffile.imwrite(tmp_path / "x.tif", noisy.astype(np.float32))
    assert main(["denoise", str(tmp_path / "x.tif"), "-o", str(tmp_path / "o"), "--stats",
                 "mean", "--max-iter", "2", "-q"]) == 0  # fmt: skip
    record = json.loads((tmp_path / "o" / "x.zse.json").read_text())
    cli_choice = record["model"]["name"].lower()
    result = zse.reconstruct(noisy.astype(np.float32).astype(np.float64), stats="mean")
    assert result.model_choice["model"] == cli_choice == ("gpmm" if counts else "sssc")
    assert type(result.model).__name__.lower() == cli_choice
    assert {k: v for k, v in result.model_choice.items() if k != "model"} == record["model_choice"]
