"""A process tree as ``/proc`` shows it: the processes a worker's framework started
(:func:`descendants`, also what :mod:`bridge.running.interference` counts the CPU time of), and the
resident memory of an engine run: its worker's tree, sampled, and the kernel's own high-water mark.
Low in the layout (as :mod:`bridge.files`): the contract's stopwatch and the worker both read it.

An engine run's memory is the resident set (RSS) of its worker and of every process the worker's
framework started (:func:`descendants`), read from ``/proc`` without a new
dependency: ``/proc/PID/statm`` (resident pages, one small read per process) for the tree, and
``VmHWM`` of ``/proc/PID/status`` (the kernel's peak RSS of the worker alone, every allocation however
short) as the outside measurement to compare with. What the worker records (:mod:`bridge.running.worker`):

``rss_baseline_bytes``  before the engine's ``prepare``: Python, NumPy, bridge and the plan opened
``rss_import_bytes``    at the end of the framework's import (:func:`bridge.contract.stopwatch`)
``rss_build_bytes``     at the end of the model's build
``rss_peak_bytes``      the largest sample while training, per epoch (gather, ``train_epoch`` and the
                        evaluation) and over the whole run
``hwm_bytes``           the worker's ``VmHWM`` once training ended (the worker alone, no child)
``epoch_bytes``         one gathered epoch, ``x.nbytes + y.nbytes``: the worker's own share of the peak

**Tolerance.** A :class:`PeakSampler` reads the tree every :data:`INTERVAL_S` seconds from a thread of the
worker, so it sees memory held for longer than that (and longer than the engine holds the interpreter
without releasing it: a NumPy or framework call that keeps the GIL delays the next sample). Shorter spikes
are missed; ``hwm_bytes`` has them for the worker itself, so for an engine that starts no process
``hwm_bytes >= rss_peak_bytes`` holds, to within :func:`counter_error` (Linux counts resident pages per
CPU, since 6.2, and ``/proc`` reads their sum without each CPU's pending batch: a sample and ``VmHWM`` of
the same memory were seen 108 KiB apart on this project's 2-core machine). A block of B bytes touched and
held for several intervals during training gives a peak within :data:`TOLERANCE_BYTES` + ``epoch_bytes``
of ``rss_build_bytes + B``: the gathered epoch, the evaluation's logits (4096 rows at a time), and the
allocator's arenas and page tables move it by that much at most (``tests/running/test_memory.py`` checks
it with a 400 MB block). A process the framework starts is found within :data:`REFRESH_S` (then sampled
like the worker); one that lives shorter than that may be missed.

**Cost.** Finding the tree reads one file per thread of every process in it: 3.7 ms for a worker of 100
threads (TensorFlow's and XLA's pools), a third of a core if done every 10 ms. So the sampler looks for
new processes every :data:`REFRESH_S` and between epochs, and each interval re-reads only the known
processes' ``statm``, the worker's through a file it keeps open. Measured on this project's 2-core
machine while another test suite ran, in a one-thread process: the sampler takes 1.2% of one core at
:data:`INTERVAL_S` (2.1% at 10 ms; opening ``statm`` afresh each time, 3%), counted as the worker's own
CPU time; it holds the interpreter only for those reads.
"""
from __future__ import annotations

import os
import threading
import time

INTERVAL_S = 0.02
"""Seconds between two samples of the tree's RSS while training runs."""
REFRESH_S = 0.25
"""Seconds between two searches for the processes of the tree (see Cost above)."""
TOLERANCE_BYTES = 32 * 2 ** 20
"""How far a sampled peak may lie from the memory held beyond what the worker gathers (see above)."""
PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def descendants(pid: int) -> list[int]:
    """The live processes ``pid`` started, and theirs (``/proc/PID/task/TID/children``): the helpers a
    framework may have started. A few small reads per process, where a scan of all of /proc takes
    milliseconds."""
    found, todo = [], [pid]
    while todo:
        parent = todo.pop()
        try:
            tasks = os.listdir(f"/proc/{parent}/task")
        except OSError:
            continue
        for task in tasks:
            try:
                with open(f"/proc/{parent}/task/{task}/children") as fh:
                    children = [int(c) for c in fh.read().split()]
            except OSError:
                continue
            found += children
            todo += children
    return found


