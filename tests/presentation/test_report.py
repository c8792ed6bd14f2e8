"""Figures and the HTML report are pure functions of a results folder: their data equals the results.

Result folders come from the real pipeline with the fast reference engine; a second engine is a
stand-in made by copying the reference's rows with known perturbations (keras is slow to start).
"""
import html
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from unittest import mock

import numpy as np
import pandas as pd
import pytest

from bridge import compare
from bridge.experiment.spec import Spec, applies
from bridge.presentation import figures, report
from bridge.results.store import read_frame
from bridge.results.summary import format_rate, format_seconds
from bridge.running import runner
from tests.support import ROOT
NAMES = ["loss", "accuracy", "loss_time", "accuracy_time", "timing", "memory", "parity"]


@pytest.fixture(scope="module")
def ref_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("ref")
    runner.run(Spec(engines=("reference",), epochs=3, repeats=2), out)
    return out


@pytest.fixture(scope="module")
def two_dir(ref_dir, tmp_path_factory) -> Path:
    """The reference results plus a stand-in keras/fit: step losses off by 1e-6·(step+1) relative, every
    epoch-end loss of repeat r scaled by 1 + 0.01·r, epochs ten times slower plus 0.5 s of compilation."""
    out = tmp_path_factory.mktemp("two")
    for name in ("results.csv", "summary.json"):
        shutil.copy(ref_dir / name, out / name)
    frame = pd.read_csv(out / "results.csv", dtype={"framework_version": str})
    k = frame[frame.engine == "reference"].copy()
    k[["engine", "mode", "framework", "framework_version"]] = ["keras", "fit", "tensorflow", "2.21.0"]
    step = k.metric == "step_loss"
    k.loc[step, "value"] *= 1 + 1e-6 * (k.loc[step, "step"] + 1)
    loss = k.metric == "loss"
    k.loc[loss, "value"] *= 1 + 0.01 * k.loc[loss, "repeat"]
    t = k.metric == "epoch_s"
    k.loc[t, "value"] = k.loc[t, "value"] * 10 + np.where(k.loc[t, "epoch"] == 0, 0.5, 0.0)
    pd.concat([frame, k]).to_csv(out / "results.csv", index=False)
    doc = json.loads((out / "summary.json").read_text())
    doc["engines"] += [{**e, "engine": "keras", "mode": "fit",
                        "report": {**e["report"], "framework": "tensorflow", "framework_version": "2.21.0"}}
                       for e in doc["engines"]]
    doc["summary"].append({**doc["summary"][0], "engine": "keras/fit", "framework": "tensorflow 2.21.0",
                           "first_epoch_s": 0.52, "steady_epoch_s": 0.012})
    (out / "summary.json").write_text(json.dumps(doc))
    return out


@pytest.fixture(scope="module")
def failing_dir(tmp_path_factory) -> Path:
    """A real run with an engine that fails and one that is unavailable here (flux without Julia set up),
    plus the warnings a non-official split and unequal threads would add."""
    out = tmp_path_factory.mktemp("failing")
    with mock.patch.dict(os.environ, {"PYTHONPATH": str(ROOT), "BRIDGE_JULIA_RECORD": str(out / "none.json")}):
        runner.run(Spec(engines=("reference", "tests.doubles.faulty_engines:raise", "flux"), epochs=2), out)
    doc = json.loads((out / "summary.json").read_text())
    doc["warnings"] += ["not the official train/test split: <npm> 60000 / 10000",
                        "engines report different thread settings: 1, 2"]
    (out / "summary.json").write_text(json.dumps(doc))
    return out


def raw(folder: Path) -> pd.DataFrame:
    return pd.read_csv(folder / "results.csv")


def test_loss_and_accuracy_series_equal_the_results(two_dir):
    frame, r = read_frame(two_dir), raw(two_dir)
    for metric, data in (("loss", figures.loss_data(frame)), ("accuracy", figures.accuracy_data(frame))):
        rows = r[(r.metric == metric) & r.split.isin(["train", "test"])]
        assert len(data) == 2 * 2 * 3  # engines × splits × epochs
        for (engine, split, epoch), d in data.assign(engine=data.label.str.split("/").str[0]).groupby(
                ["engine", "split", "epoch"]):
            values = rows[(rows.engine == engine) & (rows.split == split) & (rows.epoch == epoch)].value
            assert d["median"].item() == values.median()
            assert (d["min"].item(), d["max"].item()) == (values.min(), values.max())
            assert d["repeats"].item() == 2
    ref = figures.loss_data(frame).query("label == 'reference/float64' and split == 'test'")
    rows = r[(r.engine == "reference") & (r.metric == "loss") & (r.split == "test") & (r.repeat == 0)]
    assert ref["median"].tolist() == rows.value.tolist()
    band = figures.loss_data(frame).query("label == 'keras/fit'")
    assert np.allclose(band["max"] / band["min"], 1.01)  # repeat 1 is the scaled one


