"""Engines written against Python frameworks; installed as ``bridge.engines``.

The engine protocol
-------------------
An engine is one module. At module level it names, without importing its framework:

``FRAMEWORK``  distribution whose version is reported (e.g. ``"tensorflow"``)
``MODES``      the ways it can train, first one the default (e.g. ``("fit", "loop")``)
``REQUIRES``   importable modules it needs; a missing one makes the engine unavailable
``INSTALL``    the command that installs them

and three functions, called in this order inside a fresh worker process (:mod:`bridge.worker`),
after thread and device settings are in the environment:

``prepare(job) -> (session, report)``
    Import the framework, build the model from ``job.plan.weights()`` (neutral layout, converted
    with :mod:`bridge.layouts`), set up the optimizer. ``report`` is a dict with ``import_s`` and
    ``build_s`` (seconds, monotonic clock), ``framework_version``, ``device`` and ``threads`` (an int: the
    compute threads the framework reports it uses), plus anything else worth recording.
``train_epoch(session, x, y) -> EpochRun``
    One pass over one epoch of the batch plan, in its batch order (``job.plan.batch_slices()``).
    Returns the per-step training losses (the loss of each batch before its update), the seconds the
    pass took (measured inside the engine, device synchronised; layout copies made before the clock
    starts) and, only if the engine can checksum what its framework read, its own CRC-32C per batch.
    The worker checksums the batches it hands over and checks the loss count itself.
``predict(session, x) -> logits``
    Logits ``(N, K)`` for inputs in plan layout; never timed. Loss and accuracy per split are
    computed from them by the worker, in float64, identically for every engine.

What the worker checks for every engine (loss count, finite losses and logits, batch checksums) and
what each failure becomes is in :mod:`bridge.worker`.

Julia engines keep the same three names on the Julia side.
"""
