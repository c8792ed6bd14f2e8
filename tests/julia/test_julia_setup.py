"""The Julia set-up logic (bridge/julia/) and the juliacall boundary (bridge/julia/boundary.py), tested with
stand-in executables.

There is no Julia on the test machines and none can be installed, so these tests write small executable
shell scripts into tmp_path that behave like the parts of ``julia`` (and of juliaup's launcher) that
bridge.julia uses:

- ``julia --version`` prints ``julia version X.Y.Z``;
- ``julia --startup-file=no -e PROBE`` (PROBE being exactly :data:`bridge.julia.record.PROBE`) prints the version
  and the path of the binary that really runs, as ``joinpath(Sys.BINDIR, Base.julia_exename())`` would
  (the symlink-resolved path, as Sys.BINDIR is);
- ``julia --project=DIR --startup-file=no -e CODE`` (the instantiate step) exits 0 and writes
  DIR/Manifest.toml; every call of a release binary is logged so the tests can see what ran it and with
  which code.

A juliaup-like launcher is a script named ``julia`` in a PATH folder next to a ``juliaup`` script: with
``+CHANNEL`` it runs that channel's release binary (releases/julia-X.Y.Z/bin/julia elsewhere in tmp_path),
without it the current default channel's, and for a channel that is not installed it fails as juliaup does.
The scripts use only shell builtins, because PATH holds just the stand-ins and the current Python's folder.
"""
from __future__ import annotations

import importlib.util
import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from bridge import gpus
from bridge.experiment.spec import Spec
from bridge.julia import boundary, command
from bridge.julia import record as julia_record
from bridge.running import selection, worker

try:
    import tomllib
except ImportError:  # Python 3.10
    import tomli as tomllib

SETUP = "python -m bridge.julia setup"
PYTHON_DIR = os.path.dirname(sys.executable)

# The set-up refuses Python >= 3.14 (juliacall 0.9.28 crashes there), and unavailable_reason needs juliacall
# importable (found, never imported here: importing it would make juliapkg resolve a Julia).
served_python = pytest.mark.skipif(sys.version_info[:2] >= julia_record.PYTHON_MAX,
                                   reason="juliacall 0.9.28 does not serve this Python: bridge.julia refuses it")
needs_juliacall = pytest.mark.skipif(importlib.util.find_spec("juliacall") is None,
                                     reason="juliacall is not installed (pip install 'bridge[julia]')")


