"""``python -m bridge.compare``: run one experiment in several engines on the same batches and weights.

A thin shell over :func:`bridge.running.runner.run`. Every spec field is an option of the same name; a
TOML config file (``--config``) gives defaults that options override. Bad input exits 2 with one line;
an engine that failed or was unavailable makes the exit code 1, after every other result is written.
Ctrl-C (SIGINT) or SIGTERM stops the running engine, writes what finished and exits 128 + the signal
number (130, 143); the same command then resumes (:mod:`bridge.running.resume`).

``--list-engines`` shows every engine and mode, whether it can run here (or why not) and the installed
versions of its Python distributions, without importing a framework. ``--dry-run`` checks the command
line as a run does and shows what the run would do — the resolved spec, the engine runs that would start
and those the output folder already holds, the folder, the plan's size — without running an engine,
sampling the machine or writing anything.
"""
from __future__ import annotations

import argparse
import math
import os
import shlex
import sys
import tempfile
import time
from pathlib import Path

from .cli import EXIT_CODES_EPILOG, EXIT_FAILED, EXIT_OK, Parser, fail
from .errors import BridgeError, UsageError
from .experiment import datasets
from .experiment.models import parameter_count, parameter_shapes
from .experiment.options import add_spec_options, spec_from_args
from .experiment.plan import plan_bytes
from .experiment.spec import describe_sizes
from .results.parity import describe
from .results.timing import DISTURBED_CORES, describe_others
from .running import interference, resume
from .running.adaptive import Precision
from .running.progress import RunProgress
from .running.selection import describe_engines, select
from .running.stopping import Interrupted, stop_on_signals

COMMAND = "bridge.compare"
SAMPLE_S = 0.3
"""Seconds the machine is sampled for before the first engine starts (30 clock ticks of every core)."""


def parser() -> argparse.ArgumentParser:
    p = Parser(COMMAND, description="Run the same deep-learning experiment in several engines (tf.keras, a NumPy "
                                    "reference, ...) on the same batches and initial weights, and compare loss "
                                    "curves, accuracy and time per epoch.", epilog=EXIT_CODES_EPILOG)
    p.add_argument("--config", metavar="FILE", help="TOML file with spec fields (options given here win)")
    p.add_argument("--out", metavar="DIR", default=None,
                   help="folder for results.csv, summary.json, checksums.csv, spec.toml and the batch plan "
                        "(default: ./results/<spec hash>, with ./results/latest linked to it); rerunning "
                        "into the same folder reuses the engine runs that finished there, and keeps those of "
                        "engines this run leaves out")
    p.add_argument("--fresh", action="store_true",
                   help="run every engine run again, even those that finished in OUT with this spec")
    p.add_argument("--overwrite", action="store_true",
                   help="replace the results of another experiment in OUT (otherwise refused)")
    p.add_argument("--save-plan", metavar="DIR", dest="save_plan",
                   help="write the batch plan (plan.toml, initial weights, every epoch's batches as .npy) to DIR "
                        "instead of OUT/plan, to rerun the experiment natively in Julia (see README)")
    p.add_argument("--quiet", action="store_true", help="print only the summary table and errors (no progress)")
    p.add_argument("--no-report", action="store_true", dest="no_report",
                   help="do not write figures/ and report.html into the output folder at the end")
    p.add_argument("--wait-quiet", metavar="SECONDS", type=float, default=0.0, dest="wait_quiet",
                   help="when other processes keep the machine busy before the first engine starts, wait up to "
                        "SECONDS for it to be quiet (default: start at once, saying so)")
    p.add_argument("--refuse-busy", action="store_true", dest="refuse_busy",
                   help="run nothing (exit 1) when the machine is still busy before the first engine starts")
    p.add_argument("--baseline", metavar="ENGINE", default=None,
                   help="the engine run every other one's speed is compared with, e.g. keras:fit (default: the "
                        "first one in the table that is not the reference)")
    p.add_argument("--measure-peak", action="store_true", dest="measure_peak",
                   help="measure the CPU's float32 GEMM peak again (about 3 s) and cache it, instead of reusing "
                        "this machine's cached peak or the one OUT's earlier run was judged by")
    p.add_argument("--list-engines", action="store_true", dest="list_engines",
                   help="list every engine and mode, its framework, its installed versions and whether it can "
                        "run here (or why not), then exit")
    p.add_argument("--dry-run", action="store_true", dest="dry_run",
                   help="check the command line and show what would run (the spec, the engine runs, what OUT "
                        "already holds, the plan's size) without running, sampling or writing anything")
    auto = p.add_argument_group("--repeats auto: repeats until each engine's time is known to a precision")
    auto.add_argument("--precision", metavar="FRACTION", type=float, default=None,
                      help=f"the widest 95%% interval of each steady epoch, relative to it (default: "
                           f"{Precision.target:g}, about ±{Precision.target * 50:g}%%)")
    auto.add_argument("--max-repeats", metavar="N", type=int, default=None, dest="max_repeats",
                      help=f"the most repeats any engine gets (default: {Precision.max_repeats})")
    auto.add_argument("--budget", metavar="SECONDS", type=float, default=None,
                      help=f"no repeat starts after SECONDS from the first engine's start; every engine gets "
                           f"one (default: {Precision.budget_s:g})")
    add_spec_options(p)
    return p