def test_loss_against_time_uses_cumulative_epoch_seconds(two_dir):
    frame, r = read_frame(two_dir), raw(two_dir)
    data = figures.loss_time_data(frame)
    t = r[r.metric == "epoch_s"].sort_values("epoch")
    for (label, split), d in data.groupby(["label", "split"]):
        engine = label.split("/")[0]
        cumulative = t[t.engine == engine].pivot(index="epoch", columns="repeat", values="value").cumsum()
        assert np.allclose(d.seconds, cumulative.median(axis=1))
        losses = r[(r.engine == engine) & (r.metric == "loss") & (r.split == split)]
        assert np.allclose(d.loss, losses.groupby("epoch").value.median())


def test_timing_bars_are_the_medians_of_first_and_steady_epochs(two_dir):
    frame, r = read_frame(two_dir), raw(two_dir)
    data = figures.timing_data(frame).set_index(["label", "phase"])
    summary = {s["engine"]: s for s in json.loads((two_dir / "summary.json").read_text())["summary"]}
    t = r[(r.metric == "epoch_s") & (r.engine == "reference")]
    first = t[t.epoch == 0].value
    steady = t[t.epoch > 0].groupby("repeat").value.median()
    bar = data.loc[("reference/float64", "first epoch")]
    assert (bar["median"], bar["min"], bar["max"]) == (first.median(), first.min(), first.max())
    bar = data.loc[("reference/float64", "steady epoch")]
    assert (bar["median"], bar["min"], bar["max"]) == (steady.median(), steady.min(), steady.max())
    # summary.json keeps 10 decimals (pandas to_json); the whiskers are the table's 95% interval
    row = summary["reference/float64"]
    assert bar["median"] == pytest.approx(row["steady_epoch_s"], abs=1e-10)
    assert (bar["low"], bar["high"]) == (pytest.approx(row["steady_epoch_s_low"], abs=1e-10),
                                         pytest.approx(row["steady_epoch_s_high"], abs=1e-10))
    assert bar["low"] < bar["median"] < bar["high"] or bar["low"] == bar["high"]
    assert data.loc[("keras/fit", "first epoch"), "median"] == pytest.approx(first.median() * 10 + 0.5)


def test_parity_is_the_relative_step_loss_difference_against_the_reference(two_dir, ref_dir):
    frame, r = read_frame(two_dir), raw(two_dir)
    data = figures.parity_data(frame)
    assert set(data.label) == {"keras/fit"} and len(data) == 2 * 3 * 8  # repeats × epochs × steps
    s = r[r.metric == "step_loss"]
    ref = s[(s.engine == "reference") & (s.repeat == 0)].set_index("step").value
    for row in data.itertuples():
        assert row.reference == ref[row.step]
        assert row.rel_diff == abs(row.loss - ref[row.step]) / abs(ref[row.step])
    assert np.allclose(data.rel_diff, 1e-6 * (data.step + 1), rtol=1e-6)
    assert figures.parity_data(read_frame(ref_dir)).empty  # nothing to compare with


