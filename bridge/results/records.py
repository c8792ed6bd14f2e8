"""An engine run and what it leaves: which engine in which mode (:class:`EngineMode`), its status
(:class:`Outcome`), the names of its files in ``workers/``, the reading of its worker's record, and the
stamp of a finished run with the versions it ran (:func:`installed_versions`).
:mod:`bridge.running.runner` writes them, :mod:`bridge.running.resume` reads them back, and the results
(:mod:`bridge.results.store`) are made of them.
"""
from __future__ import annotations

import dataclasses
import functools
import importlib.metadata as metadata
import json
import socket
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from packaging.version import InvalidVersion, Version

from ..files import atomic_write


@dataclass(frozen=True)
class EngineMode:
    """An engine in one mode (``keras/fit``), with what :func:`bridge.running.selection.select` decided of it
    once: the framework it reports, the max-pool gradient rule it follows on the run's device and the
    reference run its parity is measured against (:mod:`bridge.experiment.semantics`), and the Python
    modules whose versions say what ran. Two are the same engine run when their engine and mode are."""
    engine: str
    mode: str
    framework: str = field(default="", compare=False)
    maxpool_gradient: str = field(default="exact", compare=False)
    compared_with: str | None = field(default=None, compare=False)  # a reference run's label; None: the oracle
    python_modules: tuple[str, ...] = field(default=(), compare=False)

    @property
    def label(self) -> str:
        return f"{self.engine}/{self.mode}"


# A failure makes bridge.compare exit 1. A divergence does not: the experiment ran as specified and its
# losses stopped being finite, which is a result about the engine, not a fault of the tool.
FAILURES = ("mismatch", "error", "crashed", "timeout", "unavailable", "interrupted")
STATUSES = ("ok", "diverged", *FAILURES, "skipped")
REUSABLE = ("ok", "diverged")
"""The statuses of a finished experiment, which a rerun of the same spec may reuse (a divergence is a
result: running it again gives the same one)."""


@dataclass
class Outcome:
    """What one engine run left. Status (``STATUSES``):

    ``ok``           every epoch trained and passed the worker's checks
    ``diverged``     a loss or a logit was not finite; the epochs up to and including that one are kept
    ``mismatch``     batches disagreed with the plan (or with the engine's own checksums); the epochs are
                     kept in results.csv but kept out of the summary's comparisons
    ``error``        the engine raised, or returned what the protocol does not allow
    ``crashed``      the worker exited without a record of its end
    ``timeout``      the worker passed ``spec.timeout`` and was killed
    ``interrupted``  a signal (Ctrl-C, SIGTERM) stopped the run while this worker ran
                     (:class:`bridge.running.stopping.Interrupted`)
    ``unavailable``  named but cannot run here
    ``skipped``      not named, and cannot run here
    """
    run: EngineMode
    repeat: int
    status: str
    message: str = ""
    report: dict = field(default_factory=dict)
    epochs: list[dict] = field(default_factory=list)
    wall_s: float = 0.0
    log: str = ""
    started: str = ""
    """When its worker started, UTC, ISO 8601 (:func:`utc_now`); empty where it never started."""
    ended: str = ""
    host: str = ""
    """The machine it ran on (``socket.gethostname()``)."""

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    @property
    def failed(self) -> bool:
        return self.status in FAILURES

    @property
    def flagged(self) -> bool:
        """A failure or a divergence: ends the run with a line for the user even under ``--quiet``."""
        return self.failed or self.status == "diverged"


def utc_now() -> str:
    """Now, UTC, ISO 8601 to the millisecond: ``2026-12-07T02:21:13.042+00:00``."""
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


def utc_from_timestamp(t: float) -> str:
    return datetime.fromtimestamp(t, timezone.utc).isoformat(timespec="milliseconds")


def utc_display(stamp) -> str:
    """``2026-12-07T02:21:13.042+00:00`` as ``2026-12-07 02:21:13``; empty where unknown."""
    return str(stamp or "").replace("T", " ").split(".")[0].replace("+00:00", "")


def host() -> str:
    return socket.gethostname()


def worker_stem(engine: str, mode: str, repeat: int) -> str:
    """How every file of one engine run in ``workers/`` is named (``<stem>.jsonl``, ``.log``, ``.job.json``,
    ``.stamp.json``)."""
    return f"{engine.replace('.', '_')}-{mode}-r{repeat}"


