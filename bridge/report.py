"""``python -m bridge.report DIR [DIR2]``: figures and a self-contained HTML report from saved results.

The report (``DIR/report.html``) is a pure function of ``results.csv`` and ``summary.json``: the
summary table, the warnings, every figure (embedded as base64 PNG, so the one file can be mailed or
archived), the spec and the environment fingerprint of every engine run. Plain HTML and CSS, every
value escaped, no external resource, no script. With two folders the command also compares them
engine by engine (B against A) and warns when their environments differ.
"""
from __future__ import annotations

import argparse
import base64
import html
import json
import math
import sys
from pathlib import Path

import pandas as pd

from . import figures, parity
from .results import ResultsError as ReportError  # noqa: F401  the name this module's callers catch
from .results import format_fraction, format_number, format_rate, format_seconds, read_summary

EXIT_USAGE = 2
# Per-engine report fields whose difference between two folders makes their times incomparable.
ENGINE_FIELDS = ("framework", "framework_version", "threads", "device", "blas")


# -- formatting ------------------------------------------------------------------------------------------

def _cell(v) -> str:
    if isinstance(v, float):
        return f"{v:.6g}"
    if isinstance(v, (dict, list)):
        return json.dumps(v)
    return "none" if v is None else str(v)


def _table(header: list[str], rows: list[list], cls: str = "") -> str:
    e = html.escape
    head = "".join(f"<th>{e(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{e(_cell(v))}</td>" for v in row) + "</tr>" for row in rows)
    return (f'<div class="scroll"><table class="{e(cls)}"><thead><tr>{head}</tr></thead>'
            f'<tbody>{body}</tbody></table></div>')


def _pairs(mapping: dict) -> str:
    return _table(["field", "value"], [[k, v] for k, v in mapping.items()], "pairs")


SUMMARY_COLUMNS = [("engine", "engine", str), ("framework", "framework", str), ("status", "status", str),
                   ("runs", "runs", str), ("parity", "parity", str), ("first_epoch_s", "first epoch", format_seconds),
                   ("steady_epoch_s", "steady epoch", format_seconds),
                   ("examples_per_s", "examples/s", format_rate),
                   ("gflops", "GFLOP/s", lambda v: format_rate(v, 1)),
                   ("peak_fraction", "of measured peak", format_fraction),
                   ("train_loss", "train loss", format_number),
                   ("test_loss", "test loss", format_number), ("test_accuracy", "test accuracy", format_number)]


TIME_COLUMNS = ("first_epoch_s", "steady_epoch_s", "examples_per_s", "gflops", "peak_fraction")
NOT_COMPARABLE = "not comparable"


def summary_rows(doc: dict) -> list[list[str]]:
    """The summary table's cells, formatted as in the report; an engine that fails parity has its times
    shown as "not comparable" (the reason is under the table)."""
    def cell(rec, key, fmt):
        if key in TIME_COLUMNS and rec.get("parity_pass") is False:
            return NOT_COMPARABLE
        return fmt(rec.get(key)) if rec.get(key) is not None else "-"
    return [[cell(rec, key, fmt) for key, _, fmt in SUMMARY_COLUMNS] for rec in doc.get("summary", [])]


def _peak_sentence(doc: dict) -> str:
    """Which peak the fractions are of, measured how, and the nominal peak where it could be derived."""
    work, fp = doc.get("work") or {}, doc.get("fingerprint") or {}
    source = work.get("peak_source", "CPU float32 GEMM (NumPy)")
    text = (f"the float32 peak measured with a {source} ({format_rate(work.get('peak_gflops'), 1)} GFLOP/s"
            + (f" at {fp.get('threads_requested')} threads" if source.startswith("CPU") else "") + ")")
    nominal = fp.get("cpu_nominal_peak")
    if nominal:
        text += (f"; the CPU's nominal peak is {format_rate(nominal['gflops'], 1)} GFLOP/s "
                 f"({nominal['formula']})")
    return text


