"""``python -m bridge.sweep``: one comparison per point of a grid over spec fields, run through Dask.

A base spec (the options and ``--config`` of ``bridge.compare``) and one or more axes
(``--grid batch_size=16,64,256 --grid hidden=64,256``, or a ``[sweep]`` table in the TOML file) give the
cartesian product of points (:mod:`.grid`). Each point is a complete comparison — its own data, plan and
spec hash — run on a Dask worker (:mod:`.cluster`); its results come back to the client as data and are
written under ``OUT/points/<spec hash>/`` (the files ``bridge.compare`` writes, less the plan). Then
``OUT/sweep.csv`` holds one tidy row per point × engine run × repeat, ``OUT/sweep.json`` the sweep's
definition (both written and read by :mod:`.results`), and ``OUT/report.html`` the figures
(:mod:`.report`).

Execution. By default an embedded ``LocalCluster``: one worker process with one thread and one
``bridge`` slot, so points run one at a time and no two timed runs share the machine. ``--scheduler
ADDRESS`` sends the points to an existing cluster instead; every point asks for one slot, so a worker
started with ``--resources bridge=1`` (one such worker per node) runs one point at a time. Points assume
no shared filesystem: each builds its data and plan in a temporary folder where it runs.

Faults. A point whose results exist in OUT with the same spec, engines and repeats is skipped (``--fresh``
runs it again). A point that raises is a row with its error and the others go on; a worker lost in the
middle of a point (killed, out of memory, its node gone) makes the scheduler run that point again on
another worker (the embedded cluster allows one retry, an existing one its own ``allowed-failures``); the
``attempts`` column counts the starts. Ctrl-C or SIGTERM stops the sweep: finished points stay in OUT
(sweep.csv is rewritten as each point ends), the report is drawn for them, and the same command resumes
with the missing points; a sweep still running 60 s after the signal (Dask not closing) stops at once. A
scheduler that does not answer, or whose workers offer no ``bridge`` slot, is bad input: it is checked
before anything is written. Dask's own log lines go to ``OUT/dask.log`` (``--verbose``: the terminal).

At the end the command prints one row per point and engine run (:func:`.results.format_points`), also
with ``--quiet``, as ``bridge.compare`` prints its table.
"""
from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

from ..cli import EXIT_CODES_EPILOG, EXIT_FAILED, EXIT_OK, EXIT_USAGE, Parser, fail
from ..errors import BridgeError, UsageError
from ..experiment.options import add_spec_options, given_fields
from ..experiment.spec import from_mapping, sweep_table, toml_values
from ..results.records import FAILURES
from ..running.stopping import Interrupted, stop_on_signals
from ..presentation.report import written_line
from . import cluster, report
from .grid import Point, parse_axis, points, shown, sweep_hash, table_axes
from .progress import SweepProgress
from .results import (error_rows, finished, format_points, point_folder, point_rows, table, write_definition,
                      write_point, write_table)

COMMAND = "bridge.sweep"


def parser() -> argparse.ArgumentParser:
    p = Parser(COMMAND, epilog=EXIT_CODES_EPILOG, description="Run one bridge comparison per point of a grid over spec fields, through "
                                    "Dask, and draw how each engine's throughput grows with the work.")
    p.add_argument("--grid", action="append", default=[], metavar="FIELD=V1,V2",
                   help="a grid axis: a spec field and its values (repeatable); for hidden and filters join a "
                        "value's widths with '/': --grid hidden=64,256/128")
    p.add_argument("--config", metavar="FILE", help="TOML file: spec fields, and a [sweep] table of axes")
    p.add_argument("--out", metavar="DIR", default=None,
                   help="sweep folder (default: ./results/sweep-<hash of the points>); points finished there "
                        "are kept and skipped")
    p.add_argument("--scheduler", metavar="ADDRESS", default=None,
                   help="an existing Dask scheduler (tcp://host:8786); its workers need --resources "
                        f"{cluster.RESOURCE}=1; one that does not answer within {cluster.CONNECT_TIMEOUT_S} s is "
                        "refused before anything is written (default: an embedded local cluster of one worker)")
    p.add_argument("--fresh", action="store_true", help="run every point again, even those finished in OUT")
    p.add_argument("--quiet", action="store_true",
                   help="print only errors, the table of points and where the results are")
    p.add_argument("--verbose", action="store_true",
                   help=f"show Dask's own log lines in the terminal (default: in OUT/{cluster.LOG})")
    p.add_argument("--no-report", action="store_true", dest="no_report", help="do not draw the sweep report")
    add_spec_options(p)
    return p


