"""The flux engine: Flux.jl 0.16 (julia/BridgeFlux) through juliacall, in an explicit-gradient loop
(``Flux.withgradient`` + ``Flux.update!``), with Keras' Adam as an Optimisers.jl rule."""
from bridge import julia

from .juliaengine import JuliaEngine

FRAMEWORK = "Flux"
MODES = ("loop",)
# Flux's MaxPool backward: NNlib's ∇maxpool on the CPU (bridge.parity), cuDNN's on a GPU
MAXPOOL_GRADIENT = {"cpu": "nnlib", "cuda": "cudnn"}
REQUIRES = ()  # juliacall and Julia are checked by unavailable_reason, which names the set-up command
INSTALL = f"pip install 'bridge[julia]' && {julia.SETUP}"

_engine = JuliaEngine("flux")
prepare, train_epoch, predict = _engine.prepare, _engine.train_epoch, _engine.predict


def unavailable_reason() -> str | None:
    return julia.unavailable_reason("flux")
