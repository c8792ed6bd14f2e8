"""What a built wheel ships: the engines in python/ as bridge.engines, the Julia packages as
bridge.julia_packages, all importable with no sys.path edits."""
import os
import shutil
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                    "-w", str(out), str(ROOT)], check=True, timeout=300)
    return next(out.glob("bridge-*.whl"))


def test_wheel_ships_the_engines_and_they_import_from_it(wheel, tmp_path):
    names = zipfile.ZipFile(wheel).namelist()
    for module in ("bridge/engines/reference.py", "bridge/engines/keras.py", "bridge/engines/common/numpy_nn.py",
                   "bridge/experiment/datasets/iris.csv", "bridge/compare.py", "bridge/sweep/command.py",
                   "bridge/julia/record.py", "bridge/running/worker.py", "bridge/presentation/html.py"):
        assert module in names, module
    site = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(site), str(wheel)],
                   check=True, timeout=300)
    code = ("import bridge.engines.keras as k, bridge.engines.reference as r, bridge.experiment.datasets.iris as i;"
            "print(k.__file__); print(r.__file__); print(i.load().x_train.shape)")
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env={"PYTHONPATH": str(site)},
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert all(line.startswith(str(site)) for line in lines[:2]), lines
    assert lines[2] == "(120, 4)"


@pytest.fixture(scope="module")
def fresh_venv(wheel, tmp_path_factory) -> Path:
    """A new virtual environment with only the wheel installed (no dependencies: bridge.julia needs none)."""
    root = tmp_path_factory.mktemp("venv")
    venv.create(root, with_pip=True)
    python = root / "bin" / "python"
    subprocess.run([str(python), "-m", "pip", "install", "--no-deps", "-q", str(wheel)], check=True, timeout=300)
    return python


def test_installed_wheel_finds_the_julia_packages_in_its_own_distribution(fresh_venv, tmp_path):
    code = "from bridge.julia import record; print(record.sources())"
    proc = subprocess.run([str(fresh_venv), "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    sources = Path(proc.stdout.strip())
    assert sources.is_relative_to(fresh_venv.parent.parent), sources  # the venv's site-packages, not the checkout
    for rel in ("BridgeFlux/Project.toml", "BridgeFlux/src/BridgeFlux.jl", "BridgeFlux/ext/BridgeFluxCUDAExt.jl",
                "BridgeKnet/Project.toml", "BridgeKnet/src/BridgeKnet.jl"):
        assert (sources / rel).is_file(), rel
    # every `include` of the packages resolves inside the package's own installed folder (src/common/ too)
    for package in ("BridgeFlux", "BridgeKnet"):
        text = (sources / package / "src" / f"{package}.jl").read_text()
        for rel in __import__("re").findall(r'include\("([^"]+)"\)', text):
            path = (sources / package / "src" / rel).resolve()
            assert path.is_file() and path.is_relative_to((sources / package).resolve()), f"{package}: include({rel!r})"


def test_setup_from_the_wheel_without_julia_names_what_is_missing(fresh_venv, tmp_path):
    env = {"PATH": str(fresh_venv.parent), "HOME": str(tmp_path), "BRIDGE_JULIA_HOME": str(tmp_path / "julia"),
           "BRIDGE_JULIA_RECORD": str(tmp_path / "julia.json")}
    julia = shutil.which("julia")
    if julia:
        pytest.skip(f"a Julia is installed here ({julia}); the set-up from the wheel is run for real elsewhere")
    proc = subprocess.run([str(fresh_venv), "-m", "bridge.julia", "setup", "--engines", "flux"], cwd=tmp_path,
                          env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1
    assert "no Julia >= 1.10.3, < 1.12 found" in proc.stderr and "--install" in proc.stderr, proc.stderr
    assert not (tmp_path / "julia.json").exists()


def test_setup_from_the_wheel_with_julia(fresh_venv, tmp_path):
    julia = os.environ.get("BRIDGE_TEST_FLUX_JULIA") or shutil.which("julia")
    if not julia:
        pytest.skip("no Julia on this machine (set BRIDGE_TEST_FLUX_JULIA or put julia on the PATH): the set-up "
                    "from an installed wheel runs where Julia is")
    env = {**os.environ, "BRIDGE_JULIA_HOME": str(tmp_path / "julia"), "BRIDGE_JULIA_RECORD": str(tmp_path / "j.json")}
    proc = subprocess.run([str(fresh_venv), "-m", "bridge.julia", "setup", "--engines", "flux", "--flux-julia", julia],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=3600)
    assert proc.returncode == 0, proc.stderr
    project = (tmp_path / "julia" / "flux")
    assert (project / "Manifest.toml").is_file() and not list(fresh_venv.parent.parent.rglob("Manifest.toml"))
