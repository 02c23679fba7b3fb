"""The scoring model: a small recurrent network over hashed features, deterministic and pure.

Its cost is `iterations` steps of a 16x16 recurrence in plain Python, a stand-in for a real
model's CPU time that keeps the same input -> same score contract a cache relies on.
"""

import hashlib
import math
import random
from collections.abc import Mapping

MODEL_VERSION = "recurrent-16-v1"

_WIDTH = 16


def _weights(version: str) -> tuple[tuple[tuple[float, ...], ...], tuple[float, ...]]:
    rng = random.Random(version)
    scale = 1.0 / math.sqrt(_WIDTH)
    recurrent = tuple(tuple(rng.gauss(0.0, scale) for _ in range(_WIDTH)) for _ in range(_WIDTH))
    readout = tuple(rng.gauss(0.0, scale) for _ in range(_WIDTH))
    return recurrent, readout


_RECURRENT, _READOUT = _weights(MODEL_VERSION)


def _slot(name: str) -> tuple[int, float]:
    digest = hashlib.blake2b(name.encode(), digest_size=2).digest()
    return digest[0] % _WIDTH, 1.0 if digest[1] & 1 else -1.0


def embed(features: Mapping[str, float]) -> list[float]:
    """Fold any number of named features into a fixed-width vector (the hashing trick)."""
    vector = [0.0] * _WIDTH
    for name in sorted(features):
        index, sign = _slot(name)
        vector[index] += sign * float(features[name])
    return [math.tanh(value) for value in vector]


def compute_score(features: Mapping[str, float], *, iterations: int) -> float:
    """The score of one entity, in (0, 1): the same features always give the same score.

    The cost grows with `iterations` (about 25 us each in CPython) and only linearly with the
    number of features, so a large request cannot make one score arbitrarily expensive.
    """
    if iterations < 1:
        raise ValueError(f"iterations must be at least 1, not {iterations}")

    inputs = embed(features)
    state = inputs
    for _ in range(iterations):
        state = [
            math.tanh(sum(w * s for w, s in zip(row, state, strict=True)) + x)
            for row, x in zip(_RECURRENT, inputs, strict=True)
        ]

    logit = sum(w * s for w, s in zip(_READOUT, state, strict=True))
    return 1.0 / (1.0 + math.exp(-logit))
