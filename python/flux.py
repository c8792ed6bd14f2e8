"""The flux engine: Flux.jl 0.16 (julia/BridgeFlux) through juliacall, in an explicit-gradient loop
(``Flux.withgradient`` + ``Flux.update!``), with Keras' Adam as an Optimisers.jl rule."""
from .common.julia_session import INSTALL, MODES, REQUIRES, JuliaEngine, export_plan, maxpool_gradient  # noqa: F401

FRAMEWORK = "Flux"

_engine = JuliaEngine("flux")
prepare, train_epoch, predict, unavailable_reason = (_engine.prepare, _engine.train_epoch, _engine.predict,
                                                     _engine.unavailable_reason)
memory_report, final_report = _engine.memory_report, _engine.final_report
