"""What the estimation search costs and buys: one fitted SSSC, its streamed estimate re-run with
other search settings, side by side in one run (bench/README.md "ES3C engine").

    python bench/search_study.py classic/set12_02_house_256.png:25 em/tem_giantvirus_crop1_641.tif
    python bench/search_study.py em/tem_giantvirus_crop1_641.tif --crop 320 --settings 30:0 30:3 10:0
    python bench/search_study.py em/tem_giantvirus_crop1_641.tif --crop 320 \
        --settings 200:0:evolution 30:0:evolution 5:0 10:0 15:0 20:0 30:0
    python bench/search_study.py classic/set12_02_house_256.png:25 --stats mean,var \
        --settings 10:0:neighbours:32 10:0:neighbours:16 11:0:neighbours:32

An image given as NAME:SIGMA gets Gaussian noise of that sigma (default_rng(0)) and is scored
against its clean version (PSNR); a real micrograph (no sigma) is denoised as it is and scored
against the reference setting (the first one): the RMS change of the mean image in units of the
learned sigma; with ``--stats mean,var`` also the RMS change of the variance image relative to
the first setting's RMS. Each setting is WARM_SWEEPS:PATIENCE[:SEARCH[:STATES]] (SSSC
n_warm_sweeps, search_patience, estimation_search, default neighbours, and
n_estimate_states, default the model's). The
model is fitted once at the defaults (seed 0) on the training positions of zse.reconstruct, and
every setting estimates the same image from the same training state sets.
"""

import argparse
import time

import numpy as np

import zse
from _common import load
from zse._threads import effective_n_threads
from zse.reconstruct import training_positions


def study(spec: str, settings, crop: int | None, n_threads, stats):
    n_threads = effective_n_threads(n_threads)
    name, _, sigma = spec.partition(":")
    image = load(name)
    if crop:
        image = image[:crop, :crop]
    clean = None
    if sigma:
        clean = image
        image = clean + np.random.default_rng(0).normal(0, float(sigma), clean.shape)
    model = zse.SSSC(random_state=0, n_threads=n_threads)
    patch = (1, 8, 8)
    volume = np.ascontiguousarray(image[None], dtype=np.float64)
    n_patches = (image.shape[0] - 7) * (image.shape[1] - 7)
    positions = training_positions(n_patches, "auto", 0, model.auto_train_size)
    t = time.perf_counter()
    model.fit(zse._core.gather_patches(volume, patch, positions, n_threads))
    fit_s = time.perf_counter() - t
    k = np.array([bin(int(w)).count("1") for w in model.K_[..., 0].ravel()])
    if model.K_.shape[2] > 1:
        k += (
            np.array([bin(int(w)).count("1") for w in model.K_[..., 1:].ravel()])
            .reshape(model.K_.shape[:2] + (-1,))
            .sum(-1)
            .ravel()
        )
    print(
        f"{spec}{' crop ' + str(crop) if crop else ''}: {image.shape[0]}x{image.shape[1]}, "
        f"{n_patches} patches, fit {fit_s:.1f} s on {len(positions)}, learned sigma "
        f"{np.sqrt(model.sigma2_):.2f}, active units per trained state {k.mean():.2f}",
        flush=True,
    )
    reference = None
    for setting in settings:
        fields = setting.split(":")
        warm, patience = int(fields[0]), int(fields[1])
        search = fields[2] if len(fields) > 2 else "neighbours"
        states = int(fields[3]) if len(fields) > 3 else None
        model.set_params(
            n_warm_sweeps=warm,
            search_patience=patience,
            estimation_search=search,
            n_estimate_states=states,
        )
        t = time.perf_counter()
        out = model.estimate_volume(volume, patch, stats, positions, "average", n_threads)
        seconds = time.perf_counter() - t
        images = {stat: out[stat].reshape(image.shape) for stat in stats}
        line = (
            f"  {search:10s} warm {warm:3d} patience {patience} states "
            f"{'default' if states is None else states}: {seconds:7.2f} s, "
            f"{1e6 * seconds / n_patches:7.1f} us/patch"
        )
        if clean is not None:
            line += f", {zse.psnr(clean, images['mean'], 255):.3f} dB"
        if reference is None:
            reference = images
        else:
            change = np.sqrt(np.mean((images["mean"] - reference["mean"]) ** 2))
            line += f", RMS change vs the first setting {change / np.sqrt(model.sigma2_):.4f} sigma"
            if "var" in images:
                change = np.sqrt(np.mean((images["var"] - reference["var"]) ** 2))
                line += f", variance image {change / np.sqrt(np.mean(reference['var'] ** 2)):.3f}"
        print(line, flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("images", nargs="+", help="NAME[:SIGMA] under ../shared/data")
    parser.add_argument("--settings", nargs="+", default=["30:0", "30:2", "30:3", "30:5"])
    parser.add_argument("--crop", type=int, default=None, help="top-left crop (square)")
    parser.add_argument("--n-threads", type=int, default=None)
    parser.add_argument("--stats", default="mean", help="mean or mean,var")
    args = parser.parse_args()
    for spec in args.images:
        study(spec, args.settings, args.crop, args.n_threads, args.stats.split(","))


if __name__ == "__main__":
    main()
