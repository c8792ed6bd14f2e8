"""Which engine runs a comparison holds, decided once: the registry, the only place that maps an engine's
name to its code, and :func:`select`, which turns a spec's ``engines`` into the runs that will start.

:func:`select` reads every engine module once: its modes, its framework, the max-pool gradient rule of
each run on the spec's device (:func:`bridge.experiment.semantics.rule_of`), whether it can run here
(once per engine), and what it needs written beside the plan. The :class:`Selection` it returns is
passed on to the resume check, the progress display and the runner, and every run it holds carries
those facts (:class:`bridge.results.records.EngineMode`) into its job, its outcome and its results.

:func:`describe_engines` describes every registered engine and mode without selecting any (``python -m
bridge.compare --list-engines``).

An engine name that contains a dot is taken as the import path of a third-party engine module following
the contract in :mod:`bridge.contract`.
"""
from __future__ import annotations

import importlib
import importlib.util
from dataclasses import dataclass
from types import ModuleType
from typing import Callable

from ..errors import UsageError
from ..experiment.semantics import REFERENCE, compared_with, reference_mode, rule_of
from ..results.records import EngineMode, installed_versions

ENGINES = {
    "reference": "bridge.engines.reference",
    "keras": "bridge.engines.keras",
    "keras-jax": "bridge.engines.keras_jax",
    "keras-torch": "bridge.engines.keras_torch",
    "torch": "bridge.engines.torch",
    "jax": "bridge.engines.jax",
    "flux": "bridge.engines.flux",
    "knet": "bridge.engines.knet",
}


class EngineError(UsageError):
    pass


def module(engine: str) -> ModuleType:
    """The module of ``engine`` (a registered name or a module path); its framework is not imported."""
    path = ENGINES.get(engine, engine if "." in engine else None)
    if path is None:
        raise EngineError(f"engine {engine!r} is not known; accepted: {', '.join(ENGINES)} "
                          "(or a module path such as mypackage.my_engine)")
    try:
        return importlib.import_module(path)
    except ImportError as e:
        raise EngineError(f"engine module {path!r} cannot be imported ({e})") from None


def unavailable_reason(engine: str, mod: ModuleType | None = None, device: str = "cpu") -> str | None:
    """Why ``engine`` cannot run on this machine on ``device``, with the fix; None when it can."""
    mod = mod or module(engine)
    missing = [name for name in getattr(mod, "REQUIRES", ()) if importlib.util.find_spec(name) is None]
    if missing:
        return f"{engine} needs {', '.join(missing)}, which is not installed; run: {mod.INSTALL}"
    check = getattr(mod, "unavailable_reason", None)
    return check(device) if check else None


def resolve(names: tuple[str, ...], modules: dict[str, ModuleType] | None = None) -> list[tuple[str, str]]:
    """``keras`` → every mode of keras; ``keras:fit`` → that mode. Empty → every registered engine.
    ``modules`` (engine → module) receives every module read, each once."""
    modules = {} if modules is None else modules
    runs: list[tuple[str, str]] = []
    for name in names or tuple(ENGINES):
        engine, _, mode = name.partition(":")
        if engine not in modules:
            modules[engine] = module(engine)
        modes = tuple(modules[engine].MODES)
        if mode and mode not in modes:
            raise EngineError(f"mode {mode!r} of engine {engine!r} is not known; accepted: {', '.join(modes)}")
        for m in (mode,) if mode else modes:
            if (engine, m) not in runs:
                runs.append((engine, m))
    return runs


@dataclass(frozen=True)
class Selection:
    """The engine runs of one comparison, decided once."""
    runs: tuple[EngineMode, ...]
    """What will run, in order (per repeat); the reference's NNlib variant included when needed."""
    cannot_run: tuple[tuple[EngineMode, str], ...]
    """Runs that cannot run here, each with the reason and the fix."""
    named: bool
    """Engines were named: one that cannot run is ``unavailable`` (a failure), else ``skipped``."""
    plan_exports: tuple[Callable, ...] = ()
    """What the selected engines need written beside the plan (``export_plan`` of their modules)."""

    def check_runnable(self) -> None:
        """Raise :class:`EngineError` (exit 2, before anything is written) when no engine run can run
        here, naming why for each: a folder with nothing in it helps no one."""
        if not self.runs:
            raise EngineError("none of the engines asked for can run here: "
                              + "; ".join(f"{run.label}: {why}" for run, why in self.cannot_run)
                              + "; install what is named, or choose others with --engines")