def outcome_from_record(run: EngineMode, repeat: int, lines: list[dict], **fields) -> Outcome:
    """An ``ok`` Outcome holding what a worker's record says (its report and epochs); the caller decides
    the status: the runner from how the worker ended, :mod:`bridge.running.resume` from its stamp."""
    out = Outcome(run, repeat, "ok", **fields)
    for line in lines:
        if line["kind"] == "prepared":
            out.report = line["report"]
        elif line["kind"] == "epoch":
            out.epochs.append(line)
        elif line["kind"] == "memory":  # once training ended (bridge.proctree): joins the report
            out.report = {**out.report, **line["memory"]}
        elif line["kind"] == "final":  # the engine's final_report hook (bridge.contract): joins it too
            out.report = {**out.report, **line["report"]}
    return out


def read_record(path: Path) -> list[dict]:
    """The JSON lines of a worker's record, up to the first one cut short (a hard exit mid-write)."""
    if not path.exists():
        return []
    lines = []
    for text in path.read_text().splitlines():
        try:
            lines.append(json.loads(text))
        except json.JSONDecodeError:  # a line cut short by a hard exit
            break
    return lines


# --- what ran, and the stamp of a finished run ------------------------------------------------------------

@functools.lru_cache(maxsize=1)
def providers() -> dict[str, list[str]]:
    # top-level module -> distributions; "tensorflow" is provided by tensorflow-cpu on some machines
    return metadata.packages_distributions()


def installed_versions(run: EngineMode) -> dict[str, str] | None:
    """``{distribution: version}`` behind engine run ``run`` as installed now, the distributions of its
    framework first, then those of its other Python modules; None when its framework is no Python
    distribution (its version cannot be known without starting it)."""
    providers_ = providers()
    if not run.python_modules or not providers_.get(run.python_modules[0]):
        return None
    versions = {}
    for name in run.python_modules:
        for dist in providers_.get(name, ()):
            try:
                versions[dist] = metadata.version(dist)
            except metadata.PackageNotFoundError:  # uninstalled since the cache was filled
                return None
    return versions


def same_version(reported: str, installed: str) -> bool:
    """Whether the version a framework reported when it ran (``torch.__version__``: ``2.14.1+cu130``) is
    the installed distribution's (``2.14.1`` in its metadata): compared as versions (PEP 440), a local
    label (``+cu130``, ``+cpu``) only where both sides carry one, as the metadata of PyPI's default
    PyTorch build does not; text that is no version must be equal."""
    try:
        a, b = Version(str(reported)), Version(str(installed))
    except InvalidVersion:
        return str(reported) == str(installed)
    return Version(a.public) == Version(b.public) and (a.local is None or b.local is None or a.local == b.local)


STAMP_FORMAT = 1


def stamp_path(work: Path, engine: str, mode: str, repeat: int) -> Path:
    return Path(work) / f"{worker_stem(engine, mode, repeat)}.stamp.json"


def stamp(path: Path, spec_hash: str, threads: int, versions: dict | None, outcome: Outcome) -> None:
    """Mark a finished run (:data:`REUSABLE`) as reusable (written atomically: a half-written stamp never
    counts); :mod:`bridge.running.resume` decides whether a later run may reuse it, and a later run of
    other engines into the same folder keeps it in the results (``run``: the engine run as selected,
    :class:`EngineMode`'s fields; when, where and how long it ran)."""
    atomic_write(path, json.dumps({"format": STAMP_FORMAT, "spec_hash": spec_hash, "threads": threads,
                                   "versions": versions, "wall_s": outcome.wall_s, "started": outcome.started,
                                   "ended": outcome.ended, "host": outcome.host,
                                   "run": dataclasses.asdict(outcome.run)}))


def run_from_stamp(data: dict) -> EngineMode | None:
    """The engine run a stamp was written for; None for a stamp written before stamps held it."""
    fields = data.get("run") if isinstance(data, dict) else None
    if not isinstance(fields, dict):
        return None
    try:
        return EngineMode(**{**fields, "python_modules": tuple(fields.get("python_modules", ()))})
    except TypeError:
        return None
