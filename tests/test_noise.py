"""Coloured noise (ALGORITHM.md §3.14): the stationary covariance, its blind first estimate, SSSC
with the noise whitened against brute force over all states in the data's coordinates, the
choice of noise="auto", and the promises (threads, units, files, the streamed path)."""

from __future__ import annotations

import numpy as np
import pytest

import reference
import zse
from zse import noise


def coloured(shape, blur, rng):
    """Unit-variance Gaussian noise through the transfer exp(-2 pi^2 blur^2 |f|^2)."""
    white = rng.standard_normal(shape)
    if blur == 0:
        return white
    freqs = np.meshgrid(*[np.fft.fftfreq(n) for n in shape], indexing="ij")
    transfer = np.exp(-2 * np.pi**2 * blur**2 * sum(f**2 for f in freqs))
    out = np.real(np.fft.ifftn(np.fft.fftn(white) * transfer))
    return out / out.std()


def true_acf(blur, extent, shape, seed=5):
    """The autocovariance of coloured(shape, blur) measured on a large sample."""
    sample = coloured(shape, blur, np.random.default_rng(seed))
    P = zse.extract_patches(sample, extent)
    return noise.stationary_part(np.cov(P.T), noise.patch_extent(extent))


def scene(shape=(128, 128)):
    r, c = np.indices(shape)
    disc = ((r - 50) ** 2 + (c - 60) ** 2 < 30**2).astype(float)
    return 100 + 60 * disc + 30 * np.sin(c / 9.0) * (r > 90)


def test_stationary_part_recovers_a_stationary_covariance_and_builds_it_back():
    extent = (4, 5)
    acf = true_acf(0.7, extent, (128, 128))
    C = noise.covariance(acf, extent)
    assert C.shape == (20, 20) and np.allclose(C, C.T)
    np.testing.assert_allclose(noise.stationary_part(C, extent), acf, atol=1e-12)
    # offsets outside the patch's pairs are absent; offset 0 is the variance
    assert acf[3, 4] == pytest.approx(np.mean(np.diag(C)))


def test_positive_definite_clips_the_spectrum_and_keeps_a_valid_covariance():
    extent = (6, 6)
    bad = np.zeros((11, 11))
    bad[5, 5], bad[5, 6], bad[5, 4], bad[6, 5], bad[4, 5] = 1.0, 0.9, 0.9, -0.9, -0.9
    assert np.linalg.eigvalsh(noise.covariance(bad, extent)).min() < 0
    fixed, psd = noise.positive_definite(bad, extent)
    assert psd.min() > 0
    assert np.linalg.eigvalsh(noise.covariance(fixed, extent)).min() > 0
    # a valid autocovariance comes back nearly unchanged
    good = true_acf(0.6, extent, (96, 96))
    again, _ = noise.positive_definite(good, extent)
    np.testing.assert_allclose(again, good, atol=1e-3 * good.max())


def test_truncated_chi2_mean_matches_sampling():
    rng = np.random.default_rng(0)
    for k, fraction in ((61, 0.1), (24, 0.3), (3, 0.05)):
        x = (rng.standard_normal((200_000, k)) ** 2).sum(axis=1)
        kept = x[x <= np.quantile(x, fraction)]
        assert noise.truncated_chi2_mean(k, fraction) == pytest.approx(kept.mean(), rel=0.01)
    assert noise.truncated_chi2_mean(10, 1.0) == 10


