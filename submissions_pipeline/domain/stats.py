"""The one percentile every report, check and benchmark uses, so their numbers agree."""

from __future__ import annotations

import math
from collections.abc import Iterable


def percentile(values: Iterable[float], q: float) -> float | None:
    """Nearest-rank percentile (q in 0..100); None for no values.

    The textbook definition, rank = ceil(q/100 x n) clamped to 1..n, so the result is always
    one of the values (a job time that really happened, never an interpolation between two).
    """
    ordered = sorted(values)
    if not ordered:
        return None
    # q x n before dividing: q/100 is inexact in binary (0.28 x 25 = 7.000000000000001), and
    # ceil would round such a product up to the next rank.
    rank = max(1, min(len(ordered), math.ceil(q * len(ordered) / 100)))
    return ordered[rank - 1]
