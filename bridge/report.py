"""``python -m bridge.report DIR [DIR2]``: figures and the self-contained HTML report from saved results.

With one folder it redraws ``DIR/figures/`` and ``DIR/report.html`` from ``results.csv`` and
``summary.json`` (:mod:`bridge.presentation.report`); a sweep folder (``sweep.json``) gets the sweep's
report (:mod:`bridge.sweep.report`). With two folders it also compares them engine by engine (B against
A) and warns when their environments differ (:mod:`bridge.presentation.comparison`).
"""
from __future__ import annotations

import sys
from pathlib import Path

from .cli import EXIT_OK, Parser, fail
from .errors import BridgeError
from .presentation import comparison
from .presentation.report import build
from .results.store import read_summary
from .sweep import report as sweep_report

COMMAND = "bridge.report"


def main(argv: list[str] | None = None) -> int:
    p = Parser(COMMAND, description="Regenerate figures/ and report.html from a results folder written by "
                                    "python -m bridge.compare (or a sweep folder written by python -m bridge.sweep); "
                                    "with a second folder, compare B with A engine by engine.")
    p.add_argument("folders", nargs="+", metavar="DIR", help="results folder(s): A, or A and B")
    args = p.parse_args(argv)
    if len(args.folders) > 2:
        p.error(f"give one or two results folders, got {len(args.folders)}")
    folders = [Path(f) for f in args.folders]
    if len(folders) == 1 and (folders[0] / "sweep.json").is_file():
        try:
            print(f"report written to {sweep_report.build(folders[0])}")
        except BridgeError as e:
            return fail(COMMAND, e)
        return EXIT_OK
    try:
        docs = [read_summary(f) for f in folders]  # every folder is checked before anything is written
    except BridgeError as e:
        return fail(COMMAND, e)
    for folder in folders:
        print(f"report written to {build(folder)}")
    if len(folders) == 2:
        print(comparison.format_comparison(comparison.compare(*docs), *folders))
        for diff in comparison.fingerprint_differences(*docs):
            print(f"warning: environments differ: {diff}", file=sys.stderr)
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
