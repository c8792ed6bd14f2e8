"""Parity: how closely an engine's per-step losses follow the reference variant that models it.

Defined once here: the relative step-loss difference, its tolerance and window, and what summary.json
records of it. Which variant models which engine is :mod:`bridge.experiment.semantics`; each engine run
carries its max-pool gradient rule and the reference run it is compared with from the selection
(:class:`bridge.results.records.EngineMode`).
"""
from __future__ import annotations

import numpy as np

from ..experiment.semantics import EXACT_VARIANT, REFERENCE, REFERENCE_VARIANTS, RULES

TOLERANCE = {"sgd": 1e-5, "adam": 1e-4}
"""Largest relative per-step loss difference from the reference variant, by optimizer: over the first 50
steps of an MLP and the first 10 of a CNN in the test suite; the golden fixtures of the Julia packages
carry the same numbers."""

PARITY_STEPS = {"mlp": 50, "cnn": 10}
"""How many of a run's first steps its parity is measured over, by model. A CNN's float32 round-off is
amplified faster (ReLU and max-pool switch on near-ties), so its window is shorter; the test suite and
every run's summary use these same windows."""

VARIANT_STEPS = 50
"""Steps over which the two reference variants are compared in every CNN run's summary."""

NO_STEPS = "no step finished"


def rel_diff(got, ref) -> np.ndarray:
    """``|got − ref| / |ref|`` per step, over the steps both have."""
    got, ref = np.asarray(got, dtype=np.float64), np.asarray(ref, dtype=np.float64)
    n = min(len(got), len(ref))
    with np.errstate(invalid="ignore", divide="ignore"):  # a diverged run's inf against inf is NaN: not finite
        return np.abs(got[:n] - ref[:n]) / np.abs(ref[:n])


def worst(diffs: np.ndarray) -> float:
    """The largest of ``rel_diff``'s values: infinite where any is not finite (a diverged run), 0 for none."""
    if not len(diffs):
        return 0.0
    return float(np.max(diffs)) if np.all(np.isfinite(diffs)) else float("inf")


def semantics(model: str, runs: list, frame) -> dict:
    """What summary.json records of the engines' documented differences: per engine run (``runs``:
    :class:`~bridge.results.records.EngineMode`) its max-pool gradient rule and the reference run it is
    compared with, what each rule does, and (both reference variants having run) their largest relative
    step-loss difference over the first ``VARIANT_STEPS`` steps: the size of the difference between the
    rules on this experiment. Empty for an MLP."""
    if model != "cnn":
        return {}
    by_label = {r.label: {"maxpool_gradient": r.maxpool_gradient, "compared_with": r.compared_with} for r in runs}
    out = {"maxpool_gradient": by_label,
           "rules": {r: RULES[r] for r in dict.fromkeys(v["maxpool_gradient"] for v in by_label.values())}}
    steps = frame[(frame.metric == "step_loss") & (frame.engine == REFERENCE) & (frame["repeat"] == 0)]
    variants = {m: g.sort_values("step").value.to_numpy() for m, g in steps.groupby("mode")}
    exact = variants.get(EXACT_VARIANT)
    nnlib = next((v for m, v in variants.items() if REFERENCE_VARIANTS.get(m) == "nnlib"), None)
    if exact is not None and nnlib is not None and len(exact) and len(nnlib):
        n = min(VARIANT_STEPS, len(exact), len(nnlib))
        out["reference_variants"] = {"steps": n, "max_rel_diff": float(rel_diff(nnlib[:n], exact[:n]).max())}
    return out


def describe(semantics_: dict) -> str:
    """One line for the terminal and the report about the max-pool gradient: when every engine run follows
    one rule, that rule and what it does; when they differ, which runs follow which rule, what each rule
    does, and how far apart the reference variants of the rules are on this experiment."""
    runs = semantics_.get("maxpool_gradient", {})
    if not runs:
        return ""
    what = {**RULES, **semantics_.get("rules", {})}
    groups: dict[str, list[str]] = {}
    for label, r in runs.items():
        groups.setdefault(r["maxpool_gradient"], []).append(label)
    if len(groups) == 1:
        rule = next(iter(groups))
        return f"max-pool gradient: every engine routes each window's gradient by the {rule} rule, {what.get(rule, '')}"
    text = ("max-pool gradient: the engines follow different rules, each compared with the reference variant of "
            "its own. ")
    text += " ".join(f"{rule} ({', '.join(labels)}): {what.get(rule, '')}." for rule, labels in groups.items())
    size = semantics_.get("reference_variants")
    if size:
        text += f" The variants differ by up to {size['max_rel_diff']:.1e} over {size['steps']} steps."
    return text


