"""The engines in python/ install as bridge.engines, from a built wheel, with no sys.path edits."""
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_wheel_ships_the_engines_and_they_import_from_it(tmp_path):
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                    "-w", str(tmp_path), str(ROOT)], check=True, timeout=300)
    wheel = next(tmp_path.glob("bridge-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    for module in ("bridge/engines/reference.py", "bridge/engines/tfkeras.py", "bridge/engines/numpy_nn.py",
                   "bridge/data/iris.csv", "bridge/compare.py"):
        assert module in names, module
    site = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(site), str(wheel)],
                   check=True, timeout=300)
    code = ("import bridge.engines.tfkeras as k, bridge.engines.reference as r, bridge.datasets.iris as i;"
            "print(k.__file__); print(r.__file__); print(i.load().x_train.shape)")
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env={"PYTHONPATH": str(site)},
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert all(line.startswith(str(site)) for line in lines[:2]), lines
    assert lines[2] == "(120, 4)"
