"""Setting up the Julia engines: ``python -m bridge.julia setup | status | check ENGINE``.

Each Julia engine runs in its own worker with its own Julia, because Knet 1.4.10's dependency set
loads only on Julia 1.9 and Flux 0.16 needs Julia ≥ 1.10 (a process hosts one Julia). juliacall 0.9.28
is the newest release whose PythonCall serves both; it crashes on Python 3.14 (PythonCall's FAQ; fixed
in 0.9.31, which no longer serves Julia 1.9), so the engines refuse Python ≥ 3.14.

``setup`` finds a Julia for each engine (a path you give, juliaup's channel, or ``julia`` on the PATH),
records the binary itself (``Sys.BINDIR``, never juliaup's launcher, whose default can change), makes
the engine's Julia environment in a user-writable folder (``BRIDGE_JULIA_HOME``, default
``~/.local/share/bridge/julia/<engine>``: the engine's package, shipped with bridge, plus PythonCall
pinned to juliacall's version and, for ``--cuda``, CUDA.jl and cuDNN), instantiates and precompiles it,
and records it. Only ``setup --install`` downloads Julia (through juliaup, or juliacall's own installer,
juliapkg), and only then. ``check`` loads an engine's package, verifies that batches reach Julia without
a copy, and times the first epoch of a tiny plan. Configuring and importing juliacall happens in
:mod:`bridge.julia_import` alone.
"""
from __future__ import annotations

import argparse
import importlib.resources
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

from .julia_import import JULIACALL_VERSION, PACKAGES

SETUP = "python -m bridge.julia setup"
# Julia versions each engine's environment resolves on: [low, high). 1.10.3 is where juliacall 0.9.28's
# own Julia requirement starts again after 1.9 ("~1.9, ^1.10.3").
JULIA_RANGE = {"flux": ((1, 10, 3), (1, 12, 0)), "knet": ((1, 9, 0), (1, 10, 0))}
JULIAUP_CHANNEL = {"flux": "1.10", "knet": "1.9"}
UUIDS = {"PythonCall": "6099a3de-0909-46bc-b1f4-468b9a2dfc0d", "CUDA": "052768ef-5323-5732-b1bb-66c8b64840ba",
         "cuDNN": "02a925ec-e4fe-4b08-9a7e-0d78e3d38ccd"}
PYTHON_MAX = (3, 14)  # juliacall 0.9.28 serves Python below this
PROBE = 'print(VERSION, "\\n", joinpath(Sys.BINDIR, Base.julia_exename()))'


def sources() -> Path:
    """The folder holding the Julia packages (BridgeFlux, BridgeKnet, common/), shipped with bridge."""
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
    path.write_text(json.dumps(record, indent=1))


def load_record() -> dict:
    try:
        return json.loads(record_path().read_text())
    except (OSError, json.JSONDecodeError):
        return {}


def _version_text(v) -> str:
    return ".".join(map(str, v))


def _range_text(engine: str) -> str:
    (lo, hi) = JULIA_RANGE[engine]
    return f"Julia >= {_version_text(lo)}, < {_version_text(hi[:2])}"


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
                f"{sys.version_info[0]}.{sys.version_info[1]} (it serves Python < {_version_text(PYTHON_MAX)}); "
                f"run bridge from Python 3.10 to 3.13 for the Julia engines")
    return None


def unavailable_reason(engine: str) -> str | None:
    """Why ``engine`` (flux or knet) cannot run here, naming the fix; None when it can."""
    reason = python_reason(engine)
    if reason:
        return reason
    if importlib.util.find_spec("juliacall") is None:
        return f"{engine} needs juliacall=={JULIACALL_VERSION}; run: pip install 'bridge[julia]' && {SETUP}"
    entry = load_record().get(engine)
    if not entry:
        return (f"{engine} needs {_range_text(engine)} with its Julia environment set up, and none is recorded "
                f"in {record_path()}; run: {SETUP}")
    version = julia_version(entry["exe"])
    if version is None:
        return f"{engine}: the recorded Julia {entry['exe']} does not run any more; run: {SETUP}"
    if _version_text(version) != entry["julia_version"] or not in_range(engine, version):
        return (f"{engine}: the recorded Julia {entry['exe']} is now {_version_text(version)}, but the environment "
                f"was set up with {entry['julia_version']} ({_range_text(engine)}); run: {SETUP}")
    package = sources() / PACKAGES[engine]
    if entry.get("package") != str(package):
        return (f"{engine} was set up for the Julia package at {entry.get('package')}, but this bridge has it at "
                f"{package}; run: {SETUP}")
    return None


