"""Engines run isolated: one that raises, exits hard or hangs never loses the others' results."""
from tests.support import run_compare

FAULTY = "tests.doubles.faulty_engines"


def test_failing_engines_leave_the_others_results_and_a_nonzero_exit(tmp_path):
    run = run_compare("--engines", f"reference,{FAULTY}:raise,{FAULTY}:exit,{FAULTY}:hang", "--epochs", "3",
                      "--timeout", "20", out=tmp_path / "out")
    assert run.returncode == 1, run.stderr
    assert f"{FAULTY}/raise failed: FloatingPointError: loss became NaN at step 3" in run.stderr
    assert f"{FAULTY}/exit exited with code 3" in run.stderr
    assert f"{FAULTY}/hang passed its timeout of 20 s" in run.stderr
    ref = run.frame[run.frame.engine == "reference"]
    assert sorted(ref[ref.metric == "accuracy"].epoch.unique()) == [0, 1, 2]
    status = {e["mode"]: e["status"] for e in run.summary["engines"]}
    assert status == {"float64": "ok", "raise": "error", "exit": "crashed", "hang": "timeout"}
    assert "reference/float64" in run.stdout  # the table still shows the engine that ran


def test_an_unknown_engine_is_a_usage_error(tmp_path):
    run = run_compare("--engines", "reference,pytorch3", out=tmp_path, timeout=60)
    assert run.returncode == 2
    assert run.stderr.strip().count("\n") == 0
    assert ("engine 'pytorch3' is not known; accepted: reference, keras, keras-jax, keras-torch, torch, jax, flux, "
            "knet") in run.stderr


def test_an_engine_run_stopped_by_its_timeout_alone_makes_the_exit_code_1(tmp_path):
    run = run_compare("--engines", f"reference,{FAULTY}:hang", "--epochs", "2", "--timeout", "8", "--no-report",
                      out=tmp_path / "out")
    assert run.returncode == 1, run.stderr
    assert {e["mode"]: e["status"] for e in run.summary["engines"]} == {"float64": "ok", "hang": "timeout"}
    assert f"{FAULTY}/hang passed its timeout of 8 s" in run.stderr