@pytest.mark.parametrize(
    ("shape", "extent", "blur"),
    [
        ((256, 256), (8, 8), 0.0),
        ((256, 256), (8, 8), 0.5),
        ((256, 256), (8, 8), 0.8),
        ((40, 64, 64), (4, 4, 4), 0.6),
    ],
)
def test_first_estimate_recovers_a_coloured_noise(shape, extent, blur):
    """The issue's bar: every offset of the learned correlation within 10 % of the noise's
    variance of the true one, and the scale within 10 %."""
    rng = np.random.default_rng(1)
    sample = 7.0 * coloured(shape, blur, rng)
    P = zse.extract_patches(sample, extent)
    P = P[np.sort(rng.choice(len(P), 16384, replace=False))]
    acf = noise.flattest_patches_acf(P, extent)
    truth = 49.0 * true_acf(blur, extent, shape)
    centre = tuple(n - 1 for n in extent)
    assert acf[centre] == pytest.approx(truth[centre], rel=0.1)
    support = noise.support_mask(extent, noise.DEFAULT_SUPPORT)
    error = np.abs(acf / acf[centre] - truth / truth[centre])[support]
    assert error.max() <= 0.1


def _model_with_known_noise(rng, H=3, shape=(3, 3)):
    """A tiny SSSC fitted with noise='correlated' (every 2^H state kept: exact EM)."""
    D = int(np.prod(shape))
    W = rng.normal(0, 3, size=(D, H))
    s = rng.random((3000, H)) < 0.3
    z = rng.normal(1.0, 1.0, size=(3000, H))
    C = noise.covariance(true_acf(0.8, shape, (128, 128)), shape)
    eps = rng.standard_normal((3000, D)) @ np.linalg.cholesky(C).T
    Y = 10 + (s * z) @ W.T + 0.8 * eps
    model = zse.SSSC(
        H,
        n_states=2**H,
        n_parents=4,
        n_children=1,
        max_iter=8,
        noise="correlated",
        updates="exact",
        random_state=0,
    )
    return model.fit(Y, patch_shape=shape), Y


def _reference_posterior(model, Y):
    """Exact posterior over all states with noise N(0, noise_covariance_), in the data's
    coordinates: the log-likelihood per patch, the mean and the variance of W (s z)."""
    W, b, Sigma = model.W_, model.bias_, model.noise_covariance_
    pi, mu, Psi = model.pi_, model.mu_, model.Psi_
    H = len(pi)
    states = reference.all_states(H)
    inv = np.linalg.inv(Sigma)
    log_joint = np.empty((len(Y), len(states)))
    moments = []
    for m, state in enumerate(states):
        A = np.flatnonzero(state)
        WA = W[:, A]
        cov = Sigma + WA @ Psi[np.ix_(A, A)] @ WA.T
        diff = Y - b - WA @ mu[A]
        _, logdet = np.linalg.slogdet(cov)
        quad = np.einsum("nd,de,ne->n", diff, np.linalg.inv(cov), diff)
        prior = np.sum(np.where(state, np.log(pi), np.log1p(-pi)))
        log_joint[:, m] = prior - 0.5 * (len(b) * np.log(2 * np.pi) + logdet + quad)
        Lam = np.linalg.inv(np.linalg.inv(Psi[np.ix_(A, A)]) + WA.T @ inv @ WA) if len(A) else None
        kappa = (mu[A] + (diff @ inv @ WA) @ Lam.T) if len(A) else None
        moments.append((WA, Lam, kappa))
    q = reference.responsibilities(log_joint)
    mean = np.zeros_like(Y)
    second = np.zeros_like(Y)
    for m, (WA, Lam, kappa) in enumerate(moments):
        if Lam is None:
            continue
        x = kappa @ WA.T
        mean += q[:, m, None] * x
        second += q[:, m, None] * (x**2 + np.einsum("di,ij,dj->d", WA, Lam, WA))
    return reference.log_likelihood(log_joint) / len(Y), mean, second - mean**2


def test_coloured_sssc_with_all_states_is_exact_in_the_data_coordinates():
    rng = np.random.default_rng(3)
    model, Y = _model_with_known_noise(rng)
    assert model.noise_model_ == "correlated"
    log_likelihood, mean, variance = _reference_posterior(model, Y[:200])
    assert model.score(Y[:200]) == pytest.approx(log_likelihood, rel=1e-9, abs=1e-9)
    estimates, var = model.estimate(Y[:200], return_variance=True)
    np.testing.assert_allclose(estimates - model.bias_, mean, rtol=1e-7, atol=1e-8)
    np.testing.assert_allclose(var, variance, rtol=1e-6, atol=1e-8)


