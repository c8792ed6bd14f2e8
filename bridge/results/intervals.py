"""How sure a time is: 95% confidence intervals for the summary's medians and for ratios of them.

Repeats are the independent unit: each runs in a fresh process, while the epochs inside one repeat share
its process, caches, allocator and JIT state and are not independent of each other. The steady-state
epoch time is the median over repeats of each repeat's median steady epoch, so its interval comes from a
*hierarchical* percentile bootstrap: draw the repeats with replacement, then each drawn repeat's steady
epochs with replacement, take the same statistic, :data:`RESAMPLES` times, seeded (the same data give the
same interval). With fewer than two repeats there is no independent unit to resample, and no interval is
given (the reason says so) rather than one that would look precise and mean nothing.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

LEVEL = 0.95
RESAMPLES = 2000
SEED = 20261206
METHOD = (f"hierarchical percentile bootstrap, {RESAMPLES} resamples: repeats drawn with replacement, then "
          f"each drawn repeat's steady epochs; {round(LEVEL * 100)}%")
ONE_REPEAT = "one repeat: repeats in fresh processes are the independent unit; run --repeats 3 or more"


@dataclass(frozen=True)
class Interval:
    """A statistic's point value and its interval, or the reason there is none."""
    point: float
    low: float = float("nan")
    high: float = float("nan")
    repeats: int = 0
    reason: str = ""

    @property
    def known(self) -> bool:
        return not self.reason and np.isfinite(self.low) and np.isfinite(self.high)

    @property
    def relative_width(self) -> float:
        """``(high - low) / point``: 0.1 is ±5% around the point."""
        return (self.high - self.low) / self.point if self.known and self.point else float("nan")

    def scaled(self, numerator: float) -> "Interval":
        """The interval of ``numerator / x`` (e.g. examples per second from seconds): bounds swap."""
        if not self.point:
            return Interval(float("nan"), reason=self.reason or "no time")
        return Interval(numerator / self.point, numerator / self.high if self.known else float("nan"),
                        numerator / self.low if self.known else float("nan"), self.repeats, self.reason)


def _bootstrap_medians(groups: list[np.ndarray], rng: np.random.Generator) -> np.ndarray:
    """:data:`RESAMPLES` draws of the median over repeats of each repeat's median, hierarchically."""
    r = len(groups)
    chosen = rng.integers(0, r, size=(RESAMPLES, r))
    medians = np.empty((RESAMPLES, r))
    for i, g in enumerate(groups):
        where = chosen == i
        n = int(where.sum())
        if n:
            medians[where] = np.median(g[rng.integers(0, len(g), size=(n, len(g)))], axis=1)
    return np.median(medians, axis=1)


def _clean(groups) -> list[np.ndarray]:
    return [a for a in (np.asarray(g, dtype=np.float64) for g in groups) if len(a) and np.all(np.isfinite(a))]


def median_interval(groups) -> Interval:
    """The median over repeats of each repeat's median of ``groups`` (one array of values per repeat:
    its steady epochs' seconds, or its one first epoch), with its interval."""
    groups = _clean(groups)
    if not groups:
        return Interval(float("nan"), reason="no value")
    point = float(np.median([np.median(g) for g in groups]))
    if len(groups) < 2:
        return Interval(point, repeats=len(groups), reason=ONE_REPEAT)
    draws = _bootstrap_medians(groups, np.random.default_rng(SEED))
    low, high = np.percentile(draws, [50 * (1 - LEVEL), 50 * (1 + LEVEL)])
    return Interval(point, float(low), float(high), len(groups))


def ratio_interval(numerator, denominator) -> Interval:
    """The ratio of two medians (:func:`median_interval` of each; e.g. one engine's steady epoch over
    another's), with the interval of the ratio from independent hierarchical bootstraps of both."""
    a, b = _clean(numerator), _clean(denominator)
    if not a or not b:
        return Interval(float("nan"), reason="no value")
    point = float(np.median([np.median(g) for g in a]) / np.median([np.median(g) for g in b]))
    if len(a) < 2 or len(b) < 2:
        return Interval(point, repeats=min(len(a), len(b)), reason=ONE_REPEAT)
    rng = np.random.default_rng(SEED)
    draws = _bootstrap_medians(a, rng) / _bootstrap_medians(b, rng)
    low, high = np.percentile(draws, [50 * (1 - LEVEL), 50 * (1 + LEVEL)])
    return Interval(point, float(low), float(high), min(len(a), len(b)))
