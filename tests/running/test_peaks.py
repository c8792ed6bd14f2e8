"""The CPU GEMM peak belongs to the machine, not the moment: measured once (best of several trials), cached per
machine key in ``$BRIDGE_CACHE_DIR/peaks.json`` and reused by later runs; measured again on ``--measure-peak``;
an unreadable cache costs a warning, not the run; a peak measured beside a real busy process is flagged
disturbed and never cached; a resumed run keeps the peak its folder was judged by.

Every test points ``BRIDGE_CACHE_DIR`` at its own folder, through the environment of the ``bridge.compare``
process it runs (or of this one, for the direct calls)."""
import json
import os
import signal
import subprocess
import sys

import pytest

from bridge.results.timing import DISTURBED_CORES
from bridge.running import peakcache, peaks
from tests import support
from tests.support import run_compare

ARGS = ("--engines", "reference", "--dataset", "iris", "--epochs", "2", "--threads", "1", "--no-report")


def compare(cache, out, *more: str):
    run = run_compare(*ARGS, "--quiet", *more, out=out, env=support.environment(BRIDGE_CACHE_DIR=str(cache)))
    assert run.returncode == 0, run.stderr
    return run


def quiet(attempt, tries: int = 3):
    """``attempt()`` (a finished run whose peak was measured now), again while that peak was disturbed by
    another process on this shared machine (it is then rightly not cached); a skip naming what others used
    when every try was."""
    for _ in range(tries):
        run = attempt()
        if not peak_of(run)["disturbed"]:
            return run
    pytest.skip(f"the machine stayed busy while the peak was measured ({peak_of(run)['warnings'][-1]}); "
                "caching needs a quiet machine")


def peak_of(run) -> dict:
    fingerprint = run.summary["fingerprint"]
    assert fingerprint["cpu_gemm_peak_gflops"] == fingerprint["cpu_gemm_peak"]["gflops"]
    return fingerprint["cpu_gemm_peak"]


def cached(cache) -> dict:
    doc = json.loads((cache / peakcache.FILE).read_text())
    assert doc["format"] == peakcache.FORMAT
    return doc["peaks"]


def plant(cache, monkeypatch, gflops: float = 1.0, measured: str = "2001-02-03T04:05:06+00:00") -> dict:
    """A cache holding ``gflops`` for this machine at one thread, as ``bridge.compare --threads 1`` keys it."""
    monkeypatch.setenv("BRIDGE_CACHE_DIR", str(cache))
    key = peakcache.machine_key(1)
    entry = {"gflops": gflops, "trials": [gflops], "measured": measured, "seconds": 3.0, "others_cores": 0.0}
    assert peakcache.keep(key, entry) is None
    return key


def test_a_first_run_measures_and_caches_the_peak_and_a_later_run_reuses_it(tmp_path):
    cache = tmp_path / "cache"
    first = peak_of(quiet(lambda: compare(cache, tmp_path / "a")))
    assert first["source"] == "measured now", first
    assert len(first["trials"]) == peaks.TRIALS and first["gflops"] == max(first["trials"]) > 0
    assert first["seconds"] >= peaks.TRIALS * peaks.TRIAL_S
    assert first["others_cores"] is not None and first["others_cores"] <= DISTURBED_CORES
    assert first["key"] == peakcache.machine_key(1)
    entry = cached(cache)[peakcache.key_text(first["key"])]
    assert entry == {k: first[k] for k in peaks.ENTRY}  # with its date (UTC) and what others used meanwhile
    assert entry["measured"].endswith("+00:00")

    later = peak_of(compare(cache, tmp_path / "b"))
    assert later["source"] == "cache" and later["cache"] == str(cache / peakcache.FILE)
    assert {k: later[k] for k in peaks.ENTRY} == entry and later["key"] == first["key"]