def _parity(doc: dict) -> list[str]:
    """What the parity column means in this run, and why any engine's times are not comparable."""
    p = doc.get("parity") or {}
    runs = p.get("runs", {})
    e = html.escape
    if not any("pass" in r for r in runs.values()):
        return ["<p id='parity'>Parity not checked: no reference run to compare with (add "
                "<code>reference</code> to <code>--engines</code>).</p>"]
    text = (f"<p id='parity'>Parity: the largest relative difference of each engine's per-step training loss "
            f"from the reference variant that models it, over the first {e(str(p.get('steps')))} steps; "
            f"within {e(str(p.get('tolerance')))} is ok. Speed is compared only between engines that pass.</p>")
    failed = [f"<li>{e(label)}: {e(parity.parity_failure(r))}</li>" for label, r in runs.items()
              if r.get("pass") is False]
    return [text] + ([f"<div class='warnings' id='parity-failures'><ul>{''.join(failed)}</ul></div>"]
                     if failed else [])


CSS = """
body { font: 15px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; color: #222; margin: 0 auto;
       max-width: 1180px; padding: 1.5em; }
h1 { font-size: 1.6em; margin-bottom: .2em; } h2 { margin-top: 1.8em; border-bottom: 1px solid #ddd; }
.sub { color: #555; margin-top: 0; }
table { border-collapse: collapse; margin: .6em 0; font-size: .92em; }
th, td { border: 1px solid #ccc; padding: .3em .6em; text-align: left; vertical-align: top; }
th { background: #f1f3f5; } tbody tr:nth-child(even) { background: #fafafa; }
table.summary td { text-align: right; font-variant-numeric: tabular-nums; }
table.summary td:nth-child(-n+5) { text-align: left; }
.scroll { overflow-x: auto; }
.warnings { background: #fff4e5; border: 1px solid #f0a640; border-radius: 6px; padding: .6em 1.2em; }
.ok { background: #eaf7ea; border: 1px solid #7cc47c; border-radius: 6px; padding: .6em 1.2em; }
figure { margin: 1.2em 0; } figure img { max-width: 100%; height: auto; border: 1px solid #eee; }
figcaption { color: #444; font-size: .92em; }
code { background: #f1f3f5; padding: 0 .25em; border-radius: 3px; }
"""


def render(doc: dict, images: dict[str, bytes], title: str = "") -> str:
    """The report page: ``doc`` is summary.json, ``images`` maps figure name → PNG bytes."""
    e = html.escape
    spec, fp = doc.get("spec", {}), doc.get("fingerprint", {})
    heading = title or " · ".join(str(spec.get(k, "")) for k in ("dataset", "model", "optimizer"))
    parts = ["<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
             f"<title>bridge report — {e(heading)}</title><style>{CSS}</style></head><body>",
             f"<h1>bridge report — {e(heading)}</h1>",
             f"<p class='sub'>{e(str(spec.get('epochs', '?')))} epochs, batch {e(str(spec.get('batch_size', '?')))}, "
             f"{e(str(spec.get('repeats', '?')))} repeat(s), device {e(str(spec.get('device', '?')))}, "
             f"spec hash <code>{e(str(fp.get('spec_hash', '?')))}</code>, bridge commit "
             f"<code>{e(str(fp.get('git_commit', '?')))}</code></p>"]
    warnings = doc.get("warnings", [])
    if warnings:
        items = "".join(f"<li>{e(str(w))}</li>" for w in warnings)
        parts.append(f"<div class='warnings' id='warnings'><strong>Warnings</strong><ul>{items}</ul></div>")
    else:
        parts.append("<div class='ok' id='warnings'>No warnings: every engine ran, on the same batches.</div>")
    identical = doc.get("batches_identical")
    parts.append(f"<p>Every engine trained on the batches of the plan (CRC-32C checked): "
                 f"<strong>{'yes' if identical else 'no'}</strong>.</p>")
    parts += ["<h2 id='summary'>Summary</h2>",
              "<p>Per engine, over repeats: medians of the time to the first epoch and of the steady-state "
              "epoch time (median of the epochs after the first), the training examples per second and "
              "GFLOP/s they make (2 FLOPs per multiply-add of every Dense and Conv layer, a training step "
              "counted as 3× the forward pass: "
              f"{e(format_rate((doc.get('work') or {}).get('train_flops_per_example'), 0))} FLOPs per example), "
              f"that rate as a fraction of {e(_peak_sentence(doc))}, and the final loss and accuracy.</p>",
              _table([h for _, h, _ in SUMMARY_COLUMNS], summary_rows(doc), "summary")]
    parts += _parity(doc)
    parts += _semantics(doc)
    parts.append("<h2 id='figures'>Figures</h2>")
    for name, png in images.items():
        caption = figures.FIGURES[name][2] if name in figures.FIGURES else name
        data = base64.b64encode(png).decode("ascii")
        parts.append(f"<figure id='figure-{e(name)}'><img src='data:image/png;base64,{data}' alt='{e(caption)}'>"
                     f"<figcaption>{e(caption)} Also <code>figures/{e(name)}.png</code> and "
                     f"<code>figures/{e(name)}.svg</code>.</figcaption></figure>")
    if not images:
        parts.append("<p>No figures: no engine completed an epoch.</p>")
    runs = [[f"{r.get('engine')}/{r.get('mode')}", r.get("repeat"), r.get("status"), r.get("epochs_completed"),
             format_seconds(r.get("wall_s")), r.get("message", "")] for r in doc.get("engines", [])]
    parts += ["<h2 id='engines'>Engine runs</h2>",
              _table(["engine", "repeat", "status", "epochs", "wall time", "message"], runs)]
    parts += ["<h2 id='spec'>Spec</h2>", _pairs(spec),
              "<h2 id='environment'>Environment</h2><h3>Parent process and data</h3>", _pairs(fp),
              "<h3>Each engine, as its framework reports it (values of every repeat where they differ)</h3>",
              _engine_reports(doc)]
    parts.append("</body></html>")
    return "\n".join(parts)