def test_figures_name_engines_with_framework_and_units(two_dir):
    frame = read_frame(two_dir)
    for name, (data_fn, figure_fn, _) in figures.FIGURES.items():
        fig = figure_fn(data_fn(frame), figures.about(frame))
        texts = [t.get_text() for legend in fig.legends for t in legend.get_texts()]
        labels = " ".join(ax.get_xlabel() + " " + ax.get_ylabel() for ax in fig.axes)
        assert fig._suptitle is not None and "iris · mlp · adam" in fig._suptitle.get_text(), name
        assert any(w in labels for w in ("epoch", "seconds", "step", "(MiB)")), (name, labels)
        shown = " ".join(texts + [t.get_text() for ax in fig.axes for t in ax.get_yticklabels()])
        assert "keras/fit (tensorflow 2.21.0)" in shown, name
    written = figures.write(two_dir)
    assert sorted(written) == sorted(NAMES)
    for name in NAMES:
        assert (two_dir / "figures" / f"{name}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert b"<svg" in (two_dir / "figures" / f"{name}.svg").read_bytes()[:2000]


def test_report_holds_summary_figures_spec_environment_and_warnings(failing_dir):
    page = report.build(failing_dir).read_text()
    doc = json.loads((failing_dir / "summary.json").read_text())
    for row in report.summary_rows(doc):
        assert "<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" in page
    written = sorted(p.stem for p in (failing_dir / "figures").glob("*.png"))
    # no parity without a second engine
    assert written == sorted(["loss", "accuracy", "loss_time", "accuracy_time", "timing", "memory"])
    assert page.count("<img src='data:image/png;base64,") == len(written)
    for key in ("dataset", "model", "hidden", "optimizer", "beta_1", "learning_rate", "batch_size", "epochs"):
        assert f"<td>{key}</td>" in page, key
    assert html.escape(doc["fingerprint"]["cpu"]) in page and doc["fingerprint"]["spec_hash"] in page
    assert "openblas" in page  # an engine's own report
    # a run that shared the machine adds a "disturbed" warning: true, and not what this test is about
    assert len([w for w in doc["warnings"] if " disturbed: " not in w and "measured while others" not in w]) == 5, \
        doc["warnings"]
    for w in doc["warnings"]:
        assert html.escape(w) in page, w
    assert any("flux/loop unavailable" in w for w in doc["warnings"])
    assert any("FloatingPointError" in w for w in doc["warnings"])
    assert "reference/float64 unstable: only 1 steady epoch(s); run more --epochs" in " ".join(doc["warnings"])
    assert "<npm>" not in page  # escaped
    assert "<script" not in page and not re.search(r"""(src|href)=['"]?(https?:|//)""", page)


def section(page: str, start: str, end: str | None = None) -> str:
    return page[page.index(start):page.index(end) if end else len(page)]


def test_the_spec_table_shows_only_the_fields_that_apply_to_the_experiment(failing_dir):
    page = report.build(failing_dir).read_text()
    spec = section(page, "id='spec'", "id='environment'")
    # Iris has 3 classes: the synthetic data set's 10 is not this run's; no conv layers in an MLP; no download
    for key in ("classes", "synthetic_shape", "synthetic_samples", "filters", "dense", "data_dir", "data_source"):
        assert f"<td>{key}</td>" not in spec, key
    assert "<td>hidden</td><td>[10]</td>" in spec and "<td>beta_2</td>" in spec
    assert "Left out, as they do not apply to iris · mlp · adam: filters, dense, data_dir" in spec
    assert not applies("beta_1", "iris", "mlp", "sgd") and applies("classes", "synthetic", "mlp", "sgd")
    assert applies("filters", "synthetic", "cnn", "adam") and not applies("hidden", "fashion-mnist", "cnn", "adam")


def environment_cells(page: str) -> list[str]:
    return [html.unescape(c) for c in re.findall(r"<td>(.*?)</td>", section(page, "id='environment'"), re.S)]


def floats(value) -> list[float]:
    """Every float inside a JSON value."""
    if isinstance(value, dict):
        return [f for v in value.values() for f in floats(v)]
    if isinstance(value, list):
        return [f for v in value for f in floats(v)]
    return [value] if isinstance(value, float) else []


def test_environment_values_are_formatted_and_tf32_shows_only_for_cuda_runs(two_dir):
    page = report.build(two_dir).read_text()
    cells = environment_cells(page)
    doc = json.loads((two_dir / "summary.json").read_text())
    raw = [f"{v}" for v in floats([doc["fingerprint"], [e["report"] for e in doc["engines"]]]) if len(f"{v}") > 8]
    assert len(raw) > 5  # peaks, their trials, import and build seconds
    for v in raw:  # no value printed with all its digits: formatted, with its unit
        assert v[:8] not in " ".join(cells), v
    peak = doc["fingerprint"]["cpu_gemm_peak"]
    assert f"{format_rate(peak['gflops'], 1)} GFLOP/s" in cells
    imports = re.search(r"<tr><td>import_s</td><td>(.*?)</td>", page).group(1)
    for e in doc["engines"]:
        if e["engine"] == "reference":
            assert format_seconds(e["report"]["import_s"]) in imports, imports
    # every engine ran on the CPU: no TF32 row at all (TF32 is a CUDA matter)
    for field in report.CUDA_ONLY:
        assert f"<td>{field}</td>" not in section(page, "id='environment'"), field
    assert "tensor_float_32" not in page and "id='cpu-precision'" in page
    # a run on a GPU shows its TF32 settings; the reference beside it, on the CPU, says they do not apply
    for e in doc["engines"]:
        if e["engine"] == "keras":
            e["report"].update(device="NVIDIA H100 80GB HBM3", reduced_precision=False,
                               precision="tensor_float_32_execution=False")
    page = report.render(doc, {})
    rows = re.findall(r"<tr><td>(reduced_precision|precision)</td><td>(.*?)</td><td>(.*?)</td></tr>", page)
    assert rows == [("reduced_precision", "n/a on CPU", "False"),
                    ("precision", "n/a on CPU", "tensor_float_32_execution=False")]
    assert "id='cpu-precision'" not in page


def test_report_path_is_absolute_and_the_command_prints_it_as_a_file_url(two_dir, tmp_path):
    relative = Path(os.path.relpath(two_dir))
    assert report.build(relative) == (two_dir / "report.html").resolve() and report.build(relative).is_absolute()
    proc = subprocess.run([sys.executable, "-m", "bridge.report", two_dir.name], capture_output=True, text=True,
                          timeout=120, cwd=two_dir.parent)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == f"report written to {(two_dir / 'report.html').resolve().as_uri()}\n"
    assert report.written_line(relative / "report.html").startswith("report written to file:///")


def test_figure_titles_and_legends_fit_inside_the_figure(two_dir):
    frame = read_frame(two_dir)
    about = "fashion-mnist, synthetic · mlp, cnn · adam, sgd · a title far longer than any figure is wide"
    parity = figures.parity_data(frame)
    engines = ["keras-torch/fit (torch 2.5.1+cpu)", "keras-jax/fit (jax 0.4.38)", "torch/loop (torch 2.5.1+cpu)",
               "jax/jit (jax 0.4.38)", "flux/loop (Flux 0.16.3, Julia 1.11.5)", "knet/loop (Knet 1.4.10, Julia 1.9.4)"]
    many = pd.concat([parity] + [parity.assign(label=e.split()[0], legend=e, order=k + 2) for k, e in
                                 enumerate(engines)])
    cases = [(name, fn(data_fn(frame))) for name, (data_fn, fn, _) in figures.FIGURES.items()]
    for name, fig in cases + [("parity, 8 engines", figures.parity_figure(many, about))] + \
            [(f"{name}, long title", fn(data_fn(frame), about)) for name, (data_fn, fn, _) in figures.FIGURES.items()]:
        width = fig.bbox.width
        for what, artist in [("title", fig._suptitle), *(("legend", leg) for leg in fig.legends)]:
            box = artist.get_window_extent()
            assert box.x0 >= 0 and box.x1 <= width, (name, what, box.x0, box.x1, width)


CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]
# Added to a copy of the page only: the report itself needs no script. After the load event every
# image has been decoded or has failed; the result is written into the DOM that --dump-dom prints: what
# the images show, the summary table's text, and how wide the page, every table and every image are.
PROBE = """<script>window.addEventListener('load', function () {
  var p = document.createElement('pre'); p.id = 'probe';
  var t = document.querySelector('table.summary');
  p.textContent = JSON.stringify({images: Array.from(document.images).map(function (i) {
      return i.complete && i.naturalWidth > 0; }),
    table: t ? t.innerText : '', tableHeight: t ? t.getBoundingClientRect().height : 0,
    page: document.documentElement.scrollWidth, window: window.innerWidth,
    tables: Array.from(document.querySelectorAll('table')).map(function (t) {
      return [t.className, t.scrollWidth, t.parentElement.clientWidth]; }),
    imageRights: Array.from(document.images).map(function (i) { return i.getBoundingClientRect().right; })});
  document.body.appendChild(p); });</script></body>"""