def test_the_noise_of_data_drawn_from_the_model_is_recovered():
    """Patches drawn from y = b + W (s * z) + eps, eps ~ N(0, sigma2 C) with sparse s: the
    fitted model's noise covariance within 10 % of the noise's variance at every offset."""
    rng = np.random.default_rng(7)
    shape, H, N = (6, 6), 6, 16384
    W = rng.normal(0, 6, size=(36, H))
    s = rng.random((N, H)) < 0.1
    z = rng.normal(2.0, 1.0, size=(N, H))
    C = noise.covariance(true_acf(0.7, shape, (256, 256)), shape)
    eps = rng.standard_normal((N, 36)) @ np.linalg.cholesky(C).T
    Y = 50 + (s * z) @ W.T + 3.0 * eps
    model = zse.SSSC(H, n_states=16, n_parents=4, max_iter=5, random_state=0)
    model.fit(Y, patch_shape=shape)
    assert model.noise_model_ == "correlated"
    np.testing.assert_allclose(model.noise_covariance_, 9.0 * C, rtol=0, atol=0.9)


def test_exact_em_with_a_fixed_noise_never_decreases_the_free_energy():
    model, _ = _model_with_known_noise(np.random.default_rng(4))
    assert np.all(np.diff(model.free_energies_) >= -1e-9 * np.abs(model.free_energies_[1:]))


@pytest.fixture(scope="module")
def coloured_scene():
    clean = scene()
    noisy = clean + 20 * coloured(clean.shape, 0.8, np.random.default_rng(2))
    return clean, noisy


def test_auto_finds_the_coloured_noise_and_denoises_it(coloured_scene):
    clean, noisy = coloured_scene
    results = {}
    for kind in ("auto", "white"):
        model = zse.SSSC(noise=kind, max_iter=15, random_state=0)
        results[kind] = zse.reconstruct(noisy, model, stats="mean")
        results[kind + "_model"] = model
    auto = results["auto_model"]
    assert auto.noise_model_ == "correlated"
    rho = auto.summary()["noise"]["neighbour_correlation"]
    assert np.allclose(rho, 0.68, atol=0.06)
    assert np.sqrt(auto.sigma2_) == pytest.approx(20, rel=0.1)
    psnr_auto = zse.data.psnr(clean, results["auto"]["mean"])
    psnr_white = zse.data.psnr(clean, results["white"]["mean"])
    assert psnr_auto >= psnr_white + 3.0
    assert psnr_auto >= zse.data.psnr(clean, noisy) + 6.0
    # sparser states than the white model's (the speed)
    assert auto.pi_.sum() < 0.6 * results["white_model"].pi_.sum()


def test_auto_keeps_white_noise_white_bit_for_bit():
    clean = scene()
    noisy = clean + 20 * np.random.default_rng(6).standard_normal(clean.shape)
    outs = {}
    for kind in ("auto", "white"):
        model = zse.SSSC(noise=kind, max_iter=4, random_state=0)
        outs[kind] = zse.reconstruct(noisy, model, stats=("mean", "var"))
        outs[kind + "_model"] = model
    assert outs["auto_model"].noise_model_ == "white"
    assert outs["auto_model"].noise_evidence_["noise"] == "white"
    for stat in ("mean", "var"):
        np.testing.assert_array_equal(outs["auto"][stat], outs["white"][stat])


