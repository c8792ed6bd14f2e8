"""The machine's float32 peak, measured and nominal: what every engine's achieved GFLOP/s is judged by.

Taken by :func:`bridge.running.runner.run` once per run, after the engines, when nothing else of the run
is on the machine: the CPU's measured GEMM peak (:func:`cpu_gemm_peak`), the GPU's (on a cuda run) in a
fresh process with PyTorch or JAX (:mod:`bridge.running.devicepeak`), and the CPU's nominal peak from its
datasheet numbers. The GPU's and the nominal one are taken afresh every run.

The CPU's belongs to the machine, not the moment: a peak measured while another process used the CPU reads
low, and every fraction of it high. So it is measured once, as the best of :data:`TRIALS` trials of about
:data:`TRIAL_S` seconds, with what other processes used meanwhile measured too
(:func:`bridge.running.interference.own_reading`), and kept per machine (:mod:`bridge.running.peakcache`)
for every later run: ``source`` in the fingerprint says ``cache`` or ``measured now``. One measured while
others used more than :data:`bridge.results.timing.DISTURBED_CORES` cores is ``disturbed``: used for that
run with a warning, never cached. A resumed run keeps the peak its folder's earlier run was judged by
(``source``: ``this folder's earlier run``) when that was taken on the same machine key and undisturbed,
so reused and new engine runs share one denominator. ``--measure-peak`` (``remeasure``) measures again and
replaces the cached peak, whatever else is there.
"""
from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

import numpy as np
from threadpoolctl import threadpool_limits

from ..results.timing import DISTURBED_CORES, describe_others, others_cores
from . import interference, peakcache

GEMM_SIZE = 1024
TRIALS = 3
TRIAL_S = 1.0
"""The CPU GEMM peak is the best of ``TRIALS`` :func:`gemm_peak` trials of about ``TRIAL_S`` seconds each:
long enough that a moment's hiccup does not set it, short enough to pay once per machine."""
ENTRY = ("gflops", "trials", "measured", "seconds", "others_cores")  # a measurement, as cached and recorded
EARLIER = "this folder's earlier run"


def gemm_peak(threads: int, seconds: float = 0.5) -> float:
    """The machine's measured float32 peak in GFLOP/s, as far as NumPy's BLAS reaches it: the best of
    repeated ``GEMM_SIZE``-square float32 products (2n³ FLOPs each) for about ``seconds``, with BLAS
    limited to ``threads`` threads (the engines' setting). One number to judge achieved rates by; a
    framework's own kernels may beat it a little."""
    rng = np.random.default_rng(0)
    a, b = (rng.standard_normal((GEMM_SIZE, GEMM_SIZE), dtype=np.float32) for _ in range(2))

    def once() -> float:
        t = time.perf_counter()
        a @ b
        return time.perf_counter() - t

    with threadpool_limits(limits=threads, user_api="blas"):
        best = best_time(once, seconds)
    return 2 * GEMM_SIZE**3 / best / 1e9


def best_time(once: Callable[[], float], seconds: float) -> float:
    """The shortest of repeated timings ``once()`` (seconds each) over about ``seconds``, after one warm-up
    call (kernels chosen, compiled, memory allocated): how every peak here is measured."""
    once()
    best, deadline = float("inf"), time.perf_counter() + seconds
    while True:
        best = min(best, once())
        if time.perf_counter() > deadline:
            return best


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


def device_peak(device: str, timeout: float = 300.0) -> dict:
    """The GEMM peak of ``device`` measured in a fresh process (:mod:`bridge.running.devicepeak`);
    ``{"error": ...}`` instead of raising when it cannot be."""
    try:
        proc = subprocess.run([sys.executable, "-m", "bridge.running.devicepeak", "--device", device],
                              capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"error": f"the {device} GEMM probe took over {timeout:.0f} s"}
    lines = proc.stdout.strip().splitlines()
    if proc.returncode != 0 or not lines:
        tail = (proc.stderr.strip().splitlines() or [f"exit {proc.returncode}"])[-1]
        return {"error": f"the {device} GEMM probe failed: {tail}"}
    return json.loads(lines[-1])


