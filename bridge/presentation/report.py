"""The report of a results folder: figures and one self-contained HTML page, from saved files only.

``DIR/report.html`` is a pure function of ``results.csv`` and ``summary.json``: the summary table, the
warnings, every figure (:mod:`.figures`), the spec and the environment fingerprint of every engine run,
made of the pieces in :mod:`.html`. ``python -m bridge.report`` redraws it.
"""
from __future__ import annotations

from pathlib import Path

from ..experiment.spec import applies
from ..files import atomic_write
from ..results import parity
from ..results.records import utc_display
from ..results.store import read_summary
from ..results.summary import (format_bytes, format_fraction, format_interval, format_machine, format_number,
                               format_parity, format_rate, format_ratio, format_runs, format_seconds, format_target)
from . import figures, html

def _field(key, fmt=str):
    return lambda rec: fmt(rec[key]) if rec.get(key) is not None else "-"


def _steady(rec: dict) -> str:
    cell = format_interval(rec.get("steady_epoch_s"), rec.get("steady_epoch_s_low"), rec.get("steady_epoch_s_high"))
    return cell + (" unstable" if rec.get("unstable") else "")


SUMMARY_COLUMNS = [("engine", "engine", _field("engine")), ("framework", "framework", _field("framework")),
                   ("status", "status", _field("status")), ("runs_total", "runs", format_runs),
                   ("parity_role", "parity", format_parity),
                   ("first_epoch_s", "first epoch", _field("first_epoch_s", format_seconds)),
                   ("steady_epoch_s", "steady epoch (95% interval)", _steady),
                   ("examples_per_s", "examples/s", _field("examples_per_s", format_rate)),
                   ("gflops", "GFLOP/s", _field("gflops", lambda v: format_rate(v, 1))),
                   ("peak_fraction", "of measured peak", _field("peak_fraction", format_fraction)),
                   ("others_cores", "machine (cores others used)",
                    lambda rec: format_machine(rec.get("others_cores"), rec.get("disturbed"))),
                   ("rss_peak_bytes", "peak memory", _field("rss_peak_bytes", format_bytes)),
                   ("train_loss", "train loss", _field("train_loss", format_number)),
                   ("test_loss", "test loss", _field("test_loss", format_number)),
                   ("test_accuracy", "test accuracy", _field("test_accuracy", format_number)),
                   ("time_to_target_s", "time to target", format_target)]

TIME_COLUMNS = ("first_epoch_s", "steady_epoch_s", "examples_per_s", "gflops", "peak_fraction", "time_to_target_s")
NOT_COMPARABLE = "not comparable"


def summary_rows(doc: dict) -> list[list[str]]:
    """The summary table's cells, formatted as in the report; an engine that fails parity, or whose times
    other processes disturbed, has its times shown as "not comparable" (the reason is under the table)."""
    def cell(rec, key, fmt):
        if key in TIME_COLUMNS and (rec.get("parity_pass") is False or rec.get("disturbed")):
            return NOT_COMPARABLE
        return fmt(rec)
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


def _timing(doc: dict) -> list[str]:
    """How sure the times are: the interval's method, and what marks a run disturbed or unstable."""
    t = doc.get("timing")
    if not t:
        return []
    e = html.escape
    return [f"<p id='timing'>The steady epoch's 95% interval is relative to its median: "
            f"{e(t['interval']['method'])}; one repeat gives none (run <code>--repeats 3</code> or more). An engine "
            f"is <em>unstable</em> when that interval spans more than {t['unstable_width']:.0%} of its median (with "
            f"one repeat: its steady epochs' interquartile range), or it has fewer than {t['min_steady_epochs']} "
            f"steady epochs. <em>machine</em> is the cores other processes took (plus the hypervisor's steal) while "
            f"the run's epochs were timed; above {t['disturbed_cores']:g} the run is disturbed and its times are not "
            f"comparable.</p>"]


def _target(doc: dict) -> list[str]:
    """What the time to target is, and the target: its accuracy and where it comes from."""
    t = doc.get("target")
    if not t:
        return []
    e = html.escape
    if t.get("accuracy") is None:
        return [f"<p id='target'>Time to target: none measured, {e(str(t.get('source')))}.</p>"]
    return [f"<p id='target'><em>Time to target</em>: the training seconds until the first epoch whose test "
            f"accuracy reaches <strong>{e(format(t['accuracy'], 'g'))}</strong> ({e(str(t.get('source')))}; "
            "<code>--target_accuracy</code> sets another, and a rerun into this folder recomputes it without "
            "training again): the sum of that epoch's and every earlier epoch's time, the first epoch's "
            "compilation included, evaluation excluded, with its 95% interval over repeats and the epoch "
            "(counted from 0). With repeats, it is given only when every repeat reached the target.</p>"]


