"""Resuming a comparison, and what an output folder may hold.

Rerunning the same command into the same folder reuses every engine run that finished there (status
``ok``, or ``diverged``: a divergence is a result) with the same spec hash, the same thread count and
the same engine versions, and runs only the rest. What a finished run left is read back from its worker's
JSON-lines record, through the code path that reads every record
(:func:`bridge.results.records.outcome_from_record`).

A run is reusable only when the parent stamped it: after a worker ends ``ok`` or ``diverged``, the parent
writes ``workers/<run>.stamp.json`` (:func:`bridge.results.records.stamp`: spec hash, threads, the engine's
installed versions when it started, the engine run, when, where and how long it ran). A run that was
interrupted, failed, or whose parent died before stamping it, runs again.

Engine versions (:func:`bridge.results.records.installed_versions`, the one place that decides them) are
read from package metadata, without importing any framework: the versions of the distributions that provide the engine's
Python modules (its ``FRAMEWORK``, ``keras/jax``: keras and jax, then its ``REQUIRES``; read once by the
selection, :attr:`bridge.results.records.EngineMode.python_modules`). A finished run is reused only
when those are what they were when it ran, and the ``framework_version`` its worker reported in the
record is the version installed now of the distribution behind ``FRAMEWORK``, compared as versions
(:func:`bridge.results.records.same_version`: PyTorch reports ``2.14.1+cu130`` where its distribution's
metadata says ``2.14.1``), so the stamp describes what actually ran. An engine whose framework is no
Python distribution (Flux and Knet live in Julia environments) cannot be checked this way, and always
runs again.

A folder belongs to one experiment, and its results cover every engine run that finished in it: the
finished runs of engines a later run leaves out are kept in its results as they were (:func:`kept`), each
with when and where it ran, and a later run replaces only its own engine runs.

A run that reuses engine runs keeps the CPU GEMM peak the folder's earlier run was judged by
(:func:`earlier_peak`; :func:`bridge.running.peaks.cpu_gemm_peak` checks it is this machine's), so the runs it
reuses and those it adds are fractions of one number.

A folder holding results of a different spec is never written over silently: :func:`check_folder`
refuses unless told to overwrite, and then removes the earlier run's files first.
"""
from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import UsageError
from ..experiment.plan import open_plan
from ..experiment.spec import SpecError, load_toml
from ..files import atomic_write
from ..results import records
from ..results.records import STAMP_FORMAT, EngineMode, Outcome, installed_versions, stamp_path

LATEST = "latest"
# Everything bridge.compare writes into an output folder (the plan too, unless --save-plan sends it
# elsewhere); --overwrite removes exactly these, never anything else a user keeps there.
OUTPUT_FILES = ("results.csv", "summary.json", "checksums.csv", "spec.toml", "report.html")
OUTPUT_FOLDERS = ("figures", "workers", "plan")


class FolderInUse(UsageError):
    """The output folder holds another experiment's results; the message names it and the choices."""


def default_out(spec, root: Path = Path("results")) -> Path:
    """``results/<spec hash>``: two different experiments run one after the other both survive."""
    return Path(root) / spec.hash()


def link_latest(out: Path) -> str | None:
    """Point ``<parent>/latest`` at ``out`` (a relative symlink, replaced atomically); a warning when it
    cannot be done, None when done."""
    link = out.parent / LATEST
    if link.exists() and not link.is_symlink():
        return f"{link} is not a symlink, so it was left as it is (it does not point at {out})"
    tmp = out.parent / f".{LATEST}.{os.getpid()}"
    try:
        tmp.unlink(missing_ok=True)
        tmp.symlink_to(out.name, target_is_directory=True)
        os.replace(tmp, link)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        return f"{link} could not be pointed at {out} ({e.strerror})"
    return None


