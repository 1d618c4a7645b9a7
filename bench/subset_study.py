"""Training on a subset of patch positions vs on every patch, at equal epochs (bench/README.md).

    python bench/subset_study.py classic/set12_10_boat_512.png 25 1000000:0:10 auto:30:10
    python bench/subset_study.py classic/set12_02_house_256.png 25 16384:30:10:120:6:exact

Each argument after the image and sigma is N_TRAIN:WARM_SWEEPS:FRESH_SWEEPS, optionally followed
by :EPOCHS (default 30), :PATCH (default 8) and :UPDATES (reference or exact; default reference);
N_TRAIN is an int or auto. SSSC H=64, S=32, seed 0, all cores; Gaussian noise from
default_rng(0).
"""

import sys
import time

import numpy as np

import zse
from _common import load


def main(argv):
    name, sigma = argv[0], float(argv[1])
    clean = load(name)
    noisy = clean + np.random.default_rng(0).normal(0, sigma, clean.shape)
    for spec in argv[2:]:
        fields = spec.split(":")
        n_train, warm, fresh = fields[:3]
        epochs, patch, updates = (fields[3:] + ["30", "8", "reference"][len(fields) - 3 :])[:3]
        model = zse.SSSC(
            64,
            n_states=32,
            n_parents=10,
            n_children=2,
            max_iter=int(epochs),
            updates=updates,
            n_warm_sweeps=int(warm),
            n_estimate_sweeps=int(fresh),
            random_state=0,
        )
        t = time.time()
        out = zse.reconstruct(
            noisy,
            model,
            patch_size=int(patch),
            stats=("mean",),
            n_train=n_train if n_train == "auto" else int(n_train),
        )
        print(
            f"{name} sigma {sigma:g} n_train {n_train} warm {warm} fresh {fresh} epochs {epochs} "
            f"patch {patch} {updates}: {zse.psnr(clean, out['mean'], 255):.3f} dB, "
            f"learned sigma {np.sqrt(model.sigma2_):.2f}, fit {sum(model.epoch_seconds_):.1f} s, "
            f"total {time.time() - t:.1f} s",
            flush=True,
        )


if __name__ == "__main__":
    main(sys.argv[1:])
