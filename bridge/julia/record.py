"""What ``python -m bridge.julia setup`` recorded, and whether a Julia engine can run here: the part of
the Julia set-up that the engines (:mod:`bridge.engines.flux`, :mod:`bridge.engines.knet`) and the
boundary (:mod:`.boundary`) read. Making the record is :mod:`.setup`.

The record (``$BRIDGE_JULIA_RECORD``, default ``~/.config/bridge/julia.json``) holds, per engine, the
Julia binary itself (``Sys.BINDIR``, never juliaup's launcher, whose default can change), its version,
the engine's environment (``$BRIDGE_JULIA_HOME``, default ``~/.local/share/bridge/julia/<engine>``) and
the package it was set up for. Knet 1.4.10's dependency set loads only on Julia 1.9 and Flux 0.16 needs
Julia ≥ 1.10, so each engine has its own Julia; juliacall 0.9.28 serves both but crashes on Python 3.14.
"""
from __future__ import annotations

import importlib.resources
import importlib.util
import json
import os
import re
import subprocess
import sys
from pathlib import Path

from .. import gpus
from ..files import atomic_write
from .boundary import JULIACALL_VERSION, PACKAGES, SETUP, without_cuda

RECORD_FORMAT = 1
# Julia versions each engine's environment resolves on: [low, high). 1.10.3 is where juliacall 0.9.28's
# own Julia requirement starts again after 1.9 ("~1.9, ^1.10.3").
JULIA_RANGE = {"flux": ((1, 10, 3), (1, 12, 0)), "knet": ((1, 9, 0), (1, 10, 0))}
JULIAUP_CHANNEL = {"flux": "1.10", "knet": "1.9"}
UUIDS = {"PythonCall": "6099a3de-0909-46bc-b1f4-468b9a2dfc0d", "CUDA": "052768ef-5323-5732-b1bb-66c8b64840ba",
         "cuDNN": "02a925ec-e4fe-4b08-9a7e-0d78e3d38ccd"}
PYTHON_MAX = (3, 14)  # juliacall 0.9.28 serves Python below this
# Knet 1.4.10 admits only CUDA.jl 3.x; CUDA.jl 3.13.1 knows compute capabilities up to 8.6/8.7
# (deps/compatibility.jl), compiles its kernels with ptxas to sm_86 cubins and loads them as they are
# (src/compiler/execution.jl), and a cubin loads only on its own major capability: on 9.0 and later
# (H100, H200) the first kernel fails with CUDA_ERROR_NO_BINARY_FOR_GPU. BridgeKnet's select_device
# checks the same bound (julia/BridgeKnet/src/engine.jl, KNET_CAPABILITY_BELOW).
KNET_CAPABILITY_BELOW = (9, 0)
PROBE = 'print(VERSION, "\\n", joinpath(Sys.BINDIR, Base.julia_exename()))'


def sources() -> Path:
    """The folder holding the Julia packages (BridgeFlux, BridgeKnet, each whole in its folder), shipped
    with bridge."""
    return Path(str(importlib.resources.files("bridge.julia_packages")))


def record_path() -> Path:
    default = Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config") / "bridge" / "julia.json"
    return Path(os.environ.get("BRIDGE_JULIA_RECORD") or default)


def environments_home() -> Path:
    default = Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share") / "bridge" / "julia"
    return Path(os.environ.get("BRIDGE_JULIA_HOME") or default)


def save_record(record: dict) -> None:
    path = record_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, json.dumps({"format": RECORD_FORMAT, **record}, indent=1))


def load_record() -> dict:
    """engine → its entry; empty when nothing is recorded (or the file cannot be read)."""
    try:
        doc = json.loads(record_path().read_text())
    except (OSError, json.JSONDecodeError):
        return {}
    return {k: v for k, v in doc.items() if k != "format"} if isinstance(doc, dict) else {}


def version_text(v) -> str:
    return ".".join(map(str, v))


def range_text(engine: str) -> str:
    (lo, hi) = JULIA_RANGE[engine]
    return f"Julia >= {version_text(lo)}, < {version_text(hi[:2])}"


def in_range(engine: str, version) -> bool:
    lo, hi = JULIA_RANGE[engine]
    return version is not None and lo <= tuple(version) < hi


def julia_version(exe: str) -> tuple[int, int, int] | None:
    """The version ``exe --version`` prints, or None when it does not run."""
    try:
        out = subprocess.run([exe, "--version"], capture_output=True, text=True, timeout=60).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    m = re.search(r"(\d+)\.(\d+)\.(\d+)", out)
    return tuple(int(g) for g in m.groups()) if m else None


def python_reason(engine: str) -> str | None:
    if sys.version_info[:2] >= PYTHON_MAX:
        return (f"{engine} needs juliacall=={JULIACALL_VERSION}, which crashes on Python "
                f"{sys.version_info[0]}.{sys.version_info[1]} (it serves Python < {version_text(PYTHON_MAX)}); "
                f"run bridge from Python 3.10 to 3.13 for the Julia engines")
    return None


def unavailable_reason(engine: str, device: str = "cpu") -> str | None:
    """Why ``engine`` (flux or knet) cannot run here on ``device``, naming the fix; None when it can."""
    reason = python_reason(engine)
    if reason:
        return reason
    if importlib.util.find_spec("juliacall") is None:
        return f"{engine} needs juliacall=={JULIACALL_VERSION}; run: pip install 'bridge[julia]' && {SETUP}"
    entry = load_record().get(engine)
    if not entry:
        return (f"{engine} needs {range_text(engine)} with its Julia environment set up, and none is recorded "
                f"in {record_path()}; run: {SETUP}")
    version = julia_version(entry["exe"])
    if version is None:
        return f"{engine}: the recorded Julia {entry['exe']} does not run any more; run: {SETUP}"
    if version_text(version) != entry["julia_version"] or not in_range(engine, version):
        return (f"{engine}: the recorded Julia {entry['exe']} is now {version_text(version)}, but the environment "
                f"was set up with {entry['julia_version']} ({range_text(engine)}); run: {SETUP}")
    package = sources() / PACKAGES[engine]
    if entry.get("package") != str(package):
        return (f"{engine} was set up for the Julia package at {entry.get('package')}, but this bridge has it at "
                f"{package}; run: {SETUP}")
    return device_reason(engine, entry, device)


def device_reason(engine: str, entry: dict, device: str) -> str | None:
    """Why ``engine``, set up as ``entry``, cannot run on ``device`` here; None when it can (or when the
    GPUs cannot be asked: the engine then checks for itself when it starts)."""
    if device != "cuda":
        return None
    if reason := without_cuda(engine, entry):
        return reason
    if engine == "knet":
        too_new = [g for g in gpus.visible_gpus() or () if g.capability >= KNET_CAPABILITY_BELOW]
        if too_new:
            below = version_text(KNET_CAPABILITY_BELOW)
            return (f"knet cannot run on --device cuda here: Knet 1.4.10 is bound to CUDA.jl 3.x, which cannot "
                    f"generate code for compute capability {below} or later ({'; '.join(map(str, too_new))}); "
                    f"run knet with --device cpu, or on a GPU of capability below {below} (Ampere or older), "
                    f"chosen with CUDA_VISIBLE_DEVICES")
    return None
