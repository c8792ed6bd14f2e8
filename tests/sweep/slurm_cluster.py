"""A real one-node SLURM cluster on this machine, for the tests: munge, the controller (slurmctld) and one
compute node (slurmd), all on localhost, from a ``slurm.conf`` generated in a temporary folder (no systemd,
no cgroups: ``proctrack/linuxproc``, ``task/none``), stopped afterwards by the pids the test started.

Debian's packages ``slurm-wlm`` (22.05) and ``munge`` provide it (``.ci/run`` installs them). The client
commands (``sbatch``, ``squeue``, ``scancel``, which dask-jobqueue runs) find the cluster through
``SLURM_CONF``, which :func:`environment` gives.
"""
from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

DAEMONS = ("munged", "mungekey", "slurmctld", "slurmd")
CLIENTS = ("sbatch", "squeue", "scancel", "sinfo")
START_TIMEOUT_S = 60


def missing() -> list[str]:
    """The programs a one-node cluster needs that are not installed here."""
    found = {name: shutil.which(name) or next((p for p in (f"/usr/sbin/{name}", f"/sbin/{name}")
                                               if os.access(p, os.X_OK)), None)
             for name in (*DAEMONS, *CLIENTS)}
    return [name for name, path in found.items() if path is None]


def program(name: str) -> str:
    return shutil.which(name) or f"/usr/sbin/{name}"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class SlurmCluster:
    root: Path
    host: str = field(default_factory=lambda: socket.gethostname().split(".")[0])
    procs: list[subprocess.Popen] = field(default_factory=list)

    @property
    def conf(self) -> Path:
        return self.root / "slurm.conf"

    @property
    def munge_socket(self) -> Path:
        return self.root / "munge" / "munge.socket"

    def environment(self) -> dict[str, str]:
        """Variables a process needs to use this cluster (the client commands read ``SLURM_CONF``)."""
        return {"SLURM_CONF": str(self.conf)}

    def run(self, *command: str, timeout: float = 30) -> subprocess.CompletedProcess:
        return subprocess.run(command, capture_output=True, text=True, timeout=timeout,
                              env={**os.environ, **self.environment()})

    def write_conf(self, cpus: int, memory_mb: int) -> None:
        user = os.environ.get("USER") or __import__("pwd").getpwuid(os.getuid()).pw_name
        for sub in ("state", "spool", "munge", "log"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        self.conf.write_text("\n".join([
            "ClusterName=bridgetest",
            f"SlurmctldHost={self.host}(127.0.0.1)",
            f"SlurmctldPort={free_port()}",
            f"SlurmdPort={free_port()}",
            f"SlurmUser={user}",
            f"SlurmdUser={user}",
            "AuthType=auth/munge",
            "CredType=cred/munge",
            f"AuthInfo=socket={self.munge_socket}",
            f"StateSaveLocation={self.root / 'state'}",
            f"SlurmdSpoolDir={self.root / 'spool'}",
            f"SlurmctldPidFile={self.root / 'slurmctld.pid'}",
            f"SlurmdPidFile={self.root / 'slurmd.pid'}",
            f"SlurmctldLogFile={self.root / 'log' / 'slurmctld.log'}",
            f"SlurmdLogFile={self.root / 'log' / 'slurmd.log'}",
            "ProctrackType=proctrack/linuxproc",
            "TaskPlugin=task/none",
            "JobAcctGatherType=jobacct_gather/none",
            "AccountingStorageType=accounting_storage/none",
            "JobCompType=jobcomp/none",
            "SelectType=select/cons_tres",
            "SelectTypeParameters=CR_Core_Memory",
            "SchedulerType=sched/backfill",
            "MpiDefault=none",
            "ReturnToService=2",
            "SlurmdTimeout=30",
            "InactiveLimit=0",
            "KillWait=5",
            f"NodeName={self.host} NodeAddr=127.0.0.1 CPUs={cpus} RealMemory={memory_mb} State=UNKNOWN",
            f"PartitionName=debug Nodes={self.host} Default=YES MaxTime=INFINITE State=UP",
            "",
        ]))

    def start(self) -> None:
        cpus = os.cpu_count() or 1
        memory_mb = int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**20 * 0.8)
        self.write_conf(cpus, memory_mb)
        key = self.root / "munge" / "munge.key"
        subprocess.run([program("mungekey"), "--create", f"--keyfile={key}"], check=True, capture_output=True)
        key.chmod(0o400)
        logs = self.root / "log"
        # --force: the folders are under a world-writable /tmp, which munged otherwise refuses
        self.spawn("munge", [program("munged"), "--foreground", "--force", f"--socket={self.munge_socket}",
                             f"--key-file={key}", f"--pid-file={self.root / 'munge' / 'munged.pid'}",
                             f"--log-file={logs / 'munged.log'}", f"--seed-file={self.root / 'munge' / 'seed'}"])
        self.wait_for(lambda: self.munge_socket.exists(), "munged's socket")
        self.spawn("slurmctld", [program("slurmctld"), "-D", "-i", "-f", str(self.conf)])
        self.spawn("slurmd", [program("slurmd"), "-D", "-f", str(self.conf), "-N", self.host])
        self.wait_for(self.node_ready, "the node to be idle in sinfo")

    def spawn(self, name: str, command: list[str]) -> None:
        log = open(self.root / "log" / f"{name}.out", "w")
        self.procs.append(subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                                           env={**os.environ, **self.environment()}))

    def node_ready(self) -> bool:
        done = self.run("sinfo", "-h", "-N", "-o", "%T")
        return done.returncode == 0 and done.stdout.strip().rstrip("*") in ("idle", "mixed", "allocated")

    def wait_for(self, ready, what: str) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if any(p.poll() is not None for p in self.procs):
                break
            if ready():
                return
            time.sleep(0.25)
        raise RuntimeError(f"the test's SLURM cluster did not start ({what}); logs: "
                           + " | ".join(f"{p.name}: {p.read_text(errors='replace')[-600:]}"
                                        for p in sorted((self.root / "log").glob("*")) if p.is_file()))

    def jobs(self) -> list[str]:
        """Job ids in the queue, any state."""
        done = self.run("squeue", "-h", "-o", "%i")
        return done.stdout.split()

    def stop(self) -> None:
        if self.procs:
            self.run("scancel", "--partition=debug", timeout=30)
        for p in reversed(self.procs):
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGTERM)
        for p in reversed(self.procs):
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()
