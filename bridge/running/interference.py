"""What other processes took from the machine while an engine was timed, measured, not guessed.

A time is a measurement of a shared machine: with one core of two busy elsewhere, PyTorch's Iris epoch
went from 2.3 ms to 154 ms while TensorFlow's barely moved. So around every ``train_epoch`` the worker
reads the machine's CPU time (``/proc/stat``: busy and the hypervisor's steal) and the CPU time of its own
process tree (the worker with all its threads, and any process a framework started) and of bridge's own
parent, and records both: their difference is what others used, in cores, while this engine's epochs were
timed. The parent samples the machine the same way before the first engine starts (:func:`sample`).

Linux counts CPU time in clock ticks (100 a second), so one short epoch's share is coarse; a run's share
is the sum over its timed epochs divided by their wall time (:func:`bridge.results.summary.others_cores`),
which averages the ticks out. Where ``/proc`` cannot be read the share is unknown (None), never zero.
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

from ..proctree import descendants

HZ = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
STAT = Path("/proc/stat")


def machine_ticks() -> tuple[int, int] | None:
    """``(busy, steal)`` clock ticks of every CPU since boot (``/proc/stat``'s ``cpu`` line: user, nice,
    system, irq and softirq are busy; idle and iowait are not); None where it cannot be read."""
    try:
        with STAT.open() as fh:
            fields = fh.readline().split()
    except OSError:
        return None
    if not fields or fields[0] != "cpu" or len(fields) < 9:
        return None
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(v) for v in fields[1:9])
    return user + nice + system + irq + softirq, steal


def _ticks(pid: int) -> int | None:
    """User and system clock ticks of process ``pid``, every thread; None when it has ended."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            stat = fh.read()
    except OSError:  # ended meanwhile
        return None
    fields = stat[stat.rindex(")") + 2:].split()  # after the command name, which may hold spaces
    return int(fields[11]) + int(fields[12])  # utime, stime


def helper_ticks(pid: int, also: int | None = None) -> int:
    """Clock ticks of ``pid``'s live descendants and of process ``also`` (bridge's parent, which reads the
    worker's output); processes that ended meanwhile count nothing."""
    pids = descendants(pid) + ([also] if also else [])
    return sum(t for t in (_ticks(p) for p in pids) if t is not None)


def own_seconds() -> float:
    """CPU seconds of this process, every thread, and its children that ended (precise, not in ticks)."""
    times = os.times()
    return times.user + times.system + times.children_user + times.children_system


def own_reading() -> dict | None:
    """A reading (as :class:`Meter`'s) of the machine and of this process alone, every thread: one end of a
    stretch of work this process does itself (the CPU peak's products), where everything else busy on the
    machine, its parent's process group included, counts as others. None where /proc cannot be read."""
    machine = machine_ticks()
    if machine is None:
        return None
    return {"busy": machine[0], "steal": machine[1], "own_s": own_seconds(), "t": time.monotonic(), "hz": HZ}


class Meter:
    """Readings of the machine and of this process tree around each timed stretch: ``start()``, the
    work, then ``stop()`` -> ``{"start": reading, "stop": reading}`` (None where /proc cannot be read),
    a reading being the machine's busy and steal ticks since boot, the CPU seconds of this process (every
    thread, precise: ``os.times``), its descendants and bridge's parent, and the monotonic clock. The
    machine is read last at the start and first at the end, so that reading the others falls outside its
    window. Absolute readings let a run be judged over its epochs or over its whole training.

    A reading is cheap on purpose (0.1 ms: no scan of every process in /proc): any pause right before
    an epoch starts costs a tiny epoch (a 10 ms sleep or Python loop: 16-26% of PyTorch's Iris epoch on
    this project's machine). With a 3 ms scan of /proc in ``start``, PyTorch's Iris epoch after the
    worker's work between epochs was 1.10-1.18x the epoch run back to back; with this reading 1.02-1.08x,
    most of it the evaluation (``bench/between_epochs.py``)."""

    def __init__(self):
        self.pid, self.parent = os.getpid(), os.getppid()  # bridge's runner drains the worker's output
        self._start = None

    def start(self) -> None:
        helpers = helper_ticks(self.pid, self.parent)
        self._start = self._reading(helpers, machine_ticks())

    def stop(self) -> dict | None:
        t, machine, own = time.monotonic(), machine_ticks(), own_seconds()
        helpers = helper_ticks(self.pid, self.parent)
        if self._start is None or machine is None:
            return None
        return {"start": self._start, "stop": {"busy": machine[0], "steal": machine[1],
                                               "own_s": own + helpers / HZ, "t": t, "hz": HZ}}

    @staticmethod
    def _reading(helpers: int, machine: tuple[int, int] | None) -> dict | None:
        own, t = own_seconds(), time.monotonic()
        if machine is None:
            return None
        return {"busy": machine[0], "steal": machine[1], "own_s": own + helpers / HZ, "t": t, "hz": HZ}


def usable_cores() -> tuple[int, str]:
    """How many cores this process may actually use, and why: its CPU affinity, capped by a cgroup CPU
    quota (a container's ``--cpus``), where either exists; else every logical core."""
    try:
        affinity = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        affinity = None
    logical = os.cpu_count() or 1
    quota = _cgroup_quota()
    cores = min(affinity or logical, quota or logical)
    why = [f"its CPU affinity allows {affinity} of {logical}" if affinity is not None and affinity < logical else "",
           f"its cgroup's CPU quota allows {quota}" if quota is not None and quota < logical else ""]
    return max(1, cores), "; ".join(w for w in why if w) or f"every logical core, {logical}"


def _cgroup_quota() -> int | None:
    """The cgroup's CPU limit in whole cores (rounded up), v2's ``cpu.max`` or v1's CFS quota."""
    try:
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()[:2]
    except (OSError, ValueError):
        try:
            quota = Path("/sys/fs/cgroup/cpu/cpu.cfs_quota_us").read_text().strip()
            period = Path("/sys/fs/cgroup/cpu/cpu.cfs_period_us").read_text().strip()
        except OSError:
            return None
    if quota in ("max", "-1"):
        return None
    try:
        return max(1, -(-int(quota) // int(period)))
    except (ValueError, ZeroDivisionError):
        return None


def sample(seconds: float = 1.0) -> float | None:
    """The cores in use on the whole machine (steal included) over ``seconds`` of this process sleeping:
    before any engine starts, what others are doing. None where /proc cannot be read."""
    before = machine_ticks()
    t0 = time.monotonic()
    time.sleep(seconds)
    after = machine_ticks()
    if before is None or after is None:
        return None
    return (after[0] - before[0] + after[1] - before[1]) / HZ / (time.monotonic() - t0)