def precision_from_args(args: argparse.Namespace) -> Precision | None:
    """``--repeats auto`` and its options as a :class:`Precision` (``args.repeats`` becomes the most
    repeats any engine gets); None with a count of repeats. Bad values are usage errors."""
    given = {k: v for k, v in (("precision", args.precision), ("max-repeats", args.max_repeats),
                               ("budget", args.budget)) if v is not None}
    if str(args.repeats).strip().lower() != "auto":
        if given:
            raise UsageError(f"--{next(iter(given))} applies only with --repeats auto; add --repeats auto or "
                             "drop it")
        return None
    precision = Precision(*(v if v is not None else d for v, d in (
        (args.precision, Precision.target), (args.max_repeats, Precision.max_repeats),
        (args.budget, Precision.budget_s))))
    if not 0 < precision.target < 2:
        raise UsageError(f"--precision must be a fraction between 0 and 2, e.g. 0.1 (about ±5%); got "
                         f"{precision.target:g}")
    if precision.max_repeats < 2:
        raise UsageError(f"--max-repeats must be 2 or more (an interval needs two repeats); got "
                         f"{precision.max_repeats}")
    if not precision.budget_s > 0:
        raise UsageError(f"--budget must be seconds greater than zero, e.g. 600; got {precision.budget_s:g}")
    args.repeats = precision.max_repeats
    return precision


def _not_writable(out: Path, why: str) -> UsageError:
    return UsageError(f"output folder {str(out)!r} is not writable ({why}); give a writable --out")


def _check_out(out: Path) -> None:
    try:
        out.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=out):
            pass
    except OSError as e:
        raise _not_writable(out, e.strerror) from None


def _write_report(out: Path, quiet: bool) -> None:
    """Figures and report.html; a failure here is a warning, never a lost result or another exit code."""
    try:
        from .presentation import report  # matplotlib: 0.7 s more to start, paid only once a run has results

        path = report.build(out)
    except Exception as e:  # noqa: BLE001 - plotting must not cost the run its results
        print(f"warning: report not written ({type(e).__name__}: {e}); the results are saved, retry with "
              f"python -m bridge.report {out}", file=sys.stderr)
    else:
        if not quiet:
            print(report.written_line(path))


