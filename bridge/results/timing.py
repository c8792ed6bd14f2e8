"""How far an engine run's times can be trusted: their confidence intervals (:mod:`.intervals`), what
other processes took from the machine while they were measured, and whether they are stable enough to
compare. Every time bridge shows carries these, so a number is never read without its caveats.
"""
from __future__ import annotations

import os
from typing import TYPE_CHECKING

import numpy as np

from .intervals import Interval, median_interval, ratio_interval

if TYPE_CHECKING:  # frames are handed in: bridge.compare reads the thresholds without loading pandas
    import pandas as pd

DISTURBED_CORES = 0.25
"""A run whose timed epochs shared the machine with other processes using more than this many cores on
average (the CPU time they took, plus the hypervisor's steal, over the epochs' wall time;
:mod:`bridge.running.interference` measures it) is ``disturbed``: a busy core elsewhere reads about 1.0, a
quiet machine 0.00 to 0.05."""
UNSTABLE_WIDTH = 0.5
"""An engine is ``unstable`` when its steady epoch's 95% interval spans more than this fraction of its
median (about ±25%), or, with one repeat and so no interval, when its steady epochs' interquartile range
does: differences smaller than its own spread cannot be read from it."""
MIN_STEADY_EPOCHS = 3
"""Fewer steady epochs than this (``--epochs 1`` has none, 2 has one per repeat) make an engine unstable."""


MIN_MEASURED_S = 0.5
"""Below this many seconds of timed epochs, the CPU the machine spent is counted over the run's whole
training instead (from its first epoch's start to its last one's end): Linux counts CPU time in ticks of
10 ms, and a few milliseconds of Iris epochs hold too few of them. Below it too, the share is unknown."""


def _share(pairs: list) -> tuple[float, float]:
    """(cores others used, wall seconds) over ``(start, stop)`` reading pairs of the machine."""
    hz = pairs[0][0]["hz"]
    wall = sum(b["t"] - a["t"] for a, b in pairs)
    busy = sum(b["busy"] - a["busy"] for a, b in pairs) / hz
    steal = sum(b["steal"] - a["steal"] for a, b in pairs) / hz
    own = sum(b["own_s"] - a["own_s"] for a, b in pairs)
    return ((max(0.0, busy - own) + steal) / wall if wall > 0 else float("nan")), wall


NOISE = 1.05
"""Speed verdicts: one time is ``slower`` than another when the 95% interval of their ratio lies wholly
above this factor, ``faster`` when wholly below its inverse, and ``within noise`` otherwise."""


def verdict(ratio: Interval) -> str:
    """``slower``, ``faster``, ``within noise``, or why no verdict can be given (``ratio``: a time over
    another, :func:`bridge.results.intervals.ratio_interval`)."""
    if not ratio.known:
        return f"no verdict: {ratio.reason}"
    if ratio.low > NOISE:
        return "slower"
    if ratio.high < 1 / NOISE:
        return "faster"
    return "within noise"


def steady_groups(frame: pd.DataFrame, engine: str, mode: str) -> list[np.ndarray]:
    """Each repeat's steady epoch seconds of one engine run, from results.csv's frame."""
    t = frame[(frame.metric == "epoch_s") & (frame.epoch > 0) & (frame.engine == engine) & (frame["mode"] == mode)]
    return [g.value.to_numpy() for _, g in t.groupby("repeat")]


def caveats(row: dict) -> list[str]:
    """What makes a summary row's time a poor basis for a speed verdict: ``disturbed``, ``unstable``."""
    return [word for word in ("disturbed", "unstable") if row.get(word)]


def qualified(ratio: Interval, notes: list[str]) -> str:
    """:func:`verdict` of ``ratio``, followed by what weakens it (``notes``, e.g. ``keras/fit disturbed``)."""
    v = verdict(ratio)
    return f"{v}, but {' and '.join(notes)}" if notes else v


