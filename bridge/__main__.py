"""``python -m bridge``: the commands bridge has, one line each, and how to get help on each.

Alone (or with ``--help``) it lists them and exits 0; it runs nothing. ``python -m bridge COMMAND ARGS``
runs ``python -m bridge.COMMAND ARGS`` in this process (``python -m bridge compare --epochs 2`` is
``python -m bridge.compare --epochs 2``): the command's own parser, errors and exit codes, as if it had
been named in full. ``--version`` prints bridge's version.
"""
from __future__ import annotations

import runpy
import sys

from .cli import EXIT_OK, fail, version
from .errors import UsageError

COMMAND = "bridge"
COMMANDS = {
    "compare": ("bridge.compare", "run one experiment in several engines on the same batches and weights; "
                                  "compare losses, accuracy and time per epoch"),
    "report": ("bridge.report", "redraw figures/ and report.html from a results folder, or compare two folders"),
    "sweep": ("bridge.sweep", "one comparison per point of a grid over spec fields, through Dask"),
    "julia": ("bridge.julia", "set up the Julia engines (flux, knet): julia setup | status | check ENGINE"),
}
TOOLS = {
    "bridge.running.devicepeak": "measure the accelerator's float32 GEMM peak (what a --device cuda run records)",
}


def usage() -> str:
    width = max(len(module) for module, _ in COMMANDS.values())
    lines = ["usage: python -m bridge.COMMAND [options]   (or: python -m bridge COMMAND [options])", "",
             "commands:"]
    lines += [f"  python -m {module.ljust(width)}  {what}" for module, what in COMMANDS.values()]
    lines += ["", "tools:"]
    lines += [f"  python -m {module}  {what}" for module, what in TOOLS.items()]
    lines += ["", "help on a command: python -m bridge.COMMAND --help (e.g. python -m bridge.compare --help)",
              "bridge's version:  python -m bridge --version"]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(usage())
        return EXIT_OK
    if argv[0] == "--version":
        print(f"bridge {version()}")
        return EXIT_OK
    if argv[0] not in COMMANDS:
        return fail(COMMAND, UsageError(f"command {argv[0]!r} is not known; accepted: {', '.join(COMMANDS)} "
                                        "(python -m bridge lists them)"))
    module = COMMANDS[argv[0]][0]
    sys.argv = [sys.argv[0], *argv[1:]]  # what the command reads; runpy sets argv[0] to its file
    runpy.run_module(module, run_name="__main__", alter_sys=True)  # the command's own exit ends this process
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
