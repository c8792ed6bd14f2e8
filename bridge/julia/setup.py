"""Setting up the Julia engines: finding (or, asked to, downloading) a Julia for each, making its
environment, instantiating and precompiling it, and recording it (:mod:`.record`); and ``check``, which
loads an engine's package, verifies that batches reach Julia without a copy, and times the first epoch
of a tiny plan. The command is ``python -m bridge.julia setup | status | check ENGINE``.

``setup`` finds a Julia for each engine (a path you give, juliaup's channel, or ``julia`` on the PATH),
records the binary itself, makes the engine's Julia environment in a user-writable folder (the engine's
package, shipped with bridge, plus PythonCall pinned to juliacall's version and, for ``--cuda``, CUDA.jl
and cuDNN), instantiates and precompiles it. Only ``setup --install`` downloads Julia (through juliaup,
or juliacall's own installer, juliapkg), and only then. Configuring and importing juliacall happens in
:mod:`.boundary` alone.
"""
from __future__ import annotations

import re
import shutil
import subprocess
import time

from .boundary import JULIACALL_VERSION, PACKAGES, load
from .record import (JULIAUP_CHANNEL, PROBE, SETUP, UUIDS, range_text, version_text, environments_home, in_range,
                     load_record, python_reason, save_record, sources)


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
        tried.append(f"{' '.join(command)} ({version_text(found[0]) if found else 'not runnable'})")
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
        raise RuntimeError(f"{engine}: no {range_text(engine)} found (tried: {tried}); install one "
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
    # the package's path as an argument (Julia's ARGS), never inside the code, where a `$` or a quote in
    # it would be Julia syntax
    code = "import Pkg; Pkg.develop(path=only(ARGS)); Pkg.resolve(); Pkg.instantiate(); Pkg.precompile()"
    done = subprocess.run([exe, f"--project={project}", "--startup-file=no", "-e", code, str(package)], timeout=3600)
    if done.returncode != 0:
        raise RuntimeError(f"{engine}: instantiating {project} with {exe} failed (exit {done.returncode}); "
                           f"nothing is recorded for {engine} until {SETUP} succeeds")
    record[engine] = {"exe": exe, "julia_version": version_text(version), "project": str(project),
                      "package": str(package), "cuda": cuda or engine == "knet"}
    save_record(record)
    return f"{engine}: Julia {record[engine]['julia_version']} at {exe}, environment {project}"


def check(engine: str) -> str:
    """Load ``engine``'s package; show that a NumPy batch reaches Julia as the same memory, in Julia
    layout, and that a Julia result reaches NumPy as the same memory; time a tiny plan's first epoch."""
    import numpy as np  # only here: setup and status run from a wheel installed with no dependencies

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
