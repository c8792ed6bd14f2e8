"""The errors bridge raises for people, as opposed to its bugs.

A :class:`BridgeError` carries a one-line message that names the value at fault, what is accepted and
the fix; the commands print it and exit 1 (:class:`UsageError`: 2), without a traceback. Anything else
that escapes a command is a bug in bridge or an engine, and keeps its traceback.
"""
from __future__ import annotations


class BridgeError(Exception):
    """Something bridge cannot do as asked: data that cannot be had, a plan too large, a folder that is
    not a results folder. Exit code 1."""


class UsageError(BridgeError):
    """Bad input on the command line, in a config file or a spec: a value, an engine, a device, a folder.
    Exit code 2, before anything runs."""
