import os
from pathlib import Path

import numpy as np
import pytest

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
