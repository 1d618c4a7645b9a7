"""A microscopist's workflow on the command line: many inputs, headers kept, stacks, model files,
--model auto, binning, the fields picture and sampling from the learned models."""

from __future__ import annotations

import json

import mrcfile
import numpy as np
import pytest
import tifffile
from PIL import Image

import zse
from zse.cli import main
from zse.counts import bin_image, count_evidence

FAST_SSSC = ["--H", "4", "--n-states", "4", "--n-parents", "2", "--max-iter", "2"]
FAST_GPMM = ["--n-components", "4", "--max-iter", "2"]


def counts_image(shape=(96, 96), seed=0, dose=30.0):
    noisy, _ = zse.synthetic_tem(shape, dose=dose, seed=seed)
    return noisy


def grey_image(shape=(96, 96), seed=0):
    """A contrast-stretched 8-bit display image with Gaussian noise (not counts)."""
    _, clean = zse.synthetic_tem(shape, seed=seed)
    stretched = (clean - clean.min()) / (clean.max() - clean.min()) * 255
    noisy = stretched + np.random.default_rng(seed).normal(0, 12, shape)
    return np.clip(np.round(noisy), 0, 255).astype(np.uint8)


def write_mrc(path, data, *, stack=False, voxel_size=None, origin=None, labels=()):
    with mrcfile.new(path, overwrite=True) as mrc:
        mrc.set_data(np.asarray(data, dtype=np.float32))
        if stack:
            mrc.set_image_stack()
        if voxel_size is not None:
            mrc.voxel_size = voxel_size
        if origin is not None:
            mrc.header.origin = origin
        for label in labels:
            mrc.add_label(label)


# -- 1. many inputs ------------------------------------------------------------------------------


def test_many_inputs_with_patterns_give_per_stem_outputs(tmp_path, capsys):
    (tmp_path / "d").mkdir()
    tifffile.imwrite(tmp_path / "d" / "a.tif", counts_image(seed=1).astype(np.uint16))
    tifffile.imwrite(tmp_path / "d" / "b.tif", counts_image(seed=2).astype(np.uint16))
    write_mrc(tmp_path / "c.mrc", counts_image(seed=3))
    Image.fromarray(grey_image(seed=4)).save(tmp_path / "e.png")
    out = tmp_path / "out"
    args = [
        "denoise",
        str(tmp_path / "d" / "*.tif"),
        str(tmp_path / "d" / "a.tif"),
        str(tmp_path / "c.mrc"),
        str(tmp_path / "e.png"),
        "-o",
        str(out),
        "-q",
        "--max-iter",
        "2",
        "--n-components",
        "4",
    ]
    # --n-components applies to the Poisson model only: the PNG (not counts) fails, the rest go on.
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "e.png: --n-components does not apply to model 'sssc'" in err
    assert "1 of 4 inputs failed" in err
    names = sorted(p.name for p in out.iterdir())
    for stem, ext in (("a", "tif"), ("b", "tif"), ("c", "mrc")):
        for stat in ("mean", "var"):
            assert f"{stem}_{stat}.{ext}" in names and f"{stem}_{stat}.png" in names
        assert f"{stem}_fields.png" in names and f"{stem}.zse.json" in names
    assert not any(n.startswith("e_") or n.startswith("e.") for n in names)
    record = json.loads((out / "c.zse.json").read_text())
    assert record["model"]["name"] == "GPMM" and record["model"]["mixture"]["n_components"] == 4
    assert record["model_choice"]["counts"] is True and record["format"] == "mrc"
    assert {"read", "reconstruct", "write"} <= set(record["timings_s"])
    assert record["versions"]["zse"] == zse.__version__ and "numpy" in record["versions"]


def test_png_input_gives_tiff_and_format_can_be_chosen(tmp_path):
    Image.fromarray(grey_image(seed=5)).save(tmp_path / "g.png")
    assert (
        main(["denoise", str(tmp_path / "g.png"), "-o", str(tmp_path / "o"), "-q", *FAST_SSSC]) == 0
    )
    record = json.loads((tmp_path / "o" / "g.zse.json").read_text())
    assert (tmp_path / "o" / "g_mean.tif").is_file() and record["model"]["name"] == "SSSC"
    assert record["model"]["learned_sigma"] > 0
    assert (
        main(
            [
                "denoise",
                str(tmp_path / "g.png"),
                "-o",
                str(tmp_path / "m"),
                "-q",
                "--format",
                "mrc",
                *FAST_SSSC,
            ]
        )
        == 0
    )
    with mrcfile.open(tmp_path / "m" / "g_mean.mrc") as mrc:
        assert mrc.data.shape == (96, 96)