def _speed(doc: dict) -> list[str]:
    """Every pair of comparable engine runs: the ratio of their steady epochs, its interval, the verdict."""
    if "speed" not in doc:
        return []
    noise = (doc.get("timing") or {}).get("noise")
    if not doc["speed"]:
        return ["<h2 id='speed'>Speed</h2><p>No speed comparison: fewer than two engine runs finished with "
                "times that compare (a run that fails parity is left out).</p>"]
    rows = [[r["engine"], r["baseline"], format_ratio(r["ratio"], r["low"], r["high"]), r["verdict"]]
            for r in doc["speed"]]
    return ["<h2 id='speed'>Speed</h2>",
            f"<p>Each engine's steady epoch over another's, with the 95% interval of the ratio (the same bootstrap, "
            f"each side resampled on its own); <em>slower</em> or <em>faster</em> only when the whole interval "
            f"is beyond {html.escape(f'{noise:g}')}× either way, else <em>within noise</em>.</p>",
            html.table(["engine", "against", "ratio (95%)", "verdict"], rows, "speed")]


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


def _agreement(doc: dict) -> list[str]:
    """Every two engine runs against each other: how much of the distance from the float64 reference is
    precision (float32 engines agreeing closely with each other) and how much is framework disagreement."""
    a = doc.get("agreement") or {}
    pairs_ = a.get("pairs") or []
    if not pairs_:
        return []

    def diff(v, fmt):
        return "-" if v is None else fmt.format(v)

    window = next((p.get("window_steps") for p in pairs_), a.get("window"))
    run = max((p.get("run_steps") or 0 for p in pairs_), default=0)
    rows = [[p["a"], p["b"], diff(p.get("window_max_rel_diff"), "{:.1e}"), diff(p.get("run_max_rel_diff"), "{:.1e}"),
             diff(p.get("test_loss_diff"), "{:+.2e}"), diff(p.get("test_accuracy_diff"), "{:+.4f}")] for p in pairs_]
    return ["<h2 id='agreement'>Agreement between engines</h2>",
            f"<p>Every two engine runs against each other: the largest relative difference |a − b| / |b| of their "
            f"per-step training loss over the parity window (the first {html.escape(str(window))} steps) and over "
            f"every step both ran (up to {run}), worst over repeats, and the differences a − b of their final test "
            "loss and accuracy. Float32 engines often agree with each other far more closely than with the "
            "float64 reference, whose distance grows with the steps.</p>",
            html.table(["a", "b", "window", "whole run", "test loss a − b", "test accuracy a − b"], rows)]


def _incomplete(doc: dict) -> list[str]:
    """For a run a signal stopped: that it is incomplete, what it stopped, what never started, and how to
    resume it, before anything else on the page."""
    info = doc.get("incomplete")
    if not info:
        return []
    e = html.escape
    stopped = f" during {', '.join(info['stopped'])}" if info.get("stopped") else ""
    never = info.get("never_started") or []
    text = (f"<strong>Incomplete: stopped by {e(str(info.get('signal')))}{e(stopped)}.</strong> This page shows "
            "what finished. " + (f"Never started: {e(', '.join(never))}. " if never else ""))
    if info.get("resume"):
        text += f"Resume with <code>{e(info['resume'])}</code> (finished runs are reused)."
    return [f"<div class='warnings' id='incomplete'>{text}</div>"]