def _semantics(doc: dict) -> list[str]:
    """Where the frameworks differ by design, per engine (bridge.parity): the max-pool gradient rule each
    follows, the reference variant its parity is measured against, and how far apart the variants are."""
    sem = doc.get("semantics") or {}
    runs = sem.get("maxpool_gradient", {})
    if not runs:
        return []
    e = html.escape
    rules = sem.get("rules", {})
    parts = ["<h2 id='semantics'>Max-pool gradient: where the frameworks differ</h2>",
             "<p>Each 2×2 window's gradient goes to one element. Frameworks choose it differently, and bridge "
             "measures each framework as it is rather than replacing its layer: every engine's parity is "
             "measured against the reference variant that models its rule.</p>",
             _table(["engine", "rule", "what it does", "compared with"],
                    [[label, r["maxpool_gradient"], rules.get(r["maxpool_gradient"], ""), r["compared_with"] or "-"]
                     for label, r in runs.items()])]
    size = sem.get("reference_variants")
    if size:
        diff, steps = f"{size['max_rel_diff']:.2e}", str(size["steps"])
        parts.append(f"<p id='variant-size'>On this experiment the two reference variants (exact and NNlib rule) "
                     f"differ by up to <strong>{e(diff)}</strong> relative in the per-step loss over the first "
                     f"{e(steps)} steps.</p>")
    return parts


def _engine_reports(doc: dict) -> str:
    """Fields down, engines across (a few columns, so nothing scrolls out of view); a field that differs
    between repeats, such as import time, lists every repeat's value in order."""
    runs = [r for r in doc.get("engines", []) if r.get("report")]
    if not runs:
        return "<p>No engine reported its environment.</p>"
    labels = list(dict.fromkeys(f"{r.get('engine')}/{r.get('mode')}" for r in runs))
    keys = list(dict.fromkeys(k for r in runs for k in r["report"]))
    by_label = {lab: [r["report"] for r in runs if f"{r.get('engine')}/{r.get('mode')}" == lab] for lab in labels}

    def values(reports: list[dict], key: str) -> str:
        shown = [_cell(rep[key]) for rep in reports if key in rep]
        return ", ".join(dict.fromkeys(shown)) if len(set(shown)) <= 1 else ", ".join(shown)

    rows = [[key] + [values(by_label[lab], key) for lab in labels] for key in keys]
    return _table(["field", *labels], rows, "pairs")


def build(folder: Path) -> Path:
    """Regenerate ``figures/`` and ``report.html`` in ``folder``; returns the report's path."""
    folder = Path(folder)
    doc = read_summary(folder)
    written = figures.write(folder)
    page = render(doc, {name: path.read_bytes() for name, path in written.items()})
    target = folder / "report.html"
    tmp = target.with_name(target.name + ".tmp")
    tmp.write_text(page, encoding="utf-8")
    tmp.replace(target)
    return target


# -- comparing two folders -------------------------------------------------------------------------------

