"""Sweeps: one comparison per point of a grid over spec fields, run through Dask distributed.

``python -m bridge.sweep`` (or :func:`main` with the same arguments, e.g. from a script that started a
dask-jobqueue cluster): the grid is :mod:`.grid`, where points run :mod:`.cluster` (every Dask name is
there), what the terminal shows :mod:`.progress`, sweep.csv and sweep.json :mod:`.results`, the figures
and page :mod:`.report`, the command :mod:`.command`.
"""
from __future__ import annotations


def main(argv: list[str] | None = None) -> int:
    """``python -m bridge.sweep ARGS``: see :mod:`bridge.sweep.command`."""
    from .command import main as command  # Dask, pandas and matplotlib load when a sweep runs, not before

    return command(argv)