def test_report_renders_in_headless_chromium_and_fits_a_1400_pixel_window(two_dir, tmp_path):
    chromium = shutil.which("chromium")
    if chromium is None:
        pytest.skip("chromium is not on PATH (Debian package chromium: apt-get install -y chromium)")
    folder = tmp_path / "three"
    shutil.copytree(two_dir, folder, ignore=shutil.ignore_patterns("figures", "report.html"))
    doc = json.loads((folder / "summary.json").read_text())
    # a third engine run that shared the machine: the widest summary row ("not comparable", "DISTURBED 1.37")
    doc["summary"].append({**doc["summary"][1], "engine": "keras/loop", "disturbed": True, "others_cores": 1.37})
    (folder / "summary.json").write_text(json.dumps(doc))
    page = report.build(folder).read_text()
    probe = tmp_path / "probe.html"
    probe.write_text(page.replace("</body>", PROBE))
    with tempfile.TemporaryDirectory() as profile:
        proc = subprocess.run([chromium, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "--window-size=1400,1000",
                               "--dump-dom", probe.as_uri()], capture_output=True, text=True, timeout=90)
    found = re.search(r'<pre id="probe">(.*?)</pre>', proc.stdout, re.S)
    assert found, proc.stderr[-2000:]
    seen = json.loads(html.unescape(found.group(1)))
    assert seen["images"] == [True] * len(NAMES)
    assert seen["tableHeight"] > 0
    for cell in ("reference/float64", "keras/fit", "tensorflow 2.21.0", "520.0 ms", "12.0 ms", "DISTURBED 1.37"):
        assert cell in seen["table"]
    assert seen["window"] == 1400 and seen["page"] <= seen["window"], seen
    assert len(seen["tables"]) >= 5  # summary, agreement, engine runs, spec, environment
    for cls, width, room in seen["tables"]:  # nothing to scroll sideways
        assert width <= room, (cls, width, room)
    assert seen["imageRights"] and max(seen["imageRights"]) <= seen["window"]


