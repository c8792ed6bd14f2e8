"""The time a sweep has left (bridge.sweep.progress): arithmetic on the points' events, fed here with
explicit times, and the lines the sweep prints from them."""
from __future__ import annotations

import io

import pytest

from bridge.sweep.grid import points
from bridge.sweep.progress import Remaining, SweepProgress

RUN = ("reference/float64", 0)


def test_nothing_is_estimated_before_a_point_finishes_or_trains_an_epoch():
    left = Remaining(3)
    assert left.left(0.0) is None
    left.start("a", 0.0, "w0")
    left.plan("a", epochs=10, runs=2)
    assert left.left(5.0) is None


def running(left: Remaining, key: str, t: float, worker: str, epochs: int, runs: int, done: int = 0) -> Remaining:
    """Point ``key`` started at ``t`` on ``worker``, planned, with ``done`` epochs of :data:`RUN` trained."""
    left.start(key, t, worker)
    left.plan(key, epochs=epochs, runs=runs)
    for epoch in range(done):
        left.epoch(key, RUN, epoch)
    return left


def test_before_any_point_finished_the_running_point_s_own_pace_counts():
    left = running(Remaining(3), "a", 0.0, "w0", epochs=10, runs=1, done=2)
    # 2 of 10 epochs in 4 s: 20 s a point; 16 s left of this one and 20 s for each of the other two
    assert left.left(4.0) == pytest.approx(16 + 2 * 20)


def test_the_estimate_only_falls_while_the_last_point_runs_even_when_it_is_slower():
    left = Remaining(3)
    for key, t in (("a", 0.0), ("b", 10.0)):
        left.start(key, t, "w0")
        left.plan(key, epochs=10, runs=2)
        left.finish(key, t + 10.0)  # 10 s each
    left.start("c", 20.0, "w0")
    left.plan("c", epochs=10, runs=2)
    seen = [left.left(20.0)]
    assert seen[0] == pytest.approx(10.0)
    for epoch in range(10):  # the first engine run, twice as slow as the points before
        left.epoch("c", ("reference/float64", 0), epoch)
        seen.append(left.left(21.0 + epoch))
    seen.append(left.left(60.0))  # a long pause before the second run: time alone adds nothing
    for epoch in range(10):
        left.epoch("c", ("keras/fit", 0), epoch)
        seen.append(left.left(61.0 + epoch))
    assert seen[10] == pytest.approx(5.0) and seen[-1] == pytest.approx(0.0)
    assert all(b <= a for a, b in zip(seen, seen[1:])), seen


def test_an_engine_run_that_ended_early_counts_whole():
    left = Remaining(2)
    left.start("a", 0.0, "w0")
    left.plan("a", epochs=10, runs=2)
    left.finish("a", 10.0)
    running(left, "b", 10.0, "w0", epochs=10, runs=2, done=3)
    left.run_ended("b", RUN)  # diverged after 3 epochs
    assert left.fraction("b") == pytest.approx(0.5)
    assert left.left(12.0) == pytest.approx(5.0)


def test_a_point_started_again_after_its_worker_was_lost_starts_over():
    left = running(Remaining(1), "a", 0.0, "w0", epochs=4, runs=1, done=3)
    assert left.fraction("a") == pytest.approx(0.75)
    left.start("a", 8.0, "w1")
    assert left.fraction("a") == 0.0
    left.plan("a", epochs=4, runs=1)
    left.epoch("a", RUN, 0)
    assert left.left(10.0) == pytest.approx(6.0)  # 2 s an epoch on the new worker, 3 epochs left


def test_points_on_several_workers_share_the_work_left():
    left = Remaining(6)
    for i, key in enumerate("ab"):
        left.start(key, 0.0, f"w{i}")
        left.plan(key, epochs=10, runs=1)
        left.finish(key, 10.0)
    left.start("c", 10.0, "w0")
    left.start("d", 10.0, "w1")
    for key in "cd":
        left.plan(key, epochs=10, runs=1)
        for epoch in range(5):
            left.epoch(key, RUN, epoch)
    # two running points half done (5 s each) and two waiting (10 s each), on two workers
    assert left.left(15.0) == pytest.approx((5 + 5 + 2 * 10) / 2)


def test_the_printed_lines_carry_the_estimate():
    pts = points({"dataset": "iris"}, {"batch_size": ["8", "16"]})
    now = [0.0]
    out = io.StringIO()
    progress = SweepProgress(pts, 2, file=out, clock=lambda: now[0])
    a, b = pts
    progress.on_event(("t", {"kind": "point-start", "point": a.key, "worker": "tcp://127.0.0.1:1"}))
    progress.on_event({"kind": "planned", "point": a.key, "epochs": 3, "runs": 1})
    now[0] = 6.0
    progress.finished(a, "done")
    progress.on_event({"kind": "point-start", "point": b.key, "worker": "tcp://127.0.0.1:1"})
    progress.on_event({"kind": "planned", "point": b.key, "epochs": 3, "runs": 1})
    now[0] = 8.0
    progress.on_event({"kind": "engine", "point": b.key, "engine": RUN[0], "repeat": 0, "event": "epoch", "epoch": 0})
    progress.on_event({"kind": "engine", "point": b.key, "engine": RUN[0], "repeat": 0, "event": "prepared"})
    lines = out.getvalue().splitlines()
    assert lines[0] == "[0/2 points, 0 s elapsed] point batch_size=8 started on tcp://127.0.0.1:1"
    assert lines[1] == "[1/2 points, 6 s elapsed, ~6 s left] point batch_size=8 done"
    assert lines[3] == "[1/2 points, 8 s elapsed, ~4 s left]   batch_size=16: reference/float64 repeat 0 running"
