"""``python -m bridge.report DIR [DIR2]``: figures and the self-contained HTML report from saved results.

With one folder it redraws ``DIR/figures/`` and ``DIR/report.html`` from ``results.csv`` and
``summary.json`` (:mod:`bridge.presentation.report`); a sweep folder (``sweep.json``) gets the sweep's
report (:mod:`bridge.sweep.report`). With two folders it compares B with A engine by engine — the ratio
of their steady epochs with its 95% interval and a verdict — writes a comparison page, and warns when
their environments differ (:mod:`bridge.presentation.comparison`); it changes neither folder. Folders of
different experiments are refused (exit 2) unless ``--compare-anyway``; ``--fail-slower FACTOR`` exits 1
when any engine of B is slower than FACTOR times A beyond doubt, for a CI job.
"""
from __future__ import annotations

import sys
from pathlib import Path

from .cli import EXIT_FAILED, EXIT_OK, EXIT_USAGE, Parser, exit_codes_epilog, fail
from .errors import BridgeError
from .files import atomic_write
from .presentation import comparison
from .presentation.report import build, written_line
from .results.store import read_frame, read_summary
from .sweep import report as sweep_report

COMMAND = "bridge.report"


def main(argv: list[str] | None = None) -> int:
    p = Parser(COMMAND, description="Regenerate figures/ and report.html from a results folder written by "
                                    "python -m bridge.compare (or a sweep folder written by python -m bridge.sweep); "
                                    "with a second folder, compare B with A engine by engine instead.",
               epilog=exit_codes_epilog("--fail-slower: an engine of B is slower than FACTOR times A beyond doubt",
                                        signals=False))
    p.add_argument("folders", nargs="+", metavar="DIR", help="results folder(s): A, or A and B")
    p.add_argument("--compare-anyway", action="store_true", dest="anyway",
                   help="compare two folders even when their experiments differ (their spec fields are listed)")
    p.add_argument("--fail-slower", metavar="FACTOR", type=float, default=None, dest="fail_slower",
                   help="exit 1 when any engine of B is slower than FACTOR times A beyond doubt (the whole 95%% "
                        "interval of B/A above FACTOR), e.g. 1.1 in a CI job")
    p.add_argument("--page", metavar="FILE", default="comparison.html",
                   help="where the comparison page of two folders goes (default: ./comparison.html)")
    args = p.parse_args(argv)
    if len(args.folders) > 2:
        p.error(f"give one or two results folders, got {len(args.folders)}")
    folders = [Path(f) for f in args.folders]
    if len(folders) == 1 and (folders[0] / "sweep.json").is_file():
        try:
            print(written_line(sweep_report.build(folders[0])))
        except BridgeError as e:
            return fail(COMMAND, e)
        return EXIT_OK
    try:
        docs = [read_summary(f) for f in folders]  # every folder is checked before anything is written
    except BridgeError as e:
        return fail(COMMAND, e)
    if len(folders) == 1:
        print(written_line(build(folders[0])))
        return EXIT_OK
    differences = comparison.spec_differences(*docs)
    if differences and not args.anyway:
        print(f"{COMMAND}: error: {folders[0]} and {folders[1]} hold different experiments "
              f"({'; '.join(differences)}); their times measure different work; compare them anyway with "
              "--compare-anyway", file=sys.stderr)
        return EXIT_USAGE
    table = comparison.compare(*docs, *(read_frame(f) for f in folders))
    print(comparison.format_comparison(table, *folders))
    environment = comparison.fingerprint_differences(*docs)
    for diff in environment:
        print(f"warning: environments differ: {diff}", file=sys.stderr)
    for diff in differences:
        print(f"warning: different experiments: {diff}", file=sys.stderr)
    page = atomic_write(Path(args.page), comparison.page(table, *folders, differences, environment))
    print(f"comparison page written to {page}")
    if args.fail_slower is not None and (slow := comparison.slower_than(table, args.fail_slower)):
        print(f"{COMMAND}: {', '.join(slow)} slower than {args.fail_slower:g}x in B beyond doubt", file=sys.stderr)
        return EXIT_FAILED
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
