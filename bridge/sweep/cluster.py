"""Where a sweep's points run: Dask distributed, and every Dask name in bridge.

A point is one task, :func:`run_point`, holding one :data:`RESOURCE` slot: a worker offers one, so one
point runs per worker, and one worker per node keeps timed runs apart. Scheduling, retries after a lost
worker (``allowed-failures``; 1 on the embedded cluster) and worker death detection are Dask's; bridge
only counts the starts (an event per point start on the :data:`TOPIC` event topic, which also carries
progress). A point runs :func:`bridge.running.runner.run` in a temporary folder where it runs and returns
its result files as bytes: no shared filesystem is assumed. An error inside a point is returned, not
raised, so Dask does not retry a deterministic failure.
"""
from __future__ import annotations

import socket
import tempfile
import time
from pathlib import Path
from typing import Callable

from ..errors import BridgeError
from ..experiment.spec import from_mapping
from ..running import runner
from .grid import Point

RESOURCE = "bridge"  # the worker resource a point holds while it runs: one per node, one point at a time
TOPIC = "bridge-sweep"  # Dask event topic of the points' progress
INSTALL = "pip install 'bridge[sweep]'"


class ClusterError(BridgeError):
    """A Dask cluster the points cannot run on; the message says how to start its workers."""


def run_point(values: dict, key: str) -> dict:
    """Run one point's comparison where this task runs, in a temporary folder; return its result files
    (less the plan) as bytes, with the worker that ran it. Engine failures are part of the results; an
    error of the point itself (data that cannot be had, a plan too large) is returned, not raised, so
    Dask does not run it again: only a lost worker does that."""
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
            runner.run(spec, out, on_event=on_event)
        except Exception as e:  # noqa: BLE001 - the point's error goes into sweep.csv
            message = next(iter(str(e).splitlines()), "") or type(e).__name__
            return {"point": key, "worker": address, "error": f"{type(e).__name__}: {message}"}
        files = {str(p.relative_to(out)): p.read_bytes() for p in sorted(out.rglob("*"))
                 if p.is_file() and p.relative_to(out).parts[0] != "plan"}
    return {"point": key, "worker": address, "files": files}


def connect(scheduler: str | None):
    """A Dask client: of an existing scheduler, or of an embedded one-worker cluster (one point at a time)."""
    import dask  # the sweep extra: imported only when a sweep runs
    from distributed import Client, LocalCluster

    if scheduler:
        client = Client(scheduler, timeout="20s")
        try:
            workers = client.scheduler_info(n_workers=-1)["workers"]  # newer Dask lists 5 unless asked
        except TypeError:
            workers = client.scheduler_info()["workers"]
        if not any(w.get("resources", {}).get(RESOURCE) for w in workers.values()):
            client.close()
            raise ClusterError(f"no worker of the Dask cluster at {scheduler} offers the resource {RESOURCE!r}; start "
                             f"one worker per node with: dask worker {scheduler} --nthreads 1 --resources {RESOURCE}=1")
        return client, None
    with dask.config.set({"distributed.scheduler.allowed-failures": 1}):  # a lost worker's point: retried once
        cluster = LocalCluster(n_workers=1, threads_per_worker=1, processes=True, resources={RESOURCE: 1},
                               host="127.0.0.1", dashboard_address=None)
    return Client(cluster), cluster


def run_points(scheduler: str | None, todo: list[Point], on_event: Callable, on_result: Callable) -> None:
    """Submit ``todo`` (in grid order, as far as workers allow) to the cluster :func:`connect` gives, pass
    its progress events to ``on_event`` and call ``on_result(point, result)`` as each point ends:
    :func:`run_point`'s dict, or ``{"error", "worker"}`` when Dask could not run it (a worker lost too
    often). Ctrl-C cancels what has not finished and is raised on."""
    from distributed import as_completed

    client, cluster = connect(scheduler)
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
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
