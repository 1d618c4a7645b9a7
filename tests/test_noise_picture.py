"""The learned noise as a model describes it and as ``<stem>_noise.png`` shows it: the
autocovariance and its spectrum, the noise-level function, and which runs write the picture."""

from __future__ import annotations

import numpy as np
import pytest

import zse
from test_noise import coloured, poisson_gaussian, ramp_scene, scene, true_acf
from zse import noise
from zse.io import noise_picture
from zse.models.sssc_noise import residual_factor

PANEL = zse.io.preview.NOISE_PANEL


def _panel(picture, k):
    """The k-th square panel of a noise picture (spectrum 0, correlation 1)."""
    left = 8 + k * (PANEL + 8)
    return picture[14 : 14 + PANEL, left : left + PANEL]


@pytest.mark.parametrize("blur", [0.0, 0.8, 1.2])
def test_residual_factor_turns_four_neighbour_residuals_into_noise_variances(blur):
    sample = coloured((384, 384), blur, np.random.default_rng(1))
    residual = sample[1:-1, 1:-1] - 0.25 * (
        sample[:-2, 1:-1] + sample[2:, 1:-1] + sample[1:-1, :-2] + sample[1:-1, 2:]
    )
    acf = true_acf(blur, (8, 8), (256, 256))
    recovered = residual.var() / 1.25 * residual_factor(acf)
    assert recovered == pytest.approx(sample.var(), rel=0.03)
    if blur > 0:  # the correction matters: a correlated noise shrinks the residual
        assert residual.var() / 1.25 < 0.5 * sample.var()
    assert residual_factor(None) == 1.0


def test_description_of_a_coloured_fit_and_its_picture():
    clean = scene()
    noisy = clean + 20 * coloured(clean.shape, 0.8, np.random.default_rng(2))
    model = zse.SSSC(max_iter=4, random_state=0)
    zse.reconstruct(noisy, model, stats="mean")
    described = model.noise_description()
    assert described["model"] == "correlated" and described["extent"] == (8, 8)
    acf = described["autocovariance"]
    assert acf.shape == (15, 15)
    np.testing.assert_allclose(acf, noise.stationary_part(model.noise_covariance_, (8, 8)))
    assert acf[7, 7] == pytest.approx(model.sigma2_)
    # without a transform the noise-level function is the constant learned variance
    xs = np.linspace(*described["brightness"], 5)
    np.testing.assert_allclose(described["level"](xs), model.sigma2_)
    picture = noise_picture(described)
    spectrum = _panel(picture, 0).astype(float)
    # a low-pass noise: bright at zero frequency (the centre), dark at the highest ones
    centre = spectrum[PANEL // 2 - 4 : PANEL // 2 + 4, PANEL // 2 - 4 : PANEL // 2 + 4].mean()
    assert centre > 200 and spectrum[2:10, 2:10].mean() < 40
    correlation = _panel(picture, 1).astype(float)
    assert correlation[PANEL // 2, PANEL // 2] == 255  # offset 0: correlation 1


def test_description_of_a_white_fit_is_flat():
    clean = scene()
    noisy = clean + 15 * np.random.default_rng(3).standard_normal(clean.shape)
    model = zse.SSSC(noise="white", max_iter=3, random_state=0)
    zse.reconstruct(noisy, model, stats="mean")
    described = model.noise_description()
    acf = described["autocovariance"]
    assert described["model"] == "white"
    assert np.count_nonzero(acf) == 1 and acf[7, 7] == pytest.approx(model.sigma2_)
    spectrum = _panel(noise_picture(described), 0)
    assert np.ptp(spectrum[20:80, 20:-20]) == 0  # flat (the "white noise" label is lower)


def test_description_of_a_transformed_fit_is_its_poisson_gaussian_line():
    rng = np.random.default_rng(2)
    noisy = poisson_gaussian(ramp_scene(), 3.0, 20.0, 2.0, rng)
    model = zse.SSSC(max_iter=3, random_state=0)
    zse.reconstruct(noisy, model, stats="mean")
    described = model.noise_description()
    t = described["transform"]
    assert t["alpha"] == pytest.approx(3.0, rel=0.15)
    xs = np.linspace(*described["brightness"], 7)
    expected = model.sigma2_ * (t["alpha"] * (xs - t["offset"]) + t["alpha"] ** 2 * t["s2"])
    np.testing.assert_allclose(described["level"](xs), expected)
    measured = described["measured"]
    assert len(measured["brightness"]) == len(measured["variance"]) == 8
    # the measured medians follow the true variance alpha (x - offset) + read_sigma^2
    b, v = np.array(measured["brightness"]), np.array(measured["variance"])
    np.testing.assert_allclose(v, 3.0 * (b - 20.0) + 4.0, rtol=0.25)
    assert noise_picture(described).dtype == np.uint8


def test_mixtures_have_no_noise_description():
    counts = np.random.default_rng(0).poisson(5.0, (400, 16)).astype(float)
    assert zse.GPMM(4, max_iter=2, random_state=0).fit(counts).noise_description() is None


def test_denoise_writes_the_noise_picture_for_sssc_only(tmp_path):
    import tifffile

    from zse.cli import main

    clean = scene((64, 64))
    noisy = clean + 20 * coloured(clean.shape, 0.8, np.random.default_rng(2))
    tifffile.imwrite(tmp_path / "c.tif", noisy.astype(np.float32))
    counts = np.random.default_rng(0).poisson(clean / 20).astype(np.float32)
    tifffile.imwrite(tmp_path / "n.tif", counts)
    common = ["--max-iter", "2", "-q", "--stats", "mean"]
    assert main(["denoise", str(tmp_path / "c.tif"), "-o", str(tmp_path / "s"), *common]) == 0
    assert (tmp_path / "s" / "c_noise.png").is_file()
    args = ["denoise", str(tmp_path / "n.tif"), "-o", str(tmp_path / "g"), "--model", "gpmm"]
    assert main([*args, *common]) == 0
    assert not (tmp_path / "g" / "n_noise.png").exists()
    assert (tmp_path / "g" / "n_fields.png").is_file()