def engine_parity(frame, model: str, optimizer: str, runs: list) -> dict:
    """Every engine run's parity, as summary.json records it: ``label -> {compared_with, steps,
    max_rel_diff, tolerance, pass}`` where ``max_rel_diff`` is the largest relative per-step loss
    difference from the reference variant of its rule (``compared_with``) over the first
    ``PARITY_STEPS[model]`` steps, worst over repeats, and ``pass`` whether it is within
    ``TOLERANCE[optimizer]``. A reference run is the oracle (``{"reference": True}``); without the
    reference variant in the run, or without a step, ``{"checked": False, "reason": ...}``.
    ``runs``: the :class:`~bridge.results.records.EngineMode` of every engine run."""
    steps = frame[frame.metric == "step_loss"]
    series = {key: g.sort_values("step").value.to_numpy()
              for key, g in steps.groupby(["engine", "mode", "repeat"])}
    window, tolerance = PARITY_STEPS[model], TOLERANCE[optimizer]
    out = {}
    for r in runs:
        if r.engine == REFERENCE:
            out[r.label] = {"reference": True}
            continue
        against = r.compared_with
        ref = series.get((*against.split("/", 1), 0))
        mine = [v for (e, m, _), v in series.items() if (e, m) == (r.engine, r.mode) and len(v)]
        if ref is None or not len(ref):
            out[r.label] = {"checked": False, "compared_with": against, "reason": f"{against} did not run"}
            continue
        if not mine:
            out[r.label] = {"checked": False, "compared_with": against, "reason": NO_STEPS}
            continue
        n = min(window, len(ref), *(len(v) for v in mine))
        largest = max(worst(rel_diff(v[:n], ref[:n])) for v in mine)
        out[r.label] = {"compared_with": against, "steps": n, "max_rel_diff": largest, "tolerance": tolerance,
                        "pass": bool(largest <= tolerance)}
    return out


COMPARED, REFERENCE_ROLE, NOT_CHECKED, NO_STEPS_ROLE = "compared", "reference", "not checked", "no steps"
"""An engine run's part in the parity check (summary.json's ``parity_role``): compared with a reference
variant, the reference itself, not checked (no reference to compare with), or no step to compare."""


def role(entry: dict | None) -> str:
    """An engine's part in the parity check, from its entry of :func:`engine_parity` (one of the four above)."""
    if entry and entry.get("reason") == NO_STEPS:
        return NO_STEPS_ROLE
    if not entry or entry.get("checked") is False:
        return NOT_CHECKED
    if entry.get("reference"):
        return REFERENCE_ROLE
    return COMPARED


def parity_failure(entry: dict) -> str:
    """Why a run fails parity, in words: what it was compared with, how far off, the tolerance."""
    return (f"its step losses differ from {entry['compared_with']} by up to {entry['max_rel_diff']:.1e} "
            f"(relative) over the first {entry['steps']} steps, tolerance {entry['tolerance']:g}; its times "
            "are not comparable with the other engines'")


def agreement(frame, model: str) -> dict:
    """How closely every two engine runs agree with each other, as summary.json records it: for each
    pair of labels ``a``, ``b`` (in order of appearance; the reference variants included), the largest
    relative per-step loss difference ``|a − b| / |b|`` over the parity window (``PARITY_STEPS[model]``)
    and over every step both have, worst over the repeats both have, and the differences ``a − b`` of
    their final test loss and test accuracy (medians over repeats). Two float32 frameworks may agree with
    each other far more closely than either does with the float64 reference, whose drift grows with the
    steps: this tells framework disagreement from precision. ``{"window": n, "pairs": [...]}``."""
    steps = frame[frame.metric == "step_loss"]
    series: dict[str, dict[int, np.ndarray]] = {}
    for (engine, mode, repeat), g in steps.groupby(["engine", "mode", "repeat"], sort=False):
        series.setdefault(f"{engine}/{mode}", {})[int(repeat)] = g.sort_values("step").value.to_numpy()
    tests = frame[(frame.split == "test") & frame.metric.isin(["loss", "accuracy"])]
    final: dict[tuple[str, str], float] = {}
    for (engine, mode, metric), g in tests.groupby(["engine", "mode", "metric"], sort=False):
        last = g[g.epoch == g.epoch.max()]
        final[f"{engine}/{mode}", metric] = float(last.value.median())
    window, labels, pairs = PARITY_STEPS[model], list(series), []
    for i, a in enumerate(labels):
        for b in labels[i + 1:]:
            repeats = sorted(set(series[a]) & set(series[b]))
            if not repeats:
                continue
            pair = {"a": a, "b": b, "repeats": len(repeats)}
            for key, limit in (("window", window), ("run", None)):
                steps = [min(len(series[a][r]), len(series[b][r]), limit or np.inf) for r in repeats]
                pair[f"{key}_steps"] = int(min(steps))
                pair[f"{key}_max_rel_diff"] = max(worst(rel_diff(series[a][r][:int(n)], series[b][r][:int(n)]))
                                                  for r, n in zip(repeats, steps))
            for metric in ("loss", "accuracy"):
                if (a, metric) in final and (b, metric) in final:
                    pair[f"test_{metric}_diff"] = final[a, metric] - final[b, metric]
            pairs.append(pair)
    return {"window": window, "pairs": pairs}