def test_measure_peak_measures_again_and_rewrites_the_cache(tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    key = plant(cache, monkeypatch)
    assert peak_of(compare(cache, tmp_path / "cached"))["gflops"] == 1.0  # taken as cached, not measured

    again = peak_of(quiet(lambda: compare(cache, tmp_path / "again", "--measure-peak")))
    assert again["source"] == "measured now" and again["gflops"] > 1.0, again
    entry = cached(cache)[peakcache.key_text(key)]
    assert entry["gflops"] == again["gflops"] and entry["measured"] == again["measured"] != "2001-02-03T04:05:06+00:00"


def test_an_unreadable_cache_is_ignored_with_a_warning_and_rewritten(tmp_path):
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / peakcache.FILE).write_text("{not json")
    run = quiet(lambda: run_compare(*ARGS, out=tmp_path / "out", env=support.environment(BRIDGE_CACHE_DIR=str(cache))))
    assert run.returncode == 0, run.stderr
    peak = peak_of(run)
    assert peak["source"] == "measured now"
    (line,) = [w for w in run.summary["warnings"] if "peak cache" in w]
    assert line.startswith(f"the peak cache {cache / peakcache.FILE} could not be read (not JSON: ")
    assert line.endswith("; it was ignored and will be rewritten") and "\n" not in line
    assert f"warning: {line}" in run.stderr
    assert peakcache.key_text(peak["key"]) in cached(cache)


def test_a_peak_measured_beside_a_busy_process_is_disturbed_and_not_cached(tmp_path, monkeypatch):
    monkeypatch.setenv("BRIDGE_CACHE_DIR", str(tmp_path))
    busy = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        peak = peaks.cpu_gemm_peak(1, remeasure=True)
    finally:
        os.kill(busy.pid, signal.SIGKILL)
        busy.wait()
    assert peak["disturbed"] and peak["others_cores"] > DISTURBED_CORES, peak
    assert peak["source"] == "measured now" and peak["gflops"] > 0
    (line,) = peak["warnings"]
    assert line.startswith("the CPU GEMM peak was measured while others used ")
    assert "it is not cached and fractions of peak are low-biased" in line
    assert not (tmp_path / peakcache.FILE).exists()


def test_an_earlier_peak_is_kept_only_for_this_machine_key_and_undisturbed(tmp_path, monkeypatch):
    key = plant(tmp_path, monkeypatch, gflops=2.0)
    earlier = {"gflops": 5.0, "trials": [5.0], "measured": "2002-01-01T00:00:00+00:00", "seconds": 3.0,
               "others_cores": 0.01, "source": "cache", "key": key, "disturbed": False}
    kept = peaks.cpu_gemm_peak(1, earlier=earlier)
    assert (kept["source"], kept["gflops"], kept["measured"]) == (peaks.EARLIER, 5.0, earlier["measured"])
    assert peaks.cpu_gemm_peak(1, earlier={**earlier, "key": {**key, "numpy": "0.0"}})["source"] == "cache"
    assert peaks.cpu_gemm_peak(1, earlier={**earlier, "disturbed": True})["gflops"] == 2.0


def test_a_resumed_run_keeps_the_peak_its_folder_was_judged_by(tmp_path, monkeypatch):
    cache, out = tmp_path / "cache", tmp_path / "out"
    first = peak_of(quiet(lambda: compare(cache, out)))
    plant(cache, monkeypatch, gflops=1.0)  # the cache now says otherwise: a resume must not take it

    again = compare(cache, out)
    assert again.summary["engines"][0]["message"].startswith("reused: "), again.summary["engines"]
    kept = peak_of(again)
    assert kept["source"] == "this folder's earlier run"
    assert {k: kept[k] for k in peaks.ENTRY} == {k: first[k] for k in peaks.ENTRY}

    fresh = peak_of(compare(cache, out, "--fresh"))  # nothing reused: the machine's cached peak
    assert (fresh["source"], fresh["gflops"]) == ("cache", 1.0)
