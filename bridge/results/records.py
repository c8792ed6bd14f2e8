"""An engine run and what it leaves: which engine in which mode (:class:`EngineMode`), its status
(:class:`Outcome`), the names of its files in ``workers/``, the reading of its worker's record, and the
stamp of a finished run with the versions it ran (:func:`installed_versions`).
:mod:`bridge.running.runner` writes them, :mod:`bridge.running.resume` reads them back, and the results
(:mod:`bridge.results.store`) are made of them.
"""
from __future__ import annotations

import functools
import importlib.metadata as metadata
import json
from dataclasses import dataclass, field
from pathlib import Path

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


STAMP_FORMAT = 1


def stamp_path(work: Path, engine: str, mode: str, repeat: int) -> Path:
    return Path(work) / f"{worker_stem(engine, mode, repeat)}.stamp.json"


def stamp(path: Path, spec_hash: str, threads: int, versions: dict | None, wall_s: float) -> None:
    """Mark a finished run (:data:`REUSABLE`) as reusable (written atomically: a half-written stamp never
    counts); :mod:`bridge.running.resume` decides whether a later run may reuse it."""
    atomic_write(path, json.dumps({"format": STAMP_FORMAT, "spec_hash": spec_hash, "threads": threads,
                                   "versions": versions, "wall_s": wall_s}))
