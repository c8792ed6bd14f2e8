"""``--repeats auto``: repeats are added, engines interleaved, until each engine's steady epoch is known to
the precision asked, or the most repeats, or the time budget (bridge.running.adaptive).

The engine is a stand-in of controlled noise (tests/doubles/fixed_logits_engine.py with
``BRIDGE_FIXED_STEADY_S`` and ``BRIDGE_FIXED_SPREAD``: repeat ``r`` off by ``1 ± spread/(r+1)``), so the
width its interval reaches after each repeat is computable here: the run must stop at the first repeat
that reaches the target, not before and not after.
"""
import pytest

from bridge.results.intervals import median_interval
from bridge.results.records import EngineMode, Outcome
from bridge.running.adaptive import BUDGET, FAILED, MAX, MET, MIN_REPEATS, Precision
from tests.doubles import fixed_logits_engine as fixed
from tests.support import environment, run_compare

FIXED = "tests.doubles.fixed_logits_engine"
LABEL = f"{FIXED}/fixed"
EPOCHS, STEADY, SPREAD = 5, 0.01, 0.2


def width_after(n: int) -> float:
    """The relative width of the stand-in's steady-epoch interval over its first ``n`` repeats."""
    return median_interval([[fixed.steady_seconds(STEADY, e, r, SPREAD) for e in range(1, EPOCHS)]
                            for r in range(n)]).relative_width


def auto(tmp_path, *extra):
    return run_compare("--engines", FIXED, "--epochs", str(EPOCHS), "--repeats", "auto", *extra, "--no-report",
                       out=tmp_path / "out",
                       env=environment(BRIDGE_FIXED_STEADY_S=str(STEADY), BRIDGE_FIXED_SPREAD=str(SPREAD)))


def test_repeats_stop_at_the_first_that_reaches_the_target(tmp_path):
    target = 0.15
    expected = next(n for n in range(MIN_REPEATS, 13) if width_after(n) <= target)
    assert expected > MIN_REPEATS + 1  # the target takes more than the first repeats: a real test of stopping
    run = auto(tmp_path, "--precision", str(target), "--max-repeats", "12")
    assert run.returncode == 0, run.stderr
    assert sorted(run.frame.repeat.unique()) == list(range(expected))
    got = run.summary["timing"]["adaptive"]
    assert got["target"] == target and got["max_repeats"] == 12 and got["min_repeats"] == MIN_REPEATS
    engine = got["engines"][LABEL]
    assert engine == {"repeats": expected, "width": pytest.approx(width_after(expected)), "met": True,
                      "stopped": MET}
    (row,) = run.summary["summary"]
    assert row["repeats_timed"] == expected and "precision" not in row  # timing.adaptive holds it as data
    assert "repeats auto (until each steady epoch's 95% interval spans at most 15%" in run.stdout
    table = run.stdout[run.stdout.index(" engine "):]
    assert "precision" in table.splitlines()[0] and f"met {width_after(expected):.0%}" in table


def test_a_target_out_of_reach_stops_at_the_most_repeats_and_says_so(tmp_path):
    run = auto(tmp_path, "--precision", "0.01", "--max-repeats", "4")
    assert run.returncode == 0, run.stderr
    assert sorted(run.frame.repeat.unique()) == [0, 1, 2, 3]
    engine = run.summary["timing"]["adaptive"]["engines"][LABEL]
    assert engine["met"] is False and engine["stopped"] == MAX and engine["repeats"] == 4
    assert f"short {width_after(4):.0%} (max repeats)" in run.stdout


def test_the_budget_stops_new_repeats_but_every_engine_gets_one(tmp_path):
    run = auto(tmp_path, "--budget", "0.001")
    assert run.returncode == 0, run.stderr
    assert list(run.frame.repeat.unique()) == [0]
    engine = run.summary["timing"]["adaptive"]["engines"][LABEL]
    assert engine == {"repeats": 1, "width": None, "met": False, "stopped": BUDGET}
    assert "short no interval (budget spent)" in run.stdout


@pytest.mark.parametrize("args, named", [
    (("--repeats", "3", "--precision", "0.1"), "--precision applies only with --repeats auto"),
    (("--repeats", "auto", "--max-repeats", "1"), "--max-repeats must be 2 or more"),
    (("--repeats", "auto", "--precision", "0"), "--precision must be a fraction between 0 and 2"),
    (("--repeats", "auto", "--budget", "-5"), "--budget must be seconds greater than zero"),
])
def test_bad_adaptive_options_are_one_line_usage_errors(tmp_path, args, named):
    run = run_compare("--engines", "reference", *args, out=tmp_path / "out")
    assert run.returncode == 2
    assert len(run.stderr.strip().splitlines()) == 1 and named in run.stderr
    assert not (tmp_path / "out").exists()


def outcomes(times: list[list[float]], status: str = "ok") -> list[Outcome]:
    run = EngineMode("e", "m", "fw")
    return [Outcome(run, r, status, epochs=[{"seconds": 1.0}] + [{"seconds": t} for t in ts])
            for r, ts in enumerate(times)]


def test_the_stopping_rule():
    p = Precision(target=0.10, max_repeats=5, budget_s=60)
    steady = [[1.0, 1.01, 0.99]] * 3
    assert p.stopped([], 0.0) is None  # every engine starts
    assert p.stopped([], 999.0) is None  # ... even past the budget: one repeat each
    assert p.stopped(outcomes(steady[:2]), 0.0) is None  # fewer than MIN_REPEATS: go on, whatever the width
    assert p.stopped(outcomes(steady), 0.0) == MET
    spread = [[1.0], [2.0], [1.5]]
    assert p.stopped(outcomes(spread), 0.0) is None
    assert p.stopped(outcomes(spread), 61.0) == BUDGET
    assert p.stopped(outcomes(spread * 2)[:5], 0.0) == MAX
    assert p.stopped(outcomes(steady, status="crashed"), 0.0) == FAILED  # a failing engine is not repeated
