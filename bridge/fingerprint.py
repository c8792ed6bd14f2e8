"""The environment fingerprint of the parent process: what a reader needs to judge a number.

Engines add their own part (framework versions, threads and device as the framework reports them)
in their ``prepare`` report; both are saved with the results.
"""
from __future__ import annotations

import os
import platform
import re
import subprocess
import sys
from pathlib import Path

import numpy as np

from . import __version__


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def git_commit() -> str:
    """The commit of the bridge checkout, or ``"unknown"`` for an installed wheel."""
    here = Path(__file__).resolve().parent.parent
    try:
        out = subprocess.run(["git", "-C", str(here), "rev-parse", "--short=12", "HEAD"],
                             capture_output=True, text=True, timeout=10)
        if out.returncode == 0:
            dirty = subprocess.run(["git", "-C", str(here), "status", "--porcelain", "--untracked-files=no"],
                                   capture_output=True, text=True, timeout=10).stdout.strip()
            return out.stdout.strip() + ("+dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        pass
    return "unknown"


def blas() -> str:
    """BLAS NumPy links, with its thread count, as threadpoolctl reports it."""
    from threadpoolctl import threadpool_info

    libs = [f"{i.get('internal_api')} {i.get('version')} ({i.get('num_threads')} threads)"
            for i in threadpool_info() if i.get("user_api") == "blas"]
    return "; ".join(libs) or "unknown"


GEMM_SIZE = 1024


def gemm_peak(threads: int, seconds: float = 0.5) -> float:
    """The machine's measured float32 peak in GFLOP/s, as far as NumPy's BLAS reaches it: the best of
    repeated ``GEMM_SIZE``-square float32 products (2n³ FLOPs each) for about ``seconds``, with BLAS
    limited to ``threads`` threads (the engines' setting). One number to judge achieved rates by; a
    framework's own kernels may beat it a little."""
    import time

    from threadpoolctl import threadpool_limits

    rng = np.random.default_rng(0)
    a, b = (rng.standard_normal((GEMM_SIZE, GEMM_SIZE), dtype=np.float32) for _ in range(2))
    best, deadline = float("inf"), time.perf_counter() + seconds
    with threadpool_limits(limits=threads, user_api="blas"):
        a @ b  # warm up
        while True:
            t = time.perf_counter()
            a @ b
            best = min(best, time.perf_counter() - t)
            if time.perf_counter() > deadline:
                break
    return 2 * GEMM_SIZE**3 / best / 1e9


# float32 lanes of the widest vector FMA a core advertises (/proc/cpuinfo flags), widest first
SIMD_LANES = (("avx512f", 16, "AVX-512"), ("avx2", 8, "AVX2"), ("avx", 8, "AVX"), ("asimd", 4, "NEON"))
FMA_UNITS = 2  # vector FMA units per core: not visible to software; 2 on most server and desktop cores


def _cpuinfo(text: str | None = None) -> list[dict[str, str]]:
    """``/proc/cpuinfo`` (or ``text`` in its format) as one dict per logical CPU; empty where there is none."""
    if text is None:
        try:
            text = Path("/proc/cpuinfo").read_text()
        except OSError:
            return []
    cpus = []
    for block in text.strip().split("\n\n"):
        cpus.append({k.strip(): v.strip() for k, _, v in (line.partition(":") for line in block.splitlines())})
    return cpus


def _clock_ghz(cpu: dict[str, str]) -> tuple[float, str] | None:
    """The nominal clock: the one in the model name (``@ 2.20GHz``), else the base frequency sysfs gives,
    else ``cpu MHz`` (on a VM, the clock the hypervisor reports)."""
    m = re.search(r"@\s*([\d.]+)\s*GHz", cpu.get("model name", ""))
    if m:
        return float(m.group(1)), "model name"
    try:
        khz = int(Path("/sys/devices/system/cpu/cpu0/cpufreq/base_frequency").read_text())  # kHz
        return khz / 1e6, "cpufreq base_frequency"
    except (OSError, ValueError):
        pass
    try:
        return float(cpu["cpu MHz"]) / 1e3, "cpu MHz"
    except (KeyError, ValueError):
        return None


def nominal_peak(threads: int, cpuinfo: str | None = None) -> dict | None:
    """The float32 peak the hardware's datasheet numbers give for ``threads`` threads (0 = all): physical
    cores used × SIMD lanes × 2 FLOPs per FMA × :data:`FMA_UNITS` × clock, with the formula and where each
    factor came from; None where a factor cannot be read (no /proc/cpuinfo, no known vector unit, no
    clock). An upper bound: all-core turbo and AVX-512 down-clocking move the real one. ``cpuinfo``: text
    to read instead of ``/proc/cpuinfo``."""
    cpus = _cpuinfo(cpuinfo)
    if not cpus:
        return None
    flags = set(cpus[0].get("flags", cpus[0].get("Features", "")).split())
    lanes = next(((n, name) for flag, n, name in SIMD_LANES if flag in flags), None)
    clock = _clock_ghz(cpus[0])
    if lanes is None or clock is None or (lanes[0] > 4 and "fma" not in flags):
        return None
    physical = len({(c.get("physical id", "0"), c.get("core id", i)) for i, c in enumerate(cpus)})
    cores = min(physical, threads) if threads > 0 else physical
    gflops = cores * lanes[0] * 2 * FMA_UNITS * clock[0]
    return {"gflops": gflops,
            "formula": (f"{cores} core{'s' if cores != 1 else ''} x {lanes[0]} float32 lanes ({lanes[1]}) x "
                        f"2 FLOPs per FMA x {FMA_UNITS} FMA units (assumed) x {clock[0]:g} GHz ({clock[1]})")}


def parent(spec_hash: str) -> dict:
    return {
        "bridge": __version__,
        "git_commit": git_commit(),
        "spec_hash": spec_hash,
        "python": platform.python_version(),
        "numpy": np.__version__,
        "platform": platform.platform(),
        "cpu": cpu_model(),
        "logical_cores": os.cpu_count(),
        "executable": Path(sys.executable).name,
    }
