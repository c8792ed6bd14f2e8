"""``python -m bridge.compare``: run one experiment in several engines on the same batches and weights.

A thin shell over :func:`bridge.runner.run`. Every spec field is an option of the same name; a TOML
config file (``--config``) gives defaults that options override. Bad input exits 2 with one line; an
engine that failed or was unavailable makes the exit code 1, after every other result is written.
Ctrl-C (SIGINT) or SIGTERM stops the running engine, writes what finished and exits 128 + the signal
number (130, 143); the same command then resumes (:mod:`bridge.resume`).
"""
from __future__ import annotations

import argparse
import shlex
import sys
import tempfile
from dataclasses import MISSING
from pathlib import Path

from . import parity, registry
from .progress import RunProgress, expected_runs
from .spec import DATASET_DEFAULTS, FIELDS, Spec, SpecError, describe_sizes, from_mapping, toml_values

EXIT_FAILED, EXIT_USAGE = 1, 2


class UsageError(Exception):
    pass


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # argparse's own errors: one line, exit 2
        self.exit(EXIT_USAGE, f"bridge.compare: error: {message} (see --help)\n")


def parser() -> argparse.ArgumentParser:
    p = _Parser(prog="python -m bridge.compare",
                description="Run the same deep-learning experiment in several engines (tf.keras, a NumPy "
                            "reference, ...) on the same batches and initial weights, and compare loss "
                            "curves, accuracy and time per epoch.")
    p.add_argument("--config", metavar="FILE", help="TOML file with spec fields (options given here win)")
    p.add_argument("--out", metavar="DIR", default=None,
                   help="folder for results.csv, summary.json, checksums.csv, spec.toml and the batch plan "
                        "(default: ./results/<spec hash>, with ./results/latest linked to it); rerunning "
                        "into the same folder reuses the engine runs that finished there")
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
    add_spec_options(p)
    return p


def add_spec_options(p: argparse.ArgumentParser) -> None:
    """One option per spec field (bridge.compare's and bridge.sweep's), with its default shown."""
    spec_group = p.add_argument_group("experiment spec (defaults shown)")
    for name, f in FIELDS.items():
        default = f.default if f.default is not MISSING else None
        shown = _shown(default)
        if default is None and name in DATASET_DEFAULTS["iris"]:
            shown = ", ".join(f"{_shown(d[name])} for {dataset}" for dataset, d in DATASET_DEFAULTS.items())
        flags = [f"--{name}"] + ([f"--{name.replace('_', '-')}"] if "_" in name else [])
        spec_group.add_argument(*flags, dest=name, default=None, metavar=name.split("_")[-1].upper(),
                                help=f"{f.metadata.get('help', '')} (default: {shown if shown != '' else 'none'})")


def _shown(value) -> str:
    if isinstance(value, tuple):
        return ",".join(map(str, value))
    return f"{value:g}" if isinstance(value, float) else str(value)


def spec_from_args(args: argparse.Namespace) -> Spec:
    """Config file, then the command line over it; what neither sets takes the defaults of the data set
    the two name together (so ``--dataset`` on the command line also brings its defaults)."""
    config = {}
    if args.config:
        config = toml_values(args.config)
        from_mapping(config, origin=args.config)  # a bad value is named as the file's
    given = {name: getattr(args, name) for name in FIELDS if getattr(args, name) is not None}
    return from_mapping({**config, **given}, origin="the command line")


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
        from . import report

        path = report.build(out)
    except Exception as e:  # noqa: BLE001 - plotting must not cost the run its results
        print(f"warning: report not written ({type(e).__name__}: {e}); the results are saved, retry with "
              f"python -m bridge.report {out}", file=sys.stderr)
    else:
        if not quiet:
            print(f"report written to {path}")


def _resume_command(argv: list[str]) -> str:
    """The command that resumes this one: the same, less the options that would discard the runs kept."""
    return shlex.join(["python", "-m", "bridge.compare", *(a for a in argv if a not in ("--fresh", "--overwrite"))])


