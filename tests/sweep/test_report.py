"""The sweep report's run table in headless Chromium at 1400 px (nothing runs off the page, no number
wraps), and ``python -m bridge.report`` on folders that are not a sweep's: one ``bridge.report: error:``
line. The folder is a real sweep of the reference engine, with a failed point added to sweep.csv whose
worker address and error are long."""
from __future__ import annotations

import html
import json
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest

from tests.support import ROOT

pytest.importorskip("distributed", reason="Dask distributed is not installed: pip install 'bridge[sweep]'")

from bridge.sweep import report, results as sweepresults  # noqa: E402  pandas and matplotlib after the skip

LONG_WORKER = "tcp://compute-node-0042.gpu-partition.a-very-long-cluster-name.example-university.org:40123"
LONG_ERROR = ("FileNotFoundError: " + "/scratch/users/someone/projects/bridge/data/fashion-mnist" * 2
              + "/train-images-idx3-ubyte.gz could not be read, and the run stopped before its first epoch")
# Added to a copy of the page only. A number cell wraps when its text lies on more than one line.
PROBE = """<script>window.addEventListener('load', function () {
  var p = document.createElement('pre'); p.id = 'probe';
  var number = /^[-+]?[0-9][0-9,.]*(e[-+]?[0-9]+)?( ?(ms|s|%|×))?$/;
  p.textContent = JSON.stringify({page: document.documentElement.scrollWidth,
    window: document.documentElement.clientWidth,
    tables: Array.from(document.querySelectorAll('table')).map(function (t) {
      var wrapped = [], numbers = 0;
      Array.from(t.querySelectorAll('td')).forEach(function (td) {
        if (!number.test(td.textContent.trim())) return;
        numbers += 1;
        var r = document.createRange(); r.selectNodeContents(td);
        var tops = new Set(Array.from(r.getClientRects()).map(function (q) { return Math.round(q.top); }));
        if (tops.size > 1) wrapped.push(td.textContent);
      });
      return {cls: t.className, width: t.scrollWidth, room: t.parentElement.clientWidth, numbers: numbers,
              wrapped: wrapped, text: t.innerText};
    })});
  document.body.appendChild(p); });</script></body>"""


@pytest.fixture(scope="module")
def sweep(tmp_path_factory) -> Path:
    """A 2x2 sweep of the reference engine, plus a failed point's row with a long worker and error."""
    out = tmp_path_factory.mktemp("sweep") / "s"
    proc = subprocess.run([sys.executable, "-m", "bridge.sweep", "--dataset", "iris", "--epochs", "3", "--engines",
                           "reference", "--grid", "batch_size=16,32", "--grid", "hidden=4,8", "--out", str(out),
                           "--no-report"], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    frame, _ = sweepresults.read_table(out)
    frame.loc[0, "worker"] = LONG_WORKER
    failed = {**frame.iloc[0].to_dict(), "engine": "", "repeat": np.nan, "status": "error", "attempts": 2,
              "worker": LONG_WORKER, "error": LONG_ERROR}
    for column in ("parity_max_rel_diff", "first_epoch_s", "steady_epoch_s", "examples_per_s", "gflops",
                   "peak_fraction", "test_accuracy"):
        failed[column] = np.nan
    frame.loc[len(frame)] = failed
    sweepresults.write_table(out, frame)
    return out


def test_the_run_table_fits_a_1400_px_window_and_no_number_wraps(sweep, tmp_path):
    chromium = shutil.which("chromium")
    if chromium is None:
        pytest.skip("chromium is not on PATH (Debian package chromium: apt-get install -y chromium)")
    page = report.build(sweep).read_text()
    probe = tmp_path / "probe.html"
    probe.write_text(page.replace("</body>", PROBE))
    with tempfile.TemporaryDirectory() as profile:
        proc = subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu", "--window-size=1400,1000",
                               f"--user-data-dir={profile}", "--dump-dom", probe.as_uri()],
                              capture_output=True, text=True, timeout=90)
    found = re.search(r'<pre id="probe">(.*?)</pre>', proc.stdout, re.S)
    assert found, proc.stderr[-2000:]
    seen = json.loads(html.unescape(found.group(1)))
    assert seen["page"] <= seen["window"], seen["page"]
    runs = next(t for t in seen["tables"] if t["cls"] == "runs")
    assert runs["numbers"] >= 4 * 8  # the four points' numbers were checked
    assert LONG_WORKER.removeprefix("tcp://") in runs["text"] and "tcp://" not in runs["text"]
    assert "could not be read" in runs["text"]
    for t in seen["tables"]:
        assert t["width"] <= t["room"], (t["cls"], t["width"], t["room"])
        assert t["wrapped"] == [], (t["cls"], t["wrapped"])