def _wait_for_quiet(wait_s: float, refuse: bool) -> None:
    """Before the first engine: sample what other processes do with the machine; when they keep it busy,
    wait up to ``wait_s`` seconds for quiet, then say so in one line, or refuse to run (``refuse``)."""
    load = interference.sample(SAMPLE_S)
    deadline = time.monotonic() + wait_s
    if load is not None and load > DISTURBED_CORES and wait_s:
        print(f"bridge: the machine is busy ({describe_others(load)}); waiting up to {wait_s:g} s for quiet",
              file=sys.stderr, flush=True)
    while load is not None and load > DISTURBED_CORES and time.monotonic() < deadline:
        load = interference.sample(1.0)
    if load is None or load <= DISTURBED_CORES:
        return
    waited = f" after waiting {wait_s:g} s" if wait_s else ""
    if refuse:
        raise BridgeError(f"the machine is busy{waited}: {describe_others(load)} before any engine started; "
                          "nothing was run; retry on a quiet machine, or give --wait-quiet SECONDS")
    print(f"warning: the machine is busy{waited}: {describe_others(load)} before any engine started; times may "
          "be disturbed (--wait-quiet SECONDS waits for quiet, --refuse-busy refuses to run)", file=sys.stderr,
          flush=True)


def _resume_command(argv: list[str]) -> str:
    """The command that resumes this one: the same, less the options that would discard the runs kept."""
    return shlex.join(["python", "-m", COMMAND, *(a for a in argv if a not in ("--fresh", "--overwrite"))])


def _interrupted(e: Interrupted, args: argparse.Namespace, argv: list[str], out: Path) -> int:
    """After a signal stopped the run: the report for what finished, one line on stderr, 128 + signal."""
    if e.results is None:
        print(f"{COMMAND}: stopped by {e.signal_name} before any engine run finished; nothing new written "
              f"to {out}/; resume with: {_resume_command(argv)}", file=sys.stderr)
        return e.exit_code
    if not args.no_report:
        _write_report(e.results.out, quiet=True)
    kept = sum(o.ok for o in e.results.outcomes)
    stopped = [o.run.label for o in e.results.outcomes if o.status == "interrupted"]
    files = "results.csv, summary.json" + ("" if args.no_report else ", report.html")
    print(f"{COMMAND}: stopped by {e.signal_name}" + (f" during {', '.join(stopped)}" if stopped else "")
          + f"; {kept} finished engine run(s) kept in {e.results.out}/ ({files}); resume with: "
          + _resume_command(argv), file=sys.stderr)
    return e.exit_code


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    # Signals are handled over the whole command, not only the run: a Ctrl-C while the spec is read or the
    # report drawn exits the same way, with one line and no traceback, and a second one exits at once.
    with stop_on_signals(resume=_resume_command(argv)):
        try:
            return _main(argv)
        except Interrupted as e:  # outside the run: whatever was written stays written
            if e.results is not None:  # every engine run had finished; the signal came at the end
                print(f"{COMMAND}: stopped by {e.signal_name} after every engine run finished; the results "
                      f"are in {e.results.out}/ (draw the report with: python -m bridge.report {e.results.out})",
                      file=sys.stderr)
            else:
                print(f"{COMMAND}: stopped by {e.signal_name}; files written before are kept; resume with: "
                      f"{_resume_command(argv)}", file=sys.stderr)
            return e.exit_code


