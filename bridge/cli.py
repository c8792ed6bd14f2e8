"""What every command shares: one-line usage errors and exit codes (the spec's options are
:mod:`bridge.experiment.options`).

Commands (``bridge.compare``, ``bridge.report``, ``bridge.sweep``, ``bridge.julia``) are thin shells over
library calls. Bad input exits :data:`EXIT_USAGE` with one line naming the value and the fix, a failure
exits :data:`EXIT_FAILED`, a signal 128 + its number (the shell's convention: 130 for SIGINT, 143 for
SIGTERM); only a bug in bridge prints a traceback.
"""
from __future__ import annotations

import argparse
import sys

from .errors import UsageError

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def signal_exit_code(signum: int) -> int:
    """The exit code of a command stopped by signal ``signum``: the shell's, 130 for SIGINT, 143 for SIGTERM."""
    return 128 + signum


class Parser(argparse.ArgumentParser):
    """An argparse parser whose own errors are one line naming the command, with exit code 2."""

    def __init__(self, command: str | None = None, **kwargs):
        if command is not None:
            kwargs["prog"] = f"python -m {command}"
        super().__init__(**kwargs)  # a subcommand's parser comes here with argparse's own prog
        self.command = command or self.prog.removeprefix("python -m ")

    def error(self, message: str) -> None:
        self.exit(EXIT_USAGE, f"{self.command}: error: {message} (see --help)\n")


def fail(command: str, error: BaseException | str) -> int:
    """Print ``error`` as the command's one line on stderr; the exit code it calls for."""
    print(f"{command}: error: {error}", file=sys.stderr)
    return EXIT_USAGE if isinstance(error, UsageError) else EXIT_FAILED
