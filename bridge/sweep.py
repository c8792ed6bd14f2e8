"""``python -m bridge.sweep``: one comparison per point of a grid over spec fields, run through Dask.

A base spec (the options and ``--config`` of ``bridge.compare``) and one or more axes
(``--grid batch_size=16,64,256 --grid hidden=64,256``, or a ``[sweep]`` table in the TOML file) give the
cartesian product of points. Each point is a complete comparison — its own data, plan and spec hash —
run by :func:`bridge.runner.run` on a Dask worker; its results come back to the client as data and are
written under ``OUT/points/<spec hash>/`` (the files ``bridge.compare`` writes, less the plan). Then
``OUT/sweep.csv`` holds one tidy row per point × engine run × repeat, ``OUT/sweep.json`` the sweep's
definition (both written and read by :mod:`bridge.sweepresults`), and ``OUT/report.html`` the figures
(:mod:`bridge.sweepreport`).

Execution. By default an embedded ``LocalCluster``: one worker process with one thread and one
:data:`RESOURCE` slot, so points run one at a time and no two timed runs share the machine.
``--scheduler ADDRESS`` sends the points to an existing cluster instead; every point asks for one
:data:`RESOURCE` slot, so a worker started with ``--resources bridge=1`` (one such worker per node) runs
one point at a time. Points assume no shared filesystem: each builds its data and plan in a temporary
folder where it runs.

Faults. A point whose results exist in OUT with the same spec, engines and repeats is skipped (``--fresh``
runs it again). A point that raises is a row with its error and the others go on; a worker lost in the
middle of a point (killed, out of memory, its node gone) makes the scheduler run that point again on
another worker (the embedded cluster allows one retry, an existing one its own ``allowed-failures``); the
``attempts`` column counts the starts. Ctrl-C stops the sweep: finished points stay in OUT, sweep.csv and
the report are written for them, and the same command resumes with the missing points.
"""
from __future__ import annotations

import argparse
import hashlib
import itertools
import json
import shlex
import socket
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .spec import FIELDS, MODEL_SIZE_FIELDS, MODEL_SIZE_FIELDS_OF, Spec, SpecError, from_mapping
from .sweepresults import (error_rows, finished, point_folder, point_rows, shown, table, write_definition,
                           write_point, write_table)

EXIT_FAILED, EXIT_USAGE = 1, 2
RESOURCE = "bridge"  # the worker resource a point holds while it runs: one per node, one point at a time
TOPIC = "bridge-sweep"  # Dask event topic of the points' progress
NOT_AXES = ("engines", "repeats", "timeout")  # what the sweep as a whole sets, not a point
INSTALL = "pip install 'bridge[sweep]'"


class SweepError(ValueError):
    """A bad grid or sweep option; the message names the value and the fix."""


# --- the grid ----------------------------------------------------------------------------------------------

def _tuple_field(name: str) -> bool:
    kind = FIELDS[name].type
    return (kind if isinstance(kind, str) else kind.__name__).startswith("tuple")


def parse_axis(text: str) -> tuple[str, list[Any]]:
    """``FIELD=V1,V2,...`` → (field, values). For a field holding a list (``hidden``, ``filters``), each
    value is one list with its items joined by ``/``: ``hidden=64,256/128`` is (64,) and (256, 128)."""
    name, sep, values = text.partition("=")
    name = name.strip().replace("-", "_")
    items = [v.strip() for v in values.split(",") if v.strip()]
    if not sep or not name or not items:
        raise SweepError(f"--grid {text!r} is not FIELD=V1,V2,...; e.g. --grid batch_size=16,64,256")
    _check_field(name)
    if _tuple_field(name):
        items = [v.replace("/", ",") for v in items]
    return name, items


def _check_field(name: str) -> None:
    if name not in FIELDS or name in NOT_AXES:
        accepted = ", ".join(f for f in FIELDS if f not in NOT_AXES)
        raise SweepError(f"{name!r} cannot be a grid axis; accepted: {accepted} ({', '.join(NOT_AXES)} are "
                         "options of the whole sweep)")


def table_axes(table: dict) -> dict[str, list[Any]]:
    """The axes of a ``[sweep]`` TOML table: ``field = [values]``; for ``hidden`` and ``filters`` a value
    is a list of widths or one width (``hidden = [64, [256, 128]]``)."""
    axes = {}
    for name, values in table.items():
        _check_field(name)
        if not isinstance(values, list) or not values:
            raise SweepError(f"[sweep] {name} = {values!r} is not a non-empty list of values; "
                             f"e.g. {name} = [16, 64]")
        if _tuple_field(name):
            values = [v if isinstance(v, list) else [v] for v in values]
        axes[name] = values
    return axes


