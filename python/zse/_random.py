"""Turn ``random_state`` (None, int or numpy Generator) into a 64-bit seed for the C++ core."""

from __future__ import annotations

import numbers

import numpy as np


def seed_from(random_state) -> int:
    if random_state is None:
        return int(np.random.SeedSequence().generate_state(1, dtype=np.uint64)[0])
    if isinstance(random_state, np.random.Generator):
        return int(random_state.integers(0, 2**63))
    if isinstance(random_state, numbers.Integral) and not isinstance(random_state, bool):
        if random_state < 0:
            msg = f"random_state must be >= 0, got {random_state}"
            raise ValueError(msg)
        return int(random_state) & (2**64 - 1)
    msg = f"random_state must be None, an int or a numpy Generator, got {random_state!r}"
    raise TypeError(msg)