def _main(argv: list[str]) -> int:
    # pandas and the results' code: 0.1 s → 0.5 s to start, loaded once the command line is known to be good
    from .results.summary import format_speed, format_table, terminal_columns
    from .running import runner

    args = parser().parse_args(argv)
    if args.list_engines:
        print(format_engines())
        return EXIT_OK
    try:
        precision = precision_from_args(args)
        spec = spec_from_args(args)
        selection = select(spec)  # unknown engines and modes are usage errors
        selection.check_runnable()  # and so is a run in which none can run
        datasets.check_sizes(spec)  # and data the spec cannot have, before anything is loaded
        runner.check_device(spec.device)
        out = Path(args.out) if args.out else resume.default_out(spec)
        if not args.overwrite:  # a folder of another experiment is bad input, said before the machine is sampled
            resume.check_folder(out, spec, overwrite=False)
    except UsageError as e:
        return fail(COMMAND, e)
    if args.dry_run:
        return _dry_run(args, spec, selection, precision, out)
    try:
        _wait_for_quiet(args.wait_quiet, args.refuse_busy)  # before anything is written
    except BridgeError as e:
        return fail(COMMAND, e)
    try:
        _check_out(out)
        resume.check_folder(out, spec, overwrite=args.overwrite)
    except UsageError as e:
        return fail(COMMAND, e)
    if not args.out and (problem := resume.link_latest(out)):
        print(f"warning: {problem}", file=sys.stderr)
    threads = runner.resolve_threads(spec.threads)
    if not args.quiet:
        why = "as given" if spec.threads else f"the cores this process may use: {interference.usable_cores()[1]}"
        print(f"bridge: {spec.dataset} {spec.model} ({describe_sizes(spec)}), {spec.optimizer} "
              f"lr={spec.learning_rate:g}, batch {spec.batch_size}, {spec.epochs} epochs, "
              f"{precision.describe() if precision else f'{spec.repeats} repeat(s)'}, "
              f"device {spec.device}, threads {threads} ({why}) -> {out}", flush=True)
    previous = resume.Previous() if args.fresh else resume.finished(spec, out, threads, selection.runs)
    if not args.quiet and (line := previous.describe(out)):
        print(line, flush=True)
    runs = 0 if args.quiet else len(selection.runs) * spec.repeats - len(previous.reused)
    progress = RunProgress(spec.epochs, spec.repeats, runs, quiet=args.quiet)
    try:
        with progress:
            res = runner.run(spec, out, selection, on_event=progress.on_event, on_outcome=progress.on_outcome,
                             plan_dir=args.save_plan, reuse=previous.reused, precision=precision,
                             measure_peak=args.measure_peak, resume_command=_resume_command(argv))
    except (BridgeError, OSError) as e:  # data that cannot be had, a plan too large, a full disk
        return fail(COMMAND, e)
    except Interrupted as e:
        return _interrupted(e, args, argv, out)
    print(format_table(res.summary, res.adaptive, terminal_columns()))
    if not args.quiet:
        print(format_speed(res.speed, args.baseline))
    if not args.quiet and res.semantics:
        print(describe(res.semantics))
    # every failure, divergence and mismatch gets its line even with --quiet (a diverged run exits 0,
    # so this line is all that tells a script about it); other warnings only without --quiet
    flagged = [o.message for o in res.outcomes if o.flagged] + res.disturbed
    for w in res.warnings:
        if w not in progress.printed and (not args.quiet or any(m in w for m in flagged)):
            print(f"warning: {w}", file=sys.stderr)
    if not args.quiet:
        print(f"results written to {res.out}/ (results.csv, summary.json, checksums.csv, spec.toml)")
        if res.kept:
            names = ", ".join(dict.fromkeys(o.run.label for o in res.kept))
            print(f"they keep {len(res.kept)} engine run(s) that finished in earlier runs of this folder: {names} "
                  "(another --out starts a folder of its own)")
    if not args.no_report:
        _write_report(res.out, args.quiet)
    return EXIT_FAILED if res.failed else EXIT_OK


def format_engines() -> str:
    """``--list-engines``: one line per engine and mode (:func:`bridge.running.selection.describe_engines`)."""
    rows = [("engine", "mode", "framework", "installed", "here")]
    for d in describe_engines():
        installed = ", ".join(f"{dist} {v}" for dist, v in d.versions.items()) if d.versions else "-"
        rows.append((d.run.engine, d.run.mode, d.run.framework, installed,
                     f"unavailable: {d.unavailable}" if d.unavailable else "available"))
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths)) + "  " + r[4] for r in rows)


