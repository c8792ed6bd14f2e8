"""The NVIDIA GPUs this process can see, from the device nodes and ``nvidia-smi``, without importing any
framework: whether there is one (:func:`cuda_visible`, which ``--device cuda`` needs) and each visible one's
compute capability (:func:`visible_gpus`, which an engine bound to an older CUDA toolkit checks).

``nvidia-smi`` lists every GPU of the machine, whatever ``CUDA_VISIBLE_DEVICES`` says, so
:func:`visible_gpus` applies that variable as the CUDA driver does: a comma-separated list of indices or
``GPU-`` UUID prefixes, read up to the first entry that names no GPU; empty or ``-1`` hides them all.
"""
from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

QUERY = ["nvidia-smi", "--query-gpu=index,uuid,name,compute_cap", "--format=csv,noheader"]


@dataclass(frozen=True)
class Gpu:
    index: int
    """nvidia-smi's index (PCI bus order)."""
    uuid: str
    name: str
    capability: tuple[int, int]
    """The compute capability, ``(9, 0)`` on an H100."""

    def __str__(self) -> str:
        return f"GPU {self.index}, {self.name}, compute capability {self.capability[0]}.{self.capability[1]}"


def hidden_by_environment() -> bool:
    return os.environ.get("CUDA_VISIBLE_DEVICES", None) in ("", "-1")


def cuda_visible() -> bool:
    """Whether an NVIDIA GPU is visible to this process (a device node or a working driver tool)."""
    if hidden_by_environment():
        return False
    if any(Path("/dev").glob("nvidia[0-9]*")):
        return True
    try:
        return subprocess.run(["nvidia-smi", "-L"], capture_output=True, timeout=20).returncode == 0
    except (OSError, subprocess.SubprocessError):
        return False


def parse(text: str) -> list[Gpu]:
    """The rows of :data:`QUERY`'s output; a row that cannot be read is left out."""
    gpus = []
    for line in text.splitlines():
        fields = [f.strip() for f in line.split(",")]
        if len(fields) != 4:
            continue
        index, uuid, name, capability = fields
        major, _, minor = capability.partition(".")
        if index.isdigit() and major.isdigit() and minor.isdigit():
            gpus.append(Gpu(int(index), uuid, name, (int(major), int(minor))))
    return gpus


def select_visible(gpus: list[Gpu], variable: str | None) -> list[Gpu]:
    """``gpus`` as ``CUDA_VISIBLE_DEVICES`` = ``variable`` leaves them to CUDA, in its order."""
    if variable is None:
        return list(gpus)
    chosen = []
    for entry in (e.strip() for e in variable.split(",")):
        match = [g for g in gpus if (entry.isdigit() and g.index == int(entry))
                 or (entry.startswith("GPU-") and g.uuid.startswith(entry))]
        if len(match) != 1:
            break  # the driver stops at the first entry that names no GPU
        chosen.append(match[0])
    return chosen


def visible_gpus() -> list[Gpu] | None:
    """The GPUs this process's CUDA sees, with their compute capabilities; ``[]`` when there is none or
    the environment hides them; None when ``nvidia-smi`` cannot say (not installed, a driver too old for
    the ``compute_cap`` field, no answer in 20 s)."""
    if hidden_by_environment():
        return []
    try:
        done = subprocess.run(QUERY, capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.SubprocessError):
        return None
    if done.returncode != 0:
        return None
    return select_visible(parse(done.stdout), os.environ.get("CUDA_VISIBLE_DEVICES"))
