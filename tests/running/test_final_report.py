"""The engine's ``final_report`` hook (bridge.contract): what it says once training ended joins the run's
report in summary.json, from its own ``final`` line of the worker's record; a hook that fails costs the run
nothing but a one-line ``final_report_error``. The engine is tests/doubles/cudnn_report_engine.py, a stand-in
for a Julia engine's GPU run (no GPU here)."""
import json

from tests.doubles import cudnn_report_engine
from tests.support import run_compare

ENGINE = "tests.doubles.cudnn_report_engine"


def compare(tmp_path, mode):
    r = run_compare("--engines", f"reference,{ENGINE}:{mode}", "--dataset", "iris", "--epochs", "2", "--quiet",
                    "--no-report", out=tmp_path / "out")
    runs = {e["engine"]: e for e in r.summary["engines"]}
    return r, runs[ENGINE], runs["reference"]


def record_kinds(out, mode):
    (path,) = (out / "workers").glob(f"*{mode}-r0.jsonl")
    return [json.loads(line)["kind"] for line in path.read_text().splitlines()]


def test_what_the_hook_says_joins_the_report_after_the_memory_line(tmp_path):
    r, run, ref = compare(tmp_path, "chosen")
    assert r.proc.returncode == 0, r.proc.stderr
    assert run["status"] == "ok", run["message"]
    report = run["report"]
    assert {k: report[k] for k in cudnn_report_engine.CHOSEN} == cudnn_report_engine.CHOSEN
    assert "rss_peak_bytes" in report and "final_report_error" not in report  # the memory line joined too
    kinds = record_kinds(r.out, "chosen")
    assert kinds[-3:] == ["memory", "final", "done"], kinds
    # an engine without the hook writes no final line and reports nothing of cuDNN
    assert "final" not in record_kinds(r.out, "float64")
    assert not any(k.startswith("cudnn_conv") for k in ref["report"])


def test_a_failing_hook_leaves_one_line_and_the_run_s_results(tmp_path):
    r, run, _ = compare(tmp_path, "fails")
    assert r.proc.returncode == 0, r.proc.stderr
    assert run["status"] == "ok", run["message"]
    assert run["report"]["final_report_error"] == f"RuntimeError: {cudnn_report_engine.FAILURE}"
    assert not any(k.startswith("cudnn_conv") for k in run["report"])
    accuracy = r.frame[(r.frame.engine == ENGINE) & (r.frame.metric == "accuracy") & (r.frame.split == "test")]
    assert sorted(accuracy.epoch.unique()) == [0, 1]
