"""Uncertainty for every rate: percentile bootstrap over records, and a paired bootstrap to
compare two reports on the same data."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def bootstrap_interval(values: Sequence[float], *, samples: int, seed: int, confidence: float = 0.95) -> list[float]:
    """95% percentile interval of the mean of `values` (records resampled with replacement)."""
    data = np.asarray(values, dtype=float)
    if len(data) == 0:
        return [float("nan"), float("nan")]
    if samples == 0 or len(data) == 1:
        mean = float(data.mean())
        return [mean, mean]
    rng = np.random.default_rng(seed)
    means = data[rng.integers(0, len(data), size=(samples, len(data)))].mean(axis=1)
    tail = (1 - confidence) / 2 * 100
    return [float(np.percentile(means, tail)), float(np.percentile(means, 100 - tail))]


def paired_difference(
    current: Sequence[float], baseline: Sequence[float], *, samples: int, seed: int, confidence: float = 0.95
) -> tuple[float, list[float]]:
    """Mean of (current - baseline) over the same records, and its bootstrap interval."""
    a, b = np.asarray(current, dtype=float), np.asarray(baseline, dtype=float)
    differences = a - b
    return float(differences.mean()), bootstrap_interval(differences, samples=samples, seed=seed, confidence=confidence)


def verdict(difference: float, interval: list[float], higher_is_better: bool = True) -> str:
    """better / worse / no clear change: only when the whole interval is on one side of zero."""
    low, high = interval
    if low > 0:
        return "better" if higher_is_better else "worse"
    if high < 0:
        return "worse" if higher_is_better else "better"
    return "no clear change"
