"""Requests and answers between a test and a framework check: NumPy ``.npz`` files without pickle, so
nothing but arrays reaches the pytest process. NumPy only.

A tree is a dict whose values are arrays, numbers, strings or trees; it is stored flat, with keys joined
by ``::`` (parameter names hold ``/``). On loading, 0-d arrays become Python scalars.
"""
from __future__ import annotations

import sys

import numpy as np

SEP = "::"


def _flatten(tree: dict, prefix: str = "") -> dict:
    flat = {}
    for key, value in tree.items():
        if SEP in key:
            raise ValueError(f"key {key!r} holds {SEP!r}")
        if isinstance(value, dict):
            flat.update(_flatten(value, prefix + key + SEP))
        else:
            flat[prefix + key] = np.asarray(value)
    return flat


def save(path, tree: dict) -> None:
    flat = _flatten(tree)
    if any(a.dtype == object for a in flat.values()):
        raise TypeError("only numeric and string arrays cross between processes")
    with open(path, "wb") as f:
        np.savez(f, **flat)


def load(path) -> dict:
    tree: dict = {}
    with np.load(path, allow_pickle=False) as npz:
        for key in npz.files:
            *parents, leaf = key.split(SEP)
            node = tree
            for p in parents:
                node = node.setdefault(p, {})
            value = npz[key]
            node[leaf] = value.item() if value.ndim == 0 else value
    return tree


def serve(functions: dict) -> None:
    """The main of a framework check: ``python -m tests.framework_checks.X REQUEST ANSWER`` calls, for each
    label of the request, ``functions[fn](**arguments)`` and saves what they return under the label."""
    request, answer = sys.argv[1:3]
    calls = load(request)
    save(answer, {label: functions[args.pop("fn")](**args) for label, args in calls.items()})
