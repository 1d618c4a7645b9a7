"""Pictures for the real EM images of bench/compare.py: noisy | zse mean | best peer, zse variance.

    python bench/compare.py [--quick]            # first: computes and keeps the outputs
    python bench/gallery.py [--quick] [--publish]

One PNG per real EM case in bench/results/gallery/ (not committed). Top row: the noisy image, the
zse SSSC mean and the best peer, all with one grey window (the 0.5 and 99.5 percentiles of the zse
mean), so the contrast is identical. Bottom row: the zse variance image in grey and with a
perceptually uniform colour map (magma), each with its own 0.5-99.5 percentile window, and the
zoomed inset of the four images as a 2x2 mosaic. Every panel shows the same crop and marks the
zoomed square. The inset is the square with the most structure in the zse mean (largest
standard deviation of a 4x4-pixel block average), so it is chosen by the same rule for every case.

The best peer is the blind peer (one that estimates sigma itself, so it can run on a real image)
with the highest mean PSNR over the cases with a reference in the same CSV.

``--publish`` also copies the figures of publishable cases (the cryo-ET slice, Ke et al. 2020,
CZ CryoET Data Portal dataset 10006) to docs/; the giant-virus TEM crops never leave
bench/results.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

import numpy as np

from _common import RESULTS
from compare import full_cases, output_path, quick_cases, read_rows

DOCS = Path(__file__).resolve().parents[1] / "docs"
# Blind peers that run on every 2-D case (so also on the real images the gallery shows, and their
# means are over the same cases); the zero-shot networks run on a subset only (bench/peers.py).
BLIND_PEERS = (
    "BM3D (blind)",
    "NLM",
    "NLM (N2S-calibrated)",
    "wavelet BayesShrink",
    "TV Chambolle",
)


def best_peer(rows) -> tuple[str, float]:
    means = {}
    for peer in BLIND_PEERS:
        values = [float(r["psnr"]) for r in rows if r["method"] == peer and r["psnr"] != ""]
        if values:
            means[peer] = float(np.mean(values))
    if not means:
        msg = "no PSNR rows of blind peers in the CSV: run bench/compare.py first"
        raise SystemExit(msg)
    peer = max(means, key=means.get)
    return peer, means[peer]


def zoom_window(image, size):
    """Top-left corner of the size x size square with the most structure."""
    block = 4
    rows, cols = image.shape[0] // block, image.shape[1] // block
    coarse = (
        image[: rows * block, : cols * block].reshape(rows, block, cols, block).mean(axis=(1, 3))
    )
    step, n = max(1, size // (2 * block)), size // block
    best, corner = -1.0, (0, 0)
    for r in range(0, rows - n + 1, step):
        for c in range(0, cols - n + 1, step):
            score = float(coarse[r : r + n, c : c + n].std())
            if score > best:
                best, corner = score, (r * block, c * block)
    return corner


def window(image, low=0.5, high=99.5):
    lo, hi = np.percentile(image, [low, high])
    return float(lo), float(max(hi, lo + 1e-12))


def figure(
    case_name: str, images: dict, peer: str, metrics: dict, path: Path, credit: str = ""
) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle

    mean, var = images["mean"], images["var"]
    size = max(32, min(mean.shape) // 4)
    top, left = zoom_window(mean, size)
    grey = window(mean)
    var_window = window(var)
    panels = [
        ("noisy", images["noisy"], "gray", grey),
        ("zse mean (SSSC)", mean, "gray", grey),
        (f"best peer: {peer}", images["peer"], "gray", grey),
        ("zse variance", var, "gray", var_window),
        ("zse variance (magma)", var, "magma", var_window),
    ]
    fig, axes = plt.subplots(2, 3, figsize=(12, 8.4), dpi=110)
    for ax, (title, image, cmap, (lo, hi)) in zip(axes.ravel(), panels):
        ax.imshow(image, cmap=cmap, vmin=lo, vmax=hi, interpolation="nearest")
        ax.add_patch(
            Rectangle(
                (left - 0.5, top - 0.5), size, size, fill=False, edgecolor="#00c0ff", linewidth=1.2
            )
        )
        label = title
        key = title.split(" (")[0] if title.startswith("zse mean") else title
        if key in metrics:
            label += f"\nblur {metrics[key][0]:.3f}, flat-region noise {metrics[key][1]:.2f}"
        ax.set_title(label, fontsize=9)
        ax.set_axis_off()
    inset = axes[1, 2]
    crops = [
        (image[top : top + size, left : left + size], cmap, lo, hi)
        for _, image, cmap, (lo, hi) in panels[:4]
    ]
    scaled = [np.clip((crop - lo) / (hi - lo), 0.0, 1.0) for crop, _, lo, hi in crops]
    gap = max(2, size // 16)
    mosaic = np.ones((2 * size + gap, 2 * size + gap))
    for k, tile in enumerate(scaled):  # noisy, zse mean / peer, zse variance
        r, c = divmod(k, 2)
        mosaic[
            r * (size + gap) : r * (size + gap) + size, c * (size + gap) : c * (size + gap) + size
        ] = tile
    inset.imshow(mosaic, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
    inset.set_title(
        f"zoom, {size}x{size} px at row {top}, col {left}:\nnoisy | zse mean (top), peer | zse variance",
        fontsize=9,
    )
    inset.set_axis_off()
    fig.suptitle(f"{case_name}  ({credit})" if credit else case_name, fontsize=11)
    fig.tight_layout(h_pad=2.0)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="figures of the quick cases")
    parser.add_argument(
        "--publish", action="store_true", help="copy figures of publishable cases to docs/"
    )
    args = parser.parse_args()
    rows = read_rows(RESULTS / ("compare_quick.csv" if args.quick else "compare.csv"))
    peer, peer_psnr = best_peer(rows)
    print(
        f"gallery: best blind peer {peer} (mean PSNR {peer_psnr:.2f} dB over the cases with a reference)",
        file=sys.stderr,
    )
    cases = [c for c in (quick_cases() if args.quick else full_cases()) if c.group == "real EM"]
    for case in cases:
        paths = {
            "noisy": output_path(case, "noisy", "mean"),
            "mean": output_path(case, "zse SSSC", "mean"),
            "var": output_path(case, "zse SSSC", "var"),
            "peer": output_path(case, peer, "mean"),
        }
        missing = [str(p) for p in paths.values() if not p.exists()]
        if missing:
            print(
                f"gallery: {case.name}: outputs missing ({', '.join(missing)}); run bench/compare.py",
                file=sys.stderr,
            )
            return 1
        images = {k: np.load(p).astype(np.float64) for k, p in paths.items()}
        metrics = {
            (
                "zse mean"
                if r["method"] == "zse SSSC"
                else f"best peer: {peer}"
                if r["method"] == peer
                else r["method"]
            ): (float(r["blur"]), float(r["flat_noise"]))
            for r in rows
            if r["case"] == case.name
        }
        slug = paths["mean"].parent.name
        path = RESULTS / "gallery" / f"{slug}{'_quick' if args.quick else ''}.png"
        figure(case.name, images, peer, metrics, path, case.credit)
        print(f"gallery: {path}", file=sys.stderr)
        if args.publish and case.note == "publishable" and not args.quick:
            target = DOCS / f"gallery_{slug}.png"
            shutil.copyfile(path, target)
            print(f"gallery: published {target}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