def probe(command: list[str]) -> tuple[tuple[int, int, int], str] | None:
    """Run Julia (``command``: an executable, or juliaup's launcher with ``+channel``) and return its
    version and the path of the binary that really runs (a launcher resolves to a release binary)."""
    try:
        done = subprocess.run([*command, "--startup-file=no", "-e", PROBE], capture_output=True, text=True,
                              timeout=300)
    except (OSError, subprocess.SubprocessError):
        return None
    lines = done.stdout.strip().splitlines()
    m = re.fullmatch(r"(\d+)\.(\d+)\.(\d+)\S*", lines[0].strip()) if done.returncode == 0 and len(lines) == 2 else None
    return (tuple(int(g) for g in m.groups()), lines[1].strip()) if m else None


def install_julia(engine: str) -> list[list[str]]:
    """Download a Julia for ``engine``: juliaup's channel where juliaup exists, else juliacall's own
    installer (juliapkg) into BRIDGE_JULIA_HOME. Returns candidate commands. Only ``setup --install``
    calls this."""
    juliaup = shutil.which("juliaup")
    if juliaup:
        subprocess.run([juliaup, "add", JULIAUP_CHANNEL[engine]], capture_output=True, timeout=1800)
        return []
    from juliapkg.compat import Compat
    from juliapkg.install_julia import best_julia_version, install_julia as juliapkg_install

    prefix = environments_home() / "install" / f"julia-{JULIAUP_CHANNEL[engine]}"
    try:
        _, info = best_julia_version(Compat.parse(f"~{JULIAUP_CHANNEL[engine]}"))
        juliapkg_install(info, str(prefix))
    except Exception as e:  # juliapkg raises plain Exceptions (no network, no release for this platform)
        raise RuntimeError(f"{engine}: downloading Julia {JULIAUP_CHANNEL[engine]} with juliapkg failed: {e}") from e
    return [[str(prefix / "bin" / "julia")]]


def find_julia(engine: str, given: str | None, install: bool) -> tuple[tuple | None, str]:
    """The Julia binary for ``engine``: the path given, else juliaup's channel, else ``julia`` on the PATH;
    with ``install``, one downloaded when none fits. Returns ``((binary, version) or None, what was tried)``."""
    tried = []

    def candidates():
        if given:
            yield [given]
            return
        if shutil.which("juliaup") and shutil.which("julia"):
            yield [shutil.which("julia"), f"+{JULIAUP_CHANNEL[engine]}"]
        if shutil.which("julia"):
            yield [shutil.which("julia")]
        if install:
            yield from install_julia(engine)
            if shutil.which("juliaup") and shutil.which("julia"):
                yield [shutil.which("julia"), f"+{JULIAUP_CHANNEL[engine]}"]

    for command in candidates():
        found = probe(command)
        tried.append(f"{' '.join(command)} ({_version_text(found[0]) if found else 'not runnable'})")
        if found and in_range(engine, found[0]):
            return (found[1], found[0]), ", ".join(tried)
    return None, ", ".join(tried) or "no julia given, no juliaup, no julia on the PATH"


def environment_project(engine: str, cuda: bool) -> str:
    """The Project.toml of ``engine``'s set-up environment: PythonCall pinned to juliacall's version (juliacall
    runs ``using PythonCall`` in the project it activates and needs exactly its own version), and the GPU
    packages the worker loads before the engine's package (:data:`bridge.julia_import.CUDA_PACKAGES`);
    the engine's package itself is added by ``Pkg.develop``."""
    deps = ["PythonCall"] + (["CUDA", "cuDNN"] if engine == "flux" and cuda else ["CUDA"] if engine == "knet" else [])
    lines = [f"# Written by `{SETUP}`: the Julia environment bridge's {engine} worker runs in.", "[deps]"]
    lines += [f'{name} = "{UUIDS[name]}"' for name in deps]
    lines += ["", "[compat]", f'PythonCall = "={JULIACALL_VERSION}"']
    return "\n".join(lines) + "\n"


def setup_engine(engine: str, given: str | None, install: bool, cuda: bool) -> str:
    reason = python_reason(engine)
    if reason:
        raise RuntimeError(reason)
    found, tried = find_julia(engine, given, install)
    if found is None:
        raise RuntimeError(f"{engine}: no {_range_text(engine)} found (tried: {tried}); install one "
                           f"(juliaup add {JULIAUP_CHANNEL[engine]}), pass --{engine}-julia PATH, or let "
                           f"{SETUP} --install download it")
    exe, version = found
    package = sources() / PACKAGES[engine]
    if not (package / "Project.toml").exists():
        raise RuntimeError(f"{engine}: {package / 'Project.toml'} is missing from this installation of bridge")
    project = environments_home() / engine
    project.mkdir(parents=True, exist_ok=True)
    # The old environment is about to change: until this one is instantiated, nothing is recorded for it.
    record = load_record()
    if record.pop(engine, None) is not None:
        save_record(record)
    (project / "Project.toml").write_text(environment_project(engine, cuda))
    (project / "Manifest.toml").unlink(missing_ok=True)  # resolved afresh for this Julia
    code = (f"import Pkg; Pkg.develop(path={json.dumps(str(package))}); Pkg.resolve(); Pkg.instantiate(); "
            "Pkg.precompile()")
    done = subprocess.run([exe, f"--project={project}", "--startup-file=no", "-e", code], timeout=3600)
    if done.returncode != 0:
        raise RuntimeError(f"{engine}: instantiating {project} with {exe} failed (exit {done.returncode}); "
                           f"nothing is recorded for {engine} until {SETUP} succeeds")
    record[engine] = {"exe": exe, "julia_version": _version_text(version), "project": str(project),
                      "package": str(package), "cuda": cuda or engine == "knet"}
    save_record(record)
    return f"{engine}: Julia {record[engine]['julia_version']} at {exe}, environment {project}"


