"""The one seeding formula: every seed of a run is derived from RNG_SEED and a few integer keys.

`numpy.random.SeedSequence` mixes the keys, so nearby keys (rank 0 and 1, epoch 3 and 4) give unrelated
streams, and a seed depends on nothing else (not on how many processes or workers ran before).
"""

from __future__ import annotations

import numpy as np

__all__ = ["derive_seed"]


def derive_seed(seed: int, *keys: int) -> int:
    """A 32-bit seed that is a function of `seed` and `keys` only; `seed` itself when no keys are given."""
    if not keys:
        return int(seed) % 2**32
    return int(np.random.SeedSequence([int(seed), *map(int, keys)]).generate_state(1)[0])
