"""Zero-shot peers of bench/compare.py that need packages beyond bench/requirements.txt.

Each peer is optional: ``available()`` names the ones whose packages import here, and
compare.py skips (and reports) the others. Install them with

    pip install -r bench/requirements-peers.txt

- ZS-N2N (Mansour & Heckel, "Zero-Shot Noise2Noise", CVPR 2023), written here from the paper's
  description: a two-layer 3x3 CNN (48 channels, leaky ReLU 0.2) and a 1x1 output that predicts
  the noise; trained on the one noisy image with the residual and consistency losses between its
  two diagonal 2x2 down-samplings; Adam, learning rate 1e-3 halved after 1000 of 2000 steps.
- Noise2Self-calibrated NLM: scikit-image's ``calibrate_denoiser`` chooses NLM's ``h`` by the
  J-invariant self-supervised loss (Batson & Royer, ICML 2019), blind.
- Noise2Void through CAREamics (Krull et al., CVPR 2019), trained on the one noisy image.
- bmnd: direct Poisson block matching (no variance-stabilising transform).
- BM4D on volumes.
"""

from __future__ import annotations

import importlib.util
import os
import tempfile

import numpy as np

PACKAGES = {
    "ZS-N2N": ("torch",),
    "NLM (N2S-calibrated)": ("skimage",),
    "Noise2Void (CAREamics)": ("careamics", "torch"),
    "bmnd (direct Poisson)": ("bmnd",),
    "BM4D (true σ)": ("bm4d",),
    "BM4D (blind)": ("bm4d",),
}


def available(name: str) -> bool:
    """Whether the packages of the peer ``name`` (a key of PACKAGES) import here."""
    return all(importlib.util.find_spec(p) is not None for p in PACKAGES[name])


def _unit_range(x):
    """Affine map of the noisy image to [0, 1] (the range the published peers train on), and back."""
    lo, hi = float(np.min(x)), float(np.max(x))
    scale = hi - lo if hi > lo else 1.0
    return (x - lo) / scale, lambda y: y * scale + lo


# --------------------------------------------------------------------------- ZS-N2N

ZS_N2N_STEPS = 2000  # the paper's schedule (its notebook: 2000 steps, lr 1e-3, halved at 1000)


def zs_n2n(x, steps=ZS_N2N_STEPS, n_threads=None, seed=0):
    """Zero-Shot Noise2Noise on one 2-D image; returns the denoised image in x's units."""
    import torch
    from torch import nn
    from torch.nn import functional as F

    if n_threads:
        torch.set_num_threads(n_threads)
    torch.manual_seed(seed)
    unit, back = _unit_range(np.asarray(x, dtype=np.float64))
    y = torch.from_numpy(unit.astype(np.float32))[None, None]

    net = nn.Sequential(
        nn.Conv2d(1, 48, 3, padding=1),
        nn.LeakyReLU(0.2),
        nn.Conv2d(48, 48, 3, padding=1),
        nn.LeakyReLU(0.2),
        nn.Conv2d(48, 1, 1),
    )
    # The two down-samplings average the pixels of one diagonal of each 2x2 block: two images of
    # the same scene whose noise is independent (the paper's "pair downsampler").
    diag = torch.tensor([[[[0.5, 0.0], [0.0, 0.5]]]])
    anti = torch.tensor([[[[0.0, 0.5], [0.5, 0.0]]]])

    def halves(img):
        return F.conv2d(img, anti, stride=2), F.conv2d(img, diag, stride=2)

    def denoise(img):
        return img - net(img)  # the network predicts the noise

    optimiser = torch.optim.Adam(net.parameters(), lr=1e-3)
    schedule = torch.optim.lr_scheduler.StepLR(optimiser, step_size=steps // 2, gamma=0.5)
    for _ in range(steps):
        y1, y2 = halves(y)
        d1, d2 = denoise(y1), denoise(y2)
        residual = 0.5 * (F.mse_loss(y1, d2) + F.mse_loss(y2, d1))
        h1, h2 = halves(denoise(y))
        consistency = 0.5 * (F.mse_loss(d1, h1) + F.mse_loss(d2, h2))
        loss = residual + consistency
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        schedule.step()
    with torch.no_grad():
        out = denoise(y)[0, 0].numpy().astype(np.float64)
    return back(out)


# --------------------------------------------------------------------------- NLM, Noise2Self


def nlm_n2s(x, sigma_est):
    """NLM whose filter strength h is chosen by the J-invariant (Noise2Self) loss on x itself."""
    from skimage.restoration import calibrate_denoiser, denoise_nl_means

    grid = {
        "h": list(sigma_est * np.array([0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0, 1.2])),
        "sigma": [sigma_est],
        "patch_size": [5],
        "patch_distance": [6],
        "fast_mode": [True],
    }
    denoiser, (params, losses) = calibrate_denoiser(
        x, denoise_nl_means, denoise_parameters=grid, extra_output=True
    )
    best = params[int(np.argmin(losses))]
    return denoiser(x), best["h"] / sigma_est


# --------------------------------------------------------------------------- Noise2Void

N2V_EPOCHS = 400  # one batch per epoch on a 256 x 256 image: 400 Adam steps
N2V_PATCH = 64
N2V_BATCH = 32
N2V_VAL_PATCHES = 2  # of the image's patches, set aside to validate (careamics' default: 8)


def noise2void(x, epochs=N2V_EPOCHS, patch=N2V_PATCH, seed=0):
    """Noise2Void (CAREamics' N2V configuration) trained on the one noisy 2-D image."""
    import logging

    import torch
    from careamics import CAREamist
    from careamics.config import create_n2v_config

    logging.getLogger("lightning").setLevel(logging.ERROR)
    logging.getLogger("pytorch_lightning").setLevel(logging.ERROR)
    torch.manual_seed(seed)
    unit, back = _unit_range(np.asarray(x, dtype=np.float64))
    unit = unit.astype(np.float32)
    config = create_n2v_config(
        experiment_name="zse_bench_n2v",
        data_type="array",
        axes="YX",
        patch_size=[patch, patch],
        batch_size=N2V_BATCH,
        num_epochs=epochs,
        n_val_patches=N2V_VAL_PATCHES,
    )
    with tempfile.TemporaryDirectory() as work:
        cwd = os.getcwd()
        try:
            os.chdir(work)  # lightning writes logs and checkpoints into the working directory
            model = CAREamist(config, work_dir=work, enable_progress_bar=False)
            model.train(train_data=unit)
            prediction, _ = model.predict(unit, data_type="array", axes="YX")
        finally:
            os.chdir(cwd)
    out = np.asarray(prediction[0] if isinstance(prediction, list) else prediction)
    return back(np.squeeze(out).astype(np.float64))


# --------------------------------------------------------------------------- bmnd, BM4D


def bmnd_poisson(counts):
    """Direct Poisson block matching on the counts (no Anscombe transform)."""
    from bmnd import BM3DProfile, BM4DProfile, NoiseModel, bmnd

    counts = np.asarray(counts, dtype=np.float64)
    profile = (BM3DProfile if counts.ndim == 2 else BM4DProfile)(noise_model=NoiseModel.POISSON)
    return np.asarray(bmnd(counts, profile), dtype=np.float64)


def bm4d_volume(x, sigma):
    import bm4d

    return np.asarray(bm4d.bm4d(np.asarray(x, dtype=np.float64), sigma_psd=sigma))
