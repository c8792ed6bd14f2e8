"""Comparing two results folders, engine by engine: B against A, and every environment field that differs."""
from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from ..results.summary import format_number, format_seconds

# Per-engine report fields whose difference between two folders makes their times incomparable.
ENGINE_FIELDS = ("framework", "framework_version", "threads", "device", "blas", "reduced_precision")


def compare(a: dict, b: dict) -> pd.DataFrame:
    """Engine by engine (those in both): steady-state epoch time of each and the ratio B/A, final test
    accuracy of each and the difference B−A."""
    sa = {r["engine"]: r for r in a.get("summary", [])}
    sb = {r["engine"]: r for r in b.get("summary", [])}
    rows = []
    for label in [k for k in sa if k in sb]:
        ta, tb = sa[label].get("steady_epoch_s"), sb[label].get("steady_epoch_s")
        acc_a, acc_b = sa[label].get("test_accuracy"), sb[label].get("test_accuracy")
        rows.append({"engine": label, "steady_a_s": ta, "steady_b_s": tb,
                     "steady_ratio": tb / ta if ta and tb is not None else math.nan,
                     "test_accuracy_a": acc_a, "test_accuracy_b": acc_b,
                     "test_accuracy_diff": acc_b - acc_a if None not in (acc_a, acc_b) else math.nan})
    return pd.DataFrame(rows, columns=["engine", "steady_a_s", "steady_b_s", "steady_ratio", "test_accuracy_a",
                                       "test_accuracy_b", "test_accuracy_diff"]).astype(
        {c: float for c in ["steady_a_s", "steady_b_s", "steady_ratio", "test_accuracy_a", "test_accuracy_b",
                            "test_accuracy_diff"]})


def _engine_fields(doc: dict) -> dict[str, dict]:
    """engine/mode → its first reported environment (framework version, threads, device, BLAS)."""
    fields: dict[str, dict] = {}
    for r in doc.get("engines", []):
        if r.get("report"):
            fields.setdefault(f"{r.get('engine')}/{r.get('mode')}", r["report"])
    return fields


def fingerprint_differences(a: dict, b: dict) -> list[str]:
    """``field: A value vs B value`` for every fingerprint field and per-engine environment field that
    differs between two results folders (engines in both only)."""
    fa, fb = a.get("fingerprint", {}), b.get("fingerprint", {})
    diffs = [f"{k}: {fa.get(k)!r} vs {fb.get(k)!r}" for k in dict.fromkeys([*fa, *fb]) if fa.get(k) != fb.get(k)]
    ea, eb = _engine_fields(a), _engine_fields(b)
    for label in [k for k in ea if k in eb]:
        for k in ENGINE_FIELDS:
            if str(ea[label].get(k)) != str(eb[label].get(k)):
                diffs.append(f"{label} {k}: {ea[label].get(k)!r} vs {eb[label].get(k)!r}")
    return diffs


def format_comparison(table: pd.DataFrame, a: Path, b: Path) -> str:
    if table.empty:
        return f"no engine is in both {a} and {b}"
    show = pd.DataFrame({
        "engine": table.engine,
        "steady A": table.steady_a_s.map(format_seconds), "steady B": table.steady_b_s.map(format_seconds),
        "B/A": table.steady_ratio.map(lambda v: "-" if math.isnan(v) else f"{v:.2f}x"),
        "test acc A": table.test_accuracy_a.map(format_number), "test acc B": table.test_accuracy_b.map(format_number),
        "B-A": table.test_accuracy_diff.map(lambda v: "-" if math.isnan(v) else f"{v:+.4f}")})
    return f"B = {b} against A = {a}, engine by engine:\n" + show.to_string(index=False)
