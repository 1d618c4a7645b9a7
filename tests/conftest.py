import os
from pathlib import Path

import numpy as np
import pytest
import tifffile

from helpers import gamma_poisson_counts

# Test images live beside the checkout (../shared/data); the installed package never reads them.
SHARED_DATA = Path(
    os.environ.get("ZSE_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data")
)


@pytest.fixture
def rng():
    return np.random.default_rng(12345)


@pytest.fixture
def shared_data():
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared test data not found at {SHARED_DATA}")
    return SHARED_DATA


@pytest.fixture
def small_tif(tmp_path):
    path = tmp_path / "in.tif"
    tifffile.imwrite(
        path, np.random.default_rng(0).normal(100, 5, size=(16, 16)).astype(np.float32)
    )
    return path


@pytest.fixture(scope="module")
def count_patches():
    """Over-dispersed counts every model can fit (GPMM's shape stays finite)."""
    return gamma_poisson_counts(400)
