"""zse seconds per epoch and end to end at 1 and 2 threads, next to BM3D on the same image.

    python bench/speed.py [--quick]     # about 6 minutes on 2 cores (quick: seconds)

Settings are those of the model issues' speed targets:
  SSSC a: house rescaled by 0.4 (102x102) + Gaussian noise sigma 25, 5x5 patches, H=32, S=20,
          10 parents, 1 child, 20 epochs;
  SSSC b: synthetic TEM scene 1024x1024 at 10 e-/px (zse.synthetic_tem), 6x6 patches, H=64, S=32,
          10 parents, 2 children, 3 epochs;
  PMM, GPMM: the same 1024x1024 counts, 6x6 patches, C=256, 10 epochs.
End to end is zse.reconstruct (patches, fit, estimate, merge of mean and variance); per epoch is
the median of the fitted model's epoch_seconds_. BM3D (single-threaded) denoises the same image in
the same run: with the true sigma for the Gaussian image, on the Anscombe transform for the counts.
Ratios are taken within this one run, so they hold on a shared, noisy machine better than seconds.
Writes bench/results/speed.csv and bench/SPEED.md (quick: bench/results/SPEED_quick.md).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from PIL import Image

import zse
from _common import RESULTS, SHARED_DATA, anscombe, machine_line, timed, write_csv

REPORT = Path(__file__).resolve().parent / "SPEED.md"


def house_small(size):
    house = zse.io.read_image(SHARED_DATA / "classic" / "set12_02_house_256.png")
    small = np.asarray(Image.fromarray(house).resize((size, size), Image.BICUBIC), dtype=np.float64)
    return small + np.random.default_rng(0).normal(0.0, 25.0, small.shape)


def settings(quick: bool):
    big = 128 if quick else 1024
    counts, _ = zse.synthetic_tem((big, big), dose=10.0, seed=0)
    house = house_small(102)
    epochs_b, epochs_mix, C = (1, 2, 16) if quick else (3, 10, 256)
    return [
        (
            "SSSC a",
            house,
            5,
            lambda t: zse.SSSC(
                32,
                n_states=20,
                n_parents=10,
                n_children=1,
                max_iter=3 if quick else 20,
                random_state=0,
                n_threads=t,
            ),
            ("gaussian", 25.0),
        ),
        (
            "SSSC b",
            counts,
            6,
            lambda t: zse.SSSC(
                64,
                n_states=32,
                n_parents=10,
                n_children=2,
                max_iter=epochs_b,
                random_state=0,
                n_threads=t,
            ),
            ("counts", None),
        ),
        (
            "PMM",
            counts,
            6,
            lambda t: zse.PMM(C, max_iter=epochs_mix, random_state=0, n_threads=t),
            ("counts", None),
        ),
        (
            "GPMM",
            counts,
            6,
            lambda t: zse.GPMM(C, max_iter=epochs_mix, random_state=0, n_threads=t),
            ("counts", None),
        ),
    ]


def run_bm3d(image, kind):
    import bm3d

    noise, sigma = kind
    if noise == "counts":  # the stabilised domain has unit noise
        return timed(lambda: bm3d.bm3d(anscombe(image), sigma_psd=1.0))[1]
    return timed(bm3d.bm3d, image, sigma_psd=sigma)[1]


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--quick", action="store_true", help="small images and few epochs (seconds)"
    )
    args = parser.parse_args()
    import bm3d  # noqa: F401  (imported before any timing)

    rows, bm3d_seconds = [], {}
    for name, image, patch, make, kind in settings(args.quick):
        key = (image.shape, kind)
        if key not in bm3d_seconds:
            bm3d_seconds[key] = run_bm3d(image, kind)
            print(
                f"speed: BM3D on {image.shape[0]}x{image.shape[1]} ({kind[0]}): {bm3d_seconds[key]:.2f} s",
                file=sys.stderr,
                flush=True,
            )
        for threads in (1, 2):
            model = make(threads)
            _, total = timed(
                zse.reconstruct,
                image,
                model,
                stats=("mean", "var"),
                patch_size=patch,
                n_threads=threads,
            )
            epoch = float(np.median(model.epoch_seconds_))
            rows.append(
                {
                    "setting": name,
                    "image": f"{image.shape[0]}x{image.shape[1]}",
                    "patch": patch,
                    "threads": threads,
                    "epochs": len(model.epoch_seconds_),
                    "s_per_epoch": round(epoch, 4),
                    "end_to_end_s": round(total, 3),
                    "bm3d_s": round(bm3d_seconds[key], 3),
                }
            )
            print(
                f"speed: {name:7s} {threads} thread(s): {epoch:.4f} s/epoch, {total:.2f} s end to end",
                file=sys.stderr,
                flush=True,
            )
    write_csv(RESULTS / f"speed{'_quick' if args.quick else ''}.csv", rows)

    lines = [
        "# zse speed next to BM3D"
        + (" (quick mode: small sizes, not a result)" if args.quick else ""),
        "",
        f"Produced by `python bench/speed.py{' --quick' if args.quick else ''}` in one run; machine: {machine_line()}.",
        "BM3D (bm3d 4.0.3) is single-threaded and timed once per image in the same run. Ratios below 1 mean zse is faster.",
        "",
        "| setting | image | patch | threads | epochs | s/epoch | end to end s | BM3D s | zse / BM3D | speed-up 2 vs 1 thread |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        one = next(x for x in rows if x["setting"] == r["setting"] and x["threads"] == 1)
        speedup = one["end_to_end_s"] / r["end_to_end_s"]
        lines.append(
            f"| {r['setting']} | {r['image']} | {r['patch']}x{r['patch']} | {r['threads']} | {r['epochs']} | "
            f"{r['s_per_epoch']:.3f} | {r['end_to_end_s']:.2f} | {r['bm3d_s']:.2f} | "
            f"{r['end_to_end_s'] / r['bm3d_s']:.2f} | {speedup:.2f} |"
        )
    lines += ["", "Settings: see the docstring of bench/speed.py.", ""]
    path = RESULTS / "SPEED_quick.md" if args.quick else REPORT
    path.write_text("\n".join(lines))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