@dataclass(frozen=True)
class Point:
    axes: dict  # field -> this point's value, as given
    spec: Spec

    @property
    def key(self) -> str:
        return self.spec.hash()

    @property
    def label(self) -> str:
        return " ".join(f"{k}={shown(getattr(self.spec, k))}" for k in self.axes)


def points(base: dict, axes: dict[str, list[Any]]) -> list[Point]:
    """Every point of the grid, in order (the last axis varies fastest): ``base`` (spec fields as given,
    so that a point's data set brings its own defaults) with one value of each axis."""
    if not axes:
        raise SweepError("no grid axis; give one or more --grid FIELD=V1,V2 (or a [sweep] table in --config)")
    out, seen = [], {}
    for combo in itertools.product(*axes.values()):
        values = dict(zip(axes, combo))
        try:
            where = "the grid point " + " ".join(f"{k}={v}" for k, v in values.items())
            spec = from_mapping({**base, **values}, origin=where)
        except SpecError as e:
            raise SweepError(str(e)) from None
        for name in axes:
            if name in MODEL_SIZE_FIELDS and name not in MODEL_SIZE_FIELDS_OF[spec.model]:
                raise SweepError(f"--grid {name}: the {spec.model} has no {name} (it has "
                                 f"{', '.join(MODEL_SIZE_FIELDS_OF[spec.model])}); vary those instead")
        point = Point(values, spec)
        if point.key in seen:
            raise SweepError(f"the grid points {seen[point.key]} and {point.label} are the same experiment; "
                             "give each axis distinct values")
        seen[point.key] = point.label
        out.append(point)
    return out


def sweep_hash(pts: list[Point], engines: tuple[str, ...], repeats: int) -> str:
    doc = json.dumps([[p.key for p in pts], list(engines), repeats])
    return hashlib.sha256(doc.encode()).hexdigest()[:12]


# --- one point, on a Dask worker -----------------------------------------------------------------------------

def run_point(values: dict, key: str) -> dict:
    """Run one point's comparison where this task runs, in a temporary folder; return its result files
    (less the plan) as bytes, with the worker that ran it. Engine failures are part of the results; an
    error of the point itself (data that cannot be had, a plan too large) is returned, not raised, so
    Dask does not run it again: only a lost worker does that."""
    from . import runner

    try:
        from distributed import get_worker

        worker = get_worker()
        address = worker.address
    except (ImportError, ValueError):  # run outside a Dask worker (tests, debugging)
        worker, address = None, f"local:{socket.gethostname()}"

    def emit(msg: dict) -> None:
        if worker is not None:
            worker.log_event(TOPIC, {"point": key, "worker": address, **msg})

    emit({"kind": "point-start"})
    spec = from_mapping(values)
    with tempfile.TemporaryDirectory(prefix="bridge-point-") as tmp:
        out = Path(tmp)

        def on_event(event: dict) -> None:
            if event.get("kind") in ("prepared", "epoch", "done", "error"):
                emit({"kind": "engine", "engine": event["run"].label, "repeat": event["repeat"],
                      "event": event["kind"], "epoch": event.get("epoch")})
        try:
            runner.run(spec, out, on_event=on_event)
        except Exception as e:  # noqa: BLE001 - the point's error goes into sweep.csv
            message = next(iter(str(e).splitlines()), "") or type(e).__name__
            return {"point": key, "worker": address, "error": f"{type(e).__name__}: {message}"}
        files = {str(p.relative_to(out)): p.read_bytes() for p in sorted(out.rglob("*"))
                 if p.is_file() and p.relative_to(out).parts[0] != "plan"}
    return {"point": key, "worker": address, "files": files}


# --- progress --------------------------------------------------------------------------------------------------

class SweepProgress:
    """One line per event worth a line: a point started (where), an engine run started, a point finished
    (with points done / total, elapsed and estimated time left). Fed by the Dask event topic and by the
    client as results arrive; events come on Dask's event loop thread, hence the lock."""

    def __init__(self, pts: list[Point], todo: int, quiet: bool = False, file=None):
        self.labels = {p.key: p.label for p in pts}
        self.todo, self.done, self.quiet = todo, 0, quiet
        self.attempts: dict[str, int] = {}
        self.workers: dict[str, str] = {}
        self.file = file or sys.stdout
        self.start = time.monotonic()
        self.lock = threading.Lock()

    def _print(self, text: str) -> None:
        if not self.quiet:
            print(text, file=self.file, flush=True)

    def _clock(self) -> str:
        elapsed = time.monotonic() - self.start
        # the mean time per finished point, for every point not finished, less the running one's time so far
        left = f", ~{_minutes(max(0.0, elapsed / self.done * self.todo - elapsed))} left" if self.done else ""
        return f"{self.done}/{self.todo} points, {_minutes(elapsed)} elapsed{left}"

    def on_event(self, event) -> None:
        _, msg = event if isinstance(event, tuple) else (None, event)
        with self.lock:
            key = msg.get("point")
            label = self.labels.get(key, key)
            if msg.get("kind") == "point-start":
                self.attempts[key] = self.attempts.get(key, 0) + 1
                self.workers[key] = msg.get("worker", "")
                again = f" (attempt {self.attempts[key]})" if self.attempts[key] > 1 else ""
                self._print(f"[{self._clock()}] point {label} started on {msg.get('worker')}{again}")
            elif msg.get("kind") == "engine" and msg.get("event") == "prepared":
                self._print(f"[{self._clock()}]   {label}: {msg.get('engine')} repeat {msg.get('repeat', 0) + 1} "
                            "running")

    def finished(self, point: Point, status: str) -> None:
        with self.lock:
            self.done += 1
            self._print(f"[{self._clock()}] point {point.label} {status}")


