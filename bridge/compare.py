"""``python -m bridge.compare``: run one experiment in several engines on the same batches and weights.

A thin shell over :func:`bridge.running.runner.run`. Every spec field is an option of the same name; a
TOML config file (``--config``) gives defaults that options override. Bad input exits 2 with one line;
an engine that failed or was unavailable makes the exit code 1, after every other result is written.
Ctrl-C (SIGINT) or SIGTERM stops the running engine, writes what finished and exits 128 + the signal
number (130, 143); the same command then resumes (:mod:`bridge.running.resume`).
"""
from __future__ import annotations

import argparse
import shlex
import sys
import tempfile
import time
from pathlib import Path

from .cli import EXIT_FAILED, EXIT_OK, Parser, fail
from .errors import BridgeError, UsageError
from .experiment import datasets
from .experiment.options import add_spec_options, spec_from_args
from .experiment.spec import describe_sizes
from .results.parity import describe
from .results.timing import DISTURBED_CORES, describe_others
from .running import interference, resume
from .running.adaptive import Precision
from .running.progress import RunProgress
from .running.selection import select
from .running.stopping import Interrupted, stop_on_signals

COMMAND = "bridge.compare"
SAMPLE_S = 0.3
"""Seconds the machine is sampled for before the first engine starts (30 clock ticks of every core)."""


def parser() -> argparse.ArgumentParser:
    p = Parser(COMMAND, description="Run the same deep-learning experiment in several engines (tf.keras, a NumPy "
                                    "reference, ...) on the same batches and initial weights, and compare loss "
                                    "curves, accuracy and time per epoch.")
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


def _check_out(out: Path) -> None:
    try:
        out.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=out):
            pass
    except OSError as e:
        raise UsageError(f"output folder {str(out)!r} is not writable ({e.strerror}); give a writable --out") from None


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
            print(f"report written to {path}")


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
    with stop_on_signals():
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
    try:
        precision = precision_from_args(args)
        spec = spec_from_args(args)
        selection = select(spec)  # unknown engines and modes are usage errors
        selection.check_runnable()  # and so is a run in which none can run
        datasets.check_sizes(spec)  # and data the spec cannot have, before anything is loaded
        runner.check_device(spec.device)
        out = Path(args.out) if args.out else resume.default_out(spec)
    except UsageError as e:
        return fail(COMMAND, e)
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


if __name__ == "__main__":
    sys.exit(main())
