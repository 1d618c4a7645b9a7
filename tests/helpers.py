"""Helpers shared by the test files: small images and counts, tiny models, a TIFF whose tags say
whatever a test needs."""

import struct
import time
from pathlib import Path

import numpy as np
import pytest

import zse


def smooth_image(seed=0, shape=(36, 36), noise=1.0):
    rng = np.random.default_rng(seed)
    clean = rng.normal(size=shape).cumsum(axis=0).cumsum(axis=1) / 10
    return clean + rng.normal(scale=noise, size=shape), clean


def gamma_poisson_counts(n=400, d=9, seed=0):
    """Over-dispersed counts (a Gamma brightness per patch), so GPMM's shape stays finite."""
    rng = np.random.default_rng(seed)
    return rng.poisson(rng.gamma(3.0, 2.0, size=(n, 1)) * rng.uniform(0.5, 1.5, size=d)).astype(
        float
    )


def tiny_sssc(**kw):
    params = dict(n_states=8, n_parents=4, max_iter=6, random_state=1)
    params.update(kw)
    return zse.SSSC(8, **params)


def handmade_tiff(
    path,
    width,
    height,
    *,
    bits=8,
    compression=1,
    photometric=1,
    spp=1,
    strip=b"",
    byte_count=None,
    planar=1,
):
    """A little-endian one-strip TIFF whose tags say whatever the test needs."""
    entries = [
        (256, 4, width),
        (257, 4, height),
        (258, 3, bits),
        (259, 3, compression),
        (262, 3, photometric),
        (273, 4, 0),
        (277, 3, spp),
        (278, 4, height),
        (279, 4, len(strip) if byte_count is None else byte_count),
        (284, 3, planar),
    ]
    ifd_size = 2 + 12 * len(entries) + 4
    data_offset = 8 + ifd_size
    out = bytearray(b"II*\x00" + struct.pack("<I", 8) + struct.pack("<H", len(entries)))
    for tag, kind, value in entries:
        if tag == 273:
            value = data_offset
        if kind == 3:
            out += struct.pack("<HHIHH", tag, kind, 1, value, 0)
        else:
            out += struct.pack("<HHII", tag, kind, 1, value)
    out += struct.pack("<I", 0) + strip
    Path(path).write_bytes(bytes(out))
    return path


MODEL_FACTORIES = {
    "sssc": lambda **kw: zse.SSSC(6, n_states=8, n_parents=4, random_state=3, **kw),
    "pmm": lambda **kw: zse.PMM(4, random_state=3, **kw),
    "gpmm": lambda **kw: zse.GPMM(4, random_state=3, **kw),
}


def learned(model):
    return {k: v for k, v in vars(model).items() if k.endswith("_") and k != "epoch_seconds_"}


def assert_same_learned(a, b):
    la, lb = learned(a), learned(b)
    assert la.keys() == lb.keys()
    for key in la:
        np.testing.assert_array_equal(np.asarray(la[key]), np.asarray(lb[key]), err_msg=key)


def wait_for(proc, text, limit=120):
    """Read ``proc``'s stderr until a line holds ``text`` (fail after ``limit`` s)."""
    deadline = time.time() + limit
    seen = []
    while time.time() < deadline:
        line = proc.stderr.readline()
        if not line:
            break
        seen.append(line)
        if text in line:
            return
    proc.kill()
    pytest.fail(f"never saw {text!r}; stderr: {''.join(seen)[-2000:]}")