def select(spec) -> Selection:
    """The runs of ``spec``: :func:`resolve` of ``spec.engines``, where the reference without a mode runs
    its exact variant, plus its NNlib variant when the model has a max-pool and an engine that can run
    here follows NNlib's max-pool gradient (so that engine's parity has its reference,
    :mod:`bridge.results.parity`); ``reference:nnlib`` asks for that variant explicitly. Raises
    :class:`EngineError` for an unknown engine or mode."""
    modules: dict[str, ModuleType] = {}
    resolved = resolve(spec.engines, modules)
    reasons = {engine: unavailable_reason(engine, mod, spec.device) for engine, mod in modules.items()}
    runs = []
    for engine, mode in resolved:
        rule = rule_of(modules[engine], mode, spec.device)
        runs.append(EngineMode(engine, mode, str(getattr(modules[engine], "FRAMEWORK", "")), rule,
                               compared_with(engine, mode, rule, spec.model), python_modules(modules[engine])))
    variant = (REFERENCE, reference_mode("nnlib", "cnn"))
    named = f"{variant[0]}:{variant[1]}" in spec.engines
    needed = spec.model == "cnn" and any(r.maxpool_gradient == "nnlib" and not reasons[r.engine]
                                         for r in runs if r.engine != REFERENCE)
    runs = [r for r in runs if (r.engine, r.mode) != variant or named or needed]
    ready = tuple(r for r in runs if not reasons[r.engine])
    exports = (getattr(modules[r.engine], "export_plan", None) for r in ready)
    return Selection(ready, tuple((r, reasons[r.engine]) for r in runs if reasons[r.engine]), bool(spec.engines),
                     tuple(dict.fromkeys(e for e in exports if e is not None)))


def python_modules(mod: ModuleType) -> tuple[str, ...]:
    """The Python modules whose distributions' versions say what an engine run ran: those of its
    ``FRAMEWORK`` (``keras/jax``: keras, jax), then its ``REQUIRES``."""
    frameworks = [name for name in str(getattr(mod, "FRAMEWORK", "")).split("/") if name]
    return tuple(dict.fromkeys([*frameworks, *getattr(mod, "REQUIRES", ())]))


def every_plan_export() -> tuple[Callable, ...]:
    """``export_plan`` of every registered engine: what a plan saved to be kept (``--save-plan``) holds,
    whichever engines ran on it."""
    exports = (getattr(module(engine), "export_plan", None) for engine in ENGINES)
    return tuple(dict.fromkeys(e for e in exports if e is not None))


@dataclass(frozen=True)
class EngineDescription:
    """A registered engine in one mode, as ``python -m bridge.compare --list-engines`` shows it."""
    run: EngineMode
    unavailable: str | None
    """Why it cannot run here, with the fix; None when it can."""
    versions: dict[str, str] | None
    """``{distribution: version}`` installed behind it (:func:`installed_versions`, from package metadata,
    nothing imported); None where its framework is no Python distribution (the Julia engines)."""


def describe_engines() -> list[EngineDescription]:
    """Every registered engine in every mode, with whether it can run here and its installed versions:
    one module look-up and one availability check per engine, no framework imported."""
    described = []
    for engine in ENGINES:
        mod = module(engine)
        reason = unavailable_reason(engine, mod)
        for mode in mod.MODES:
            run = EngineMode(engine, mode, str(getattr(mod, "FRAMEWORK", "")), python_modules=python_modules(mod))
            described.append(EngineDescription(run, reason, installed_versions(run)))
    return described
