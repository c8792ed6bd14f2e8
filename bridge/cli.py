"""What every command shares: one-line usage errors, exit codes, ``--version`` and the help's layout
(the spec's options are :mod:`bridge.experiment.options`).

Commands (``bridge.compare``, ``bridge.report``, ``bridge.sweep``, ``bridge.julia``; ``python -m bridge``
lists them) are thin shells over library calls. Bad input exits :data:`EXIT_USAGE` with one line
``<command>: error: <message>`` naming the value and the fix (:func:`fail`, and :class:`Parser` for
argparse's own errors), a failure exits :data:`EXIT_FAILED` with a line of the same form, a signal 128 +
its number (the shell's convention: 130 for SIGINT, 143 for SIGTERM); only a bug in bridge prints a
traceback. Every command's ``--help`` ends with its exit codes (:data:`EXIT_CODES_EPILOG` for the
commands that run engines).
"""
from __future__ import annotations

import argparse
import re
import sys
import textwrap
from importlib import metadata

from .errors import UsageError

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
DISTRIBUTION = "bridge"  # pyproject.toml's [project] name


def exit_codes_epilog(failed: str, signals: bool = True) -> str:
    """The ``exit codes:`` block that ends a command's ``--help``; ``failed`` says what exit 1 means."""
    lines = ["exit codes:", "  0    done", f"  1    {failed}",
             "  2    bad input, named in one line with its fix: nothing was run or written"]
    if signals:
        lines.append("  130  stopped by SIGINT (Ctrl-C), 143 by SIGTERM: what finished is kept; rerun the same "
                     "command to resume")
    return "\n".join(lines)


EXIT_CODES_EPILOG = exit_codes_epilog("an engine run failed or was unavailable; every other result is written")
"""The exit codes of the commands that run engines (bridge.compare, bridge.sweep)."""


def version() -> str:
    """bridge's version: the installed distribution's, else the package's own (a checkout on PYTHONPATH)."""
    try:
        return metadata.version(DISTRIBUTION)
    except metadata.PackageNotFoundError:
        from . import __version__

        return __version__


class HelpFormatter(argparse.HelpFormatter):
    """argparse's, except that descriptions and epilogs keep their line breaks: each line is wrapped on
    its own, its indentation kept, and a line ``TERM  text`` (two spaces or more) continues under its
    text, so a list of exit codes stays a list."""

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        lines = []
        for line in text.splitlines():
            body = line.lstrip()
            first = indent + line[:len(line) - len(body)]
            term = re.match(r"\S+ {2,}", body)
            lines.append(textwrap.fill(body, width, initial_indent=first,
                                       subsequent_indent=first + " " * (term.end() if term else 0)) if body else "")
        return "\n".join(lines)


def signal_exit_code(signum: int) -> int:
    """The exit code of a command stopped by signal ``signum``: the shell's, 130 for SIGINT, 143 for SIGTERM."""
    return 128 + signum


class Parser(argparse.ArgumentParser):
    """An argparse parser whose own errors are one line naming the command, with exit code 2."""

    def __init__(self, command: str | None = None, **kwargs):
        if command is not None:
            kwargs["prog"] = f"python -m {command}"
        kwargs.setdefault("formatter_class", HelpFormatter)
        super().__init__(**kwargs)  # a subcommand's parser comes here with argparse's own prog
        self.command = command or self.prog.removeprefix("python -m ")
        if command is not None:  # a command's own parser, not a subcommand's
            self.add_argument("--version", action="version", version=f"{DISTRIBUTION} {version()}",
                              help="print bridge's version and exit")

    def error(self, message: str) -> None:
        self.exit(EXIT_USAGE, f"{self.command}: error: {message} (see --help)\n")


def fail(command: str, error: BaseException | str) -> int:
    """Print ``error`` as the command's one line on stderr; the exit code it calls for."""
    print(f"{command}: error: {error}", file=sys.stderr)
    return EXIT_USAGE if isinstance(error, UsageError) else EXIT_FAILED
