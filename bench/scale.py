"""How zse.reconstruct scales with the image: seconds and peak memory at the defaults.

    python bench/scale.py                          # every size at 1 and 2 threads (hours on 2 cores)
    python bench/scale.py --sizes 256,512,1376x1032 --threads 2
    python bench/scale.py --quick                  # two small cases (CI smoke)
    python bench/scale.py --sizes em --threads 2   # the real micrographs of ../shared/data/em
    python bench/scale.py --sizes em/tem_giantvirus_crop1_641.tif --threads 2 --baseline /tmp/old/python
    python bench/scale.py --sizes file:1024x1024x512 --threads 2   # a 2 GB MRC, slab by slab

``file:XxYxZ`` writes a synthetic float32 MRC volume of that size to a temporary folder (slice by
slice: the volume is never in memory) and denoises it with ``zse denoise`` (slab by slab, GPMM
with 4 components and 10 epochs: the cheap model of the memory case); ``file-sssc:XxYxZ`` does
the same with SSSC at its defaults (time per voxel). The peak RSS is the child's.

``--baseline DIR`` runs every case a second time, side by side, with the zse package in DIR (the
python/ folder of another checkout whose compiled zse/_core*.so sits in DIR/zse, e.g. a build of
main) and reports both rows with the ratio.

Cases are sizes (WxH, or XxYxZ for a volume) of synthetic scenes, or real images named by their
path under ../shared/data (``em`` names every giant-virus TEM crop and the cryo-ET slice).

Each case runs in a fresh subprocess (`python bench/scale.py --one ...`), so its peak resident
memory (ru_maxrss of the child) is its own. Synthetic images are TEM scenes from
zse.data.synthetic_tem (shot noise at 20 e-/px); every image is denoised with zse.reconstruct
and SSSC at its defaults (patch 8x8 or 4x4x4, n_train "auto", stats mean and var). Rows are appended to
bench/results/scale.csv as they finish (a row already there with the same settings is kept);
bench/SCALE.md is written from the CSV.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results"
ALL_SIZES = ["256", "512", "1024", "1376x1032", "2048", "4096", "5760x4092", "256x256x128"]
REAL_EM = [f"em/tem_giantvirus_crop{i}_641.tif" for i in range(1, 7)] + [
    "em/cryoet_sarscov2_TS001_slice133_928x960.tif"
]
SHARED_DATA = Path(os.environ.get("ZSE_SHARED_DATA", REPO.parent / "shared" / "data"))
TARGETS = {  # issue targets on 2 cores (issue 20): seconds, MB of peak RSS
    "1376x1032": (30, 1000),
    "4096x4096": (300, 1000),
    "5760x4092": (600, 1000),
    "128x256x256": (900, 1000),
    "file:1024x1024x512": (None, 1000),
    **{name: (20, 1000) for name in REAL_EM if "giantvirus" in name},
    "em/cryoet_sarscov2_TS001_slice133_928x960.tif": (30, 1000),
}
FIELDS = [
    "case",
    "build",
    "shape",
    "threads",
    "max_iter",
    "seconds",
    "peak_rss_mb",
    "n_patches",
    "n_train",
    "fit_seconds",
    "estimate_seconds",
    "settings",
]


def parse_size(text: str) -> tuple[int, ...]:
    parts = [int(p) for p in text.lower().split("x")]
    if len(parts) == 1:
        return (parts[0], parts[0])
    if len(parts) == 2:
        return (parts[1], parts[0])  # WxH as cameras write it -> (rows, columns)
    return (parts[2], parts[1], parts[0])  # XxYxZ -> (z, y, x)


def make_input(size: str):
    import numpy as np

    import zse

    if size.startswith("em/"):
        return zse.io.read_image(SHARED_DATA / size).astype(np.float64)
    shape = parse_size(size)
    if len(shape) == 2:
        noisy, _ = zse.synthetic_tem(shape, dose=20.0, seed=0)
        return noisy
    z = shape[0]
    slab, _ = zse.synthetic_tem(shape[1:], dose=20.0, seed=0)
    rng = np.random.default_rng(1)
    # A volume whose sections change slowly: the scene drifts along z, new shot noise per slice.
    clean = np.stack([np.roll(slab, k // 4, axis=1) for k in range(z)])
    return rng.poisson(np.maximum(clean, 0)).astype(np.float64)


def use_baseline(folder: str) -> None:
    """Import zse from ``folder`` instead of the installed one (editable installs put a finder in
    front of sys.path, so it is taken out for this process)."""
    sys.meta_path = [
        f
        for f in sys.meta_path
        if "editable" not in repr(f).lower() and "scikit_build" not in repr(f).lower()
    ]
    sys.path.insert(0, folder)


def write_volume_file(path: Path, shape) -> None:
    """A synthetic float32 MRC volume of counts (shot noise on a drifting scene), written slice by
    slice so that the volume is never in memory."""
    import mrcfile
    import numpy as np

    import zse

    z, rows, cols = shape
    scene, _ = zse.synthetic_tem((rows, cols), dose=20.0, seed=0)
    rate = np.maximum(scene, 0)
    rng = np.random.default_rng(1)
    with mrcfile.new_mmap(path, shape=shape, mrc_mode=2, overwrite=True) as mrc:
        mrc.set_volume()
        for k in range(z):
            mrc.data[k] = rng.poisson(np.roll(rate, k // 4, axis=1)).astype(np.float32)
            if k % 16 == 15:
                mrc.flush()


def run_file(size: str, threads: int, max_iter: int | None) -> dict:
    """``zse denoise`` of a volume file in a child process: seconds and the child's peak RSS."""
    import tempfile

    kind, dims = size.split(":")
    shape = parse_size(dims)
    with tempfile.TemporaryDirectory(dir=os.environ.get("ZSE_SCALE_TMP")) as tmp:
        path = Path(tmp) / "volume.mrc"
        write_volume_file(path, shape)
        if kind == "file":
            model = ["--model", "gpmm", "--n-components", "4", "--max-iter", str(max_iter or 10)]
            settings = f"GPMM C=4, {max_iter or 10} epochs, patch 4x4x4, stats mean+var"
        else:
            model = ["--model", "sssc"] + (["--max-iter", str(max_iter)] if max_iter else [])
            settings = f"SSSC defaults{'' if not max_iter else f', max_iter={max_iter}'}"
        cmd = [
            sys.executable,
            "-m",
            "zse",
            "denoise",
            str(path),
            "-o",
            str(Path(tmp) / "out"),
            "--n-threads",
            str(threads),
            "--seed",
            "0",
            *model,
        ]
        # The child's own peak, measured by GNU time (a small process, so the fork carries
        # nothing of this one; RUSAGE_CHILDREN here would count this process's pages at fork).
        timer = ["/usr/bin/time", "-f", "zse-peak-kb %M"] if Path("/usr/bin/time").exists() else []
        t = time.perf_counter()
        done = subprocess.run(timer + cmd, check=True, capture_output=True, text=True)
        seconds = time.perf_counter() - t
        peaks = [line.split()[1] for line in done.stderr.splitlines() if "zse-peak-kb" in line]
        rss = (
            int(peaks[-1]) / 1024
            if peaks
            else resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        )
        record = json.loads((Path(tmp) / "out" / "volume.zse.json").read_text())
    n_patches = 1
    for s, p in zip(shape, record["patch_size"]):
        n_patches *= s - p + 1
    timings = record["timings_s"]
    return {
        "case": size,
        "build": "baseline" if os.environ.get("ZSE_BASELINE") else "this",
        "shape": "x".join(map(str, shape)),
        "threads": threads,
        "max_iter": record["model"]["params"]["max_iter"],
        "seconds": round(seconds, 2),
        "peak_rss_mb": round(rss, 1),
        "start_rss_mb": 0,
        "n_patches": n_patches,
        "n_train": min(n_patches, 65536 if kind == "file" else 16384),
        "fit_seconds": round(sum(record["model"].get("epoch_seconds", [])), 2)
        if "epoch_seconds" in record["model"]
        else "",
        "estimate_seconds": timings.get("reconstruct", ""),
        "settings": settings
        + (
            f", slab by slab ({record['input']['slab_slices']} slices)"
            if record["input"].get("slab_slices")
            else ", whole volume in memory"
        ),
    }