def test_inputs_that_would_share_outputs_or_match_nothing_are_refused(tmp_path, capsys):
    (tmp_path / "x").mkdir()
    (tmp_path / "y").mkdir()
    for folder in ("x", "y"):
        tifffile.imwrite(tmp_path / folder / "same.tif", np.zeros((10, 10), np.float32))
    assert (
        main(
            [
                "denoise",
                str(tmp_path / "x" / "same.tif"),
                str(tmp_path / "y" / "same.tif"),
                "-o",
                str(tmp_path / "o"),
            ]
        )
        == 2
    )
    assert "would write the same outputs" in capsys.readouterr().err
    assert main(["denoise", str(tmp_path / "nothing*.tif"), "-o", str(tmp_path / "o")]) == 2
    assert "no file matches" in capsys.readouterr().err


# -- 2. headers ----------------------------------------------------------------------------------


def test_mrc_output_keeps_the_header_and_adds_a_zse_label(tmp_path):
    write_mrc(
        tmp_path / "h.mrc",
        counts_image(seed=6),
        voxel_size=(1.7, 1.7, 2.5),
        origin=(10.0, 20.0, 30.0),
        labels=["scope: Krios", "session 42"],
    )
    kept = zse.io.read_info(tmp_path / "h.mrc").labels
    assert kept[-2:] == ["scope: Krios", "session 42"]
    assert (
        main(
            [
                "denoise",
                str(tmp_path / "h.mrc"),
                "-o",
                str(tmp_path / "o"),
                "-q",
                "--model",
                "identity",
            ]
        )
        == 0
    )
    with mrcfile.open(tmp_path / "o" / "h_mean.mrc") as mrc:
        assert tuple(np.round([mrc.voxel_size.x, mrc.voxel_size.y, mrc.voxel_size.z], 4)) == (
            1.7,
            1.7,
            2.5,
        )
        assert (
            float(mrc.header.origin.x),
            float(mrc.header.origin.y),
            float(mrc.header.origin.z),
        ) == (10, 20, 30)
        labels = [label.decode().strip() for label in mrc.header.label[: int(mrc.header.nlabl)]]
        assert labels[:-1] == kept
        assert labels[-1].startswith("zse: denoised") and labels[-1].endswith(": mean")
        assert mrc.data.dtype == np.float32


def test_tiff_outputs_carry_the_pixel_size(tmp_path):
    write_mrc(tmp_path / "p.mrc", counts_image(seed=7), voxel_size=2.0)
    assert (
        main(
            [
                "denoise",
                str(tmp_path / "p.mrc"),
                "-o",
                str(tmp_path / "o"),
                "-q",
                "--model",
                "identity",
                "--format",
                "tif",
                "--bin",
                "2",
            ]
        )
        == 0
    )
    info = zse.io.read_info(tmp_path / "o" / "p_mean.tif")
    assert info.voxel_size is not None and abs(info.voxel_size[0] - 4.0) < 1e-6  # binned by 2


# -- 3. stacks and volumes -----------------------------------------------------------------------


