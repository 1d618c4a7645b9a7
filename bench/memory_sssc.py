"""Peak memory of an end-to-end SSSC reconstruction of a 1024 x 1024 image (issue 3, setting b).

    python bench/memory_sssc.py [--size 1024] [--epochs 1]

6x6 patches, H=64, S=32; the peak does not depend on the number of epochs, so one is enough.
Prints the process's peak resident set size next to the sizes of the big arrays.
"""

import argparse
import resource
import time

import numpy as np

import zse


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--epochs", type=int, default=1)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    clean = zse.synthetic_tem((args.size, args.size), dose=200.0, seed=0)[1]
    noisy = clean + rng.normal(0.0, 25.0, clean.shape)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    t = time.perf_counter()
    model = zse.SSSC(64, n_states=32, max_iter=args.epochs, random_state=0)
    zse.reconstruct(noisy, model, stats=("mean", "var"), patch_size=6)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    N = (args.size - 5) ** 2
    print(
        f"image {args.size}x{args.size}, N={N} patches, D=36, H=64, S=32, {args.epochs} epoch(s), {time.perf_counter() - t:.1f} s"
    )
    print(f"peak RSS {peak:.0f} MiB (before the reconstruction: {before:.0f} MiB)")
    print(
        f"  patch matrix N x D doubles: {N * 36 * 8 / 2**20:.0f} MiB; estimates: the same; "
        f"states N x S x 8 bytes: {N * 32 * 8 / 2**20:.0f} MiB"
    )


if __name__ == "__main__":
    main()
