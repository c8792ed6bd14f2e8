"""What a run writes: every row of results.csv, the summary (summary.json and the printed table) against
results.csv, checksums.csv.

An engine that trains nothing (tests/doubles/fixed_logits_engine.py) reports known epoch times, import/build
times and per-step losses and has logits computable by hand, so every value of its rows is known here.
It runs with the reference, 4 epochs, 3 repeats: the summary's first-epoch time must be the median over
repeats of epoch 0's ``epoch_s`` and the steady-state time the median over repeats of the median of the
later epochs, for both engines.
"""
import math

import numpy as np
import pandas as pd
import pytest

from bridge.experiment.plan import open_plan
from bridge.experiment.spec import Spec
from bridge.results import store as results
from bridge.results.summary import format_bytes, format_fraction, format_rate, format_target
from tests.doubles import fixed_logits_engine as fixed
from tests.support import run_compare

ENGINE = "tests.doubles.fixed_logits_engine"
EPOCHS, REPEATS = 4, 3
ARGS = ("--dataset", "iris", "--epochs", str(EPOCHS), "--repeats", str(REPEATS), "--threads", "1")


def cross_entropy(z: np.ndarray, y) -> tuple[float, float]:
    z = np.asarray(z, dtype=np.float64)
    y = np.asarray(y, dtype=np.int64)
    top = z.max(axis=1)
    lse = top + np.log(np.exp(z - top[:, None]).sum(axis=1))
    return float(np.mean(lse - z[np.arange(len(y)), y])), float(np.mean(z.argmax(axis=1) == y))


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    r = run_compare("--engines", f"reference,{ENGINE}", "--no-report", "--quiet", *ARGS,
                    out=tmp_path_factory.mktemp("schema"))
    assert r.returncode == 0, r.stdout + r.stderr
    frame = pd.read_csv(r.out / "results.csv", dtype={"threads": str, "spec_hash": str, "git_commit": str})
    return r.out, open_plan(r.out / "plan"), frame, r.summary, r.stdout


def mine(frame: pd.DataFrame, engine: str = ENGINE) -> pd.DataFrame:
    return frame[frame.engine == engine]


def test_results_csv_has_the_documented_columns(run):
    _, _, frame, summary, _ = run
    assert list(frame.columns) == results.COLUMNS
    assert set(frame.metric) - set(results.MEMORY_METRICS) == {"step_loss", "loss", "accuracy", "epoch_s", "import_s",
                                                               "build_s"}
    # the worker measures these for every engine; the reference's build adds its own (stopwatch)
    assert set(frame[frame.split == "memory"].metric) == {"rss_baseline_bytes", "rss_build_bytes", "rss_peak_bytes",
                                                         "hwm_bytes", "epoch_bytes"}
    spec_hash = Spec(dataset="iris", epochs=EPOCHS, repeats=REPEATS, threads=1).hash()
    assert set(frame.spec_hash) == {spec_hash} == {summary["fingerprint"]["spec_hash"]}


def test_the_fixed_engine_s_identity_columns(run):
    _, _, frame, _, _ = run
    f = mine(frame)
    assert set(f["mode"]) == {"fixed"} and set(f.framework) == {"fixed-logits"}
    assert set(f.framework_version.astype(str)) == {"1.0"} and set(f.device) == {"cpu"}
    assert set(f.threads) == {str(fixed.THREADS)}  # as the engine reports them
    assert set(f.dataset) == {"iris"} and set(f.model) == {"mlp"} and set(f.optimizer) == {"adam"}
    assert sorted(f.repeat.unique()) == list(range(REPEATS))


