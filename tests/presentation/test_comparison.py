"""Speed comparisons with intervals and verdicts: engine against engine in one run, and folder B against
folder A with ``python -m bridge.report A B`` (its refusal of different experiments, its CI gate, its page).

The times come from a stand-in engine of known speed (tests/doubles/fixed_logits_engine.py with
``BRIDGE_FIXED_STEADY_S``: that many seconds an epoch within ±2%), so that a 30% slower engine is known to
be 30% slower; everything else — the workers, results.csv, summary.json, the report command — is the
real pipeline.
"""
import json
import subprocess
import sys
from pathlib import Path

import pytest

from bridge.results.timing import NOISE
from tests.support import ROOT, environment, run_compare

FIXED = "tests.doubles.fixed_logits_engine"
LABEL = f"{FIXED}/fixed"
ARGS = ("--engines", FIXED, "--epochs", "5", "--repeats", "3")
NNLIB = "tests.doubles.nnlib_engine"  # the reference's network in float32: passes parity, so its times compare


def folder(root: Path, name: str, steady_s: float, *extra: str) -> Path:
    out = root / name
    run = run_compare(*ARGS, *extra, out=out, env=environment(BRIDGE_FIXED_STEADY_S=str(steady_s)))
    assert run.returncode == 0, run.stderr
    return out


@pytest.fixture(scope="module")
def folders(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("speed")
    return {"a": folder(root, "a", 0.010), "same": folder(root, "same", 0.010),
            "slow": folder(root, "slow", 0.013), "other": folder(root, "other", 0.010, "--seed", "7")}


def report(*args, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "bridge.report", *map(str, args)], cwd=cwd, env=environment(),
                          capture_output=True, text=True, timeout=180)


def snapshot(folder: Path) -> dict:
    return {p.relative_to(folder): p.stat().st_mtime_ns for p in folder.rglob("*")}


def engine_line(stdout: str, label: str) -> str:
    return next(line for line in stdout.splitlines() if line.strip().startswith(label))


@pytest.fixture(scope="module")
def in_run(tmp_path_factory):
    return run_compare("--engines", f"reference,{NNLIB}", "--epochs", "5", "--repeats", "2", "--baseline", NNLIB,
                       out=tmp_path_factory.mktemp("in-run") / "run")


def test_a_run_compares_its_engines_with_intervals_and_verdicts(in_run):
    assert in_run.returncode == 0, in_run.stderr
    doc = in_run.summary
    assert doc["timing"]["noise"] == NOISE
    pairs = {(r["engine"], r["baseline"]): r for r in doc["speed"]}
    nnlib = f"{NNLIB}/float32"
    assert set(pairs) == {(nnlib, "reference/float64"), ("reference/float64", nnlib)}
    # the times are measured: whatever they are, the two ratios are each other's inverse, each interval
    # holds its ratio and its verdict agrees with it
    there, back = pairs[nnlib, "reference/float64"], pairs["reference/float64", nnlib]
    assert there["ratio"] * back["ratio"] == pytest.approx(1.0, rel=1e-9)
    for r in (there, back):
        assert r["low"] <= r["ratio"] <= r["high"]
        word = r["verdict"].split(",")[0]
        assert word == ("slower" if r["low"] > NOISE else "faster" if r["high"] < 1 / NOISE else "within noise")
    # printed against the chosen baseline
    lines = in_run.stdout.splitlines()
    head = next(i for i, line in enumerate(lines) if line.startswith("steady epoch against"))
    assert nnlib in lines[head] and "95% interval" in lines[head]
    assert lines[head + 1].strip().startswith("reference/float64")
    assert back["verdict"] in lines[head + 1]
    # and in the report, every pair
    page = (in_run.out / "report.html").read_text()
    speed = page[page.index("id='speed'"):page.index("id='parity'")]
    for r in (there, back):
        assert f"{r['ratio']:.2f}x ({r['low']:.2f}-{r['high']:.2f})" in speed and r["verdict"] in speed


def test_a_run_whose_engines_fail_parity_compares_no_speed(folders):
    # the stand-in's losses are nothing like the reference's: its times are not compared with them
    run = run_compare("--engines", f"reference,{FIXED}", "--epochs", "2", out=folders["a"].parent / "parity",
                      env=environment(BRIDGE_FIXED_STEADY_S="0.01"))
    assert run.returncode == 0, run.stderr
    assert run.summary["speed"] == []
    assert "no speed comparison: fewer than two engine runs with comparable times" in run.stdout


def test_a_30_percent_slower_engine_is_slower_and_fails_the_gate(folders, tmp_path):
    proc = report(folders["a"], folders["slow"], "--fail-slower", "1.1", cwd=tmp_path)
    assert proc.returncode == 1, proc.stderr
    line = engine_line(proc.stdout, LABEL)
    assert "slower" in line and "1.30x" in line
    ratio = float(line.split("x (")[1].split("-")[0])  # the interval's low end
    assert 1.1 < ratio < 1.3
    assert f"{LABEL} slower than 1.1x in B beyond doubt" in proc.stderr
    # a factor the whole interval does not pass: the gate holds
    assert report(folders["a"], folders["slow"], "--fail-slower", "1.5", cwd=tmp_path).returncode == 0
    page = (tmp_path / "comparison.html").read_text()
    assert "data:image/png;base64," in page and LABEL in page and "slower" in page


def test_the_same_engine_twice_is_within_noise_and_passes_the_gate(folders, tmp_path):
    before = {f: snapshot(folders[f]) for f in ("a", "same")}
    proc = report(folders["a"], folders["same"], "--fail-slower", "1.02", "--page", tmp_path / "p.html", cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    line = engine_line(proc.stdout, LABEL)
    assert "within noise" in line and "1.00x" in line
    assert (tmp_path / "p.html").exists() and not (ROOT / "comparison.html").exists()
    # comparing writes nothing into either folder
    assert {f: snapshot(folders[f]) for f in ("a", "same")} == before


def test_different_experiments_are_refused_naming_the_fields(folders, tmp_path):
    proc = report(folders["a"], folders["other"], cwd=tmp_path)
    assert proc.returncode == 2
    assert proc.stdout == "" and len(proc.stderr.strip().splitlines()) == 1
    assert "seed: 0 → 7" in proc.stderr and "--compare-anyway" in proc.stderr
    assert not (tmp_path / "comparison.html").exists()
    anyway = report(folders["a"], folders["other"], "--compare-anyway", cwd=tmp_path)
    assert anyway.returncode == 0, anyway.stderr
    assert "warning: different experiments: seed: 0 → 7" in anyway.stderr
    assert LABEL in anyway.stdout