def check(engine: str) -> str:
    """Load ``engine``'s package; show that a NumPy batch reaches Julia as the same memory, in Julia
    layout, and that a Julia result reaches NumPy as the same memory; time a tiny plan's first epoch."""
    import time

    import numpy as np

    from .julia_import import load

    module, seconds = load(engine, load_record()[engine], 1, "cpu")
    x = np.arange(2 * 3 * 4 * 5, dtype=np.float32).reshape(2, 3, 4, 5)  # NCHW
    y = np.arange(2, dtype=np.int32)
    xj = module.wrap_inputs(x.ctypes.data, *reversed(x.shape))
    yj = module.wrap_labels(y.ctypes.data, len(y))
    problems = []
    if int(module.data_pointer(xj)) != x.ctypes.data or int(module.data_pointer(yj)) != y.ctypes.data:
        problems.append("Julia wrapped a different address")
    if tuple(xj.shape) != (5, 4, 3, 2) or float(xj[4, 3, 2, 1]) != float(x[1, 2, 3, 4]):
        problems.append(f"Julia sees size {tuple(xj.shape)}, expected (5, 4, 3, 2) = WHCN")
    if not np.shares_memory(np.asarray(xj), x):
        problems.append("NumPy's view of the Julia array is a copy")
    if problems:
        raise RuntimeError(f"{engine}: " + "; ".join(problems))
    meta, weights, xt, yt = module.tiny_plan("cnn", "adam")
    start = time.perf_counter()
    session = module.prepare(meta, weights)
    build_s = time.perf_counter() - start
    first_epoch_s = float(module.train_epoch(session, xt, yt)[1])
    times = ", ".join(f"{k} {v:.2f} s" for k, v in seconds.items())
    return (f"{engine}: zero-copy hand-off verified; {times}, build {build_s:.2f} s, first epoch of a tiny CNN "
            f"{first_epoch_s:.2f} s (Julia's clock)")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bridge.julia", description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="command", required=True)
    s = sub.add_parser("setup", help="find Julia for each engine, make, instantiate and precompile its environment")
    s.add_argument("--engines", default="flux,knet", help="which Julia engines (default: flux,knet)")
    s.add_argument("--flux-julia", metavar="PATH", help="Julia >= 1.10.3, < 1.12 executable for flux")
    s.add_argument("--knet-julia", metavar="PATH", help="Julia 1.9 executable for knet")
    s.add_argument("--install", action="store_true",
                   help="download missing Julia versions (juliaup, else juliacall's installer)")
    s.add_argument("--cuda", action="store_true",
                   help="add CUDA.jl and cuDNN to flux's environment, for --device cuda (knet always has CUDA)")
    sub.add_parser("status", help="show what is set up")
    c = sub.add_parser("check", help="load one engine's package, verify the zero-copy hand-off, time a first epoch")
    c.add_argument("engine", choices=sorted(PACKAGES))
    args = p.parse_args(argv)
    if args.command == "check":
        reason = unavailable_reason(args.engine)
        if reason:
            print(f"bridge.julia: {reason}", file=sys.stderr)
            return 1
        print(check(args.engine))
        return 0
    if args.command == "status":
        for engine in PACKAGES:
            print(f"{engine}: {unavailable_reason(engine) or load_record()[engine]}")
        return 0
    engines = [e.strip() for e in args.engines.split(",") if e.strip()]
    unknown = [e for e in engines if e not in PACKAGES] or ([] if engines else [args.engines])
    if unknown:
        print(f"bridge.julia: error: engine {unknown[0]!r} is not a Julia engine; accepted: flux, knet", file=sys.stderr)
        return 2
    failed = False
    for engine in engines:
        try:
            print(setup_engine(engine, getattr(args, f"{engine}_julia"), args.install, args.cuda))
        except (RuntimeError, subprocess.SubprocessError, OSError) as e:
            failed = True
            print(f"bridge.julia: {e}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
