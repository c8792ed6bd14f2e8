"""Where a sweep's points run: Dask distributed, and every Dask name in bridge.

A point is one task, :func:`run_point`, holding one :data:`RESOURCE` slot: a worker offers one, so one
point runs per worker, and one worker per node keeps timed runs apart. Scheduling, retries after a lost
worker (``allowed-failures``; 1 on the embedded cluster) and worker death detection are Dask's; bridge
only counts the starts (an event per point start on the :data:`TOPIC` event topic, which also carries
progress). A point runs :func:`bridge.running.runner.run` in a temporary folder where it runs and returns
its result files as bytes: no shared filesystem is assumed. An error inside a point is returned, not
raised, so Dask does not retry a deterministic failure.

Dask's own log lines (a busy dashboard port, a worker closing on Ctrl-C) are about Dask, not the sweep:
unless ``--verbose`` they go to ``OUT/dask.log`` (:class:`DaskLog`), the embedded cluster's worker
processes' included, and stay out of the terminal.
"""
from __future__ import annotations

import logging
import os
import socket
import tempfile
import time
import warnings
from pathlib import Path
from typing import Callable

from ..errors import UsageError
from ..experiment.spec import from_mapping
from ..running import runner
from ..running.selection import select
from .grid import Point

RESOURCE = "bridge"  # the worker resource a point holds while it runs: one per node, one point at a time
TOPIC = "bridge-sweep"  # Dask event topic of the points' progress
INSTALL = "pip install 'bridge[sweep]'"
CONNECT_TIMEOUT_S = 5  # an address where no scheduler answers is refused after this long
LOG = "dask.log"  # in OUT: Dask's own log lines, unless --verbose
LOGGERS = ("distributed", "tornado", "bokeh")  # the loggers Dask sets up with handlers on stderr
LOG_FORMAT = "%(asctime)s - %(name)s - %(levelname)s - %(message)s"  # Dask's own
WORKER_LOGGING = "DASK_DISTRIBUTED__LOGGING"  # read when a spawned worker process imports distributed


class ClusterError(UsageError):
    """A Dask cluster the points cannot run on; the message names its address and how to start it."""


class DaskLog(logging.Handler):
    """Dask's log records in this process: held until the sweep folder exists (the scheduler is checked
    before anything is written), then appended to ``OUT/dask.log``."""

    def __init__(self):
        super().__init__()
        self.setFormatter(logging.Formatter(LOG_FORMAT))
        self.held: list[str] = []
        self.file = None
        self.path: Path | None = None

    def emit(self, record: logging.LogRecord) -> None:
        line = self.format(record)
        if self.file is None:
            self.held.append(line)
        else:
            self.file.write(line + "\n")

    def write_to(self, path: Path) -> None:
        """From now on, append to ``path``, starting with the records held so far."""
        with self.lock:
            self.path = path
            self.file = open(path, "a", buffering=1)
            self.file.writelines(line + "\n" for line in self.held)
            self.held.clear()

    def close(self) -> None:
        with self.lock:
            if self.file is not None:
                self.file.close()
                self.file = None
        super().close()

    def written(self) -> Path | None:
        """``OUT/dask.log`` where it holds anything."""
        return self.path if self.path and self.path.is_file() and self.path.stat().st_size else None


def quiet_dask() -> DaskLog:
    """Route this process's Dask log records (and its warnings, below) to a :class:`DaskLog` instead of
    stderr. Importing distributed gives its loggers handlers on stderr; they are replaced here."""
    import distributed  # noqa: F401  sets up Dask's loggers, replaced next

    handler = DaskLog()
    for name in list(logging.root.manager.loggerDict):
        if name.split(".")[0] in LOGGERS:
            logger = logging.getLogger(name)
            for h in list(logger.handlers):
                logger.removeHandler(h)
            logger.propagate = name not in LOGGERS  # children reach their top logger and its file
    for name in LOGGERS:
        logging.getLogger(name).addHandler(handler)
        logging.getLogger(name).propagate = False
    return handler


def connect(scheduler: str):
    """A Dask client of the scheduler at ``scheduler``, checked: it answers within
    :data:`CONNECT_TIMEOUT_S` and a worker offers :data:`RESOURCE`; else :class:`ClusterError`."""
    from distributed import Client

    start = ("start one with: dask scheduler --port PORT, and one worker per node: dask worker ADDRESS "
             f"--nthreads 1 --resources {RESOURCE}=1; or leave out --scheduler to run on an embedded cluster")
    try:
        client = Client(scheduler, timeout=f"{CONNECT_TIMEOUT_S}s")
    except (OSError, ValueError, TypeError) as e:  # refused, timed out, not an address
        reason = next(iter(str(e).splitlines()), "") or type(e).__name__
        raise ClusterError(f"--scheduler {scheduler}: no Dask scheduler answered there within {CONNECT_TIMEOUT_S} s "
                           f"({reason}); {start}") from None
    try:
        workers = client.scheduler_info(n_workers=-1)["workers"]  # newer Dask lists 5 unless asked
    except TypeError:
        workers = client.scheduler_info()["workers"]
    if not any(w.get("resources", {}).get(RESOURCE) for w in workers.values()):
        client.close()
        raise ClusterError(f"--scheduler {scheduler}: no worker of the Dask cluster there offers the resource "
                           f"{RESOURCE!r} ({len(workers)} worker(s)); start one worker per node with: dask worker "
                           f"{scheduler} --nthreads 1 --resources {RESOURCE}=1")
    return client


