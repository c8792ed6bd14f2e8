"""``--repeats auto``: ask for a precision instead of a count.

Repeats (fresh worker processes, engines interleaved) are the independent unit of every interval bridge
gives (:mod:`bridge.results.intervals`). With a :class:`Precision`, the runner starts each engine's next
repeat only while that engine still needs it (:meth:`Precision.wants`): every engine gets
:data:`MIN_REPEATS` (the fewest an interval of repeats means something with); after that one more
repeat while the 95% interval of its steady epoch spans more than ``target`` of its median, until
``max_repeats`` or until ``budget_s`` seconds have passed since the first engine started. The width is
the one the table shows (:func:`bridge.results.intervals.median_interval` of the same epochs), so an
engine stops exactly when its printed interval is as narrow as asked. Each engine's outcome is said in
the table and in summary.json (``timing.adaptive``): how many repeats it got, its width, and why it
stopped.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

from ..results.intervals import median_interval
from ..results.records import REUSABLE

MIN_REPEATS = 3
"""Every engine gets this many repeats (fewer only when ``max_repeats`` or the budget says so)."""

MET, MAX, BUDGET, FAILED = "target met", "max repeats", "budget spent", "a repeat failed"


def steady_groups(outcomes: list) -> list:
    """Each finished repeat's steady epoch seconds (epochs after the first), as the summary compares them."""
    return [[ep["seconds"] for ep in o.epochs[1:]] for o in outcomes if o.status in REUSABLE]


def width(outcomes: list) -> float:
    """The relative width of the steady epoch's 95% interval over ``outcomes`` (NaN where there is none)."""
    return median_interval(steady_groups(outcomes)).relative_width


@dataclass(frozen=True)
class Precision:
    target: float = 0.10
    """Wanted relative width of each engine's steady-epoch 95% interval: 0.10 is about ±5%."""
    max_repeats: int = 10
    budget_s: float = 600.0
    """No repeat starts after this many seconds from the first engine's start (each engine gets one)."""

    def describe(self) -> str:
        return (f"repeats auto (until each steady epoch's 95% interval spans at most {self.target:.0%} of it; "
                f"{min(MIN_REPEATS, self.max_repeats)} to {self.max_repeats} repeats, no new one after "
                f"{self.budget_s:g} s)")

    def stopped(self, mine: list, elapsed: float) -> str | None:
        """Why an engine run with finished repeats ``mine`` gets no more, ``elapsed`` seconds into the
        engines; None while it needs another."""
        if any(o.status not in REUSABLE for o in mine):
            return FAILED
        if len(mine) >= MIN_REPEATS and width(mine) <= self.target:  # NaN (no interval) is never <=
            return MET
        if len(mine) >= self.max_repeats:
            return MAX
        if mine and elapsed >= self.budget_s:
            return BUDGET
        return None

    def wants(self, mine: list, elapsed: float) -> bool:
        return self.stopped(mine, elapsed) is None

    def summary(self, outcomes: list, labels: list[str], elapsed: float) -> dict:
        """summary.json's ``timing.adaptive``: the request, and per engine run its repeats, width and why
        it stopped."""
        engines = {}
        for label in labels:
            mine = [o for o in outcomes if o.run.label == label]
            w = width(mine)
            engines[label] = {"repeats": len(mine), "width": None if w != w else w, "met": w <= self.target,
                              "stopped": self.stopped(mine, elapsed) or MAX}
        return {**asdict(self), "min_repeats": MIN_REPEATS, "spent_s": elapsed, "engines": engines}
