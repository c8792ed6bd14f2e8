"""The Python↔Julia boundary: the one module that configures and imports juliacall.

Each Julia engine runs in its own worker with its own Julia and Julia project, because Knet 1.4.10
resolves only on Julia 1.9 and Flux 0.16 needs Julia ≥ 1.10 (and a process hosts one Julia).
juliacall 0.9.28 is the one release whose PythonCall serves both, and its ``PYTHON_JULIACALL_EXE`` /
``PYTHON_JULIACALL_PROJECT`` pair skips juliapkg entirely, so nothing is ever resolved or downloaded
behind the user's back.

``python -m bridge.julia setup`` finds Julia for each engine (a path you give, juliaup, or ``julia`` on
the PATH), instantiates and precompiles the engine's project (``julia/BridgeFlux``,
``julia/BridgeKnet``) and records where they are; ``python -m bridge.julia status`` shows the record; ``python -m bridge.julia check ENGINE`` loads the
engine's package and verifies that batches reach Julia without a copy.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

JULIACALL_VERSION = "0.9.28"
SETUP = "python -m bridge.julia setup"
PACKAGES = {"flux": "BridgeFlux", "knet": "BridgeKnet"}
# Julia versions each engine's project resolves on: [low, high)
JULIA_RANGE = {"flux": ((1, 10, 3), (1, 12, 0)), "knet": ((1, 9, 0), (1, 10, 0))}
JULIAUP_CHANNEL = {"flux": "1.10", "knet": "1.9"}


def sources() -> Path:
    """The ``julia/`` folder of a source checkout (the Julia engines are not shipped in wheels)."""
    return Path(__file__).resolve().parent.parent / "julia"


def record_path() -> Path:
    default = Path(os.environ.get("XDG_CONFIG_HOME", Path.home() / ".config")) / "bridge" / "julia.json"
    return Path(os.environ.get("BRIDGE_JULIA_RECORD", default))


def load_record() -> dict:
    try:
        return json.loads(record_path().read_text())
    except (OSError, json.JSONDecodeError):
        return {}


def _range_text(engine: str) -> str:
    (lo, hi) = JULIA_RANGE[engine]
    return f"Julia >= {'.'.join(map(str, lo))}, < {'.'.join(map(str, hi[:2]))}"


def unavailable_reason(engine: str) -> str | None:
    """Why ``engine`` (flux or knet) cannot run here, naming the fix; None when it can."""
    if importlib.util.find_spec("juliacall") is None:
        return f"{engine} needs juliacall=={JULIACALL_VERSION}; run: pip install 'bridge[julia]' && {SETUP}"
    entry = load_record().get(engine)
    if not entry:
        return (f"{engine} needs {_range_text(engine)} with the {PACKAGES[engine]} project set up, and none is "
                f"recorded in {record_path()}; run: {SETUP}")
    if not Path(entry["exe"]).exists():
        return f"{engine}: the recorded Julia {entry['exe']} is gone; run: {SETUP}"
    return None


def environment(engine: str, threads: int) -> dict[str, str]:
    """juliacall's settings for a worker of ``engine``; they must be in place before juliacall is imported."""
    entry = load_record()[engine]
    return {
        "PYTHON_JULIACALL_EXE": entry["exe"],
        "PYTHON_JULIACALL_PROJECT": entry["project"],
        "PYTHON_JULIAPKG_OFFLINE": "yes",  # never resolve or download at run time
        "PYTHON_JULIACALL_THREADS": str(threads),
        # Julia's GC uses signals to stop threads; juliacall's docs ask for this with threads > 1
        "PYTHON_JULIACALL_HANDLE_SIGNALS": "yes",
        "PYTHON_JULIACALL_OPTIMIZE": "2",
    }


def load(engine: str, threads: int):
    """Configure and import juliacall, then ``using`` the engine's package.

    Returns ``(module, import_s, package_load_s)``: the Julia module, the seconds from the import of
    juliacall to the package being loaded (Python's monotonic clock), and the seconds ``using`` took as
    Julia's ``time_ns`` measures it. Call once per worker process.
    """
    os.environ.update(environment(engine, threads))
    start = time.perf_counter()
    from juliacall import Main as jl  # noqa: the one import of juliacall in bridge

    jl.seval("const BRIDGE_LOAD_START = time_ns()")
    jl.seval(f"using {PACKAGES[engine]}")
    package_load_s = float(jl.seval("(time_ns() - BRIDGE_LOAD_START) / 1e9"))
    module = jl.seval(PACKAGES[engine])
    return module, time.perf_counter() - start, package_load_s


def python_dict(value) -> dict:
    """A Julia ``Dict{String,Any}`` as a plain dict of str/int/float/bool."""
    return {str(k): v if isinstance(v, (str, int, float, bool)) else str(v) for k, v in dict(value).items()}


# --- set-up -------------------------------------------------------------------------------------

def julia_version(exe: str) -> tuple[int, int, int] | None:
    try:
        out = subprocess.run([exe, "--version"], capture_output=True, text=True, timeout=60).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    m = re.search(r"(\d+)\.(\d+)\.(\d+)", out)
    return tuple(int(g) for g in m.groups()) if m else None


