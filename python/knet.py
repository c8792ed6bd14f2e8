"""The knet engine: Knet.jl 1.4.10 on Julia 1.9 (julia/BridgeKnet) through juliacall, in a ``@diff``
loop with Keras' Adam written out (Knet's own Adam puts ε elsewhere)."""
from bridge import julia

from .juliaengine import JuliaEngine

FRAMEWORK = "Knet"
MODES = ("loop",)
# Knet's pool backward: NNlib's ∇maxpool on the CPU (bridge.parity), cuDNN's on a GPU
MAXPOOL_GRADIENT = {"cpu": "nnlib", "cuda": "cudnn"}
REQUIRES = ()  # juliacall and Julia are checked by unavailable_reason, which names the set-up command
INSTALL = f"pip install 'bridge[julia]' && {julia.SETUP}"

_engine = JuliaEngine("knet")
prepare, train_epoch, predict = _engine.prepare, _engine.train_epoch, _engine.predict


def unavailable_reason() -> str | None:
    return julia.unavailable_reason("knet")
