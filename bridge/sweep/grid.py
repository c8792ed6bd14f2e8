"""A sweep's grid: axes over spec fields, and the points of their cartesian product, each a whole spec.

No Dask here: the grid is read from the command line (``--grid FIELD=V1,V2``) or a ``[sweep]`` TOML
table, checked, and turned into :class:`Point` objects before anything runs.
"""
from __future__ import annotations

import hashlib
import itertools
import json
from dataclasses import dataclass
from typing import Any

from ..errors import UsageError
from ..experiment.spec import FIELDS, MODEL_SIZE_FIELDS, MODEL_SIZE_FIELDS_OF, Spec, SpecError, from_mapping

NOT_AXES = ("engines", "repeats", "timeout")  # what the sweep as a whole sets, not a point


class SweepError(UsageError):
    """A bad grid or sweep option; the message names the value and the fix."""


def shown(v: Any) -> str:
    """A point's value of an axis as sweep.csv and the labels write it: a list's widths joined by ``/``."""
    return "/".join(map(str, v)) if isinstance(v, tuple) else f"{v:g}" if isinstance(v, float) else str(v)


def _tuple_field(name: str) -> bool:
    kind = FIELDS[name].type
    return (kind if isinstance(kind, str) else kind.__name__).startswith("tuple")


def parse_axis(text: str) -> tuple[str, list[Any]]:
    """``FIELD=V1,V2,...`` → (field, values). For a field holding a list (``hidden``, ``filters``), each
    value is one list with its items joined by ``/``: ``hidden=64,256/128`` is (64,) and (256, 128)."""
    name, sep, values = text.partition("=")
    name = name.strip().replace("-", "_")
    items = [v.strip() for v in values.split(",") if v.strip()]
    if not sep or not name or not items:
        raise SweepError(f"--grid {text!r} is not FIELD=V1,V2,...; e.g. --grid batch_size=16,64,256")
    _check_field(name)
    if _tuple_field(name):
        items = [v.replace("/", ",") for v in items]
    return name, items


def _check_field(name: str) -> None:
    if name not in FIELDS or name in NOT_AXES:
        accepted = ", ".join(f for f in FIELDS if f not in NOT_AXES)
        raise SweepError(f"{name!r} cannot be a grid axis; accepted: {accepted} ({', '.join(NOT_AXES)} are "
                         "options of the whole sweep)")


def table_axes(table: dict) -> dict[str, list[Any]]:
    """The axes of a ``[sweep]`` TOML table: ``field = [values]``; for ``hidden`` and ``filters`` a value
    is a list of widths or one width (``hidden = [64, [256, 128]]``)."""
    axes = {}
    for name, values in table.items():
        _check_field(name)
        if not isinstance(values, list) or not values:
            raise SweepError(f"[sweep] {name} = {values!r} is not a non-empty list of values; "
                             f"e.g. {name} = [16, 64]")
        if _tuple_field(name):
            values = [v if isinstance(v, list) else [v] for v in values]
        axes[name] = values
    return axes


@dataclass(frozen=True)
class Point:
    axes: dict  # field -> this point's value, as given
    spec: Spec

    @property
    def key(self) -> str:
        return self.spec.hash()

    @property
    def label(self) -> str:
        return " ".join(f"{k}={shown(getattr(self.spec, k))}" for k in self.axes)


def points(base: dict, axes: dict[str, list[Any]]) -> list[Point]:
    """Every point of the grid, in order (the last axis varies fastest): ``base`` (spec fields as given,
    so that a point's data set brings its own defaults) with one value of each axis."""
    if not axes:
        raise SweepError("no grid axis; give one or more --grid FIELD=V1,V2 (or a [sweep] table in --config)")
    out, seen = [], {}
    for combo in itertools.product(*axes.values()):
        values = dict(zip(axes, combo))
        try:
            where = "the grid point " + " ".join(f"{k}={v}" for k, v in values.items())
            spec = from_mapping({**base, **values}, origin=where)
        except SpecError as e:
            raise SweepError(str(e)) from None
        for name in axes:
            if name in MODEL_SIZE_FIELDS and name not in MODEL_SIZE_FIELDS_OF[spec.model]:
                raise SweepError(f"--grid {name}: the {spec.model} has no {name} (it has "
                                 f"{', '.join(MODEL_SIZE_FIELDS_OF[spec.model])}); vary those instead")
        point = Point(values, spec)
        if point.key in seen:
            raise SweepError(f"the grid points {seen[point.key]} and {point.label} are the same experiment; "
                             "give each axis distinct values")
        seen[point.key] = point.label
        out.append(point)
    return out


def sweep_hash(pts: list[Point], engines: tuple[str, ...], repeats: int) -> str:
    doc = json.dumps([[p.key for p in pts], list(engines), repeats])
    return hashlib.sha256(doc.encode()).hexdigest()[:12]