def run_one(size: str, threads: int, max_iter: int | None) -> dict:
    import zse

    if size.startswith(("file:", "file-sssc:")):
        return run_file(size, threads, max_iter)

    image = make_input(size)
    model = zse.SSSC(random_state=0, n_threads=threads, verbose=False)
    if max_iter is not None:
        model.set_params(max_iter=max_iter)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t = time.perf_counter()
    out = zse.reconstruct(image, model, stats=("mean", "var"), n_threads=threads)
    seconds = time.perf_counter() - t
    fit_seconds = sum(model.epoch_seconds_)
    assert out["mean"].shape == image.shape
    n_patches = 1
    for s, p in zip(image.shape, model.patch_size_):
        n_patches *= s - p + 1
    return {
        "case": size,
        "build": "baseline" if os.environ.get("ZSE_BASELINE") else "this",
        "shape": "x".join(map(str, image.shape)),
        "threads": threads,
        "max_iter": model.max_iter,
        "seconds": round(seconds, 2),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "start_rss_mb": round(before / 1024, 1),
        "n_patches": n_patches,
        "n_train": model.K_.shape[0],
        "fit_seconds": round(fit_seconds, 2),
        "estimate_seconds": round(seconds - fit_seconds, 2),
        "settings": f"SSSC defaults, max_iter={model.max_iter}, stats mean+var, seed 0",
    }