def render(doc: dict, images: dict[str, bytes], title: str = "") -> str:
    """The report page: ``doc`` is summary.json, ``images`` maps figure name → PNG bytes."""
    e = html.escape
    spec, fp = doc.get("spec", {}), doc.get("fingerprint", {})
    heading = title or " · ".join(str(spec.get(k, "")) for k in ("dataset", "model", "optimizer"))
    subtitle = (f"{e(str(spec.get('epochs', '?')))} epochs, batch {e(str(spec.get('batch_size', '?')))}, "
                f"{e(str(spec.get('repeats', '?')))} repeat(s), device {e(str(spec.get('device', '?')))}, "
                f"spec hash <code>{e(str(fp.get('spec_hash', '?')))}</code>, bridge commit "
                f"<code>{e(str(fp.get('git_commit', '?')))}</code>")
    parts = _incomplete(doc)
    parts.append(html.warnings(doc.get("warnings", []), "Warnings",
                               "No warnings: every engine ran, on the same batches."))
    identical = doc.get("batches_identical")
    parts.append(f"<p>Every engine trained on the batches of the plan (CRC-32C checked): "
                 f"<strong>{'yes' if identical else 'no'}</strong>.</p>")
    parts += ["<h2 id='summary'>Summary</h2>",
              "<p>Per engine, over repeats: medians of the time to the first epoch and of the steady-state "
              "epoch time (median of the epochs after the first), the training examples per second and "
              "GFLOP/s they make (2 FLOPs per multiply-add of every Dense and Conv layer, a training step "
              "counted as 3× the forward pass: "
              f"{e(format_rate((doc.get('work') or {}).get('train_flops_per_example'), 0))} FLOPs per example), "
              f"that rate as a fraction of {e(_peak_sentence(doc))}, the peak resident memory of the worker's process "
              "tree while training (the memory figure has the rest), and the final loss and accuracy.</p>",
              html.table([h for _, h, _ in SUMMARY_COLUMNS], summary_rows(doc), "summary")]
    parts += _target(doc)
    parts += _timing(doc)
    parts += _speed(doc)
    parts += _parity(doc)
    parts += _agreement(doc)
    parts += _semantics(doc)
    parts.append("<h2 id='figures'>Figures</h2>")
    for name, png in images.items():
        caption = figures.FIGURES[name][2] if name in figures.FIGURES else name
        parts.append(html.figure(name, png, caption,
                                 f"<code>figures/{e(name)}.png</code> and <code>figures/{e(name)}.svg</code>"))
    if not images:
        parts.append("<p>No figures: no engine completed an epoch.</p>")
    runs = [[f"{r.get('engine')}/{r.get('mode')}", r.get("repeat"), r.get("status"), r.get("epochs_completed"),
             utc_display(r.get("started")), utc_display(r.get("ended")), r.get("host", ""),
             format_seconds(r.get("wall_s")), r.get("message", "")] for r in doc.get("engines", [])]
    kept = sum(bool(r.get("kept")) for r in doc.get("engines", []))
    parts += ["<h2 id='engines'>Engine runs</h2>",
              "<p>When and where each engine run ran (UTC)."
              + (f" {kept} of them finished in earlier runs of this folder and are kept as they were: a run of "
                 "some engines adds to a folder's results and replaces only its own.</p>" if kept else "</p>"),
              html.table(["engine", "repeat", "status", "epochs", "started", "ended", "host", "wall time",
                          "message"], runs)]
    parts += _spec(spec)
    parts += ["<h2 id='environment'>Environment</h2><h3>Parent process and data</h3>",
              html.table(["field", "value"], [[k, environment_value(k, v)] for k, v in fp.items()], "pairs"),
              "<h3>Each engine, as its framework reports it (values of every repeat where they differ)</h3>",
              *_engine_reports(doc)]
    return html.page(f"bridge report — {heading}", subtitle, parts)


def _spec(spec: dict) -> list[str]:
    """The spec's fields that apply to this experiment (:func:`bridge.experiment.spec.applies`), and the
    names of those left out: the synthetic data set's ``classes`` is not Iris' number of classes."""
    experiment = [spec.get(k) for k in ("dataset", "model", "optimizer")]
    shown = {k: v for k, v in spec.items() if applies(k, *experiment)}
    left = [k for k in spec if k not in shown]
    parts = ["<h2 id='spec'>Spec</h2>", html.pairs(shown)]
    if left:
        what = html.escape(" · ".join(map(str, experiment)))
        parts.append(f"<p id='spec-left-out'>Left out, as they do not apply to {what}: "
                     f"{html.escape(', '.join(left))}.</p>")
    return parts


def _semantics(doc: dict) -> list[str]:
    """Where the frameworks differ by design, per engine (bridge.parity): the max-pool gradient rule each
    follows, the reference variant its parity is measured against, and how far apart the variants are; one
    sentence when every engine run follows the same rule."""
    sem = doc.get("semantics") or {}
    runs = sem.get("maxpool_gradient", {})
    if not runs:
        return []
    e = html.escape
    if len({r["maxpool_gradient"] for r in runs.values()}) == 1:
        return ["<h2 id='semantics'>Max-pool gradient</h2>", f"<p id='maxpool-rule'>{e(parity.describe(sem))}.</p>"]
    rules = sem.get("rules", {})
    parts = ["<h2 id='semantics'>Max-pool gradient: where the frameworks differ</h2>",
             "<p>Each 2×2 window's gradient goes to one element. Frameworks choose it differently, and bridge "
             "measures each framework as it is rather than replacing its layer: every engine's parity is "
             "measured against the reference variant that models its rule.</p>",
             html.table(["engine", "rule", "what it does", "compared with"],
                    [[label, r["maxpool_gradient"], rules.get(r["maxpool_gradient"], ""), r["compared_with"] or "-"]
                     for label, r in runs.items()])]
    size = sem.get("reference_variants")
    if size:
        diff, steps = f"{size['max_rel_diff']:.2e}", str(size["steps"])
        parts.append(f"<p id='variant-size'>On this experiment the two reference variants (exact and NNlib rule) "
                     f"differ by up to <strong>{e(diff)}</strong> relative in the per-step loss over the first "
                     f"{e(steps)} steps.</p>")
    return parts