class Embedded:
    """The embedded cluster: one worker process with one thread and one :data:`RESOURCE` slot, so points
    run one at a time. With ``log``, its worker processes write their Dask log lines there."""

    def __init__(self, log: Path | None):
        import dask  # the sweep extra: imported only when a sweep runs
        from distributed import Client, LocalCluster

        self.env = os.environ.get(WORKER_LOGGING)
        if log is not None:  # a spawned worker process reads Dask's config from the environment on import
            os.environ[WORKER_LOGGING] = repr({
                "version": 1, "disable_existing_loggers": False,
                "formatters": {"dask": {"format": LOG_FORMAT}},
                "handlers": {"file": {"class": "logging.FileHandler", "filename": str(log), "formatter": "dask"}},
                "loggers": {name: {"level": "INFO" if name == "distributed" else "ERROR", "handlers": ["file"],
                                   "propagate": False} for name in LOGGERS}})
        with warnings.catch_warnings(record=True) as caught, \
                dask.config.set({"distributed.scheduler.allowed-failures": 1}):  # a lost worker's point: once more
            warnings.simplefilter("always")
            # no dashboard, and the scheduler's HTTP server on a free port rather than the dashboard's 8787
            self.cluster = LocalCluster(n_workers=1, threads_per_worker=1, processes=True,
                                        resources={RESOURCE: 1}, host="127.0.0.1", dashboard_address=None,
                                        scheduler_kwargs={"dashboard_address": "127.0.0.1:0"},
                                        silence_logs=False)  # Dask's levels: INFO in the log or, verbose, on stderr
        for w in caught:  # Dask's warnings while starting (a busy port): its log, not the terminal
            logging.getLogger("distributed").warning("%s: %s", w.category.__name__, w.message)
        self.client = Client(self.cluster)

    def close(self) -> None:
        self.client.close()
        self.cluster.close()
        if self.env is None:
            os.environ.pop(WORKER_LOGGING, None)
        else:
            os.environ[WORKER_LOGGING] = self.env


def run_point(values: dict, key: str) -> dict:
    """Run one point's comparison where this task runs, in a temporary folder; return its result files
    (less the plan) as bytes, with the worker that ran it. Engine failures are part of the results; an
    error of the point itself (data that cannot be had, a plan too large) is returned, not raised, so
    Dask does not run it again: only a lost worker does that. Its events: ``point-start``, ``planned``
    (the epochs of all its engine runs), then each engine run's ``prepared``, ``epoch``, ``done``, ``error``."""
    try:
        from distributed import get_worker

        worker = get_worker()
        address = worker.address
    except (ImportError, ValueError):  # run outside a Dask worker (tests, debugging)
        worker, address = None, f"local:{socket.gethostname()}"

    def emit(msg: dict) -> None:
        if worker is not None:
            worker.log_event(TOPIC, {"point": key, "worker": address, **msg})

    emit({"kind": "point-start"})
    spec = from_mapping(values)
    with tempfile.TemporaryDirectory(prefix="bridge-point-") as tmp:
        out = Path(tmp)

        def on_event(event: dict) -> None:
            if event.get("kind") in ("prepared", "epoch", "done", "error"):
                emit({"kind": "engine", "engine": event["run"].label, "repeat": event["repeat"],
                      "event": event["kind"], "epoch": event.get("epoch")})
        try:
            selection = select(spec)
            emit({"kind": "planned", "epochs": spec.epochs, "runs": len(selection.runs) * spec.repeats})
            runner.run(spec, out, selection=selection, on_event=on_event)
        except Exception as e:  # noqa: BLE001 - the point's error goes into sweep.csv
            message = next(iter(str(e).splitlines()), "") or type(e).__name__
            return {"point": key, "worker": address, "error": f"{type(e).__name__}: {message}"}
        files = {str(p.relative_to(out)): p.read_bytes() for p in sorted(out.rglob("*"))
                 if p.is_file() and p.relative_to(out).parts[0] != "plan"}
    return {"point": key, "worker": address, "files": files}


def run_points(client, todo: list[Point], on_event: Callable, on_result: Callable) -> None:
    """Submit ``todo`` (in grid order, as far as workers allow) through ``client``, pass its progress
    events to ``on_event`` and call ``on_result(point, result)`` as each point ends: :func:`run_point`'s
    dict, or ``{"error", "worker"}`` when Dask could not run it (a worker lost too often). Ctrl-C cancels
    what has not finished and is raised on."""
    from distributed import as_completed

    futures = {}
    try:
        client.subscribe_topic(TOPIC, on_event)
        futures = {client.submit(run_point, p.spec.to_dict(), p.key, key=f"bridge-point-{p.key}-{time.time_ns()}",
                                 resources={RESOURCE: 1}, priority=len(todo) - i, pure=False): p
                   for i, p in enumerate(todo)}
        for future in as_completed(futures):
            time.sleep(0.05)  # let the point's last events arrive before its line
            try:
                got = future.result()
            except Exception as e:  # noqa: BLE001 - a worker lost too often, a task that could not run
                message = next(iter(str(e).splitlines()), "") or type(e).__name__
                got = {"error": f"{type(e).__name__}: {message}", "worker": ""}
            on_result(futures[future], got)
    except KeyboardInterrupt:
        for f in futures:
            f.cancel()
        raise