def test_coloured_noise_is_thread_invariant_and_streams_like_the_patch_matrix(coloured_scene):
    _, noisy = coloured_scene
    image = noisy[:48, :52]
    outs = []
    for threads in (1, 2):
        model = zse.SSSC(
            8,
            n_states=8,
            n_parents=4,
            noise="correlated",
            max_iter=4,
            random_state=0,
            n_threads=threads,
        )
        outs.append(
            zse.reconstruct(
                image, model, patch_size=4, stats=("mean", "var", "pvar"), n_train=10**9
            )
        )
    for stat in ("mean", "var", "pvar"):
        np.testing.assert_array_equal(outs[0][stat], outs[1][stat])
    # the streamed path (each patch whitened in C++) against the matrix path (NumPy)
    model = outs[1].model
    patches = zse.extract_patches(image, 4)
    est, var = model.estimate(patches, return_variance=True)
    ref = zse.merge_patches(est, image.shape, 4, ("mean", "var"))
    ref_pvar = zse.merge_patches(var, image.shape, 4, ("mean",))["mean"] + ref["var"]
    scale = float(np.abs(ref["mean"]).max())
    np.testing.assert_allclose(outs[1]["mean"], ref["mean"], rtol=0, atol=1e-9 * scale)
    np.testing.assert_allclose(outs[1]["pvar"], ref_pvar, rtol=1e-7, atol=1e-9 * scale)


@pytest.mark.parametrize(("a", "b"), [(1e-3, 5.0), (250.0, -3.0)])
def test_coloured_noise_is_equivariant_to_units(coloured_scene, a, b):
    _, noisy = coloured_scene
    image = noisy[:64, :64]

    def run(data):
        model = zse.SSSC(8, n_states=8, n_parents=4, noise="correlated", max_iter=4, random_state=0)
        return zse.reconstruct(data, model, patch_size=5, stats=("mean", "var")), model

    ref, model0 = run(image)
    out, model = run(a * image + b)
    span = np.ptp(ref["mean"])
    np.testing.assert_allclose(out["mean"], a * ref["mean"] + b, rtol=0, atol=1e-6 * a * span)
    np.testing.assert_allclose(
        out["var"], a * a * ref["var"], rtol=0, atol=1e-6 * a * a * ref["var"].max()
    )
    np.testing.assert_allclose(model.noise_covariance_, a * a * model0.noise_covariance_, rtol=1e-6)


def test_model_file_and_checkpoint_keep_the_noise(coloured_scene, tmp_path):
    _, noisy = coloured_scene
    image = noisy[:64, :64]
    patches = zse.extract_patches(image, 5)
    kwargs = dict(H=8, n_states=8, n_parents=4, noise="correlated", random_state=0)
    model = zse.SSSC(max_iter=4, **kwargs).fit(patches, patch_shape=(5, 5))
    zse.save_model(model, tmp_path / "m.zse", patch_size=(5, 5))
    loaded = zse.load_model(tmp_path / "m.zse")
    assert loaded.noise_model_ == "correlated"
    np.testing.assert_array_equal(loaded.noise_covariance_, model.noise_covariance_)
    np.testing.assert_allclose(
        loaded.estimate(patches[:50]), model.estimate(patches[:50]), rtol=1e-12
    )
    # an interrupted fit resumes bit for bit
    ckpt = tmp_path / "c.ckpt"
    zse.SSSC(max_iter=2, checkpoint=str(ckpt), **kwargs).fit(patches, patch_shape=(5, 5))
    resumed = zse.SSSC(max_iter=4, checkpoint=str(ckpt), resume=True, **kwargs)
    resumed.fit(patches, patch_shape=(5, 5))
    np.testing.assert_array_equal(resumed.W_, model.W_)
    np.testing.assert_array_equal(resumed.noise_covariance_, model.noise_covariance_)


