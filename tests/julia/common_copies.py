"""The copies of julia/common/ inside each Julia package: ``python -m tests.julia.common_copies`` writes them.

julia/common/*.jl is what BridgeFlux and BridgeKnet share, written once and edited there. Each package
includes a verbatim copy from its own ``src/common/``, so that each is whole in its own folder: Pkg
installs only that folder of a package added with ``Pkg.add(url=..., subdir="julia/BridgeFlux")``, and an
``include`` reaching outside it would fail there. The static tests fail while a copy differs from its
source, naming this command.
"""
from __future__ import annotations

import sys
from pathlib import Path

JULIA = Path(__file__).resolve().parents[2] / "julia"
SOURCE = JULIA / "common"
PACKAGES = ("BridgeFlux", "BridgeKnet")
COMMAND = "python -m tests.julia.common_copies"


def pairs() -> list[tuple[Path, Path]]:
    """(source, copy) for every shared file and package."""
    return [(source, JULIA / package / "src" / "common" / source.name)
            for package in PACKAGES for source in sorted(SOURCE.glob("*.jl"))]


def stale() -> list[Path]:
    """The copies that are missing or differ from their source."""
    return [copy for source, copy in pairs() if not copy.is_file() or copy.read_bytes() != source.read_bytes()]


def write() -> list[Path]:
    written = stale()
    for source, copy in pairs():
        if copy in written:
            copy.parent.mkdir(parents=True, exist_ok=True)
            copy.write_bytes(source.read_bytes())
    return written


if __name__ == "__main__":
    done = write()
    print("\n".join(f"wrote {p.relative_to(JULIA.parent)}" for p in done) or "every copy is current")
    sys.exit(0)