def speed_ratios(frame: pd.DataFrame, rows: list[dict]) -> list[dict]:
    """Every pair of engine runs (summary ``rows``) that finished and did not fail parity: the steady epoch of
    ``engine`` over that of ``baseline``, its 95% interval and verdict, which names a run that was disturbed
    or unstable, and one of the two that ran in an earlier run of the folder (``kept``) while the other ran
    now: their times were taken apart, under whatever each time's load was."""
    usable = [r for r in rows if r["status"] in ("ok", "diverged") and r.get("parity_pass") is not False]
    groups = {r["engine"]: steady_groups(frame, *r["engine"].split("/", 1)) for r in usable}
    notes = {r["engine"]: [f"{r['engine']} {c}" for c in caveats(r)] for r in usable}
    earlier = {r["engine"] for r in usable if r.get("kept")}  # kept from an earlier run of the folder
    out = []
    for baseline, base in groups.items():
        for engine, mine in groups.items():
            if engine == baseline or not base or not mine:
                continue
            iv = ratio_interval(mine, base)
            apart = [f"{e} ran in an earlier run of this folder" for e in (engine, baseline) if e in earlier] \
                if (engine in earlier) != (baseline in earlier) else []  # another time, maybe another load
            out.append({"engine": engine, "baseline": baseline, "ratio": iv.point, "low": iv.low, "high": iv.high,
                        "verdict": qualified(iv, notes[engine] + notes[baseline] + apart)})
    return out


def others_cores(readings: list) -> float | None:
    """The cores other processes (and the hypervisor's steal) took on average while a run's epochs were
    timed (``readings``: the ``machine`` record of each epoch, :class:`bridge.running.interference.Meter`),
    or over its whole training where the epochs are too short to count (:data:`MIN_MEASURED_S`); None when
    not measured, or too short to measure either way. Sums before dividing: one short epoch is a few
    clock ticks, its busy and own time fall on different sides of a tick by chance."""
    readings = [r for r in readings if r]
    if not readings:
        return None
    cores, wall = _share([(r["start"], r["stop"]) for r in readings])
    if wall >= MIN_MEASURED_S:
        return cores
    cores, wall = _share([(readings[0]["start"], readings[-1]["stop"])])
    return cores if wall >= MIN_MEASURED_S else None


def describe_others(cores: float, total: int | None = None) -> str:
    """``others used 0.97 of 2 cores``."""
    return f"others used {cores:.2f} of {total or os.cpu_count()} cores"


def _unstable(steady: Interval, groups: list[np.ndarray]) -> str:
    """Why an engine's steady epoch is too unsteady to compare; empty when it is steady enough."""
    n = sum(len(g) for g in groups)
    if n < MIN_STEADY_EPOCHS:
        return f"only {n} steady epoch(s); run more --epochs"
    if steady.known:
        if steady.relative_width > UNSTABLE_WIDTH:
            return f"its 95% interval spans {steady.relative_width:.0%} of its median"
        return ""
    pooled = np.concatenate(groups)
    q1, median, q3 = np.percentile(pooled, [25, 50, 75])
    if median > 0 and (q3 - q1) / median > UNSTABLE_WIDTH:
        return f"its steady epochs' interquartile range spans {(q3 - q1) / median:.0%} of their median"
    return ""


def timing(frame: pd.DataFrame, outcomes: list, examples: int | None) -> dict:
    """The summary row's timing fields of one engine run (``frame``: its results.csv rows of the repeats
    compared; ``outcomes``: those repeats): medians with 95% intervals (or why there is none), the cores others took (the worst repeat) and the verdicts ``disturbed`` and ``unstable``."""
    t = frame[frame.metric == "epoch_s"]
    first_groups = [g.value.to_numpy() for _, g in t[t.epoch == 0].groupby("repeat")]
    steady_groups = [g.value.to_numpy() for _, g in t[t.epoch > 0].groupby("repeat")]
    first, steady = median_interval(first_groups), median_interval(steady_groups)
    rate = steady.scaled(examples) if examples else Interval(float("nan"), reason="no work known")
    shares = [s for s in (others_cores([ep.get("machine") for ep in o.epochs]) for o in outcomes) if s is not None]
    others = max(shares) if shares else float("nan")
    unstable = _unstable(steady, [g for g in steady_groups if len(g)]) if steady_groups else ""
    return {"first_epoch_s": first.point, "first_epoch_s_low": first.low, "first_epoch_s_high": first.high,
            "steady_epoch_s": steady.point, "steady_epoch_s_low": steady.low, "steady_epoch_s_high": steady.high,
            "examples_per_s_low": rate.low, "examples_per_s_high": rate.high,
            "repeats_timed": steady.repeats, "interval_reason": steady.reason,
            "others_cores": others, "disturbed": bool(shares) and others > DISTURBED_CORES,
            "unstable": bool(unstable), "unstable_reason": unstable}