def _minutes(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 90 else f"{seconds / 60:.1f} min"


# --- command line ------------------------------------------------------------------------------------------------

class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:
        self.exit(EXIT_USAGE, f"bridge.sweep: error: {message} (see --help)\n")


def parser() -> argparse.ArgumentParser:
    from .compare import add_spec_options

    p = _Parser(prog="python -m bridge.sweep",
                description="Run one bridge comparison per point of a grid over spec fields, through Dask, "
                            "and draw how each engine's throughput grows with the work.")
    p.add_argument("--grid", action="append", default=[], metavar="FIELD=V1,V2",
                   help="a grid axis: a spec field and its values (repeatable); for hidden and filters join a "
                        "value's widths with '/': --grid hidden=64,256/128")
    p.add_argument("--config", metavar="FILE", help="TOML file: spec fields, and a [sweep] table of axes")
    p.add_argument("--out", metavar="DIR", default=None,
                   help="sweep folder (default: ./results/sweep-<hash of the points>); points finished there "
                        "are kept and skipped")
    p.add_argument("--scheduler", metavar="ADDRESS", default=None,
                   help="an existing Dask scheduler (tcp://host:8786); its workers need --resources "
                        f"{RESOURCE}=1 (default: an embedded local cluster of one worker)")
    p.add_argument("--fresh", action="store_true", help="run every point again, even those finished in OUT")
    p.add_argument("--quiet", action="store_true", help="print only errors and where the results are")
    p.add_argument("--no-report", action="store_true", dest="no_report", help="do not draw the sweep report")
    add_spec_options(p)
    return p


def definition(args: argparse.Namespace) -> tuple[dict, dict[str, list], list[Point]]:
    """(base spec fields, axes, points) from the command line and the config file."""
    from .spec import sweep_table, toml_values

    config, axes = {}, {}
    if args.config:
        config = toml_values(args.config)
        axes = table_axes(sweep_table(args.config))
    given = {name: getattr(args, name) for name in FIELDS if getattr(args, name) is not None}
    base = {**config, **given}
    for text in args.grid:
        name, values = parse_axis(text)
        axes[name] = values  # the command line wins over the file
    for name in axes:
        base.pop(name, None)
    from_mapping(base, origin="the command line")  # a bad base value is named as itself
    return base, axes, points(base, axes)


def _client(scheduler: str | None):
    """A Dask client: of an existing scheduler, or of an embedded one-worker cluster (one point at a time)."""
    import dask
    from distributed import Client, LocalCluster

    if scheduler:
        client = Client(scheduler, timeout="20s")
        try:
            workers = client.scheduler_info(n_workers=-1)["workers"]  # newer Dask lists 5 unless asked
        except TypeError:
            workers = client.scheduler_info()["workers"]
        if not any(w.get("resources", {}).get(RESOURCE) for w in workers.values()):
            client.close()
            raise SweepError(f"no worker of the Dask cluster at {scheduler} offers the resource {RESOURCE!r}; start "
                             f"one worker per node with: dask worker {scheduler} --nthreads 1 --resources {RESOURCE}=1")
        return client, None
    dask.config.set({"distributed.scheduler.allowed-failures": 1})  # a lost worker's point: retried once
    cluster = LocalCluster(n_workers=1, threads_per_worker=1, processes=True, resources={RESOURCE: 1},
                           host="127.0.0.1", dashboard_address=None)
    return Client(cluster), cluster


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parser().parse_args(argv)
    try:
        base, axes, pts = definition(args)
    except (SweepError, SpecError) as e:
        print(f"bridge.sweep: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    try:
        import distributed  # noqa: F401
    except ImportError:
        print(f"bridge.sweep: error: Dask distributed is not installed; run: {INSTALL}", file=sys.stderr)
        return EXIT_USAGE
    first = pts[0].spec
    engines, repeats = first.engines, first.repeats
    out = Path(args.out) if args.out else Path("results") / f"sweep-{sweep_hash(pts, engines, repeats)}"
    out.mkdir(parents=True, exist_ok=True)
    write_definition(out, {
        "base": {k: list(v) if isinstance(v, tuple) else v for k, v in base.items()},
        "axes": {k: list(dict.fromkeys(shown(getattr(p.spec, k)) for p in pts)) for k in axes},
        "spec": first.to_dict(),  # the first point's whole spec: the defaults every point shares
        "engines": list(engines), "repeats": repeats, "scheduler": args.scheduler or "embedded LocalCluster",
        "points": [{"point": p.key, "label": p.label, **{k: shown(getattr(p.spec, k)) for k in axes}}
                   for p in pts]})
    done = [p for p in pts if not args.fresh and finished(out, p, engines, repeats)]
    todo = [p for p in pts if p not in done]
    progress = SweepProgress(pts, len(todo), quiet=args.quiet)
    if not args.quiet:
        print(f"bridge.sweep: {len(pts)} points ({' x '.join(f'{k} {len(v)}' for k, v in axes.items())}), "
              f"engines {','.join(engines) or 'all available'}, {repeats} repeat(s) -> {out}"
              + (f"; {len(done)} finished earlier, kept" if done else ""), flush=True)
    rows = {p.key: point_rows(p, point_folder(out, p)) for p in done}
    interrupted = False
    try:
        if todo:
            _run(args, todo, out, progress, rows)
    except KeyboardInterrupt:
        interrupted = True
    except (SweepError, OSError) as e:
        print(f"bridge.sweep: error: {e}", file=sys.stderr)
        return EXIT_FAILED
    frame = table([r for p in pts if p.key in rows for r in rows[p.key]], list(axes))
    write_table(out, frame)
    if not args.no_report and len(frame):
        try:
            from . import sweepreport

            path = sweepreport.build(out)
            if not args.quiet:
                print(f"report written to {path}")
        except Exception as e:  # noqa: BLE001 - drawing must not cost the sweep its results
            print(f"warning: sweep report not written ({type(e).__name__}: {e}); retry with "
                  f"python -m bridge.sweepreport {out}", file=sys.stderr)
    if interrupted:
        print(f"bridge.sweep: stopped by SIGINT; {len(rows)} of {len(pts)} points kept in {out}/ (sweep.csv); "
              f"resume with: {shlex.join(['python', '-m', 'bridge.sweep', *(a for a in argv if a != '--fresh')])}",
              file=sys.stderr)
        return 130
    failed = frame[frame.status.isin(["error", "crashed", "timeout", "mismatch", "unavailable"])]
    for point, g in failed.groupby("point", sort=False):
        for r in g.to_dict("records"):
            print(f"warning: point {point}: {r['engine'] or 'point'} {r['status']}: {r['error']}", file=sys.stderr)
    print(f"sweep written to {out}/ (sweep.csv: {len(frame)} rows, points/, report.html)")
    return EXIT_FAILED if len(failed) else 0


def _run(args, todo: list[Point], out: Path, progress: SweepProgress, rows: dict[str, list[dict]]) -> None:
    """Submit the points and write each one's results as it arrives; its sweep.csv rows go into ``rows``
    at once, so an interrupted sweep keeps them."""
    from distributed import as_completed

    client, cluster = _client(args.scheduler)
    futures = {}
    try:
        client.subscribe_topic(TOPIC, progress.on_event)
        futures = {client.submit(run_point, p.spec.to_dict(), p.key,  # in grid order, as far as workers allow
                                 key=f"bridge-point-{p.key}-{time.time_ns()}", resources={RESOURCE: 1},
                                 priority=len(todo) - i, pure=False): p for i, p in enumerate(todo)}
        for future in as_completed(futures):
            point = futures[future]
            time.sleep(0.05)  # let the point's last events arrive before its line
            attempts = progress.attempts.get(point.key, 1)
            try:
                got = future.result()
            except Exception as e:  # noqa: BLE001 - a worker lost too often, a task that could not run
                message = next(iter(str(e).splitlines()), "") or type(e).__name__
                rows[point.key] = error_rows(point, f"{type(e).__name__}: {message}", "", attempts)
                progress.finished(point, f"failed: {type(e).__name__}: {message}")
                continue
            if "error" in got:
                rows[point.key] = error_rows(point, got["error"], got["worker"], attempts)
                progress.finished(point, f"failed: {got['error']}")
                continue
            folder = write_point(out, point, got["files"])
            rows[point.key] = point_rows(point, folder, got["worker"], attempts)
            bad = [r for r in rows[point.key] if r["status"] != "ok"]
            progress.finished(point, "done" if not bad else f"done, {len(bad)} engine run(s) not ok")
    except KeyboardInterrupt:
        for f in futures:
            f.cancel()
        raise
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


if __name__ == "__main__":
    sys.exit(main())