def measured_gemm_peak(threads: int, trials: int = TRIALS, seconds: float = TRIAL_S) -> dict:
    """The CPU GEMM peak measured now: the best (``gflops``) of ``trials`` :func:`gemm_peak` trials
    (``trials``, GFLOP/s each) of about ``seconds`` each, when (``measured``, ISO date-time, UTC), how long it
    took (``seconds``, wall) and the cores other processes used meanwhile (``others_cores``: the machine's
    busy and steal time less this process's own, every thread; None where /proc cannot be read)."""
    when = datetime.now(timezone.utc).isoformat(timespec="seconds")
    start, t0 = interference.own_reading(), time.monotonic()
    rates = [gemm_peak(threads, seconds) for _ in range(trials)]
    wall, stop = time.monotonic() - t0, interference.own_reading()
    others = others_cores([{"start": start, "stop": stop}] if start and stop else [])
    return {"gflops": max(rates), "trials": rates, "measured": when, "seconds": wall, "others_cores": others}


def cpu_gemm_peak(threads: int, remeasure: bool = False, earlier: dict | None = None) -> dict:
    """What the fingerprint's ``cpu_gemm_peak`` records: a measurement (:data:`ENTRY`), its ``source``
    (``this folder's earlier run``, ``cache`` or ``measured now``), the machine ``key``
    (:func:`bridge.running.peakcache.machine_key`), ``disturbed``, and ``warnings`` (lines for summary.json).
    ``earlier``: the ``cpu_gemm_peak`` of the folder a resumed run reuses engine runs from, kept when its key
    is this machine's and it was not disturbed; ``remeasure`` measures again whatever is kept."""
    key = peakcache.machine_key(threads)
    if not remeasure and isinstance(earlier, dict) and earlier.get("key") == key and not earlier.get("disturbed") \
            and isinstance(earlier.get("gflops"), (int, float)):
        return {**{k: earlier.get(k) for k in ENTRY}, "source": EARLIER, "key": key, "disturbed": False,
                "warnings": []}
    warnings = []
    if not remeasure:
        cached, problem = peakcache.lookup(key)
        warnings += [problem] if problem else []
        if cached is not None:
            return {**{k: cached.get(k) for k in ENTRY}, "source": "cache", "key": key, "disturbed": False,
                    "cache": str(peakcache.path()), "warnings": warnings}
    entry = measured_gemm_peak(threads)
    others = entry["others_cores"]
    disturbed = others is not None and others > DISTURBED_CORES
    if disturbed:
        warnings.append(f"the CPU GEMM peak was measured while {describe_others(others)}; it is not cached and "
                        "fractions of peak are low-biased; measure it on a quiet machine (bridge.compare "
                        "--measure-peak)")
    elif problem := peakcache.keep(key, entry):
        warnings.append(problem)
    return {**entry, "source": "measured now", "key": key, "disturbed": disturbed, "cache": str(peakcache.path()),
            "warnings": warnings}


def measure(device: str, threads: int, remeasure: bool = False, earlier: dict | None = None) -> dict:
    """What summary.json's fingerprint records of the machine's peaks: ``cpu_gemm_peak`` (:func:`cpu_gemm_peak`
    of ``threads``, ``remeasure`` and ``earlier``) and its ``cpu_gemm_peak_gflops``, ``cpu_nominal_peak`` (or
    None) and, on a cuda run, ``device_gemm_peak`` (else None)."""
    cpu = cpu_gemm_peak(threads, remeasure, earlier)
    return {"cpu_gemm_peak_gflops": cpu["gflops"], "cpu_gemm_peak": cpu, "cpu_nominal_peak": nominal_peak(threads),
            "device_gemm_peak": device_peak("cuda") if device == "cuda" else None}