def read_rows(path: Path) -> list[dict]:
    if not path.exists():
        return []
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def write_report(rows: list[dict], path: Path, command: str) -> None:
    lines = [
        "# Scale: zse.reconstruct at the defaults",
        "",
        f"`{command}` on {platform.machine()}, {os.cpu_count()} CPUs, Python "
        f"{platform.python_version()}. Synthetic TEM scenes (`zse.synthetic_tem`, 20 e-/px) "
        "and real micrographs (by their path under ../shared/data); SSSC at its defaults (H=64, "
        "S=32, 100 epochs unless the row says otherwise; 16 states per patch while estimating "
        "in the rows `this` of the 2-D images, 32 in the others), patch 8x8 (4x4x4 for the "
        "volume; rows "
        'measured before 2026-12 used 6x6), `n_train="auto"`, stats mean and var. Peak RSS is '
        "the whole process (Python, NumPy and zse included). `build` baseline: the same case "
        "with the package given by --baseline, in the same run.",
        "",
        "| case | build | shape | threads | epochs | patches | trained on | fit s | estimate s | total s | peak RSS MB | target |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        target = TARGETS.get(r["shape"]) or TARGETS.get(r["case"])
        t = (
            ""
            if target is None
            else " / ".join(
                x for x in (f"<= {target[0]} s" if target[0] else "", f"<= {target[1]} MB") if x
            )
        )
        lines.append(
            f"| {r['case']} | {r.get('build') or 'this'} | {r['shape']} | {r['threads']} | {r['max_iter']} | {int(r['n_patches']):,} | "
            f"{int(r['n_train']):,} | {r['fit_seconds']} | {r['estimate_seconds']} | {r['seconds']} | "
            f"{r['peak_rss_mb']} | {t} |"
        )
    lines += _volume_file_notes(rows)
    path.write_text("\n".join(lines) + "\n")


def _volume_file_notes(rows: list[dict]) -> list[str]:
    """The volume-file cases: peak memory against the file, SSSC's time per voxel and what it
    projects for the 2 GB volume."""
    out = []
    for r in rows:
        if not r["case"].startswith(("file:", "file-sssc:")):
            continue
        z, y, x = (int(v) for v in r["shape"].split("x"))
        voxels = z * y * x
        if r["case"].startswith("file:"):
            out.append(
                f"- `{r['case']}`: a {voxels * 4 / 2**30:.2f} GiB float32 MRC volume through "
                f"`zse denoise` slab by slab ({r['settings']}): peak RSS {r['peak_rss_mb']} MB, "
                f"{float(r['seconds']):.0f} s on {r['threads']} threads."
            )
        else:
            per_voxel = float(r["seconds"]) / voxels * int(r["threads"])  # thread-seconds
            whole = 512 * 1024 * 1024 * per_voxel
            out.append(
                f"- `{r['case']}` ({r['settings']}): {float(r['seconds']):.0f} s on "
                f"{r['threads']} threads, {per_voxel * 1e6:.1f} µs of one core per voxel; "
                f"projected for 512 x 1024 x 1024: {whole / 2 / 3600:.1f} h on 2 cores, "
                f"{whole / 64 / 3600:.2f} h on a 64-core node if it scales linearly (not measured "
                "beyond 2 cores here: the bands of a volume run in parallel, but one process "
                "runs at most 3 bands of 1024 x 1024 at once within its 512 MiB ring, so a "
                "node takes MPI ranks, e.g. 16 ranks x 4 threads, each on its part of every slab)."
            )
    if out:
        out = ["", "Volumes larger than memory (`--sizes file:XxYxZ,file-sssc:XxYxZ`):", ""] + out
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default=",".join(ALL_SIZES))
    parser.add_argument("--threads", default="1,2")
    parser.add_argument("--max-iter", type=int, default=None, help="epochs (default: the model's)")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument(
        "--baseline", default=None, help="also run every case with the zse package in this folder"
    )
    parser.add_argument("--one", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.one is not None:
        if os.environ.get("ZSE_BASELINE"):
            use_baseline(os.environ["ZSE_BASELINE"])
        size, threads = args.one.split("@")
        print(json.dumps(run_one(size, int(threads), args.max_iter)))
        return 0
    if args.quick:
        args.sizes, args.threads, args.max_iter = "128,24x24x16", "2", 3
    csv_path = RESULTS / ("scale_quick.csv" if args.quick else "scale.csv")
    report = RESULTS / "SCALE_quick.md" if args.quick else REPO / "bench" / "SCALE.md"
    RESULTS.mkdir(parents=True, exist_ok=True)
    rows = [] if args.quick else read_rows(csv_path)
    done = {(r["case"], r.get("build") or "this", r["threads"], r["max_iter"]) for r in rows}
    builds = ["this"] + (["baseline"] if args.baseline else [])
    sizes = [
        name for size in args.sizes.split(",") for name in (REAL_EM if size == "em" else [size])
    ]
    for size in sizes:
        for threads in args.threads.split(","):
            for build in builds:
                cmd = [sys.executable, __file__, "--one", f"{size}@{threads}"]
                if args.max_iter is not None:
                    cmd += ["--max-iter", str(args.max_iter)]
                key_iter = str(args.max_iter if args.max_iter is not None else 100)
                if (size, build, threads, key_iter) in done:
                    continue
                env = dict(os.environ)
                env.pop("ZSE_BASELINE", None)
                if build == "baseline":
                    env["ZSE_BASELINE"] = str(Path(args.baseline).resolve())
                print(f"[scale] {size} ({build}) at {threads} thread(s) ...", file=sys.stderr)
                result = subprocess.run(cmd, capture_output=True, text=True, check=False, env=env)
                if result.returncode != 0:
                    print(result.stderr[-2000:], file=sys.stderr)
                    return 1
                row = json.loads(result.stdout.strip().splitlines()[-1])
                row.pop("start_rss_mb", None)
                print(f"[scale] {row}", file=sys.stderr, flush=True)
                rows.append({k: str(row[k]) for k in FIELDS})
                with open(csv_path, "w", newline="") as handle:
                    writer = csv.DictWriter(handle, fieldnames=FIELDS)
                    writer.writeheader()
                    writer.writerows(rows)
    command = "python bench/scale.py" + ("" if not argv else " " + " ".join(argv))
    write_report(rows, report, command)
    print(f"[scale] wrote {report}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