def compare(a: dict, b: dict) -> pd.DataFrame:
    """Engine by engine (those in both): steady-state epoch time of each and the ratio B/A, final test
    accuracy of each and the difference B−A."""
    sa = {r["engine"]: r for r in a.get("summary", [])}
    sb = {r["engine"]: r for r in b.get("summary", [])}
    rows = []
    for label in [k for k in sa if k in sb]:
        ta, tb = sa[label].get("steady_epoch_s"), sb[label].get("steady_epoch_s")
        acc_a, acc_b = sa[label].get("test_accuracy"), sb[label].get("test_accuracy")
        rows.append({"engine": label, "steady_a_s": ta, "steady_b_s": tb,
                     "steady_ratio": tb / ta if ta and tb is not None else math.nan,
                     "test_accuracy_a": acc_a, "test_accuracy_b": acc_b,
                     "test_accuracy_diff": acc_b - acc_a if None not in (acc_a, acc_b) else math.nan})
    return pd.DataFrame(rows, columns=["engine", "steady_a_s", "steady_b_s", "steady_ratio", "test_accuracy_a",
                                       "test_accuracy_b", "test_accuracy_diff"]).astype(
        {c: float for c in ["steady_a_s", "steady_b_s", "steady_ratio", "test_accuracy_a", "test_accuracy_b",
                            "test_accuracy_diff"]})


def _engine_fields(doc: dict) -> dict[str, dict]:
    """engine/mode → its first reported environment (framework version, threads, device, BLAS)."""
    fields: dict[str, dict] = {}
    for r in doc.get("engines", []):
        if r.get("report"):
            fields.setdefault(f"{r.get('engine')}/{r.get('mode')}", r["report"])
    return fields


def fingerprint_differences(a: dict, b: dict) -> list[str]:
    """``field: A value vs B value`` for every fingerprint field and per-engine environment field that
    differs between two results folders (engines in both only)."""
    fa, fb = a.get("fingerprint", {}), b.get("fingerprint", {})
    diffs = [f"{k}: {fa.get(k)!r} vs {fb.get(k)!r}" for k in dict.fromkeys([*fa, *fb]) if fa.get(k) != fb.get(k)]
    ea, eb = _engine_fields(a), _engine_fields(b)
    for label in [k for k in ea if k in eb]:
        for k in ENGINE_FIELDS:
            if str(ea[label].get(k)) != str(eb[label].get(k)):
                diffs.append(f"{label} {k}: {ea[label].get(k)!r} vs {eb[label].get(k)!r}")
    return diffs


def format_comparison(table: pd.DataFrame, a: Path, b: Path) -> str:
    if table.empty:
        return f"no engine is in both {a} and {b}"
    show = pd.DataFrame({
        "engine": table.engine,
        "steady A": table.steady_a_s.map(format_seconds), "steady B": table.steady_b_s.map(format_seconds),
        "B/A": table.steady_ratio.map(lambda v: "-" if math.isnan(v) else f"{v:.2f}x"),
        "test acc A": table.test_accuracy_a.map(format_number), "test acc B": table.test_accuracy_b.map(format_number),
        "B-A": table.test_accuracy_diff.map(lambda v: "-" if math.isnan(v) else f"{v:+.4f}")})
    return f"B = {b} against A = {a}, engine by engine:\n" + show.to_string(index=False)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, exit 2, as bridge.compare does
        self.exit(EXIT_USAGE, f"bridge.report: error: {message} (see --help)\n")


def main(argv: list[str] | None = None) -> int:
    p = _Parser(prog="python -m bridge.report",
                description="Regenerate figures/ and report.html from a results folder written by "
                            "python -m bridge.compare; with a second folder, compare B with A engine by engine.")
    p.add_argument("folders", nargs="+", metavar="DIR", help="results folder(s): A, or A and B")
    args = p.parse_args(argv)
    if len(args.folders) > 2:
        p.error(f"give one or two results folders, got {len(args.folders)}")
    folders = [Path(f) for f in args.folders]
    try:
        docs = [read_summary(f) for f in folders]  # every folder is checked before anything is written
    except ReportError as e:
        print(f"bridge.report: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    for folder in folders:
        print(f"report written to {build(folder)}")
    if len(folders) == 2:
        print(format_comparison(compare(*docs), *folders))
        for diff in fingerprint_differences(*docs):
            print(f"warning: environments differ: {diff}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
