"""Bit-level fingerprints of zse's results, to show that a refactoring changed no number.

    python bench/fingerprint.py --save before.json     # on the old code
    python bench/fingerprint.py --check before.json    # on the new code: every hash equal

Each case runs a small seeded reconstruction or command and hashes its outputs' bytes (SHA-256
of the float64 arrays, of the written files' pixel data, of the fitted parameters): 2-D and
3-D reconstructions with SSSC, GPMM, PMM and Identity, an estimate of patches, a model fitted and
written by ``zse fit`` and applied by ``zse denoise --model-file``. A few seconds on 2 cores.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

import zse


def _hash(array) -> str:
    array = np.ascontiguousarray(array)
    return hashlib.sha256(array.dtype.str.encode() + array.tobytes()).hexdigest()[:16]


def _scene(shape, seed):
    rng = np.random.default_rng(seed)
    grid = np.indices(shape).astype(np.float64)
    clean = 100 + 40 * np.sin(grid[-1] / 5.0) * np.cos(grid[-2] / 7.0)
    if len(shape) == 3:
        clean += 20 * np.sin(grid[0] / 3.0)
    return clean + rng.normal(0, 15, size=shape)


def _counts(shape, seed):
    rng = np.random.default_rng(seed)
    grid = np.indices(shape).astype(np.float64)
    rate = 4 + 3 * np.sin(grid[-1] / 4.0) * np.cos(grid[-2] / 6.0)
    return rng.poisson(rate).astype(np.float64)


def _reconstruction(name, image, model, **kwargs):
    result = zse.reconstruct(image, model, n_threads=2, **kwargs)
    out = {f"{name}:{stat}": _hash(result[stat]) for stat in sorted(result)}
    for attr in ("W_", "pi_", "sigma2_", "lam_", "alpha_"):
        if attr in vars(result.model):
            out[f"{name}:{attr}"] = _hash(np.asarray(vars(result.model)[attr]))
    return out


def cases() -> dict:
    out = {}
    image = _scene((40, 44), 1)
    counts = _counts((40, 44), 2)
    volume = _scene((12, 14, 16), 3)
    stats = ("mean", "var", "median", "count")
    out.update(
        _reconstruction(
            "sssc2d",
            image,
            zse.SSSC(H=12, n_states=8, n_parents=4, max_iter=6, random_state=0, n_threads=2),
            patch_size=5,
            stats=(*stats, "pvar"),
            n_train=300,
        )
    )
    out.update(
        _reconstruction(
            "gpmm2d",
            counts,
            zse.GPMM(n_components=6, max_iter=8, random_state=0, n_threads=2),
            patch_size=4,
            stats=(*stats, "pvar"),
        )
    )
    out.update(
        _reconstruction(
            "pmm2d",
            counts,
            zse.PMM(n_components=5, max_iter=8, random_state=0, n_threads=2),
            patch_size=4,
            stats=stats,
        )
    )
    out.update(_reconstruction("identity2d", image, zse.Identity(), patch_size=3, stats=stats))
    out.update(
        _reconstruction(
            "sssc3d",
            volume,
            zse.SSSC(H=10, n_states=6, n_parents=3, max_iter=4, random_state=0, n_threads=2),
            patch_size=(3, 3, 3),
            stats=("mean", "var", "pvar"),
            n_train=400,
        )
    )
    out.update(
        _reconstruction(
            "gpmm3d",
            np.round(np.abs(volume) / 20),
            zse.GPMM(n_components=4, max_iter=5, random_state=0, n_threads=2),
            patch_size=(3, 3, 3),
            stats=("mean", "var"),
        )
    )
    patches = zse.patches.extract_patches(image, 4)
    model = zse.SSSC(H=8, n_states=6, n_parents=3, max_iter=5, random_state=0).fit(patches)
    mean, var = model.estimate(patches[::3], return_variance=True)
    out["sssc_estimate:mean"], out["sssc_estimate:var"] = _hash(mean), _hash(var)
    out.update(_command_line(image))
    return out


def _command_line(image) -> dict:
    import tifffile

    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        tifffile.imwrite(tmp / "a.tif", image.astype(np.float32))
        common = ["--seed", "3", "--n-threads", "2", "-q"]
        sssc = ["--model", "sssc", "--H", "8", "--max-iter", "4", "--patch-size", "4"]
        runs = {
            "cli_denoise": ["denoise", str(tmp / "a.tif"), "-o", str(tmp / "d"), *sssc],
            "cli_fit": ["fit", str(tmp / "a.tif"), "-o", str(tmp / "m.zse"), *sssc],
            "cli_apply": [
                "denoise",
                str(tmp / "a.tif"),
                "-o",
                str(tmp / "e"),
                "--model-file",
                str(tmp / "m.zse"),
                "--stats",
                "mean,median",
            ],
        }
        for argv in runs.values():
            subprocess.run([sys.executable, "-m", "zse", *argv, *common], check=True)
        for folder in ("d", "e"):
            for path in sorted((tmp / folder).glob("*.tif")):
                out[f"cli_{folder}:{path.name}"] = _hash(tifffile.imread(path))
        fitted = zse.load_model(tmp / "m.zse")
        out["cli_fit:W_"] = _hash(fitted.W_)
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--save", type=Path, help="write the fingerprints to this JSON file")
    group.add_argument("--check", type=Path, help="compare with fingerprints saved earlier")
    args = parser.parse_args(argv)
    found = cases()
    if args.save:
        args.save.write_text(json.dumps(found, indent=1, sort_keys=True) + "\n")
        print(f"{len(found)} fingerprints written to {args.save}")
        return 0
    saved = json.loads(args.check.read_text())
    differ = sorted(k for k in saved.keys() | found.keys() if saved.get(k) != found.get(k))
    for key in differ:
        print(f"DIFFERS {key}: {saved.get(key)} -> {found.get(key)}")
    print(f"{len(saved) - len(differ)} of {len(saved)} fingerprints identical")
    return 1 if differ else 0


if __name__ == "__main__":
    sys.exit(main())