def test_noise_correlated_needs_a_patch_shape_it_can_know():
    patches = np.random.default_rng(0).normal(size=(500, 12))
    with pytest.raises(ValueError, match="needs the patch shape"):
        zse.SSSC(4, n_states=8, n_parents=4, noise="correlated").fit(patches)
    with pytest.raises(ValueError, match="patch_shape .* has 9 pixels, the patches have 12"):
        zse.SSSC(4, n_states=8, n_parents=4, noise="correlated").fit(patches, patch_shape=(3, 3))


# -- signal-dependent noise: the generalized Anscombe transform (ALGORITHM.md §3.15) ----------


def poisson_gaussian(rate, alpha, offset, read_sigma, rng):
    """alpha * Poisson(rate) + offset + N(0, read_sigma^2): variance alpha (E x - offset) +
    read_sigma^2."""
    return alpha * rng.poisson(rate) + offset + read_sigma * rng.standard_normal(np.shape(rate))


def test_anscombe_inverse_is_unbiased_on_constant_images():
    rng = np.random.default_rng(0)
    alpha, offset, read_sigma = 2.5, 10.0, 1.5
    transform = noise.Anscombe(alpha, offset, (read_sigma / alpha) ** 2)
    for rate in (3.0, 5.0, 20.0, 100.0):
        x = poisson_gaussian(np.full(400_000, rate), alpha, offset, read_sigma, rng)
        D = transform.forward(x).mean()
        truth = alpha * rate + offset
        unbiased, algebraic = transform.inverse(D) - truth, transform.sample_inverse(D) - truth
        assert abs(unbiased) <= 0.01 * alpha * rate  # within 1 % of the signal above the offset
        assert abs(unbiased) <= 0.2 * abs(algebraic)  # the algebraic inverse is biased


def ramp_scene(shape=(160, 160)):
    r, c = np.indices(shape)
    disc = ((r - 60) ** 2 + (c - 90) ** 2 < 35**2).astype(float)
    return 4.0 + 60.0 * (c / shape[1]) + 40.0 * disc


def test_noise_level_function_recovers_the_poisson_gaussian_parameters():
    rng = np.random.default_rng(1)
    alpha, offset, read_sigma = 3.0, 20.0, 0.0
    noisy = poisson_gaussian(ramp_scene(), alpha, offset, read_sigma, rng)
    patches = zse.extract_patches(noisy, 8)
    level = noise.noise_level_function(patches, (8, 8))
    transform = noise.anscombe_for(level, patches)
    assert transform.alpha == pytest.approx(alpha, rel=0.1)
    # the noise-level function (one line, whichever of offset and s2 carries its intercept)
    for x in np.quantile(noisy, [0.5, 0.9]):
        learned = transform.alpha * (x - transform.offset) + transform.alpha**2 * transform.s2
        assert learned == pytest.approx(alpha * (x - offset) + read_sigma**2, rel=0.1)
    assert level["variance_ratio"] > 5


def test_auto_denoises_poisson_gaussian_grey_values_through_the_transform():
    rng = np.random.default_rng(2)
    clean = 3.0 * ramp_scene() + 20.0
    noisy = poisson_gaussian(ramp_scene(), 3.0, 20.0, 2.0, rng)
    runs = {}
    for kind in ("auto", "white"):
        model = zse.SSSC(noise=kind, max_iter=15, random_state=0)
        runs[kind] = zse.reconstruct(noisy, model, stats=("mean", "var"))
    evidence = runs["auto"].model.noise_evidence_["signal_dependence"]
    assert evidence["signal_dependent"] and evidence["alpha"] == pytest.approx(3.0, rel=0.15)
    assert runs["white"].model.noise_evidence_["signal_dependence"]["signal_dependent"] is False
    psnr = {k: zse.data.psnr(clean, v["mean"], data_range=np.ptp(clean)) for k, v in runs.items()}
    # on this simple scene the white model copes as well (on the real fluorescence pair the
    # transform gains 3.7 dB: bench/README.md, "Coloured noise"); it must not cost anything
    assert psnr["auto"] >= psnr["white"] - 0.1
    assert psnr["auto"] >= zse.data.psnr(clean, noisy, data_range=np.ptp(clean)) + 8.0
    assert np.all(runs["auto"]["var"] >= 0)
    # the streamed path (transform and inverse in C++) against the matrix path (NumPy)
    image = noisy[:40, :44]
    model = zse.SSSC(
        8, n_states=8, n_parents=4, noise="poisson-gaussian", max_iter=3, random_state=0
    )
    got = zse.reconstruct(image, model, patch_size=5, stats=("mean", "pvar"), n_train=10**9)
    est, var = model.estimate(zse.extract_patches(image, 5), return_variance=True)
    ref = zse.merge_patches(est, image.shape, 5, ("mean", "var"))
    ref_pvar = zse.merge_patches(var, image.shape, 5, ("mean",))["mean"] + ref["var"]
    np.testing.assert_allclose(got["mean"], ref["mean"], rtol=1e-9)
    np.testing.assert_allclose(got["pvar"], ref_pvar, rtol=1e-7)
    assert model.noise_evidence_["signal_dependence"]["signal_dependent"]


