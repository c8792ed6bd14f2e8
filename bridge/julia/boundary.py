"""The Python↔Julia boundary: the one module that configures and imports juliacall.

A Julia engine's worker calls :func:`load` once, before anything else touches juliacall. juliacall
reads its settings from the environment when it is first imported, so they are set here, from what
``python -m bridge.julia setup`` recorded (:mod:`.record`):

- ``PYTHON_JULIACALL_EXE`` / ``PYTHON_JULIACALL_PROJECT``: the recorded Julia binary and the set-up
  environment. With both set, juliacall 0.9.28 never imports juliapkg (``juliacall/__init__.py``, the
  start-up that reads them), so nothing is resolved or downloaded at run time.
- ``PYTHON_JULIACALL_THREADS``: the run's thread count (see julia/common/engine.jl for how the
  engines split it between Julia and BLAS); ``PYTHON_JULIACALL_HANDLE_SIGNALS=yes``, which juliacall's
  documentation asks for with more than one thread (Julia's GC stops threads with signals).

If juliacall was already imported in this process (a notebook, another library), its settings are
fixed; :func:`load` then refuses unless it runs the very project the engine needs.
"""
from __future__ import annotations

import os
import sys
import time

from ..errors import BridgeError

JULIACALL_VERSION = "0.9.28"
PACKAGES = {"flux": "BridgeFlux", "knet": "BridgeKnet"}
# Packages loaded before the engine's own, and timed apart as cuda_load_s: BridgeFlux's GPU extension
# loads with CUDA and cuDNN (only for device="cuda"); Knet 1.4.10 depends on CUDA and loads it always.
CUDA_PACKAGES = {("flux", "cuda"): ("CUDA", "cuDNN"), ("knet", "cpu"): ("CUDA",), ("knet", "cuda"): ("CUDA",)}


SETUP = "python -m bridge.julia setup"


class JuliaSetupError(BridgeError):
    pass


def without_cuda(engine: str, entry: dict) -> str | None:
    """Why ``engine``, set up as ``entry`` (an entry of :mod:`.record`), cannot use a GPU: set up without
    CUDA.jl (Knet always has it: Knet depends on CUDA); None when it has it."""
    if entry.get("cuda", engine == "knet"):
        return None
    return f"{engine} was set up without CUDA.jl; for --device cuda run: {SETUP} --engines {engine} --cuda"


def environment(entry: dict, threads: int) -> dict[str, str]:
    """juliacall's settings for a worker of the engine set up as ``entry`` (an entry of :mod:`.record`)."""
    return {
        "PYTHON_JULIACALL_EXE": entry["exe"],
        "PYTHON_JULIACALL_PROJECT": entry["project"],
        "PYTHON_JULIACALL_THREADS": str(threads),
        "PYTHON_JULIACALL_HANDLE_SIGNALS": "yes",
        "PYTHON_JULIACALL_OPTIMIZE": "2",
    }


def _import_juliacall(project: str):
    if "juliacall" in sys.modules:
        from juliacall import Main as jl  # noqa: configured by whoever imported it first

        active = str(jl.seval("something(Base.active_project(), \"\")"))
        if os.path.dirname(active) != os.path.abspath(project):
            raise JuliaSetupError(
                f"juliacall was already imported in this process with the Julia project {active!r}, and its "
                f"settings cannot change; bridge's engine needs {project!r}: run it in a fresh process "
                "(python -m bridge.compare starts one per engine)")
        return jl
    from juliacall import Main as jl  # noqa: the one import of juliacall in bridge

    return jl


def load(engine: str, entry: dict, threads: int, device: str):
    """Configure and import juliacall, load what the engine needs on ``device``, then its package.

    Returns ``(module, seconds)``: the Julia module and a dict of seconds: ``import_s`` from the import of
    juliacall to the package being loaded (Python's monotonic clock), ``cuda_load_s`` and
    ``package_load_s``, the ``using`` of CUDA's packages (when loaded) and of the engine's package as
    Julia's ``time_ns`` measures them. Call once per worker process.
    """
    cuda = CUDA_PACKAGES.get((engine, device), ())
    if cuda and (reason := without_cuda(engine, entry)):
        raise JuliaSetupError(reason)
    os.environ.update(environment(entry, threads))
    start = time.perf_counter()
    jl = _import_juliacall(entry["project"])
    seconds = {}
    if cuda:
        jl.seval("const BRIDGE_CUDA_START = time_ns()")
        jl.seval(f"using {', '.join(cuda)}")
        seconds["cuda_load_s"] = float(jl.seval("(time_ns() - BRIDGE_CUDA_START) / 1e9"))
    jl.seval("const BRIDGE_LOAD_START = time_ns()")
    jl.seval(f"using {PACKAGES[engine]}")
    seconds["package_load_s"] = float(jl.seval("(time_ns() - BRIDGE_LOAD_START) / 1e9"))
    module = jl.seval(PACKAGES[engine])
    seconds["import_s"] = time.perf_counter() - start
    return module, seconds


def python_dict(value) -> dict:
    """A Julia ``Dict{String,Any}`` as a plain dict of str/int/float/bool."""
    return {str(k): v if isinstance(v, (str, int, float, bool)) else str(v) for k, v in dict(value).items()}
