"""What the work between two epochs costs the next one: an engine's ``train_epoch`` in one process,
epochs interleaved, after each kind of pause, against the epoch run back to back.

bridge does things between epochs that a standalone script does not: it evaluates both splits, checks
the batches' checksums and reads what other processes took from the machine (``Meter``). Timed
epochs of a tiny model (the Iris MLP: 8 steps, a few ms) are sensitive to any of it. For every round
this runs, per condition, one warm-up epoch, the condition's work, then one timed epoch, and prints
the median timed epoch of each condition over the rounds and its ratio to ``back to back``.

Conditions: ``back to back`` (nothing), ``evaluate`` (both splits, as the worker does), ``worker`` (the
worker's order: meter stop, evaluation, checksums, meter start), ``worker + scan`` (the same with a scan
of every process's stat file before the meter's start, as the meter did until it read only the worker's
own process tree), ``scan /proc`` alone, and pauses of 3 and 10 ms, sleeping and spinning in Python.

usage: python bench/between_epochs.py [--engine torch] [--rounds 80] [--threads 2]
"""
from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np

from bridge.contract import Job
from bridge.experiment import plan as batchplan
from bridge.experiment.plan import batch_checksum
from bridge.experiment.spec import from_mapping
from bridge.running.interference import Meter
from bridge.running.selection import module as engine_module
from bridge.running.worker import evaluate


def scan_proc() -> int:
    """Every process's CPU ticks, read from /proc: a scan as long as the machine has processes."""
    total = 0
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as fh:
                    fields = fh.read().rsplit(")", 1)[1].split()
                total += int(fields[11]) + int(fields[12])
            except (OSError, IndexError):
                continue
    return total


def spin(seconds: float) -> None:
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python bench/between_epochs.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--engine", default="torch", help="a Python engine (default torch)")
    p.add_argument("--rounds", type=int, default=80)
    p.add_argument("--threads", type=int, default=2)
    a = p.parse_args(argv)
    module = engine_module(a.engine)
    with tempfile.TemporaryDirectory() as tmp:
        plan = batchplan.prepare(from_mapping({"dataset": "iris"}), Path(tmp) / "plan")
        job = Job(a.engine, module.MODES[0], 0, str(Path(tmp) / "plan"), "cpu", a.threads, "exact",
                  str(Path(tmp) / "record.jsonl"))
        session, _ = module.prepare(job)
        slices = plan.batch_slices()
        x, y = plan.epoch(1)
        meter = Meter()

        def evaluate_both():
            for split in ("train", "test"):
                evaluate(module, session, plan, split)

        def worker():
            meter.stop()
            evaluate_both()
            [batch_checksum(x[s], y[s]) for s in slices]
            meter.start()

        def worker_scanning():  # as the worker was while its meter scanned /proc before each epoch
            meter.stop()
            evaluate_both()
            [batch_checksum(x[s], y[s]) for s in slices]
            scan_proc()
            meter.start()

        conditions = {"back to back": lambda: None, "evaluate": evaluate_both, "worker": worker,
                      "worker + scan": worker_scanning, "scan /proc": scan_proc, "sleep 3 ms": lambda: time.sleep(0.003),
                      "sleep 10 ms": lambda: time.sleep(0.01), "spin 3 ms": lambda: spin(0.003),
                      "spin 10 ms": lambda: spin(0.01)}
        times = {name: [] for name in conditions}
        meter.start()
        for _ in range(a.rounds):
            for name, work in conditions.items():
                module.train_epoch(session, x, y)
                work()
                times[name].append(module.train_epoch(session, x, y).seconds)
    base = float(np.median(times["back to back"]))
    t0 = time.perf_counter()
    scan_proc()
    print(f"{a.engine} Iris epoch after each kind of work, median of {a.rounds} (a /proc scan takes "
          f"{(time.perf_counter() - t0) * 1e3:.1f} ms here):")
    for name, values in times.items():
        print(f"  {name:15s} {np.median(values) * 1e3:7.3f} ms  {np.median(values) / base:.3f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