def test_a_stack_gets_one_model_from_all_sections_or_one_per_section(tmp_path):
    stack = np.stack([counts_image((30, 32), seed=s) for s in range(3)])
    write_mrc(tmp_path / "s.mrcs", stack, stack=True)
    out = tmp_path / "o"
    assert (
        main(
            [
                "denoise",
                str(tmp_path / "s.mrcs"),
                "-o",
                str(out),
                "-q",
                "--model",
                "gpmm",
                *FAST_GPMM,
            ]
        )
        == 0
    )
    record = json.loads((out / "s.zse.json").read_text())
    assert record["input"]["kind"] == "stack" and record["patch_size"] == [1, 8, 8]
    assert record["per_section"] is False
    with mrcfile.open(out / "s_mean.mrc") as mrc:
        assert mrc.data.shape == stack.shape and mrc.is_image_stack()
    # One model for the stack equals the same model applied section by section.
    model = zse.GPMM(4, max_iter=2, random_state=0)
    joint = zse.reconstruct(stack, model, patch_size=(1, 8, 8), stats=("mean",))["mean"]
    with mrcfile.open(out / "s_mean.mrc") as mrc:
        np.testing.assert_allclose(mrc.data, joint.astype(np.float32))
    for k in range(3):
        section = zse.reconstruct(stack[k], model, patch_size=8, stats=("mean",))["mean"]
        np.testing.assert_allclose(joint[k], section, rtol=1e-12)
    out2 = tmp_path / "p"
    assert (
        main(
            [
                "denoise",
                str(tmp_path / "s.mrcs"),
                "-o",
                str(out2),
                "-q",
                "--per-section",
                "--model",
                "gpmm",
                *FAST_GPMM,
            ]
        )
        == 0
    )
    with mrcfile.open(out2 / "s_mean.mrc") as mrc:
        per = mrc.data
    for k in range(3):
        alone = zse.reconstruct(
            stack[k], zse.GPMM(4, max_iter=2, random_state=0), patch_size=8, stats=("mean",)
        )["mean"]
        np.testing.assert_allclose(per[k], alone.astype(np.float32))


def test_multipage_tiff_is_a_stack_and_volume_flag_takes_the_3d_path(tmp_path):
    stack = np.stack([counts_image((20, 20), seed=s) for s in range(5)]).astype(np.uint16)
    tifffile.imwrite(tmp_path / "t.tif", stack)
    assert (
        main(
            [
                "denoise",
                str(tmp_path / "t.tif"),
                "-o",
                str(tmp_path / "o"),
                "-q",
                "--model",
                "identity",
                "--patch-size",
                "3",
            ]
        )
        == 0
    )
    assert tifffile.imread(tmp_path / "o" / "t_mean.tif").shape == (5, 20, 20)
    assert (
        main(
            [
                "denoise",
                str(tmp_path / "t.tif"),
                "-o",
                str(tmp_path / "v"),
                "-q",
                "--model",
                "identity",
                "--volume",
            ]
        )
        == 0
    )
    record = json.loads((tmp_path / "v" / "t.zse.json").read_text())
    assert record["input"]["kind"] == "volume" and record["patch_size"] == [4, 4, 4]


# -- 5. --model auto -----------------------------------------------------------------------------


def test_auto_picks_the_poisson_model_for_counts_and_sssc_otherwise():
    assert count_evidence(counts_image((128, 128), dose=5.0))["counts"] is True
    assert count_evidence(counts_image((128, 128), dose=200.0))["counts"] is True
    stretched = count_evidence(grey_image((128, 128)))
    assert stretched["counts"] is False and stretched["integer"] is True  # integers are not enough
    floats = count_evidence(
        zse.synthetic_tem((128, 128))[1] + np.random.default_rng(0).normal(0, 1, (128, 128))
    )
    assert floats["counts"] is False
    grey = counts_image((128, 128), dose=10.0) * 4 + 100  # a gain of 0.25 counts per grey level
    assert count_evidence(grey)["counts"] is False
    assert count_evidence(grey, gain=0.25, offset=100)["counts"] is True


def test_auto_on_the_command_line_prints_and_records_its_evidence(tmp_path, capsys):
    tifffile.imwrite(tmp_path / "n.tif", counts_image(seed=13).astype(np.uint16))
    tifffile.imwrite(tmp_path / "g.tif", grey_image(seed=13))
    assert (
        main(
            [
                "denoise",
                str(tmp_path / "n.tif"),
                str(tmp_path / "g.tif"),
                "-o",
                str(tmp_path / "o"),
                "--max-iter",
                "2",
            ]
        )
        == 0
    )
    err = capsys.readouterr().err
    assert "model auto: gpmm (non-negative integers" in err and "model auto: sssc (" in err
    assert json.loads((tmp_path / "o" / "n.zse.json").read_text())["model"]["name"] == "GPMM"
    assert json.loads((tmp_path / "o" / "g.zse.json").read_text())["model"]["name"] == "SSSC"
    assert (
        main(
            [
                "denoise",
                str(tmp_path / "g.tif"),
                "-o",
                str(tmp_path / "c"),
                "-q",
                "--counts",
                *FAST_GPMM,
            ]
        )
        == 0
    )
    assert (
        json.loads((tmp_path / "c" / "g.zse.json").read_text())["model_choice"]["reason"]
        == "--counts given"
    )