def counter_error(cpus: int | None = None) -> int:
    """Bytes by which two of the kernel's readings of the same resident memory may differ: each of the three
    RSS counters (file, anonymous, shared) lags by up to one batch per CPU (``percpu_counter_batch``:
    ``max(32, 2 × CPUs)`` pages), in each reading. 1.5 MiB on 2 CPUs, 24 MiB on 16."""
    cpus = cpus or os.cpu_count() or 1
    return 2 * 3 * cpus * max(32, 2 * cpus) * PAGE


def rss(pid: int | None = None) -> int | None:
    """Resident bytes of process ``pid`` (default: this one); None when it has ended or /proc is absent."""
    try:
        with open(f"/proc/{pid or os.getpid()}/statm") as fh:
            return int(fh.read().split()[1]) * PAGE
    except (OSError, IndexError, ValueError):
        return None


def tree_rss(pid: int | None = None) -> int | None:
    """Resident bytes of process ``pid`` (default: this one) and of all its live descendants (a child
    that ends meanwhile counts nothing); None where /proc cannot be read. Pages two processes share
    (a forked child's, a library's) count once per process, as ``ps`` and ``top`` count them."""
    pid = pid or os.getpid()
    own = rss(pid)
    if own is None:
        return None
    return own + sum(r for r in map(rss, descendants(pid)) if r is not None)


def high_water_mark(pid: int | None = None) -> int | None:
    """The kernel's peak resident bytes of process ``pid`` alone (``VmHWM``), since it started."""
    try:
        with open(f"/proc/{pid or os.getpid()}/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024  # kB
    except (OSError, IndexError, ValueError):
        return None
    return None


class PeakSampler:
    """The peak of :func:`tree_rss` of this process, sampled every :data:`INTERVAL_S` seconds by a daemon
    thread between :meth:`start` and :meth:`stop`. :meth:`take` returns the peak since the previous
    ``take`` (or ``start``), one last sample included, and starts the next window at the memory held now:
    one window per epoch."""

    def __init__(self, interval: float = INTERVAL_S):
        self.interval = interval
        self.pid = os.getpid()
        try:  # re-read at offset 0, the kernel refreshes it: no open and close per sample
            self._statm: int | None = os.open(f"/proc/{self.pid}/statm", os.O_RDONLY)
        except OSError:
            self._statm = None
        self._children: list[int] = []
        self._found_at = -float("inf")
        self._peak: int | None = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _sample(self, refresh: bool = False) -> int | None:
        if refresh or time.monotonic() - self._found_at >= REFRESH_S:
            self._children, self._found_at = descendants(self.pid), time.monotonic()
        now = self._own()
        if now is not None:
            now += sum(r for r in map(rss, self._children) if r is not None)
            with self._lock:
                self._peak = now if self._peak is None else max(self._peak, now)
        return now

    def _own(self) -> int | None:
        if self._statm is None:
            return rss(self.pid)
        try:
            return int(os.pread(self._statm, 256, 0).split()[1]) * PAGE
        except (OSError, IndexError, ValueError):
            return None

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self._sample()

    def start(self) -> "PeakSampler":
        self._sample()
        self._thread = threading.Thread(target=self._run, name="bridge-memory", daemon=True)
        self._thread.start()
        return self

    def take(self) -> int | None:
        """Peak resident bytes of the tree since the last call; None where /proc cannot be read."""
        now = self._sample(refresh=True)
        with self._lock:
            peak, self._peak = self._peak, now
        return peak

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        if self._statm is not None:
            os.close(self._statm)
            self._statm = None
