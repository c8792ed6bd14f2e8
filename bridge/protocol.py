"""Data passed between the parent, a worker and an engine (see :mod:`bridge.engines` for the contract)."""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from functools import cached_property
from pathlib import Path

import numpy as np

from .batchplan import BatchPlan, open_plan
from .spec import Spec, from_mapping


@dataclass(frozen=True)
class Job:
    """One engine run: which engine and mode, which repeat, which plan, where to write."""
    engine: str
    mode: str
    repeat: int
    plan_dir: str
    spec: dict
    threads: int
    record_path: str

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(asdict(self)))

    @staticmethod
    def load(path: Path) -> "Job":
        return Job(**json.loads(Path(path).read_text()))

    @cached_property
    def plan(self) -> BatchPlan:
        return open_plan(Path(self.plan_dir))

    @cached_property
    def experiment(self) -> Spec:
        return from_mapping(self.spec)


@dataclass
class EpochRun:
    """What ``train_epoch`` returns; the worker checks it (:mod:`bridge.worker`)."""
    losses: np.ndarray
    """Per-step training loss, ``(steps,)``: the loss of each batch before its update."""
    seconds: float
    """The engine's own clock over the pass, device synchronised."""
    checksums: list[str] | None = None
    """Only for an engine that can checksum what its framework actually read (e.g. Julia over its batch
    views): CRC-32C per batch, :func:`bridge.batchplan.batch_checksum`'s format. The worker checksums the
    arrays it hands over itself; these, when given, must agree with them."""