# -- 6. binning ----------------------------------------------------------------------------------


def test_bin_equals_a_numpy_block_mean_for_images_and_stacks():
    rng = np.random.default_rng(0)
    image = rng.normal(size=(9, 11))
    binned, cropped = bin_image(image, 2)
    np.testing.assert_array_equal(binned, image[:8, :10].reshape(4, 2, 5, 2).mean(axis=(1, 3)))
    assert cropped == (1, 1)
    stack = rng.normal(size=(3, 6, 6))
    np.testing.assert_array_equal(
        bin_image(stack, 3)[0], stack.reshape(3, 2, 3, 2, 3).mean(axis=(2, 4))
    )
    with pytest.raises(ValueError, match="leaves no pixel"):
        bin_image(image, 12)


# -- 7. looking inside the model -----------------------------------------------------------------


def test_fields_picture_orders_fields_by_weight(tmp_path):
    model = zse.PMM(5, max_iter=2, random_state=0).fit(zse.extract_patches(counts_image(), 6))
    mosaic = zse.io.fields_mosaic(*model.fields_image(), (6, 6), scale=2)
    assert mosaic.dtype == np.uint8 and mosaic.shape == (2 * 13 + 1, 3 * 13 + 1)  # 3 x 2 grid
    strongest = model.W_[np.argmax(model.pi_)].reshape(6, 6)
    tile = mosaic[1:13:2, 1:13:2].astype(float)
    expected = (strongest - strongest.min()) / (strongest.max() - strongest.min()) * 255
    np.testing.assert_allclose(tile, np.round(expected), atol=0.5)


def test_sssc_samples_have_the_models_moments():
    rng = np.random.default_rng(1)
    model = zse.SSSC(H=3, n_states=8, n_parents=2, max_iter=3, random_state=0).fit(
        rng.normal(size=(2000, 4)) @ rng.normal(size=(4, 4)) + 5.0
    )
    samples = model.sample(200_000, random_state=2)
    assert samples.shape == (200_000, 4)
    expected_mean = model.bias_ + model.W_ @ (model.pi_ * model.mu_)
    # Cov y = W (E[(s z)(s z)^T] - m m^T) W^T + sigma2 I with E[s_h s_k z_h z_k] from pi, mu, Psi.
    second = np.outer(model.pi_, model.pi_) * (model.Psi_ + np.outer(model.mu_, model.mu_))
    np.fill_diagonal(second, model.pi_ * (np.diag(model.Psi_) + model.mu_**2))
    m = model.pi_ * model.mu_
    expected_cov = model.W_ @ (second - np.outer(m, m)) @ model.W_.T + model.sigma2_ * np.eye(4)
    scale = np.sqrt(np.diag(expected_cov))
    np.testing.assert_allclose(samples.mean(axis=0), expected_mean, atol=0.02 * scale.max())
    np.testing.assert_allclose(np.cov(samples.T), expected_cov, atol=0.03 * scale.max() ** 2)
    np.testing.assert_array_equal(model.sample(5, random_state=3), model.sample(5, random_state=3))


@pytest.mark.parametrize("cls", [zse.PMM, zse.GPMM])
def test_mixture_samples_have_the_models_moments(cls):
    patches = zse.extract_patches(counts_image(dose=8.0), 4)
    model = cls(3, max_iter=3, random_state=0, gain=0.5, offset=2.0).fit(patches * 2 + 2)
    samples = model.sample(300_000, random_state=4)
    counts = (samples - 2.0) * 0.5
    assert np.array_equal(counts, np.round(counts)) and counts.min() >= 0
    pi = model.pi_ / model.pi_.sum()
    alpha = np.broadcast_to(np.asarray(getattr(model, "alpha_", 1.0)), pi.shape)
    # E[y] = sum_c pi_c E[z] W_c (PMM: z = 1); Var y_d = E[rate] + Var(rate) with rate = z W_cd.
    mean_rate = (pi * (alpha if cls is zse.GPMM else 1.0)) @ model.W_
    second = (pi * (alpha * (alpha + 1) if cls is zse.GPMM else 1.0)) @ model.W_**2
    var = mean_rate + second - mean_rate**2
    np.testing.assert_allclose(
        counts.mean(axis=0), mean_rate, atol=4 * np.sqrt(var.max() / 300_000)
    )
    np.testing.assert_allclose(counts.var(axis=0), var, rtol=0.03)