def _version_change(run: EngineMode, then: dict | None, report: dict) -> str | None:
    """Why a finished run may not be reused as far as versions go; None when it may."""
    now = installed_versions(run)
    if now is None:
        return f"the version of {run.framework or run.engine} cannot be checked from Python"
    if then != now:
        changed = [f"{d} {(then or {}).get(d, 'absent')} then, {now.get(d, 'absent')} now"
                   for d in sorted(set(now) | set(then or {})) if (then or {}).get(d) != now.get(d)]
        return ", ".join(changed)
    framework = run.python_modules[0]
    installed = {now[d] for d in records.providers()[framework]}
    if not any(records.same_version(report.get("framework_version", ""), v) for v in installed):
        return (f"it reported {report.get('framework', '?')} {report.get('framework_version', '?')}, "
                f"{framework} {' or '.join(sorted(installed))} is installed")
    return None


def _read_json(path: Path):
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


@dataclass
class Previous:
    """What an output folder already holds for a spec: the runs to reuse, and finished runs that run
    again with the reason."""
    reused: list = field(default_factory=list)
    rerun: list[str] = field(default_factory=list)
    repeats: int = 1

    def describe(self, out: Path) -> str | None:
        """One line for the user; None when nothing finished there before."""
        parts = []
        if self.reused:
            names = ", ".join(_name(o.run.label, o.repeat, self.repeats) for o in self.reused)
            parts.append(f"reusing {len(self.reused)} finished engine run(s) from {out}/: {names}")
        if self.rerun:
            parts.append("running again: " + "; ".join(self.rerun))
        return "bridge: " + "; ".join(parts) + " (--fresh reruns all)" if parts else None


def _name(label: str, repeat: int, repeats: int) -> str:
    return f"{label} repeat {repeat}" if repeats > 1 else label


def _finished(work: Path, run: EngineMode, repeat: int, spec_hash: str) -> tuple[Outcome, dict, list] | None:
    """The outcome of ``run``'s repeat that finished in ``work`` for ``spec_hash`` (its stamp, and a record
    that ends ``done``), with the stamp and the record's lines; None when there is none."""
    stamp_ = _read_json(stamp_path(work, run.engine, run.mode, repeat))
    if not isinstance(stamp_, dict) or stamp_.get("spec_hash") != spec_hash \
            or stamp_.get("format", STAMP_FORMAT) > STAMP_FORMAT:
        return None
    stem = records.worker_stem(run.engine, run.mode, repeat)
    lines = records.read_record(work / f"{stem}.jsonl")
    if not any(line.get("kind") == "done" for line in lines):
        return None  # the record was started over after the stamp was written
    done = next(line for line in lines if line.get("kind") == "done")
    ended = stamp_.get("ended") or records.utc_from_timestamp(done.get("t", 0))
    outcome = records.outcome_from_record(run, repeat, lines, wall_s=float(stamp_.get("wall_s", 0.0)),
                                         log=str(work / f"{stem}.log"), started=stamp_.get("started", ""),
                                         ended=ended, host=stamp_.get("host", ""))
    diverged = next((line for line in lines if line.get("kind") == "diverged"), None)
    if diverged:  # the same status and message as when it ran, so it is reported the same way
        outcome.status, outcome.message = "diverged", f"{run.label} diverged: {diverged['message']}"
    return outcome, stamp_, lines


def _when(outcome: Outcome) -> str:
    return f"{records.utc_display(outcome.ended)} UTC" if outcome.ended else "an unknown time"


def finished(spec, out: Path, threads: int, runs: tuple[EngineMode, ...]) -> Previous:
    """The engine runs of ``spec`` that finished in ``out`` and may be reused (see the module's doc), of
    ``runs``: those that will run (:attr:`bridge.running.selection.Selection.runs`)."""
    work = Path(out) / "workers"
    previous = Previous(repeats=spec.repeats)
    if not work.is_dir():
        return previous
    spec_hash = spec.hash()
    for repeat in range(spec.repeats):
        for r in runs:
            found = _finished(work, r, repeat, spec_hash)
            if found is None:
                continue
            outcome, stamp_, lines = found
            diverged = outcome.status == "diverged"
            if stamp_.get("threads") != threads:
                why = f"it ran with {stamp_.get('threads')} threads, this run has {threads}"
            elif not diverged and len(outcome.epochs) != spec.epochs:
                why = f"its record holds {len(outcome.epochs)} of {spec.epochs} epochs"
            else:
                why = _version_change(r, stamp_.get("versions"), outcome.report)
            if why:
                previous.rerun.append(f"{_name(r.label, repeat, spec.repeats)} ({why})")
                continue
            when = f"finished in an earlier run of this spec at {_when(outcome)}"
            outcome.message = f"{outcome.message} ({when})" if diverged else f"reused: {when}"
            previous.reused.append(outcome)
    return previous


