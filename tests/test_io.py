import numpy as np
import pytest
import tifffile
from PIL import Image

import zse
from zse import io


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.float32, np.int16])
def test_tiff_read_keeps_values(tmp_path, rng, dtype):
    data = (rng.uniform(0, 200, size=(17, 23))).astype(dtype)
    path = tmp_path / "in.tif"
    tifffile.imwrite(path, data)
    out = io.read_image(path)
    assert out.dtype == dtype
    np.testing.assert_array_equal(out, data)


def test_tiff_stack_pages(tmp_path, rng):
    stack = rng.integers(0, 1000, size=(3, 8, 9)).astype(np.uint16)
    path = tmp_path / "stack.tif"
    with tifffile.TiffWriter(path) as tif:
        for page in stack:
            tif.write(page, contiguous=False)
    with pytest.raises(ValueError, match="holds 3 pages; pass page=k"):
        io.read_image(path)  # nothing is picked silently
    np.testing.assert_array_equal(io.read_image(path, page=0), stack[0])
    np.testing.assert_array_equal(io.read_image(path, page=2), stack[2])
    with pytest.raises(ValueError, match="page 3 does not exist"):
        io.read_image(path, page=3)


def test_float32_tiff_round_trip_and_no_overwrite(tmp_path, rng):
    data = rng.normal(size=(10, 12))
    path = io.write_tiff(tmp_path / "out.tif", data)
    back = io.read_image(path)
    assert back.dtype == np.float32
    np.testing.assert_array_equal(back, data.astype(np.float32))
    with pytest.raises(FileExistsError, match="exists"):
        io.write_tiff(path, data)
    io.write_tiff(path, data * 2, overwrite=True)
    np.testing.assert_array_equal(io.read_image(path), (data * 2).astype(np.float32))


def test_png_round_trip_and_preview(tmp_path, rng):
    data = rng.integers(0, 256, size=(14, 9)).astype(np.uint8)
    Image.fromarray(data).save(tmp_path / "g.png")
    np.testing.assert_array_equal(io.read_image(tmp_path / "g.png"), data)
    ramp = np.linspace(-5, 5, 100).reshape(10, 10)
    path = io.write_preview_png(tmp_path / "p.png", ramp, percentiles=(0, 100))
    preview = io.read_image(path)
    assert preview.dtype == np.uint8 and preview.min() == 0 and preview.max() == 255
    assert np.all(np.diff(preview.ravel().astype(int)) >= 0)  # monotone stretch


def test_grey_rgb_is_accepted_but_colour_is_refused(tmp_path, rng):
    grey = rng.integers(0, 256, size=(6, 7)).astype(np.uint8)
    Image.fromarray(np.stack([grey] * 3, axis=-1)).save(tmp_path / "rgb_grey.png")
    np.testing.assert_array_equal(io.read_image(tmp_path / "rgb_grey.png"), grey)
    colour = np.stack([grey, grey // 2, grey], axis=-1)
    Image.fromarray(colour).save(tmp_path / "rgb.png")
    with pytest.raises(ValueError, match="colour image"):
        io.read_image(tmp_path / "rgb.png")


def test_mrc_round_trip_and_stack(tmp_path, rng):
    mrcfile = pytest.importorskip("mrcfile")
    data = rng.normal(size=(2, 11, 13)).astype(np.float32)
    with mrcfile.new(tmp_path / "s.mrc") as mrc:
        mrc.set_data(data)
    with pytest.raises(ValueError, match="holds 2 sections; pass page=k"):
        io.read_image(tmp_path / "s.mrc")  # no silent section 0
    np.testing.assert_array_equal(io.read_image(tmp_path / "s.mrc", page=0), data[0])
    np.testing.assert_array_equal(io.read_image(tmp_path / "s.mrc", page=1), data[1])
    with mrcfile.new(tmp_path / "one.mrc") as mrc:
        mrc.set_data(data[1])
    np.testing.assert_array_equal(io.read_image(tmp_path / "one.mrc"), data[1])


def test_missing_unsupported_truncated_files(tmp_path, rng):
    with pytest.raises(FileNotFoundError, match="not found"):
        io.read_image(tmp_path / "nope.tif")
    (tmp_path / "x.xyz").write_bytes(b"1234")
    with pytest.raises(ValueError, match="unsupported file type"):
        io.read_image(tmp_path / "x.xyz")
    data = rng.integers(0, 256, size=(64, 64)).astype(np.uint8)
    tifffile.imwrite(tmp_path / "full.tif", data)
    Image.fromarray(data).save(tmp_path / "full.png")
    for name in ("full.tif", "full.png"):
        raw = (tmp_path / name).read_bytes()
        (tmp_path / f"cut_{name}").write_bytes(raw[: len(raw) // 3])
        with pytest.raises(ValueError, match="truncated or corrupt"):
            io.read_image(tmp_path / f"cut_{name}")
    (tmp_path / "garbage.mrc").write_bytes(b"\x00" * 100)
    with pytest.raises(ValueError, match="could not read"):
        io.read_image(tmp_path / "garbage.mrc")
    with pytest.raises(ValueError, match="is a directory"):
        io.read_image(tmp_path)


def test_reading_never_modifies_the_input(tmp_path, rng):
    data = rng.integers(0, 256, size=(16, 16)).astype(np.uint8)
    path = tmp_path / "in.tif"
    tifffile.imwrite(path, data)
    before = path.read_bytes()
    zse.reconstruct(io.read_image(path), zse.Identity(), patch_size=4)
    assert path.read_bytes() == before


def test_output_dir_checks(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(ValueError, match="not a directory"):
        io.ensure_output_dir(tmp_path / "file")
    with pytest.raises(ValueError, match="cannot write"):
        io.ensure_output_dir(tmp_path / "file" / "sub")
    assert io.ensure_output_dir(tmp_path / "a" / "b").is_dir()


def test_real_micrographs_from_shared_data(shared_data):
    cryo = io.read_image(shared_data / "em" / "cryoet_sarscov2_TS001_slice133_928x960.tif")
    assert cryo.shape == (928, 960) and cryo.dtype == np.uint8
    sstem = io.read_image(shared_data / "em" / "isbi2012_sstem_train_slice0_512.png")
    assert sstem.shape == (512, 512)
    hrtem = io.read_image(shared_data / "em" / "sim_hrtem_PtCeO2_clean_S3_5_876x927_float32.tif")
    assert hrtem.dtype == np.float32 and 0.3 < hrtem.min() < hrtem.max() < 0.7