def definition(args: argparse.Namespace) -> tuple[dict, dict[str, list], list[Point]]:
    """(base spec fields, axes, points) from the command line and the config file."""
    config, axes = {}, {}
    if args.config:
        config = toml_values(args.config)
        axes = table_axes(sweep_table(args.config))
    base = {**config, **given_fields(args)}
    for text in args.grid:
        name, values = parse_axis(text)
        axes[name] = values  # the command line wins over the file
    for name in axes:
        base.pop(name, None)
    from_mapping(base, origin="the command line")  # a bad base value is named as itself
    return base, axes, points(base, axes)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parser().parse_args(argv)
    try:
        base, axes, pts = definition(args)
    except BridgeError as e:
        return fail(COMMAND, e)
    try:
        import distributed  # noqa: F401  the sweep extra
    except ImportError:
        print(f"{COMMAND}: error: Dask distributed is not installed; run: {cluster.INSTALL}", file=sys.stderr)
        return EXIT_USAGE
    first = pts[0].spec
    engines, repeats = first.engines, first.repeats
    out = Path(args.out) if args.out else Path("results") / f"sweep-{sweep_hash(pts, engines, repeats)}"
    done = [p for p in pts if not args.fresh and finished(out, p, engines, repeats)]
    todo = [p for p in pts if p not in done]
    log = None if args.verbose else cluster.quiet_dask()
    client = None
    try:  # the scheduler is checked before anything is written
        if todo and args.scheduler:
            client = cluster.connect(args.scheduler)
        try:
            out.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise UsageError(f"--out {out}: cannot make the sweep folder there ({e.strerror}); give a folder "
                             "that can be made or is one") from None
        if log is not None:
            log.write_to(out / cluster.LOG)
        write_definition(out, {
            "base": {k: list(v) if isinstance(v, tuple) else v for k, v in base.items()},
            "axes": {k: list(dict.fromkeys(shown(getattr(p.spec, k)) for p in pts)) for k in axes},
            "spec": first.to_dict(),  # the first point's whole spec: the defaults every point shares
            "engines": list(engines), "repeats": repeats, "scheduler": args.scheduler or "embedded LocalCluster",
            "points": [{"point": p.key, "label": p.label, **{k: shown(getattr(p.spec, k)) for k in axes}}
                       for p in pts]})
    except (BridgeError, OSError) as e:
        if client is not None:
            client.close()
        return fail(COMMAND, e)
    try:
        return _run(args, argv, out, axes, pts, done, todo, client, log)
    finally:
        if log is not None:
            log.close()


def _run(args, argv, out: Path, axes: dict, pts: list[Point], done: list[Point], todo: list[Point], client,
         log: cluster.DaskLog | None) -> int:
    """Run the points of ``todo`` through ``client`` (an embedded cluster when ``None``), write sweep.csv
    and the report, print the table; the exit code."""
    engines, repeats = pts[0].spec.engines, pts[0].spec.repeats
    progress = SweepProgress(pts, len(todo), quiet=args.quiet)
    if not args.quiet:
        print(f"{COMMAND}: {len(pts)} points ({' x '.join(f'{k} {len(v)}' for k, v in axes.items())}), "
              f"engines {','.join(engines) or 'all available'}, {repeats} repeat(s) -> {out}"
              + (f"; {len(done)} finished earlier, kept" if done else ""), flush=True)
    rows = {p.key: point_rows(p, point_folder(out, p)) for p in done}

    def current():
        """sweep.csv's frame of the points finished so far, in grid order."""
        return table([r for p in pts if p.key in rows for r in rows[p.key]], list(axes))

    def on_result(point: Point, got: dict) -> None:
        """Write a finished point's results, and sweep.csv with them, before its line: whatever stops the
        sweep next (a signal, a Dask that does not close, a killed process), they are kept."""
        attempts = progress.attempts.get(point.key, 1)
        if "error" in got:
            rows[point.key] = error_rows(point, got["error"], got["worker"], attempts)
            status = f"failed: {got['error']}"
        else:
            rows[point.key] = point_rows(point, write_point(out, point, got["files"]), got["worker"], attempts)
            bad = [r for r in rows[point.key] if r["status"] != "ok"]
            status = "done" if not bad else f"done, {len(bad)} engine run(s) not ok"
        write_table(out, current())
        progress.finished(point, status)

    resume = shlex.join(["python", "-m", COMMAND, *(a for a in argv if a != "--fresh")])
    stopped = embedded = None
    with stop_on_signals(resume=resume):
        try:
            if todo:
                if client is None:
                    embedded = cluster.Embedded(None if log is None else out / cluster.LOG)
                    client = embedded.client
                cluster.run_points(client, todo, progress.on_event, on_result)
        except KeyboardInterrupt as e:
            stopped = e
        except (BridgeError, OSError) as e:
            print(f"{COMMAND}: error: {e}{_see(log)}", file=sys.stderr)
            return EXIT_USAGE if isinstance(e, UsageError) else EXIT_FAILED
        finally:
            if embedded is not None:
                embedded.close()
            elif client is not None:
                client.close()
    frame = current()
    write_table(out, frame)
    if not args.no_report and len(frame):
        try:
            path = report.build(out)
            if not args.quiet:
                print(written_line(path))
        except Exception as e:  # noqa: BLE001 - drawing must not cost the sweep its results
            why = str(e) if isinstance(e, BridgeError) else f"{type(e).__name__}: {e}"
            print(f"warning: sweep report not written ({why}); retry with python -m bridge.report {out}",
                  file=sys.stderr)
    if len(frame):
        print(format_points(frame, list(axes)), flush=True)
    if stopped is not None:
        name, code = (stopped.signal_name, stopped.exit_code) if isinstance(stopped, Interrupted) else ("SIGINT", 130)
        print(f"{COMMAND}: stopped by {name}; {len(rows)} of {len(pts)} points kept in {out}/ (sweep.csv); "
              f"resume with: {resume}", file=sys.stderr)
        return code
    failed = frame[frame.status.isin(FAILURES)]
    for point, g in failed.groupby("point", sort=False):
        for r in g.to_dict("records"):
            print(f"warning: point {point}: {r['engine'] or 'point'} {r['status']}: {r['error']}", file=sys.stderr)
    if len(failed) and (path := log and log.written()):
        print(f"Dask's log: {path}", file=sys.stderr)
    print(f"sweep written to {out}/ (sweep.csv: {len(frame)} rows, points/, report.html)")
    return EXIT_FAILED if len(failed) else EXIT_OK


def _see(log: cluster.DaskLog | None) -> str:
    """Where Dask's log is, for a line that says something failed."""
    path = log.written() if log is not None else None
    return f" (Dask's log: {path})" if path else ""