def test_every_metric_row_of_the_fixed_engine_holds_its_value(run):
    _, plan, frame, _, _ = run
    f = mine(frame)
    steps = plan.steps_per_epoch
    assert steps == 8  # 120 / 16, the partial last batch kept
    for r in range(REPEATS):
        fr = f[f.repeat == r]
        timing = fr[fr.split == "timing"]
        once = timing[timing.metric.isin(["import_s", "build_s"])]
        assert once.epoch.isna().all() and once.step.isna().all()
        assert dict(zip(once.metric, once.value)) == {"import_s": fixed.IMPORT_S, "build_s": fixed.BUILD_S}
        epoch_s = timing[timing.metric == "epoch_s"].sort_values("epoch")
        assert epoch_s.epoch.tolist() == list(range(EPOCHS)) and epoch_s.step.isna().all()
        assert epoch_s.value.tolist() == list(fixed.SECONDS[r][:EPOCHS])
        for e in range(EPOCHS):
            fe = fr[fr.epoch == e]
            factor = fixed.scale(e, r)
            step_rows = fe[fe.metric == "step_loss"].sort_values("step")
            assert set(step_rows.split) == {"train"}
            assert step_rows.step.tolist() == [e * steps + i for i in range(steps)]
            x, y = plan.epoch(e)
            expected = [cross_entropy(fixed.logits(x[b], 3, factor), y[b])[0] for b in plan.batch_slices()]
            np.testing.assert_allclose(step_rows.value.to_numpy(), expected, rtol=1e-9)
            for split in ("train", "test"):
                x, y = plan.split(split)
                loss, acc = cross_entropy(fixed.logits(x, 3, factor), y)
                rows = fe[(fe.split == split) & (fe.metric != "step_loss")]
                assert sorted(rows.metric) == ["accuracy", "loss"] and rows.step.isna().all()
                got = rows.set_index("metric").value
                assert got["loss"] == pytest.approx(loss, rel=1e-9), (r, e, split)
                assert got["accuracy"] == pytest.approx(acc, abs=1e-12), (r, e, split)
    memory = f[f.split == "memory"]  # baseline, peak, VmHWM and epoch bytes once; each epoch's peak
    assert sorted(memory[memory.epoch.isna()].metric) == sorted(["epoch_bytes", "hwm_bytes", "rss_baseline_bytes",
                                                                 "rss_peak_bytes"] * REPEATS)
    assert sorted(memory[memory.epoch.notna()].epoch) == sorted(list(range(EPOCHS)) * REPEATS)
    assert len(f) == REPEATS * (2 + 4 + EPOCHS * (steps + 1 + 4 + 1))