def test_report_command_compares_two_folders_and_warns_on_fingerprints(two_dir, tmp_path):
    b = tmp_path / "b"
    b.mkdir()
    frame = pd.read_csv(two_dir / "results.csv", dtype={"framework_version": str})
    frame.loc[(frame.engine == "keras") & (frame.metric == "epoch_s"), "value"] *= 2  # keras twice as slow in B
    frame.to_csv(b / "results.csv", index=False)
    doc = json.loads((two_dir / "summary.json").read_text())
    doc["fingerprint"].update(cpu="Another CPU", python="3.12.1")
    doc["summary"][1].update(steady_epoch_s=0.024, test_accuracy=doc["summary"][1]["test_accuracy"] - 0.1)
    for e in doc["engines"]:
        if e["engine"] == "keras":
            e["report"]["framework_version"] = "2.20.0"
    (b / "summary.json").write_text(json.dumps(doc))
    proc = subprocess.run([sys.executable, "-m", "bridge.report", str(two_dir), str(b)], capture_output=True,
                          text=True, timeout=120, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "comparison.html").exists()
    assert not (b / "report.html").exists()  # a comparison changes neither folder
    keras = next(line for line in proc.stdout.splitlines() if line.strip().startswith("keras/fit"))
    assert "2.00x" in keras and "-0.1000" in keras
    ref = next(line for line in proc.stdout.splitlines() if line.strip().startswith("reference/float64"))
    assert "1.00x" in ref and "+0.0000" in ref and "within noise" in ref
    warnings = proc.stderr.strip().splitlines()
    assert all(w.startswith("warning: ") for w in warnings)
    for field in ("cpu: ", "python: ", "keras/fit framework_version: '2.21.0' vs '2.20.0'"):
        assert any(field in w for w in warnings), (field, warnings)
    assert not any("git_commit" in w or "reference/float64" in w for w in warnings)


def test_report_command_rejects_a_folder_without_results(tmp_path, two_dir):
    (tmp_path / "results.csv").write_text("engine\n")
    proc = subprocess.run([sys.executable, "-m", "bridge.report", str(two_dir), str(tmp_path)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert len(proc.stderr.strip().splitlines()) == 1
    assert str(tmp_path) in proc.stderr and "summary.json" in proc.stderr
    assert proc.stdout == ""  # nothing is written before every folder is checked


def test_a_failing_report_step_warns_and_keeps_results_and_exit_code(tmp_path, monkeypatch, capsys):
    def broken(out):
        raise RuntimeError("no fonts")

    monkeypatch.setattr(report, "build", broken)
    code = compare.main(["--engines", "reference", "--epochs", "2", "--out", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 0
    assert "warning: report not written (RuntimeError: no fonts)" in err
    assert (tmp_path / "results.csv").exists() and (tmp_path / "summary.json").exists()
