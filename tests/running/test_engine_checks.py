"""The worker checks what every engine returns, and each misbehaviour ends as its own status.

Each test runs ``python -m bridge.compare --quiet`` with the reference next to one mode of
tests/doubles/misbehaving_engines.py (the reference's training, then one thing wrong) and reads what a user
reads: the exit code, the one line on stderr, summary.json and results.csv. The reference always keeps
its results. Statuses and exit codes: a divergence is a result (exit 0), a mismatch or an error is a
failure (exit 1).
"""
import json
from pathlib import Path
from types import SimpleNamespace

from tests.doubles import misbehaving_engines
from tests.support import run_compare

ENGINE = "tests.doubles.misbehaving_engines"
EPOCHS = 2
IRIS_STEPS = 8  # 120 training examples in batches of 16, the last one partial


def compare(tmp_path: Path, mode: str) -> SimpleNamespace:
    # a worker blocked on a full stdout pipe would sit out its whole timeout: keep it short
    r = run_compare("--engines", f"reference,{ENGINE}:{mode}", "--dataset", "iris", "--epochs", str(EPOCHS),
                    "--timeout", "60", "--quiet", "--no-report", out=tmp_path / "out")
    runs = {e["engine"]: e for e in r.summary["engines"]}
    rows = {row["engine"].split("/")[0]: row for row in r.summary["summary"]}
    return SimpleNamespace(proc=r.proc, out=r.out, summary=r.summary, run=runs[ENGINE], reference=runs["reference"],
                           row=rows[ENGINE], frame=r.frame)


def assert_one_line(r: SimpleNamespace, status: str, text: str) -> None:
    """The run's status, and its message, containing ``text``, on stderr exactly once and on one line."""
    assert r.run["status"] == status, r.run["message"]
    message = r.run["message"]
    assert message.startswith(f"{ENGINE}/{r.run['mode']} ") and text in message, message
    assert "\n" not in message
    # --quiet: the message is all there is on stderr, and only once
    assert [line for line in r.proc.stderr.splitlines() if line.strip()] in (
        [message], [f"  {message}"], [f"warning: {message}"]), r.proc.stderr


def assert_reference_kept(r: SimpleNamespace) -> None:
    assert r.reference["status"] == "ok" and r.reference["epochs_completed"] == EPOCHS
    ref = r.frame[(r.frame.engine == "reference") & (r.frame.metric == "accuracy")]
    assert sorted(ref.epoch.unique()) == list(range(EPOCHS))
    assert "reference/float64" in r.proc.stdout


def test_a_wrong_number_of_losses_is_an_error(tmp_path):
    r = compare(tmp_path, "short")
    assert r.proc.returncode == 1
    assert_one_line(r, "error", f"failed: train_epoch returned {IRIS_STEPS - 1} losses for epoch 0; "
                                f"the plan has {IRIS_STEPS} batches")
    assert_reference_kept(r)


def test_a_nan_loss_is_a_divergence_that_keeps_its_epochs_and_exits_zero(tmp_path):
    r = compare(tmp_path, "nan")
    assert r.proc.returncode == 0, r.proc.stderr
    e, step = misbehaving_engines.NAN_EPOCH, misbehaving_engines.NAN_STEP
    assert_one_line(r, "diverged", f"diverged: first non-finite loss at epoch {e} step {step} (nan; "
                                   f"results.csv step {e * IRIS_STEPS + step})")
    mine = r.frame[r.frame.engine == ENGINE]
    assert sorted(mine[mine.metric == "accuracy"].epoch.unique()) == list(range(e + 1))
    losses = mine[mine.metric == "step_loss"].sort_values("step").value
    assert losses.iloc[:e * IRIS_STEPS + step].notna().all() and losses.iloc[e * IRIS_STEPS + step:].isna().all()
    assert r.row["status"] == "diverged"
    assert_reference_kept(r)


def test_a_rerun_reuses_a_diverged_run_as_the_result_it_is(tmp_path):
    first = compare(tmp_path, "nan")
    record = Path(first.run["log"]).with_suffix(".jsonl")
    before = record.stat().st_mtime_ns
    again = compare(tmp_path, "nan")  # the same command into the same folder
    assert again.proc.returncode == 0, again.proc.stderr
    assert record.stat().st_mtime_ns == before  # not run again
    assert again.run["status"] == "diverged" and again.run["message"].startswith(first.run["message"])
    assert "finished in an earlier run of this spec" in again.run["message"]
    assert again.reference["message"].startswith("reused: ")
    assert [line for line in again.proc.stderr.splitlines() if line.strip()] == [f"warning: {again.run['message']}"]


