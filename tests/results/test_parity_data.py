"""Parity as data: every run with a reference says, per engine, how far its step losses are from the
reference variant that models it, and whether that is within the tolerance (bridge.results.parity); an engine
that fails has its times marked not comparable. Checked where a user reads it: the printed table,
summary.json and report.html.

The failing engine is tests/doubles/misbehaving_engines.py in mode ``off``: it trains exactly as the reference
does and reports every step loss 1e-3 (relative) too high, ten times the Adam tolerance. Mode
``own_checksums`` trains and reports like the reference: the honest twin in the same run.
"""
import re
from pathlib import Path

import pytest

from bridge.presentation import report as report_module
from bridge.results import parity
from tests.doubles import misbehaving_engines
from tests.support import CompareRun, run_compare

ENGINE = "tests.doubles.misbehaving_engines"
OFF, HONEST = f"{ENGINE}/off", f"{ENGINE}/own_checksums"
EPOCHS = 7  # 56 Iris steps: more than the MLP parity window


def compare(out: Path, engines: str, *args: str) -> tuple[CompareRun, dict, str]:
    run = run_compare("--engines", engines, "--dataset", "iris", "--epochs", str(EPOCHS), *args, out=out)
    return run, run.summary, (out / "report.html").read_text() if (out / "report.html").exists() else ""


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return compare(tmp_path_factory.mktemp("parity") / "out", f"reference,{ENGINE}:off,{ENGINE}:own_checksums")


def table_row(stdout: str, label: str) -> str:
    """The summary table's row of ``label`` (printed after the progress lines, which also name it, and before
    the speed comparison, which names it again)."""
    table = stdout[stdout.index(" engine "):]
    table = re.split(r"\n(?:steady epoch against|no speed comparison)", table)[0]
    (line,) = [line for line in table.splitlines() if line.strip().startswith(label + " ")]
    return line


def test_an_engine_off_by_1e_3_fails_parity_in_the_table_and_summary(run):
    proc, summary, _ = run
    assert proc.returncode == 0, proc.stderr  # parity is a finding, like a divergence; the run itself is fine
    assert summary["parity"]["steps"] == parity.PARITY_STEPS["mlp"] == 50
    assert summary["parity"]["tolerance"] == parity.TOLERANCE["adam"]
    off = summary["parity"]["runs"][OFF]
    assert off["compared_with"] == "reference/float64" and off["steps"] == 50 and off["pass"] is False
    assert off["max_rel_diff"] == pytest.approx(misbehaving_engines.OFF_BY, rel=1e-6)
    assert "1.0e-03 FAIL" in table_row(proc.stdout, OFF)
    (row,) = [r for r in summary["summary"] if r["engine"] == OFF]
    assert row["parity_pass"] is False and row["parity_role"] == "compared" and "parity" not in row
    assert any(w.startswith(f"{OFF} fails parity: ") and "reference/float64" in w and "not comparable" in w
               for w in summary["warnings"]), summary["warnings"]


def test_the_honest_engine_passes_and_the_reference_is_the_oracle(run):
    proc, summary, _ = run
    honest = summary["parity"]["runs"][HONEST]
    assert honest["pass"] is True and honest["max_rel_diff"] == 0.0
    assert "0.0e+00 ok" in table_row(proc.stdout, HONEST)
    assert summary["parity"]["runs"]["reference/float64"] == {"reference": True}
    assert " reference " in table_row(proc.stdout, "reference/float64")


def test_the_report_marks_the_failing_engine_s_times_not_comparable(run):
    _, summary, report = run
    table = report[report.index('<table class="summary">'):]
    table = table[:table.index("</table>")]
    rows = {r.split("</td>")[0].removeprefix("<td>"): r for r in table.split("<tr>")[1:] if r.startswith("<td>")}
    assert rows[OFF].count("not comparable") == len(report_module.TIME_COLUMNS)  # times and rates
    assert "not comparable" not in rows[HONEST] and "1.0e-03 FAIL" in rows[OFF]
    assert "id='parity-failures'" in report and f"{OFF}: its step losses differ from reference/float64" in report


def test_without_a_reference_parity_is_not_checked(tmp_path):
    proc, summary, report = compare(tmp_path / "out", f"{ENGINE}:own_checksums")
    assert proc.returncode == 0, proc.stderr
    assert "not checked" in table_row(proc.stdout, HONEST)
    assert summary["parity"]["runs"][HONEST] == {"checked": False, "compared_with": "reference/float64",
                                                  "reason": "reference/float64 did not run"}
    assert "Parity not checked" in report


def test_the_tolerance_follows_the_optimizer_an_sgd_run_off_by_5e_5_fails(tmp_path):
    """5e-5 is inside Adam's tolerance and outside SGD's: the same engine passes with Adam and fails
    with SGD, and each summary names the tolerance of its own optimizer."""
    slightly = f"{ENGINE}/slightly_off"
    verdicts = {}
    for optimizer, lr in (("adam", "0.01"), ("sgd", "0.1")):
        proc, summary, _ = compare(tmp_path / optimizer, f"reference,{ENGINE}:slightly_off", "--optimizer", optimizer,
                                   "--learning_rate", lr, "--no-report")
        assert proc.returncode == 0, proc.stderr
        assert summary["parity"]["tolerance"] == parity.TOLERANCE[optimizer]
        entry = summary["parity"]["runs"][slightly]
        assert entry["max_rel_diff"] == pytest.approx(misbehaving_engines.SLIGHTLY_OFF_BY, rel=1e-6)
        verdicts[optimizer] = entry["pass"]
    assert parity.TOLERANCE["sgd"] < misbehaving_engines.SLIGHTLY_OFF_BY < parity.TOLERANCE["adam"]
    assert verdicts == {"adam": True, "sgd": False}
