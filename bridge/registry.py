"""The engine registry: the only place that maps an engine's name to its code.

An engine name that contains a dot is taken as the import path of a third-party engine module
following the protocol in :mod:`bridge.engines`.
"""
from __future__ import annotations

import importlib
import importlib.util
from dataclasses import dataclass
from types import ModuleType

ENGINES = {
    "reference": "bridge.engines.reference",
    "keras": "bridge.engines.tfkeras",
    "keras-jax": "bridge.engines.keras_jax",
    "keras-torch": "bridge.engines.keras_torch",
    "torch": "bridge.engines.pytorch",
    "jax": "bridge.engines.jaxjit",
    "flux": "bridge.engines.flux",
    "knet": "bridge.engines.knet",
}


class EngineError(ValueError):
    pass


@dataclass(frozen=True)
class EngineRun:
    """An engine in one mode, e.g. keras/fit."""
    engine: str
    mode: str

    @property
    def label(self) -> str:
        return f"{self.engine}/{self.mode}"


def module(engine: str) -> ModuleType:
    path = ENGINES.get(engine, engine if "." in engine else None)
    if path is None:
        raise EngineError(f"engine {engine!r} is not known; accepted: {', '.join(ENGINES)} "
                          "(or a module path such as mypackage.my_engine)")
    try:
        return importlib.import_module(path)
    except ImportError as e:
        raise EngineError(f"engine module {path!r} cannot be imported ({e})") from None


def unavailable_reason(engine: str) -> str | None:
    """Why ``engine`` cannot run on this machine, with the fix; None when it can."""
    mod = module(engine)
    missing = [name for name in getattr(mod, "REQUIRES", ()) if importlib.util.find_spec(name) is None]
    if missing:
        return f"{engine} needs {', '.join(missing)}, which is not installed; run: {mod.INSTALL}"
    check = getattr(mod, "unavailable_reason", None)
    return check() if check else None


def runs(spec) -> list[EngineRun]:
    """The engine runs of a comparison: :func:`resolve` of ``spec.engines``, where the reference without a
    mode runs its exact variant, plus its NNlib variant when the model has a max-pool and an engine here
    follows NNlib's max-pool gradient (so that engine's parity has its reference, :mod:`bridge.parity`).
    ``reference:nnlib`` asks for that variant explicitly."""
    from . import parity

    resolved = resolve(spec.engines)
    variant = EngineRun(parity.REFERENCE, parity.REFERENCE_MODE["nnlib"])
    named = f"{variant.engine}:{variant.mode}" in spec.engines
    needed = spec.model == "cnn" and any(
        parity.maxpool_gradient(module(r.engine), spec.device) == "nnlib" and not unavailable_reason(r.engine)
        for r in resolved if r.engine != parity.REFERENCE)
    return [r for r in resolved if r != variant or named or needed]


def resolve(names: tuple[str, ...]) -> list[EngineRun]:
    """``keras`` → every mode of keras; ``keras:fit`` → that mode. Empty → every registered engine."""
    runs: list[EngineRun] = []
    for name in names or tuple(ENGINES):
        engine, _, mode = name.partition(":")
        modes = tuple(module(engine).MODES)
        if mode and mode not in modes:
            raise EngineError(f"mode {mode!r} of engine {engine!r} is not known; accepted: {', '.join(modes)}")
        for m in (mode,) if mode else modes:
            if EngineRun(engine, m) not in runs:
                runs.append(EngineRun(engine, m))
    return runs
