"""The knet engine: Knet.jl 1.4.10 on Julia 1.9 (julia/BridgeKnet) through juliacall, in a ``@diff``
loop with Keras' Adam written out (Knet's own Adam puts ε elsewhere)."""
from .common.julia_session import INSTALL, MODES, REQUIRES, JuliaEngine, export_plan, maxpool_gradient  # noqa: F401

FRAMEWORK = "Knet"

_engine = JuliaEngine("knet")
prepare, train_epoch, predict, unavailable_reason = (_engine.prepare, _engine.train_epoch, _engine.predict,
                                                     _engine.unavailable_reason)
memory_report, final_report = _engine.memory_report, _engine.final_report