def _broken(folder: Path, how: str) -> None:
    folder.mkdir()
    definition = {"axes": {"batch_size": ["8"]}, "points": [{"point": "abc", "batch_size": "8"}]}
    if how == "no sweep.csv":
        (folder / "sweep.json").write_text(json.dumps(definition))
    elif how == "sweep.json is a list":
        (folder / "sweep.json").write_text("[]")
        (folder / "sweep.csv").write_text("point,batch_size,engine,status\nabc,8,reference/float64,ok\n")
    elif how == "no axes":
        (folder / "sweep.json").write_text(json.dumps({**definition, "axes": []}))
        (folder / "sweep.csv").write_text("point,engine,status\nabc,reference/float64,ok\n")
    elif how == "sweep.csv lacks columns":
        (folder / "sweep.json").write_text(json.dumps(definition))
        (folder / "sweep.csv").write_text("point,batch_size\nabc,8\n")


@pytest.mark.parametrize("how, says", [
    ("no sweep.csv", "holds no readable sweep"),
    ("sweep.json is a list", "its axes are not a table"),
    ("no axes", "its axes are not a table"),
    ("sweep.csv lacks columns", "has no column engine, status"),
])
def test_the_report_of_a_broken_sweep_folder_is_one_line(tmp_path, how, says):
    folder = tmp_path / "broken"
    _broken(folder, how)
    proc = subprocess.run([sys.executable, "-m", "bridge.report", str(folder)], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.startswith("bridge.report: error: ") and proc.stderr.count("\n") == 1, proc.stderr
    assert says in proc.stderr and "python -m bridge.sweep" in proc.stderr
    assert not (folder / "report.html").exists()


def test_a_sweep_report_reads_a_sweep_csv_written_before_its_newer_columns(sweep, tmp_path):
    folder = tmp_path / "old"
    shutil.copytree(sweep, folder)
    frame, _ = sweepresults.read_table(folder)
    frame.drop(columns=["steady_epoch_s_low", "steady_epoch_s_high", "disturbed", "unstable"]).to_csv(
        folder / "sweep.csv", index=False)
    page = report.build(folder).read_text()
    assert "Every point and engine run" in page


def test_sweep_csv_holds_each_run_s_peak_memory_and_the_report_draws_it_against_the_swept_field(sweep):
    from bridge.results import store

    frame, definition = sweepresults.read_table(sweep)
    ok = frame[frame.status == "ok"]
    assert len(ok) == 4 and (ok.rss_peak_bytes > 0).all(), ok.rss_peak_bytes
    for row in ok.to_dict("records"):  # the point's own results.csv says the same
        results = store.read_frame(sweep / "points" / row["point"])
        engine, mode = row["engine"].split("/")
        peak = results[(results.engine == engine) & (results["mode"] == mode) & (results.repeat == row["repeat"])
                       & (results.metric == "rss_peak_bytes") & results.epoch.isna()].value
        assert list(peak) == [row["rss_peak_bytes"]]
    data = report.curves(frame, definition)
    assert data.rss_peak_bytes_med.notna().all()
    page = report.build(sweep).read_text()
    assert (sweep / "figures" / "memory.png").stat().st_size > 0 and "figures/memory.png" in page
