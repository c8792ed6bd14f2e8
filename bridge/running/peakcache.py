"""The CPU GEMM peak kept between runs, per machine: a peak belongs to the machine, not to the moment.

A peak measured while another process used the CPU reads low and makes every fraction of it rise (32% →
37% under load was seen), and one measured afresh each run is noisy; so :mod:`bridge.running.peaks` measures
it once, carefully, and keeps it here for every later run on the same machine.

The file is ``peaks.json`` in ``$BRIDGE_CACHE_DIR``, else ``$XDG_CACHE_HOME/bridge``, else
``~/.cache/bridge``: ``{"format": 1, "peaks": {key: entry}}``, a key (:func:`key_text`) naming what decides the
rate (:func:`machine_key`: the CPU model, the thread count, the BLAS NumPy calls and NumPy's version), an
entry holding ``gflops``, ``trials`` (GFLOP/s each), ``measured`` (ISO date-time, UTC), ``seconds`` (the
measurement's wall time) and ``others_cores`` (what other processes used meanwhile). A change of any key
part measures again; ``--measure-peak`` does on request. A file that cannot be read or parsed is ignored
with a warning and replaced at the next write; one that cannot be written costs the cache, never the run.
"""
from __future__ import annotations

import json
import os
import platform
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_info

from ..files import atomic_write

FORMAT = 1
FILE = "peaks.json"


def path() -> Path:
    """Where the cache file is (see the module's doc); the folder need not exist yet."""
    if folder := os.environ.get("BRIDGE_CACHE_DIR"):
        return Path(folder) / FILE
    root = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(root) / "bridge" / FILE


def _cpu_model() -> str:
    """``/proc/cpuinfo``'s ``model name``, else :func:`platform.processor`, else the machine's architecture."""
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                name, _, value = line.partition(":")
                if name.strip() == "model name" and value.strip():
                    return value.strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def _blas() -> str:
    """The BLAS NumPy's products run on, as threadpoolctl names it (``openblas 0.3.27``): the one loaded
    from NumPy's own folder where there is one (a SciPy loaded beside it brings another), else every BLAS
    loaded."""
    found = [i for i in threadpool_info() if i.get("user_api") == "blas"]
    numpys = [i for i in found if "numpy" in str(i.get("filepath", ""))]
    names = sorted({f"{i.get('internal_api', '?')} {i.get('version') or '?'}" for i in numpys or found})
    return ", ".join(names) or "no BLAS found"


def machine_key(threads: int) -> dict:
    """What the CPU GEMM peak depends on besides the moment: ``cpu``, ``threads``, ``blas``, ``numpy``."""
    return {"cpu": _cpu_model(), "threads": threads, "blas": _blas(), "numpy": np.__version__}


def key_text(key: dict) -> str:
    """The cache's key for ``key``: ``AMD EPYC; 2 threads; openblas 0.3.27; numpy 2.1.0``."""
    return f"{key['cpu']}; {key['threads']} threads; {key['blas']}; numpy {key['numpy']}"


def _valid(entry) -> bool:
    return isinstance(entry, dict) and isinstance(entry.get("gflops"), (int, float)) and entry["gflops"] > 0


def read() -> tuple[dict, str | None]:
    """The cached peaks (key text → entry) and, where the file exists but cannot be used, why (one line);
    ``({}, None)`` when there is no file."""
    file = path()
    try:
        doc = json.loads(file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}, None
    except (OSError, UnicodeDecodeError, ValueError) as e:
        why = e.strerror if isinstance(e, OSError) and e.strerror else f"not JSON: {e}"
        return {}, f"the peak cache {file} could not be read ({why}); it was ignored and will be rewritten"
    if not isinstance(doc, dict) or doc.get("format") != FORMAT or not isinstance(doc.get("peaks"), dict):
        return {}, (f"the peak cache {file} is not a format-{FORMAT} peak cache; it was ignored and will be "
                    "rewritten")
    return {k: v for k, v in doc["peaks"].items() if _valid(v)}, None


def lookup(key: dict) -> tuple[dict | None, str | None]:
    """The cached entry for ``key`` (None where there is none) and the cache file's problem, if any."""
    peaks, problem = read()
    return peaks.get(key_text(key)), problem


def keep(key: dict, entry: dict) -> str | None:
    """Cache ``entry`` under ``key``, atomically, beside the other machines' peaks; why it could not be
    (one line), else None."""
    peaks, _ = read()  # an unreadable file was already reported by lookup; it is replaced
    file = path()
    try:
        file.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(file, json.dumps({"format": FORMAT, "peaks": {**peaks, key_text(key): entry}}, indent=1))
    except OSError as e:
        return (f"the CPU GEMM peak could not be cached in {file} ({e.strerror or e}); set BRIDGE_CACHE_DIR to "
                "a writable folder")
    return None