def kept(spec, out: Path, own: set[EngineMode]) -> list[Outcome]:
    """Every engine run that finished in ``out`` for ``spec`` (stamped, its record ending ``done``) of an
    engine not in ``own`` (those this comparison runs or names): kept in the folder's results as it is,
    with when it ran, so that a run of a few engines adds to a folder instead of replacing it. Runs whose
    stamps predate stamps naming their engine run are not kept (their engine cannot be known)."""
    work = Path(out) / "workers"
    if not work.is_dir():
        return []
    spec_hash, found = spec.hash(), []
    for path in sorted(work.glob("*.stamp.json")):
        run = records.run_from_stamp(_read_json(path))
        if run is None or run in own:
            continue
        repeat = path.name[:-len(".stamp.json")].rsplit("-r", 1)[-1]
        if not repeat.isdigit():
            continue
        got = _finished(work, run, int(repeat), spec_hash)
        if got is None:
            continue
        outcome = got[0]
        when = f"kept: finished in an earlier run of this folder at {_when(outcome)}"
        outcome.message = when if outcome.status == "ok" else f"{outcome.message} ({when})"
        found.append(outcome)
    # engines in order of first appearance in the folder's stamps, repeats in order
    first = {}
    for o in found:
        first.setdefault(o.run, len(first))
    return sorted(found, key=lambda o: (first[o.run], o.repeat))


def earlier_peak(out: Path) -> dict | None:
    """The CPU GEMM peak the results already in ``out`` were judged by (summary.json's fingerprint
    ``cpu_gemm_peak``): a resumed run keeps it for the engine runs it reuses and those it adds
    (:func:`bridge.running.peaks.cpu_gemm_peak` decides whether it still holds); None where there is none."""
    summary = _read_json(Path(out) / "summary.json")
    peak = summary.get("fingerprint", {}).get("cpu_gemm_peak") if isinstance(summary, dict) else None
    return peak if isinstance(peak, dict) else None


# --- the folder -----------------------------------------------------------------------------------------

def folder_spec_hash(out: Path) -> str | None:
    """The spec hash of the results already in ``out``: summary.json's, else spec.toml's, else that of the
    plan a worker job ran on (a run stopped before anything was written); None when it holds none."""
    out = Path(out)
    summary = _read_json(out / "summary.json")
    if isinstance(summary, dict) and summary.get("fingerprint", {}).get("spec_hash"):
        return summary["fingerprint"]["spec_hash"]
    if (out / "spec.toml").is_file():
        try:
            return load_toml(out / "spec.toml").hash()
        except SpecError:
            pass
    for job in sorted((out / "workers").glob("*.job.json")):
        data = _read_json(job)
        try:
            return open_plan(Path(data["plan_dir"])).spec_hash
        except (TypeError, KeyError, OSError, ValueError):
            continue
    return None


def check_folder(out: Path, spec, overwrite: bool) -> None:
    """Refuse an ``out`` that holds another spec's results; with ``overwrite``, remove them first."""
    held = folder_spec_hash(out)
    if held is None or held == spec.hash():
        return
    if not overwrite:
        raise FolderInUse(f"output folder {str(out)!r} holds the results of another experiment (spec {held}, "
                          f"this one is {spec.hash()}); give another --out, or --overwrite to replace them")
    for name in OUTPUT_FILES:
        (Path(out) / name).unlink(missing_ok=True)
    for name in OUTPUT_FOLDERS:
        shutil.rmtree(Path(out) / name, ignore_errors=True)