def describe_plan(spec) -> str:
    """The plan's size in one line: examples, batches per epoch × epochs = steps, parameters, bytes on disk."""
    most_train, most_test = datasets.most_examples(spec)
    n_train, n_test = spec.train_size or most_train, spec.test_size or most_test
    shape, classes = datasets.example_shape(spec)
    example_bytes = math.prod(shape) * 4 + 4  # float32 inputs, an int32 label
    parameters = parameter_count(parameter_shapes(spec, shape, classes))
    batches = math.ceil(n_train / spec.batch_size)
    total = plan_bytes(n_train, example_bytes, n_test, spec.epochs) + parameters * 4
    at_most = "at most " if spec.dataset == "fashion-mnist" else ""  # a source may hold fewer
    return (f"{at_most}{n_train} training and {n_test} test examples of shape {shape}; {batches} batches per "
            f"epoch x {spec.epochs} epochs = {batches * spec.epochs} steps per engine run; {parameters} "
            f"parameters; {_size(total)} on disk (the data once, a permutation per epoch, the initial "
            "weights)")


def _size(n: int) -> str:
    for unit, shift in (("GiB", 30), ("MiB", 20), ("KiB", 10)):
        if n >= 2**shift:
            return f"{n / 2**shift:.1f} {unit}"
    return f"{n} bytes"


def _check_out_unwritten(out: Path) -> None:
    """:func:`_check_out` without creating the folder or a file in it: its nearest existing folder is one
    this process may write in."""
    existing = next(p for p in (out, *out.parents) if p.exists() or p == p.parent)
    if not existing.is_dir():
        raise _not_writable(out, f"{existing} is not a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise _not_writable(out, f"{existing} is not writable by this user")


def _dry_run(args: argparse.Namespace, spec, selection, precision: Precision | None, out: Path) -> int:
    """``--dry-run``: what this command line would run, and nothing of it (no engine runs, the machine is
    not sampled, nothing is written); the folder is checked, by reading it, as a run checks it."""
    try:
        _check_out_unwritten(out)
        if not args.overwrite:
            resume.check_folder(out, spec, overwrite=False)  # without overwrite it only reads
    except UsageError as e:
        return fail(COMMAND, e)
    from .running import runner  # as _main does: pandas, once the command line is known to be good

    held = resume.folder_spec_hash(out) if out.is_dir() else None
    threads = runner.resolve_threads(spec.threads)
    previous = resume.Previous() if args.fresh else resume.finished(spec, out, threads, selection.runs)
    upto = "up to " if precision else ""
    print(f"{COMMAND} --dry-run: nothing is run, sampled or written")
    print("spec (as spec.toml would hold it):")
    print("".join(f"  {line}\n" for line in spec.to_toml().splitlines()), end="")
    print(f"plan ({Path(args.save_plan) if args.save_plan else out / 'plan'}): {describe_plan(spec)}")
    starts = len(selection.runs) * spec.repeats - len(previous.reused)
    print(f"engine runs: {len(selection.runs)} engine/mode x {upto}{spec.repeats} repeat(s)"
          + (f" ({precision.describe()})" if precision else "")
          + f"; {upto}{starts} would start, {len(previous.reused)} reused from {out}/")
    for run in selection.runs:
        reused = [o for o in previous.reused if o.run == run]
        line = f"  {run.label}: {upto}{spec.repeats - len(reused)} repeat(s) would start"
        print(line + "".join(f"; repeat {o.repeat} {o.message}" for o in reused))
    for run, why in selection.cannot_run:
        print(f"  {run.label}: {'unavailable (exit 1)' if selection.named else 'skipped'}: {why}")
    for line in previous.rerun:
        print(f"  running again: {line}")
    if held is None:
        state = "new" if not out.exists() else "holds no results yet"
    elif held == spec.hash():
        state = "holds results of this experiment"
    else:
        state = f"holds results of another experiment (spec {held}), which --overwrite would remove"
    link = f" ({out.parent / resume.LATEST} would point at it)" if not args.out else ""
    print(f"output folder: {out}{link}: {state}")
    print(f"threads: {threads} per engine run")
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