CUDA_ONLY = ("reduced_precision", "precision", "NVIDIA_TF32_OVERRIDE")
"""Engine report fields about TF32, which only CUDA devices have: not shown for an engine run on the CPU."""
NOT_ON_CPU = "n/a on CPU"


def environment_value(key: str, value, nested: bool = False) -> str:
    """An environment value as the report shows it: bytes (``*_bytes``), seconds (``*_s``, ``seconds``) and
    GFLOP/s (``*gflops*``, a peak's ``trials``) with the summary's formatters, cores to two decimals, other
    floats to 4 significant digits, a time stamp as UTC, a mapping as ``field value`` pairs (in parentheses
    inside another), a list item by item."""
    if isinstance(value, dict):
        items = [f"{k} {environment_value(k, v, True)}" for k, v in value.items()]
        return f"({', '.join(items)})" if nested else "; ".join(items)
    if isinstance(value, (list, tuple)):
        return ", ".join(environment_value(key, v, True) for v in value) if value else "none"
    if key == "measured":
        return utc_display(value) + " UTC"
    if key.endswith("_bytes") and isinstance(value, (int, float)) and not isinstance(value, bool):
        return format_bytes(value)
    if not isinstance(value, float):
        return html.cell(value)
    if key.endswith("_s") or key == "seconds":
        return format_seconds(value)
    if "gflops" in key or key == "trials":
        return f"{format_rate(value, 1)} GFLOP/s"
    if key.endswith("cores"):
        return f"{value:.2f}"
    return f"{value:.4g}" if value == 0 or 0.1 <= abs(value) < 1e6 else f"{value:.2e}"


def _engine_reports(doc: dict) -> list[str]:
    """Fields down, engines across (a few columns, so nothing scrolls out of view); a field that differs
    between repeats, such as import time, lists every repeat's value in order. TF32 settings show only for
    runs on a CUDA device (:data:`CUDA_ONLY`)."""
    runs = [r for r in doc.get("engines", []) if r.get("report")]
    if not runs:
        return ["<p>No engine reported its environment.</p>"]
    labels = list(dict.fromkeys(f"{r.get('engine')}/{r.get('mode')}" for r in runs))
    by_label = {lab: [r["report"] for r in runs if f"{r.get('engine')}/{r.get('mode')}" == lab] for lab in labels}
    on_cpu = {lab: all(str(rep.get("device", "cpu")).lower() == "cpu" for rep in reps)
              for lab, reps in by_label.items()}
    keys = [k for k in dict.fromkeys(k for r in runs for k in r["report"])
            if k not in CUDA_ONLY or not all(on_cpu.values())]

    def values(label: str, key: str) -> str:
        if key in CUDA_ONLY and on_cpu[label]:
            return NOT_ON_CPU
        shown = [environment_value(key, rep[key]) for rep in by_label[label] if key in rep]
        return ", ".join(dict.fromkeys(shown)) if len(set(shown)) <= 1 else ", ".join(shown)

    rows = [[key] + [values(lab, key) for lab in labels] for key in keys]
    parts = [html.table(["field", *labels], rows, "pairs")]
    if all(on_cpu.values()):
        parts.append(f"<p id='cpu-precision'>Every engine ran on the CPU. TF32, the reduced precision that "
                     f"{html.escape(' and '.join(CUDA_ONLY[:2]))} describe, exists only on CUDA devices, so they are "
                     "not shown.</p>")
    return parts


def build(folder: Path) -> Path:
    """Regenerate ``figures/`` and ``report.html`` in ``folder``; returns the report's absolute path."""
    folder = Path(folder).resolve()
    doc = read_summary(folder)
    written = figures.write(folder)
    page = render(doc, {name: path.read_bytes() for name, path in written.items()})
    return atomic_write(folder / "report.html", page)


def written_line(path: Path) -> str:
    """What a command prints once the report is written: ``report written to file:///…/report.html``, a
    URL a terminal opens with a click, whatever the folder it was given."""
    return f"report written to {Path(path).resolve().as_uri()}"