def test_model_file_keeps_the_transform(tmp_path):
    rng = np.random.default_rng(3)
    noisy = poisson_gaussian(ramp_scene((64, 64)), 2.0, 5.0, 0.5, rng)
    patches = zse.extract_patches(noisy, 6)
    model = zse.SSSC(
        8, n_states=8, n_parents=4, noise="poisson-gaussian", max_iter=3, random_state=0
    ).fit(patches, patch_shape=(6, 6))
    zse.save_model(model, tmp_path / "m.zse", patch_size=(6, 6))
    loaded = zse.load_model(tmp_path / "m.zse")
    np.testing.assert_array_equal(loaded._gat, model._gat)
    np.testing.assert_allclose(
        loaded.estimate(patches[:40]), model.estimate(patches[:40]), rtol=1e-12
    )
    assert model.sample(5, random_state=0).shape == (5, 36)


def test_command_line_noise_flag_and_record(tmp_path, coloured_scene):
    import json

    import tifffile

    from zse.cli import main

    _, noisy = coloured_scene
    tifffile.imwrite(tmp_path / "c.tif", noisy.astype(np.float32))
    common = ["--model", "sssc", "--max-iter", "3", "-q", "--stats", "mean"]
    for kind in ("auto", "white"):
        out = tmp_path / kind
        assert (
            main(["denoise", str(tmp_path / "c.tif"), "-o", str(out), "--noise", kind, *common])
            == 0
        )
        record = json.loads((out / "c.zse.json").read_text())["model"]["noise"]
        assert record["model"] == ("correlated" if kind == "auto" else "white")
        assert record["choice"]["signal_dependence"]["signal_dependent"] is False
    with pytest.raises(SystemExit) as refused:  # argparse names the choices
        main(["denoise", str(tmp_path / "c.tif"), "-o", str(tmp_path / "x"), "--noise", "pink"])
    assert refused.value.code == 2


def test_reconstruct_noise_argument_reaches_the_model_it_makes(coloured_scene):
    _, noisy = coloured_scene
    image = noisy[:64, :64]
    made = zse.reconstruct(image, "sssc", noise="white", stats="mean")
    assert made.model.noise == "white" and made.model.noise_model_ == "white"
    r, c = np.indices((96, 96))
    rate = 6 + 3 * np.sin(c / 5.0) * np.cos(r / 7.0)
    counts = np.random.default_rng(0).poisson(rate).astype(float)
    assert zse.models.choose_model(counts)[0] == "gpmm"
    with pytest.raises(ValueError, match="does not apply to model 'gpmm'.*model='auto' chose"):
        zse.reconstruct(counts, noise="correlated")
    with pytest.raises(ValueError, match=r"set it on the model: SSSC\(noise=...\)"):
        zse.reconstruct(image, zse.SSSC(), noise="white")