def test_non_finite_logits_are_a_divergence(tmp_path):
    r = compare(tmp_path, "nan_logits")
    assert r.proc.returncode == 0, r.proc.stderr
    assert_one_line(r, "diverged", f"non-finite logits for 1 of 120 train examples after epoch "
                                   f"{misbehaving_engines.NAN_EPOCH}")
    last = r.frame[(r.frame.engine == ENGINE) & (r.frame.epoch == misbehaving_engines.NAN_EPOCH)]
    assert last[last.metric.isin(["loss", "accuracy"])].value.isna().all()  # not an accuracy of NaN logits
    assert_reference_kept(r)


def test_logits_of_the_wrong_shape_are_an_error(tmp_path):
    r = compare(tmp_path, "logits")
    assert r.proc.returncode == 1
    assert_one_line(r, "error", "failed: predict returned logits of shape (120, 4) for 120 train examples; "
                                "expected (120, 3)")
    assert_reference_kept(r)


def test_checksums_an_engine_reports_must_agree_with_the_batches_handed_to_it(tmp_path):
    r = compare(tmp_path, "checksums")
    assert r.proc.returncode == 1
    assert_one_line(r, "mismatch", f"mismatch: the engine's own checksums differ from the batches handed to it "
                                   f"in epoch 0: 1 of {IRIS_STEPS} batches, first at step {IRIS_STEPS - 1} "
                                   f"(engine 00000000, handed over ")
    assert_mismatch_kept_out_of_the_comparison(r)
    assert_reference_kept(r)


def test_checksums_an_engine_reports_that_agree_are_ok(tmp_path):
    r = compare(tmp_path, "own_checksums")
    assert r.proc.returncode == 0, r.proc.stderr
    assert r.run["status"] == "ok" and r.summary["batches_identical"]
    record = [json.loads(s) for s in (r.out / "workers" / f"{ENGINE.replace('.', '_')}-own_checksums-r0.jsonl")
              .read_text().splitlines()]
    epochs = [line for line in record if line["kind"] == "epoch"]
    assert [line["engine_checksums"] for line in epochs] == [line["checksums"] for line in epochs]


def test_a_corrupted_plan_epoch_order_is_a_mismatch(tmp_path):
    r = compare(tmp_path, "corrupt_plan")
    assert r.proc.returncode == 1
    assert_one_line(r, "mismatch", f"mismatch: batches differ from the plan in epoch "
                                   f"{misbehaving_engines.CORRUPTED_EPOCH}: 1 of {IRIS_STEPS} batches")
    assert_mismatch_kept_out_of_the_comparison(r)
    assert_reference_kept(r)  # it ran before the file was damaged


def assert_mismatch_kept_out_of_the_comparison(r: SimpleNamespace) -> None:
    """The row stays, with its status, but no number; results.csv keeps the numbers to look into."""
    assert r.row["status"] == "mismatch"
    for column in ("first_epoch_s", "steady_epoch_s", "train_loss", "test_loss", "test_accuracy"):
        assert r.row[column] is None, column
    assert not r.summary["batches_identical"]
    mine = r.frame[r.frame.engine == ENGINE]
    assert sorted(mine[mine.metric == "accuracy"].epoch.unique()) == list(range(EPOCHS))


def test_malformed_event_lines_and_a_megabyte_of_stdout_never_stop_the_reader(tmp_path):
    r = compare(tmp_path, "chatty")
    assert r.proc.returncode == 0, r.proc.stderr
    assert r.run["status"] == "ok", r.run["message"]
    log = Path(r.run["log"]).read_text(encoding="utf-8", errors="replace")
    for line in misbehaving_engines.MALFORMED:
        assert log.count(line + "\n") == EPOCHS, line
    assert "bytes that are not UTF-8: \ufffd\ufffd" in log
    assert len(log) >= EPOCHS * misbehaving_engines.CHATTER_BYTES
    assert_reference_kept(r)



def test_an_infinite_loss_is_a_divergence_too(tmp_path):
    r = compare(tmp_path, "inf")
    assert r.proc.returncode == 0, r.proc.stderr
    e, step = misbehaving_engines.NAN_EPOCH, misbehaving_engines.NAN_STEP
    assert_one_line(r, "diverged", f"diverged: first non-finite loss at epoch {e} step {step} (inf; "
                                   f"results.csv step {e * IRIS_STEPS + step})")
    mine = r.frame[(r.frame.engine == ENGINE) & (r.frame.metric == "accuracy")]
    assert sorted(mine.epoch.unique()) == list(range(e + 1))  # training stopped after that epoch
    assert r.row["status"] == "diverged"
    assert_reference_kept(r)