def test_the_reference_s_rows_are_complete(run):
    _, plan, frame, _, _ = run
    f = mine(frame, "reference")
    assert set(f["mode"]) == {"float64"}
    for r in range(REPEATS):
        fr = f[f.repeat == r]
        sl = fr[fr.metric == "step_loss"]
        assert sorted(sl.step.astype(int)) == list(range(EPOCHS * plan.steps_per_epoch))
        assert (sl.epoch.astype(int) == sl.step.astype(int) // plan.steps_per_epoch).all()
        assert sorted(fr[fr.metric == "epoch_s"].epoch.astype(int)) == list(range(EPOCHS))
        for split in ("train", "test"):
            assert len(fr[(fr.split == split) & fr.metric.isin(["loss", "accuracy"])]) == 2 * EPOCHS
    # the reference trains: its train loss falls, and its train and test losses differ
    last = f[(f.epoch == EPOCHS - 1) & (f.metric == "loss") & (f.repeat == 0)].set_index("split").value
    first = f[(f.epoch == 0) & (f.metric == "loss") & (f.repeat == 0)].set_index("split").value
    assert last["train"] < first["train"] and last["train"] != last["test"]


def summary_from_results(frame: pd.DataFrame, engine: str) -> dict:
    """The summary row as documented, computed here from results.csv."""
    f = mine(frame, engine)
    per_repeat_first, per_repeat_steady = [], []
    for r in sorted(f.repeat.unique()):
        t = f[(f.repeat == r) & (f.metric == "epoch_s")]
        per_repeat_first.append(float(t[t.epoch == 0].value.iloc[0]))
        per_repeat_steady.append(float(np.median(t[t.epoch > 0].value)))
    last = f[f.epoch == f.epoch.max()]

    def final(split, metric):
        return float(np.median(last[(last.split == split) & (last.metric == metric)].value))

    return {"first_epoch_s": float(np.median(per_repeat_first)),
            "steady_epoch_s": float(np.median(per_repeat_steady)),
            "train_loss": final("train", "loss"), "test_loss": final("test", "loss"),
            "test_accuracy": final("test", "accuracy")}


@pytest.mark.parametrize("engine", ["reference", ENGINE])
def test_summary_json_agrees_with_results_csv(run, engine):
    _, _, frame, summary, _ = run
    label = f"{engine}/{'float64' if engine == 'reference' else 'fixed'}"
    (row,) = [s for s in summary["summary"] if s["engine"] == label]
    expected = summary_from_results(frame, engine)
    for key, value in expected.items():  # summary.json keeps 10 decimals
        assert row[key] == pytest.approx(value, rel=1e-9, abs=1e-9), key
    assert row["status"] == "ok" and row["runs_ok"] == row["runs_total"] == REPEATS


def test_the_fixed_engine_s_summary_has_its_known_times_and_final_metrics(run):
    _, plan, _, summary, _ = run
    (row,) = [s for s in summary["summary"] if s["engine"] == f"{ENGINE}/fixed"]
    # first epochs 5, 7, 12 -> 7; later-epoch medians 2, 4, 1.5 -> 2
    assert row["first_epoch_s"] == 7.0 and row["steady_epoch_s"] == 2.0
    finals = {}
    for r in range(REPEATS):
        factor = fixed.scale(EPOCHS - 1, r)
        for split in ("train", "test"):
            finals.setdefault(split, []).append(cross_entropy(fixed.logits(plan.split(split)[0], 3, factor),
                                                              plan.split(split)[1]))
    assert row["train_loss"] == pytest.approx(np.median([l for l, _ in finals["train"]]), rel=1e-9)
    assert row["test_loss"] == pytest.approx(np.median([l for l, _ in finals["test"]]), rel=1e-9)
    assert row["test_accuracy"] == pytest.approx(np.median([a for _, a in finals["test"]]), abs=1e-9)
    assert row["train_loss"] != pytest.approx(row["test_loss"], rel=1e-3)


def _time(v: float) -> str:
    return f"{v * 1e3:.1f} ms" if v < 1 else f"{v:.2f} s"


@pytest.mark.parametrize("engine", ["reference", ENGINE])
def test_the_printed_table_shows_results_csv_s_summary(run, engine):
    _, _, frame, summary, stdout = run
    label = f"{engine}/{'float64' if engine == 'reference' else 'fixed'}"
    lines = [" ".join(line.split()) for line in stdout.splitlines() if line.split()[:1] == [label]]
    assert len(lines) == 1, stdout
    s = summary_from_results(frame, engine)
    (row,) = [r for r in summary["summary"] if r["engine"] == label]
    # the steady epoch with its 95% interval (bounds relative to it), which brackets the value computed here
    low, high = row["steady_epoch_s_low"], row["steady_epoch_s_high"]
    assert low <= s["steady_epoch_s"] <= high and row["repeats_timed"] == REPEATS and row["interval_reason"] == ""
    steady = f"{_time(s['steady_epoch_s'])} " + " ".join(
        f"{(v - s['steady_epoch_s']) / s['steady_epoch_s']:+.0%}" for v in (low, high)).join("()").replace(" ", ", ")
    steady += " UNSTABLE" if row["unstable"] else ""
    machine = "-" if row["others_cores"] is None else f"{'DISTURBED' if row['disturbed'] else 'quiet'} " \
        f"{row['others_cores']:.2f}"
    parity = "reference" if row["parity_role"] == "reference" else \
        f"{row['parity_max_rel_diff']:.1e} {'ok' if row['parity_pass'] else 'FAIL'}"
    tail = (f"ok {REPEATS}/{REPEATS} {parity} {_time(s['first_epoch_s'])} {steady} "
            f"{format_rate(row['examples_per_s'])} {format_fraction(row['peak_fraction'])} {machine} "
            f"{format_bytes(row['rss_peak_bytes'])} "
            f"{s['train_loss']:.4f} {s['test_loss']:.4f} {s['test_accuracy']:.4f} {format_target(row)}")
    assert lines[0].endswith(tail), (lines[0], tail)
    header = " ".join(stdout.splitlines()[0].split())
    assert header.endswith("parity first epoch steady epoch (95%) examples/s of peak machine peak memory train loss "
                           "test loss test acc to target")


def test_summary_json_engines_and_checksums(run):
    out, plan, _, summary, _ = run
    runs = [(e["engine"], e["mode"], e["repeat"]) for e in summary["engines"]]
    assert sorted(runs) == sorted((eng, mode, r) for eng, mode in (("reference", "float64"), (ENGINE, "fixed"))
                                  for r in range(REPEATS))
    for e in summary["engines"]:
        assert e["status"] == "ok" and e["epochs_completed"] == EPOCHS and e["message"] == ""
    assert summary["fingerprint"]["threads_requested"] == 1
    assert summary["batches_identical"] is True
    checksums = pd.read_csv(out / "checksums.csv", dtype={"crc32c": str})
    for (engine, mode, repeat), g in checksums.groupby(["engine", "mode", "repeat"]):
        for e in range(EPOCHS):
            ge = g[g.epoch == e].sort_values("step")
            assert ge.step.tolist() == list(range(plan.steps_per_epoch))
            assert ge.crc32c.tolist() == plan.expected_checksums(e), (engine, mode, repeat, e)
    assert len(checksums) == 2 * REPEATS * EPOCHS * plan.steps_per_epoch
    assert not math.isnan(summary["summary"][0]["steady_epoch_s"])


def test_the_files_hold_typed_data_counted_from_zero(run):
    """One convention: repeat, epoch and step are integers from 0 in the files (written as ``3``, never
    ``3.0``; empty in a whole run's rows), the same numbers the screen names; summary.json's rows hold
    counts, booleans and fixed words, and tables format them."""
    out, _, _, summary, _ = run
    raw = pd.read_csv(out / "results.csv", dtype=str, keep_default_na=False)
    for column in ("repeat", "epoch", "step"):
        assert all(v == "" or v.isdigit() for v in raw[column]), (column, sorted(set(raw[column]))[:5])
    assert sorted(set(raw.repeat)) == [str(r) for r in range(REPEATS)]
    assert sorted({int(v) for v in raw.epoch if v}) == list(range(EPOCHS))
    assert (raw[raw.metric == "import_s"].epoch == "").all()
    frame = results.read_frame(out)
    assert str(frame.epoch.dtype) == "Int64" and str(frame.repeat.dtype) == "int64"
    assert summary["format"] == results.FORMAT == 2
    assert {e["repeat"] for e in summary["engines"]} == set(range(REPEATS))
    for row in summary["summary"]:
        assert "runs" not in row and "parity" not in row and "precision" not in row
        assert row["runs_ok"] == row["runs_total"] == REPEATS
        assert row["parity_role"] in ("reference", "compared")
        assert all(not isinstance(v, str) or len(v) < 80 for v in row.values())


def test_a_format_1_folder_is_read_as_format_2(run, tmp_path):
    """A folder written before summary.json's rows were typed (format 1: ``runs`` "3/3", ``parity``
    "2.1e-07 ok", epochs written as floats) is read as this format, and its report drawn from it."""
    import json
    import shutil

    from bridge.presentation import report
    from bridge.results.summary import format_parity, format_runs

    out = run[0]
    old = tmp_path / "old"
    shutil.copytree(out, old, ignore=shutil.ignore_patterns("plan", "workers"))
    doc = json.loads((old / "summary.json").read_text())
    new_rows = {r["engine"]: dict(r) for r in doc["summary"]}
    cells = {label: (format_runs(r), format_parity(r)) for label, r in new_rows.items()}
    for row in doc["summary"]:
        row["runs"], row["parity"] = cells[row["engine"]]
        for key in ("runs_ok", "runs_total", "parity_role"):
            row.pop(key)
    doc["format"] = 1
    (old / "summary.json").write_text(json.dumps(doc))
    frame = pd.read_csv(old / "results.csv", dtype=str, keep_default_na=False)
    for column in ("epoch", "step"):
        frame[column] = [f"{float(v):.1f}" if v else "" for v in frame[column]]
    frame.to_csv(old / "results.csv", index=False)

    read = results.read_summary(old)
    assert read["format"] == 2 and read["read_from_format"] == 1
    for row in read["summary"]:
        assert (format_runs(row), format_parity(row)) == cells[row["engine"]]
        assert row["runs_ok"] == row["runs_total"] == REPEATS and row["parity_role"] == new_rows[row["engine"]]["parity_role"]
    assert str(results.read_frame(old).epoch.dtype) == "Int64"
    page = report.build(old).read_text()
    assert f"{REPEATS}/{REPEATS}" in page and json.loads((old / "summary.json").read_text())["format"] == 1


def test_the_table_fits_a_narrow_terminal(run, tmp_path):
    """At 80 columns the table keeps engine, parity, steady epoch and test accuracy, says which columns it
    left out and where they are; with room (or no width known, as in a pipe) it shows them all."""
    from bridge.results.summary import format_table
    from tests.support import environment

    rows = pd.DataFrame(run[3]["summary"])
    full = format_table(rows)
    assert max(map(len, full.splitlines())) > 80 and "framework" in full.splitlines()[0]
    narrow = format_table(rows, width=80)
    assert max(map(len, narrow.splitlines())) <= 80, narrow
    # this engine's name is 39 characters: the kept columns wrap into a second block
    assert all(c in narrow for c in ("engine", "parity", "steady epoch (95%)", "test acc")), narrow
    assert "framework" not in narrow.split("(")[0] and "columns left out at 80 columns: framework, status" in narrow.replace("\n", " ")
    assert format_table(rows, width=400) == full
    proc = run_compare("--engines", f"reference,{ENGINE}", "--no-report", "--quiet", *ARGS, out=tmp_path,
                       env=environment(COLUMNS="80"))
    assert proc.returncode == 0, proc.stderr
    table = proc.stdout.splitlines()
    assert table[0].lstrip().startswith("engine") and max(map(len, table)) <= 80, proc.stdout
    assert any(line.startswith("(") and "left out" in line for line in table), proc.stdout
