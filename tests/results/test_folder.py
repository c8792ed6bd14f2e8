"""One folder, one truth: a folder's results cover every engine run that finished in it, a later run of
some engines adds or replaces its own and keeps the others as they were, and every engine run says when
(UTC, ISO 8601) and where it ran, in results.csv, summary.json and the report."""
from __future__ import annotations

import socket
from datetime import datetime, timezone

from bridge.results.records import utc_display
from tests import support
from tests.support import run_compare

SLOW = "tests.doubles.slow_engine"
ARGS = ("--epochs", "2", "--no-report")


def compare(out, *engines: str, more=()):
    return run_compare("--engines", ",".join(engines), *ARGS, *more, out=out,
                       env=support.environment(BRIDGE_SLOW_ENGINE_S="0.01"))


def runs(run) -> dict:
    return {(e["engine"], e["repeat"]): e for e in run.summary["engines"]}


def utc(text: str) -> datetime:
    t = datetime.fromisoformat(text)
    assert t.tzinfo is not None and t.utcoffset().total_seconds() == 0, text
    return t


def test_every_engine_run_says_when_and_where_it_ran(tmp_path):
    before = datetime.now(timezone.utc).replace(microsecond=0)
    run = compare(tmp_path / "out", "reference", SLOW, more=("--repeats", "2"))
    after = datetime.now(timezone.utc)
    assert run.returncode == 0, run.stderr
    for (engine, repeat), e in runs(run).items():
        assert before <= utc(e["started"]) <= utc(e["ended"]) <= after, (engine, repeat, e)
        assert e["host"] == socket.gethostname() and e["kept"] is False
        rows = run.frame[(run.frame.engine == engine) & (run.frame.repeat == repeat)]
        assert set(rows.started) == {e["started"]} and set(rows.ended) == {e["ended"]}, engine
        assert set(rows.host) == {e["host"]}
    ordered = sorted(runs(run).values(), key=lambda e: e["started"])
    assert all(utc(a["ended"]) <= utc(b["started"]) for a, b in zip(ordered, ordered[1:]))  # one at a time


def test_a_run_of_some_engines_adds_to_the_folder_and_keeps_the_others(tmp_path):
    out = tmp_path / "out"
    first = compare(out, "reference", SLOW)
    assert first.returncode == 0, first.stderr
    then = runs(first)
    # a second run of the reference alone: the slow engine's finished run stays in the results
    second = compare(out, "reference", more=("--fresh",))
    assert second.returncode == 0, second.stderr
    now = runs(second)
    assert set(now) == set(then) == {("reference", 0), (SLOW, 0)}
    kept = now[SLOW, 0]
    assert kept["kept"] is True and kept["status"] == "ok"
    assert (kept["started"], kept["ended"]) == (then[SLOW, 0]["started"], then[SLOW, 0]["ended"])
    assert kept["message"].startswith("kept: finished in an earlier run of this folder at ")
    assert utc(now["reference", 0]["started"]) >= utc(then["reference", 0]["ended"]) and not now["reference", 0]["kept"]
    frame = second.frame
    assert len(frame[frame.engine == SLOW]) == len(first.frame[first.frame.engine == SLOW])
    assert {r["engine"] for r in second.summary["summary"]} == {"reference/float64", f"{SLOW}/slow"}
    assert f"they keep 1 engine run(s) that finished in earlier runs of this folder: {SLOW}/slow" in second.stdout
    # the kept run is compared as any other: parity against the reference that ran now
    assert second.summary["parity"]["runs"][f"{SLOW}/slow"]["pass"] is True
    # but a speed verdict between a run kept from earlier and one run now says they ran apart
    rows = {r["engine"]: r for r in second.summary["summary"]}
    assert rows[f"{SLOW}/slow"]["kept"] is True and rows["reference/float64"]["kept"] is False
    (pair,) = [p for p in second.summary["speed"] if p["engine"] == f"{SLOW}/slow"]
    assert pair["verdict"].endswith(f"{SLOW}/slow ran in an earlier run of this folder"), pair
    assert not any("earlier run" in p["verdict"] for p in first.summary["speed"])
    # a later run of that engine replaces its own run, and keeps the reference
    third = compare(out, SLOW, more=("--fresh",))
    assert third.returncode == 0, third.stderr
    last = runs(third)
    assert utc(last[SLOW, 0]["started"]) >= utc(kept["ended"]) and not last[SLOW, 0]["kept"]
    assert last["reference", 0]["kept"] and last["reference", 0]["started"] == now["reference", 0]["started"]


def test_the_report_says_when_each_run_ran_and_which_were_kept(tmp_path):
    out = tmp_path / "out"
    assert compare(out, "reference", SLOW).returncode == 0
    run = run_compare("--engines", "reference", "--epochs", "2", "--fresh", out=out)
    assert run.returncode == 0, run.stderr
    page = (out / "report.html").read_text()
    started = utc_display(runs(run)[SLOW, 0]["started"])
    assert f"<td>{started}</td>" in page and f"<td>{socket.gethostname()}</td>" in page
    assert "1 of them finished in earlier runs of this folder and are kept as they were" in page
