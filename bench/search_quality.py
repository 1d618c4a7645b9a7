"""How good are the states the estimation search finds? One SSSC fitted on every patch of house
sigma 25, its streamed estimate with (a) the trained states of every patch and (b) only the
automatic subset's trained states and the warm-started search (bench/README.md "ES3C engine").

    python bench/search_quality.py 64 32        # H, S (100 epochs, reference updates)
    python bench/search_quality.py 256 64

Gaussian noise from default_rng(0); seed 0; 2 threads.
"""

import sys
import time

import numpy as np

import zse
from _common import load
from zse.reconstruct import training_positions


def main(argv):
    H, S = int(argv[0]), int(argv[1])
    clean = load("classic/set12_02_house_256.png")
    noisy = clean + np.random.default_rng(0).normal(0, 25, clean.shape)
    volume = np.ascontiguousarray(noisy[None])
    patch = (1, 8, 8)
    n_patches = (clean.shape[0] - 7) * (clean.shape[1] - 7)
    every = np.arange(n_patches, dtype=np.int64)
    model = zse.SSSC(H, n_states=S, max_iter=100, random_state=0, n_threads=2)
    start = time.perf_counter()
    model.fit(zse._core.gather_patches(volume, patch, every, 2))
    print(
        f"H={H} S={S}: fitted on all {n_patches} patches in {time.perf_counter() - start:.1f} s",
        flush=True,
    )
    trained = model.K_.copy()
    subset = training_positions(n_patches, "auto", 0, model.auto_train_size)

    def estimate(label, positions, states, **settings):
        model.K_ = states
        model.set_params(**settings)
        start = time.perf_counter()
        out = model.estimate_volume(volume, patch, ["mean"], positions, "average", 2)
        seconds = time.perf_counter() - start
        psnr = zse.psnr(clean, out["mean"].reshape(clean.shape), 255)
        print(f"  {label}: {psnr:.3f} dB ({seconds:.1f} s)", flush=True)

    estimate("(a) trained states of every patch", every, trained, n_train_sweeps=0)
    estimate("(a) + 1 neighbours sweep", every, trained, n_train_sweeps=1)
    for search, warm in (("neighbours", 10), ("neighbours", 30), ("evolution", 30)):
        estimate(
            f"(b) subset of {len(subset)} + {search}, {warm} warm sweeps",
            subset,
            trained[subset],
            n_train_sweeps=1,
            estimation_search=search,
            n_warm_sweeps=warm,
        )


if __name__ == "__main__":
    main(sys.argv[1:])