def _interrupted(e, args: argparse.Namespace, argv: list[str], out: Path) -> int:
    """After a signal stopped the run: the report for what finished, one line on stderr, 128 + signal."""
    if e.results is None:
        print(f"bridge.compare: stopped by {e.signal_name} before any engine run finished; nothing new written "
              f"to {out}/; resume with: {_resume_command(argv)}", file=sys.stderr)
        return e.exit_code
    if not args.no_report:
        _write_report(e.results.out, quiet=True)
    kept = sum(o.ok for o in e.results.outcomes)
    stopped = [o.run.label for o in e.results.outcomes if o.status == "interrupted"]
    files = "results.csv, summary.json" + ("" if args.no_report else ", report.html")
    print(f"bridge.compare: stopped by {e.signal_name}" + (f" during {', '.join(stopped)}" if stopped else "")
          + f"; {kept} finished engine run(s) kept in {e.results.out}/ ({files}); resume with: "
          + _resume_command(argv), file=sys.stderr)
    return e.exit_code


def main(argv: list[str] | None = None) -> int:
    from . import runner

    argv = sys.argv[1:] if argv is None else list(argv)
    # Signals are handled over the whole command, not only the run: a Ctrl-C while the spec is read or the
    # report drawn exits the same way, with one line and no traceback, and a second one exits at once.
    with runner.stop_on_signals():
        try:
            return _main(argv)
        except runner.Interrupted as e:  # outside the run: whatever was written stays written
            if e.results is not None:  # every engine run had finished; the signal came at the end
                print(f"bridge.compare: stopped by {e.signal_name} after every engine run finished; the results "
                      f"are in {e.results.out}/ (draw the report with: python -m bridge.report {e.results.out})",
                      file=sys.stderr)
            else:
                print(f"bridge.compare: stopped by {e.signal_name}; files written before are kept; resume with: "
                      f"{_resume_command(argv)}", file=sys.stderr)
            return e.exit_code


def _main(argv: list[str]) -> int:
    from . import resume, results, runner

    args = parser().parse_args(argv)
    try:
        spec = spec_from_args(args)
        registry.runs(spec)  # unknown engines and modes are usage errors
        runner.check_device(spec)
        out = Path(args.out) if args.out else resume.default_out(spec)
        _check_out(out)
        resume.check_folder(out, spec, overwrite=args.overwrite)
    except (SpecError, registry.EngineError, UsageError, runner.DeviceError, resume.FolderInUse) as e:
        print(f"bridge.compare: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    if not args.out and (problem := resume.link_latest(out)):
        print(f"warning: {problem}", file=sys.stderr)
    if not args.quiet:
        print(f"bridge: {spec.dataset} {spec.model} ({describe_sizes(spec)}), {spec.optimizer} "
              f"lr={spec.learning_rate:g}, batch "
              f"{spec.batch_size}, {spec.epochs} epochs, {spec.repeats} repeat(s), device {spec.device}, "
              f"threads {runner.resolve_threads(spec)} -> {out}", flush=True)
    previous = resume.Previous() if args.fresh else resume.finished(spec, out, runner.resolve_threads(spec))
    if not args.quiet and (line := previous.describe(out)):
        print(line, flush=True)
    progress = RunProgress(spec.epochs, spec.repeats,
                           0 if args.quiet else expected_runs(spec) - len(previous.reused), quiet=args.quiet)
    try:
        with progress:
            res = runner.run(spec, out, on_event=progress.on_event, on_outcome=progress.on_outcome,
                             plan_dir=args.save_plan, reuse=previous.reused)
    except (OSError, ValueError) as e:  # data that cannot be had, a plan too large
        print(f"bridge.compare: error: {e}", file=sys.stderr)
        return EXIT_FAILED
    except runner.Interrupted as e:
        return _interrupted(e, args, argv, out)
    print(results.format_table(res.summary))
    if not args.quiet and res.semantics:
        print(parity.describe(res.semantics))
    # every failure, divergence and mismatch gets its line even with --quiet (a diverged run exits 0,
    # so this line is all that tells a script about it); other warnings only without --quiet
    flagged = [o.message for o in res.outcomes if o.flagged]
    for w in res.warnings:
        if w not in progress.printed and (not args.quiet or any(m in w for m in flagged)):
            print(f"warning: {w}", file=sys.stderr)
    if not args.quiet:
        print(f"results written to {res.out}/ (results.csv, summary.json, checksums.csv, spec.toml)")
    if not args.no_report:
        _write_report(res.out, args.quiet)
    return EXIT_FAILED if res.failed else 0


if __name__ == "__main__":
    sys.exit(main())