def find_julia(engine: str, given: str | None, install: bool) -> tuple[str | None, str]:
    """An executable for ``engine``: the path given, else juliaup's channel, else ``julia`` on the PATH.

    With ``install``, a missing juliaup channel is added (``juliaup add``) — the only download bridge ever
    starts, and only from this explicit command. Returns ``(exe or None, what was tried)``.
    """
    lo, hi = JULIA_RANGE[engine]
    tried = []
    candidates = [given] if given else []
    juliaup = shutil.which("juliaup")
    if juliaup and not given:
        channel = JULIAUP_CHANNEL[engine]
        if install:
            subprocess.run([juliaup, "add", channel], capture_output=True, timeout=1800)
        launcher = shutil.which("julia")
        if launcher:
            out = subprocess.run([launcher, f"+{channel}", "-e", "print(joinpath(Sys.BINDIR, Base.julia_exename()))"],
                                 capture_output=True, text=True, timeout=120)
            if out.returncode == 0:
                candidates.append(out.stdout.strip())
    if not given and shutil.which("julia"):
        candidates.append(shutil.which("julia"))
    for exe in candidates:
        version = julia_version(exe)
        tried.append(f"{exe} ({'.'.join(map(str, version)) if version else 'not runnable'})")
        if version and lo <= version < hi:
            return exe, ", ".join(tried)
    return None, ", ".join(tried) or "no julia given, no juliaup, no julia on the PATH"


def setup_engine(engine: str, given: str | None, install: bool) -> str:
    exe, tried = find_julia(engine, given, install)
    if exe is None:
        raise RuntimeError(f"{engine}: no {_range_text(engine)} found (tried: {tried}); install it "
                           f"(e.g. juliaup add {JULIAUP_CHANNEL[engine]}) or pass --{engine}-julia PATH")
    project = sources() / PACKAGES[engine]
    if not (project / "Project.toml").exists():
        raise RuntimeError(f"{engine}: {project} is missing; the Julia engines need a source checkout of bridge")
    code = "import Pkg; Pkg.instantiate(); Pkg.precompile()"
    done = subprocess.run([exe, f"--project={project}", "-e", code], timeout=3600)
    if done.returncode != 0:
        raise RuntimeError(f"{engine}: instantiating {project} with {exe} failed (exit {done.returncode})")
    record = load_record()
    record[engine] = {"exe": exe, "project": str(project), "julia_version": ".".join(map(str, julia_version(exe)))}
    path = record_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record, indent=1))
    return f"{engine}: Julia {record[engine]['julia_version']} at {exe}, project {project}"


def check_zero_copy(engine: str) -> str:
    """Load ``engine``'s package and show that a NumPy batch reaches Julia as the same memory, in
    Julia layout, and that a Julia result reaches NumPy as the same memory."""
    import numpy as np

    module, import_s, _ = load(engine, 1)
    x = np.arange(2 * 3 * 4 * 5, dtype=np.float32).reshape(2, 3, 4, 5)  # NCHW
    y = np.arange(2, dtype=np.int32)
    xj = module.wrap_inputs(x.ctypes.data, *reversed(x.shape))
    yj = module.wrap_labels(y.ctypes.data, len(y))
    problems = []
    if int(module.data_pointer(xj)) != x.ctypes.data or int(module.data_pointer(yj)) != y.ctypes.data:
        problems.append("Julia wrapped a different address")
    if tuple(xj.shape) != (5, 4, 3, 2) or float(xj[4, 3, 2, 1]) != float(x[1, 2, 3, 4]):
        problems.append(f"Julia sees size {tuple(xj.shape)}, expected (5, 4, 3, 2) = WHCN")
    view = np.asarray(xj)
    if not np.shares_memory(view, x):
        problems.append("NumPy's view of the Julia array is a copy")
    if problems:
        raise RuntimeError(f"{engine}: " + "; ".join(problems))
    return f"{engine}: zero-copy hand-off verified ({PACKAGES[engine]} loaded in {import_s:.1f} s)"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bridge.julia", description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="command", required=True)
    s = sub.add_parser("setup", help="find Julia for each engine, instantiate and precompile its project")
    s.add_argument("--engines", default="flux,knet", help="which Julia engines (default: flux,knet)")
    s.add_argument("--flux-julia", metavar="PATH", help="Julia >= 1.10.3 executable for flux")
    s.add_argument("--knet-julia", metavar="PATH", help="Julia 1.9 executable for knet")
    s.add_argument("--install", action="store_true", help="let juliaup add missing Julia versions")
    sub.add_parser("status", help="show what is set up")
    c = sub.add_parser("check", help="load one engine's package and verify the zero-copy hand-off")
    c.add_argument("engine", choices=sorted(PACKAGES))
    args = p.parse_args(argv)
    if args.command == "check":
        reason = unavailable_reason(args.engine)
        if reason:
            print(f"bridge.julia: {reason}", file=sys.stderr)
            return 1
        print(check_zero_copy(args.engine))
        return 0
    if args.command == "status":
        for engine in PACKAGES:
            print(f"{engine}: {unavailable_reason(engine) or load_record()[engine]}")
        return 0
    failed = False
    for engine in [e.strip() for e in args.engines.split(",") if e.strip()]:
        if engine not in PACKAGES:
            print(f"bridge.julia: error: engine {engine!r} is not a Julia engine; accepted: flux, knet", file=sys.stderr)
            return 2
        try:
            print(setup_engine(engine, getattr(args, f"{engine}_julia"), args.install))
        except (RuntimeError, subprocess.SubprocessError, OSError) as e:
            failed = True
            print(f"bridge.julia: {e}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