def write_script(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("#!/bin/sh\n" + text)
    path.chmod(0o755)
    return path


class StandIns:
    """Stand-in Julia release binaries under ``root/releases`` and a juliaup-like launcher in ``root/juliaup-bin``."""

    def __init__(self, root: Path):
        self.root = root
        self.log = root / "julia-calls.log"
        self.launcher_dir = root / "juliaup-bin"
        self.launcher = self.launcher_dir / "julia"
        self.channels = root / "juliaup" / "channels"

    def release(self, version: str) -> Path:
        """Write (or rewrite) the release binary of ``version``; returns its resolved path."""
        path = self.root / "releases" / f"julia-{version}" / "bin" / "julia"
        write_script(path, self._release_text(version))
        return path.resolve()

    def _release_text(self, version: str) -> str:
        return (
            f"version={shlex.quote(version)}\n"
            f"log={shlex.quote(str(self.log))}\n"
            f"probe={shlex.quote(julia_record.PROBE)}\n"
            + r'''self="$(cd "${0%/*}" && pwd -P)/${0##*/}"
printf '%s\037' "$self" "$@" >> "$log"; printf '\n' >> "$log"
case "$1" in
  --version)
    echo "julia version $version" ;;
  --startup-file=no)
    [ "$2" = "-e" ] && [ "$3" = "$probe" ] && [ $# -eq 3 ] || { echo "stand-in: unexpected: $*" >&2; exit 64; }
    printf '%s\n%s\n' "$version" "$self" ;;
  --project=*)
    project="${1#--project=}"
    [ "$2" = "--startup-file=no" ] && [ "$3" = "-e" ] && [ $# -eq 5 ] || { echo "stand-in: unexpected: $*" >&2; exit 64; }
    [ -f "$5/Project.toml" ] || { echo "stand-in: no package at $5" >&2; exit 1; }
    [ -f "$project/Project.toml" ] || { echo "stand-in: no $project/Project.toml" >&2; exit 1; }
    [ -e "$self.unsatisfiable" ] && { echo "ERROR: Unsatisfiable requirements detected (stand-in)" >&2; exit 1; }
    if [ -e "$project/Manifest.toml" ]; then stale=yes; else stale=no; fi
    printf '# stand-in manifest: julia %s, stale manifest present before: %s\n' "$version" "$stale" \
      > "$project/Manifest.toml" ;;
  *)
    echo "stand-in julia $version: unexpected arguments: $*" >&2; exit 64 ;;
esac
''')

    def juliaup(self, channels: dict[str, str], default: str) -> Path:
        """A juliaup-like launcher with ``channels`` (channel -> version) installed; returns its folder."""
        for channel, version in channels.items():
            self.release(version)
            self.channels.mkdir(parents=True, exist_ok=True)
            (self.channels / channel).write_text(version + "\n")
        self.set_default(default)
        home = shlex.quote(str(self.channels.parent))
        write_script(self.launcher, f"home={home}\n" + r'''case "$1" in
  +*) channel="${1#+}"; shift ;;
  *) read -r channel < "$home/default" ;;
esac
if [ ! -r "$home/channels/$channel" ]; then
  echo "ERROR: Invalid Juliaup channel \`$channel\`. Please run \`juliaup list\` to get a list of valid channels and versions." >&2
  exit 1
fi
read -r version < "$home/channels/$channel"
exec "$home/../releases/julia-$version/bin/julia" "$@"
''')
        write_script(self.launcher_dir / "juliaup", f"home={home}\n" + r'''case "$1" in
  default) [ -r "$home/channels/$2" ] || exit 1; echo "$2" > "$home/default" ;;
  *) echo "stand-in juliaup: unsupported: $*" >&2; exit 1 ;;
esac
''')
        return self.launcher_dir

    def fail_instantiate(self, version: str) -> None:
        """Make the instantiate step of ``version``'s binary fail, as Pkg does when it cannot resolve."""
        (self.root / "releases" / f"julia-{version}" / "bin" / "julia.unsatisfiable").write_text("")

    def set_default(self, channel: str) -> None:
        """As ``juliaup default CHANNEL``."""
        (self.channels.parent / "default").write_text(channel + "\n")

    def calls(self) -> list[list[str]]:
        """Each logged call of a release binary: [resolved binary, *arguments]."""
        if not self.log.exists():
            return []
        return [line.split("\x1f")[:-1] for line in self.log.read_text().splitlines()]

    def instantiate_calls(self) -> list[list[str]]:
        return [c for c in self.calls() if len(c) > 1 and c[1].startswith("--project=")]


@pytest.fixture
def env(tmp_path, monkeypatch):
    """A hermetic environment: PATH without any real julia, record and environments in tmp_path, HOME and
    XDG folders in tmp_path too (so that nothing reaches the real ones)."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("PATH", PYTHON_DIR)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / ".config"))
    monkeypatch.setenv("XDG_DATA_HOME", str(home / ".local" / "share"))
    monkeypatch.setenv("BRIDGE_JULIA_RECORD", str(tmp_path / "record" / "julia.json"))
    monkeypatch.setenv("BRIDGE_JULIA_HOME", str(tmp_path / "environments"))
    for name in ("PYTHON_JULIACALL_EXE", "PYTHON_JULIACALL_PROJECT", "JULIA_DEPOT_PATH"):
        monkeypatch.delenv(name, raising=False)
    return tmp_path


@pytest.fixture
def stand_ins(env):
    return StandIns(env / "stand-ins")


def put_on_path(monkeypatch, folder: Path) -> None:
    monkeypatch.setenv("PATH", os.pathsep.join([str(folder), PYTHON_DIR]))


def run_module(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "bridge.julia", *args], capture_output=True, text=True,
                          timeout=120)


def record_file() -> Path:
    return Path(os.environ["BRIDGE_JULIA_RECORD"])


def flux_project() -> Path:
    return Path(os.environ["BRIDGE_JULIA_HOME"]) / "flux"


def the_one_line(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    return lines[0]


# 1. setup through juliaup's launcher -------------------------------------------------------------------------

@served_python
@pytest.mark.parametrize("cuda", [False, True], ids=["cpu", "cuda"])
def test_setup_records_the_release_binary_behind_juliaups_launcher_and_writes_the_pinned_environment(
        stand_ins, monkeypatch, cuda):
    # the launcher's default (1.12) is outside flux's range; the 1.10 channel is what flux needs
    put_on_path(monkeypatch, stand_ins.juliaup({"1.10": "1.10.5", "1.12": "1.12.0"}, default="1.12"))
    # an earlier knet set-up must survive, and a stale manifest must not be reused
    record_file().parent.mkdir(parents=True)
    knet = {"exe": "/opt/julia-1.9.4/bin/julia", "julia_version": "1.9.4", "project": "/somewhere/knet",
            "package": "/somewhere/BridgeKnet", "cuda": True}
    record_file().write_text(json.dumps({"knet": knet}))
    flux_project().mkdir(parents=True)
    (flux_project() / "Manifest.toml").write_text("# stale, resolved for another Julia\n")

    proc = run_module("setup", "--engines", "flux", *(["--cuda"] if cuda else []))
    assert proc.returncode == 0, proc.stderr

    release = stand_ins.root / "releases" / "julia-1.10.5" / "bin" / "julia"
    record = json.loads(record_file().read_text())
    assert record["knet"] == knet
    package = julia_record.sources() / "BridgeFlux"
    assert record["flux"] == {"exe": str(release.resolve()), "julia_version": "1.10.5",
                              "project": str(flux_project()), "package": str(package), "cuda": cuda}
    assert record["flux"]["exe"] != str(stand_ins.launcher)

    project = tomllib.loads((flux_project() / "Project.toml").read_text())
    expected = {"PythonCall"} | ({"CUDA", "cuDNN"} if cuda else set())
    assert set(project["deps"]) == expected
    assert all(project["deps"][name] == julia_record.UUIDS[name] for name in expected)
    assert project["compat"] == {"PythonCall": "=0.9.28"}

    # instantiated once, by the release binary itself, in the new environment, developing bridge's package
    [call] = stand_ins.instantiate_calls()
    assert call[0] == str(release.resolve())
    assert call[1] == f"--project={flux_project()}"
    code, argument = call[-2:]
    # the package's path reaches Julia as an argument (ARGS), never spliced into the code
    assert "Pkg.develop(path=only(ARGS))" in code and "Pkg.instantiate()" in code and argument == str(package)
    assert str(package) not in code
    assert (flux_project() / "Manifest.toml").read_text().strip() == (
        "# stand-in manifest: julia 1.10.5, stale manifest present before: no")
    # nothing went to the default folders under HOME
    assert not [p for p in (stand_ins.root.parent / "home").rglob("*") if p.is_file()]


# 2. --flux-julia PATH to a launcher ----------------------------------------------------------------------------

@served_python
def test_flux_julia_given_as_a_launcher_records_the_binary_it_resolves_to(stand_ins, capsys):
    # the launcher is not on the PATH: only the path given is tried (as is, without +channel)
    stand_ins.juliaup({"1.10": "1.10.5", "1.11": "1.11.2"}, default="1.11")
    assert command.main(["setup", "--engines", "flux", "--flux-julia", str(stand_ins.launcher)]) == 0, \
        capsys.readouterr().err
    entry = json.loads(record_file().read_text())["flux"]
    release = stand_ins.root / "releases" / "julia-1.11.2" / "bin" / "julia"
    assert entry["exe"] == str(release.resolve()) and entry["julia_version"] == "1.11.2"
    assert [c[0] for c in stand_ins.instantiate_calls()] == [str(release.resolve())]
    assert str(release.resolve()) in capsys.readouterr().out


# 3. a Julia outside the range is refused -----------------------------------------------------------------------

@served_python
def test_a_julia_outside_fluxs_range_is_refused_in_one_line_naming_what_was_tried_and_the_fix(stand_ins, monkeypatch):
    # juliaup with only 1.12 installed: `julia +1.10` fails, `julia` runs 1.12.0
    put_on_path(monkeypatch, stand_ins.juliaup({"1.12": "1.12.0"}, default="1.12"))
    proc = run_module("setup", "--engines", "flux")
    assert proc.returncode == 1, proc.stderr
    line = the_one_line(proc.stderr)
    assert line.startswith("bridge.julia: error: flux: no Julia >= 1.10.3, < 1.12 found"), line
    assert f"{stand_ins.launcher} +1.10 (not runnable)" in line and f"{stand_ins.launcher} (1.12.0)" in line
    assert "juliaup add 1.10" in line and "--flux-julia PATH" in line and f"{SETUP} --install" in line
    assert not record_file().exists() and not flux_project().exists()
    assert not stand_ins.instantiate_calls()


@served_python
def test_julia_1_9_given_for_flux_is_refused_and_nothing_is_recorded(stand_ins, capsys):
    old = stand_ins.release("1.9.4")
    assert command.main(["setup", "--engines", "flux", "--flux-julia", str(old)]) == 1
    line = the_one_line(capsys.readouterr().err)
    assert f"(tried: {old} (1.9.4))" in line and "juliaup add 1.10" in line and "--install" in line, line
    assert not record_file().exists() and not flux_project().exists()


@served_python
def test_a_failing_instantiate_step_is_reported_in_one_line_and_nothing_is_recorded(stand_ins, monkeypatch):
    put_on_path(monkeypatch, stand_ins.juliaup({"1.10": "1.10.5"}, default="1.10"))
    stand_ins.fail_instantiate("1.10.5")
    proc = run_module("setup", "--engines", "flux")
    assert proc.returncode == 1
    release = stand_ins.root / "releases" / "julia-1.10.5" / "bin" / "julia"
    line = [l for l in proc.stderr.splitlines() if l.startswith("bridge.julia:")]
    assert line == [f"bridge.julia: error: flux: instantiating {flux_project()} with {release.resolve()} failed (exit 1); "
                    "nothing is recorded for flux until python -m bridge.julia setup succeeds"]
    assert len(stand_ins.instantiate_calls()) == 1 and not load_record_entry("flux")


@served_python
def test_a_failing_set_up_over_a_working_one_leaves_flux_unavailable_not_half_changed(stand_ins, monkeypatch):
    put_on_path(monkeypatch, stand_ins.juliaup({"1.10": "1.10.5"}, default="1.10"))
    assert run_module("setup", "--engines", "flux").returncode == 0 and load_record_entry("flux")
    stand_ins.fail_instantiate("1.10.5")
    assert run_module("setup", "--engines", "flux", "--cuda").returncode == 1
    # the environment now names CUDA and has no manifest: the old record would claim a working engine
    assert not load_record_entry("flux")
    assert "needs" in julia_record.unavailable_reason("flux") or julia_record.python_reason("flux")


def load_record_entry(engine: str) -> dict | None:
    return json.loads(record_file().read_text()).get(engine) if record_file().exists() else None


def test_no_julia_at_all_is_refused_naming_that_nothing_was_found(env, capsys):
    if sys.version_info[:2] >= julia_record.PYTHON_MAX:
        pytest.skip("bridge.julia refuses this Python before looking for Julia")
    assert command.main(["setup", "--engines", "flux"]) == 1
    line = the_one_line(capsys.readouterr().err)
    assert "no julia given, no juliaup, no julia on the PATH" in line, line
    assert not record_file().exists()


# 4. unavailable_reason re-checks what was recorded -------------------------------------------------------------

@pytest.fixture
def flux_set_up(stand_ins, monkeypatch, capsys):
    put_on_path(monkeypatch, stand_ins.juliaup({"1.10": "1.10.5", "1.11": "1.11.2", "1.12": "1.12.0"}, default="1.11"))
    assert command.main(["setup", "--engines", "flux"]) == 0, capsys.readouterr().err
    entry = json.loads(record_file().read_text())["flux"]
    assert entry["julia_version"] == "1.10.5"
    return stand_ins, Path(entry["exe"])


@served_python
@needs_juliacall
def test_flux_is_available_while_the_recorded_binary_still_reports_its_version(flux_set_up):
    stand_ins, exe = flux_set_up
    assert julia_record.unavailable_reason("flux") is None
    # the binary is recorded, not the launcher: changing juliaup's default does not matter
    stand_ins.set_default("1.12")
    assert julia_record.unavailable_reason("flux") is None
    # and the re-check really runs the recorded binary
    assert [c for c in stand_ins.calls() if c[1:] == ["--version"]][-1][0] == str(exe)


@served_python
@needs_juliacall
def test_flux_is_unavailable_when_the_recorded_binary_now_reports_another_version(flux_set_up):
    stand_ins, exe = flux_set_up
    write_script(exe, stand_ins._release_text("1.10.6"))  # the same binary, updated in place
    reason = julia_record.unavailable_reason("flux")
    assert reason is not None and f"{exe} is now 1.10.6" in reason and "set up with 1.10.5" in reason, reason
    assert reason.endswith(f"run: {SETUP}")


@served_python
@needs_juliacall
def test_flux_is_unavailable_when_the_recorded_binary_is_gone(flux_set_up):
    _, exe = flux_set_up
    exe.unlink()
    reason = julia_record.unavailable_reason("flux")
    assert reason is not None and f"{exe} does not run any more" in reason and reason.endswith(f"run: {SETUP}")


@served_python
@needs_juliacall
def test_flux_is_unavailable_when_set_up_for_another_copy_of_the_julia_package(flux_set_up):
    record = json.loads(record_file().read_text())
    record["flux"]["package"] = "/an/older/installation/bridge/julia_packages/BridgeFlux"
    record_file().write_text(json.dumps(record))
    reason = julia_record.unavailable_reason("flux")
    assert reason is not None and "/an/older/installation" in reason and str(julia_record.sources() / "BridgeFlux") in reason
    assert reason.endswith(f"run: {SETUP}")


# 5. Python >= 3.14 --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("version, refused", [((3, 14, 0, "final", 0), True), ((3, 13, 9, "final", 0), False)])
def test_julia_engines_refuse_python_3_14_naming_juliacall_0_9_28(stand_ins, monkeypatch, capsys, version, refused):
    # A stand-in version: the suite runs on the Python of this venv (< 3.14, where juliacall 0.9.28 installs),
    # so the refusal can only be exercised by making bridge.julia believe it runs on 3.14.
    monkeypatch.setattr(sys, "version_info", version)
    for engine in ("flux", "knet"):
        reason = julia_record.python_reason(engine)
        if not refused:
            assert reason is None
            continue
        assert "juliacall==0.9.28" in reason and "Python 3.14" in reason and "Python 3.10 to 3.13" in reason
        assert julia_record.unavailable_reason(engine) == reason
    if refused:
        # refused before any Julia is even looked at, though a fitting one is on the PATH
        put_on_path(monkeypatch, stand_ins.juliaup({"1.10": "1.10.5"}, default="1.10"))
        assert command.main(["setup", "--engines", "flux"]) == 1
        assert "juliacall==0.9.28" in the_one_line(capsys.readouterr().err)
        assert not record_file().exists() and stand_ins.calls() == []


# 6. a bad --engines value ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("engines", ["flx", "flux,flx"])
def test_setup_with_an_unknown_engine_exits_2_naming_it_and_the_accepted_ones(stand_ins, monkeypatch, engines):
    put_on_path(monkeypatch, stand_ins.juliaup({"1.10": "1.10.5"}, default="1.10"))
    proc = run_module("setup", "--engines", engines)
    assert proc.returncode == 2, proc.stderr
    line = the_one_line(proc.stderr)
    assert "'flx'" in line and "accepted: flux, knet" in line, line
    # checked before anything is set up, flux included
    assert stand_ins.calls() == [] and not record_file().exists()


# 7. the worker's environment ------------------------------------------------------------------------------------

def test_juliacall_environment_comes_from_the_record_entry_and_the_thread_count(env):
    entry = {"exe": "/opt/julia-1.10.5/bin/julia", "julia_version": "1.10.5", "project": "/data/bridge/julia/flux",
             "package": "/x/BridgeFlux", "cuda": False}
    variables = boundary.environment(entry, 3)
    assert variables["PYTHON_JULIACALL_EXE"] == entry["exe"]
    assert variables["PYTHON_JULIACALL_PROJECT"] == entry["project"]
    assert variables["PYTHON_JULIACALL_THREADS"] == "3"
    assert variables["PYTHON_JULIACALL_HANDLE_SIGNALS"] == "yes"
    assert "PYTHON_JULIACALL_EXE" not in os.environ  # built, not applied


def test_worker_environment_turns_tf32_off_on_cuda_and_hides_the_gpus_from_a_cpu_run():
    cuda, cpu = worker.worker_environment(4, "cuda"), worker.worker_environment(4, "cpu")
    assert cuda["NVIDIA_TF32_OVERRIDE"] == "0" and "CUDA_VISIBLE_DEVICES" not in cuda
    # a CPU knet run must not initialise CUDA.jl (Knet's __init__ would, on a GPU machine), nor any
    # framework place work on a GPU
    assert "NVIDIA_TF32_OVERRIDE" not in cpu and cpu["CUDA_VISIBLE_DEVICES"] == "-1"
    for variables in (cuda, cpu):
        assert variables["JULIA_NUM_THREADS"] == "4" and variables["OMP_NUM_THREADS"] == "4"


# 8. a cuda run of a flux set up without CUDA -------------------------------------------------------------------

LOAD_WITHOUT_CUDA = """
import json, os, sys
from bridge.julia.boundary import JuliaSetupError, load
before = "juliacall" in sys.modules
entry = {"exe": "/nowhere/julia", "julia_version": "1.10.5", "project": "/nowhere/flux",
         "package": "/nowhere/BridgeFlux", "cuda": False}
try:
    load("flux", entry, 2, "cuda")
    error = None
except JuliaSetupError as e:
    error = str(e)
print(json.dumps({"error": error, "imported_before": before, "imported": "juliacall" in sys.modules,
                  "configured": "PYTHON_JULIACALL_EXE" in os.environ}))
"""


def test_load_refuses_flux_on_cuda_without_cuda_in_the_environment_before_importing_juliacall(env):
    # in a subprocess: whether juliacall was imported is a property of the whole process
    proc = subprocess.run([sys.executable, "-c", LOAD_WITHOUT_CUDA], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["error"] is not None and f"{SETUP} --engines flux --cuda" in result["error"], result
    assert result == {"error": result["error"], "imported_before": False, "imported": False, "configured": False}


# 9. which GPUs a Julia engine can run on ------------------------------------------------------------------------

H100 = "0, GPU-11111111-aaaa, NVIDIA H100 80GB HBM3, 9.0"
A100 = "1, GPU-22222222-bbbb, NVIDIA A100-SXM4-80GB, 8.0"


def stand_in_nvidia_smi(folder: Path, *rows: str) -> Path:
    """An ``nvidia-smi`` that answers bridge's query with ``rows`` (no GPU here: a stand-in for the driver's
    tool), and fails on anything else."""
    query = " ".join(shlex.quote(a) for a in gpus.QUERY[1:])
    answer = " ".join(shlex.quote(row) for row in rows)
    write_script(folder / "nvidia-smi", f'[ "$*" = {shlex.quote(query)} ] || exit 9\nprintf "%s\\n" {answer}\n')
    return folder


@pytest.fixture
def knet_set_up(stand_ins, monkeypatch, capsys):
    put_on_path(monkeypatch, stand_ins.juliaup({"1.9": "1.9.4"}, default="1.9"))
    assert command.main(["setup", "--engines", "knet"]) == 0, capsys.readouterr().err
    return stand_ins


@served_python
@needs_juliacall
def test_knet_on_cuda_is_refused_on_a_gpu_of_compute_capability_9_before_any_worker_starts(knet_set_up, monkeypatch,
                                                                                             tmp_path):
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    smi = tmp_path / "smi"

    def gpus_are(*rows):
        stand_in_nvidia_smi(smi, *rows)
        monkeypatch.setenv("PATH", os.pathsep.join([str(smi), str(knet_set_up.launcher_dir), PYTHON_DIR]))

    gpus_are(H100)
    assert [(g.index, g.name, g.capability) for g in gpus.visible_gpus()] == [(0, "NVIDIA H100 80GB HBM3", (9, 0))]
    reason = julia_record.unavailable_reason("knet", "cuda")
    assert reason is not None and reason.startswith("knet cannot run on --device cuda here"), reason
    assert "GPU 0, NVIDIA H100 80GB HBM3, compute capability 9.0" in reason and "--device cpu" in reason
    assert julia_record.unavailable_reason("knet", "cpu") is None  # the CPU is not affected
    # through the selection, as compare and sweep ask: knet cannot run, named with the reason
    sel = selection.select(Spec(engines=("reference", "knet"), device="cuda"))
    assert [r.label for r in sel.runs] == ["reference/float64"]
    assert [(run.label, why) for run, why in sel.cannot_run] == [("knet/loop", reason)]
    # an Ampere GPU is fine; on a machine with both, CUDA_VISIBLE_DEVICES chooses, as the driver reads it
    gpus_are(A100)
    assert julia_record.unavailable_reason("knet", "cuda") is None
    gpus_are(H100, A100)
    assert "GPU 0, NVIDIA H100" in julia_record.unavailable_reason("knet", "cuda")
    for chosen, refused in (("1", False), ("GPU-2222", False), ("0", True), ("1,0", True), ("7,0", None)):
        monkeypatch.setenv("CUDA_VISIBLE_DEVICES", chosen)
        reason = julia_record.unavailable_reason("knet", "cuda")
        # "7,0": no GPU 7, and the driver stops there: no GPU visible, nothing to refuse here
        assert (reason is not None) == bool(refused), (chosen, reason)
    # nvidia-smi that cannot say (an old driver without compute_cap): left to the engine's own check
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES")
    write_script(smi / "nvidia-smi", "echo 'Field \"compute_cap\" is not a valid field to query.' >&2; exit 2\n")
    assert gpus.visible_gpus() is None and julia_record.unavailable_reason("knet", "cuda") is None


@served_python
@needs_juliacall
def test_flux_set_up_without_cuda_is_refused_for_cuda_naming_the_set_up_command(flux_set_up):
    reason = julia_record.unavailable_reason("flux", "cuda")
    assert reason == f"flux was set up without CUDA.jl; for --device cuda run: {SETUP} --engines flux --cuda"
    assert julia_record.unavailable_reason("flux", "cpu") is None


def test_knet_s_capability_bound_is_the_same_in_python_and_julia():
    """The bound is checked twice: before a worker starts (Python, from nvidia-smi) and in BridgeKnet's
    select_device (from CUDA.jl): they must agree."""
    engine = (julia_record.sources() / "BridgeKnet" / "src" / "engine.jl").read_text()
    (julia_bound,) = re.findall(r'const KNET_CAPABILITY_BELOW = v"(\d+)\.(\d+)"', engine)
    assert tuple(map(int, julia_bound)) == julia_record.KNET_CAPABILITY_BELOW == (9, 0)
    assert "capability < KNET_CAPABILITY_BELOW ||" in engine

