"""bridge: the same deep-learning experiment in several frameworks, on the same batches and weights.

The library call behind ``python -m bridge.compare``::

    from bridge import Spec, run
    results = run(Spec(dataset="iris", engines=("reference", "torch")), "results/iris")
    results.summary  # one row per engine run: parity, times, throughput, final loss and accuracy

The stages, one package each: :mod:`bridge.experiment` (spec, data sets, models, weights, the batch
plan), :mod:`bridge.running` (which engines, one worker process per engine run, resume, progress, the
machine's peaks), :mod:`bridge.results` (the results folder, the summary, parity),
:mod:`bridge.presentation` (figures and the report); :mod:`bridge.sweep` runs grids of comparisons and
:mod:`bridge.julia` sets up the Julia engines. The engines themselves are :mod:`bridge.engines`, following
:mod:`bridge.contract`.
"""
__version__ = "0.1.0"  # the one place: pyproject.toml reads it from here

_EXPORTS = {"Spec": ("bridge.experiment.spec", "Spec"), "run": ("bridge.running.runner", "run"),
            "Results": ("bridge.results.store", "Results")}


def __getattr__(name: str):
    # loaded on first use: a worker process imports this package and must not pay for pandas
    if name in _EXPORTS:
        import importlib

        module, attr = _EXPORTS[name]
        return getattr(importlib.import_module(module), attr)
    raise AttributeError(f"module 'bridge' has no attribute {name!r}")


__all__ = ["Results", "Spec", "__version__", "run"]
