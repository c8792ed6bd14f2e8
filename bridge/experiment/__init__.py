"""The experiment: what is run, fixed before any engine starts.

:mod:`.spec` (one frozen, validated description of a comparison), :mod:`.datasets` (Iris, Fashion-MNIST,
synthetic), :mod:`.models` (parameter names and shapes, FLOPs), :mod:`.weights` (seeded initial weights),
:mod:`.layouts` (the one place axes are reordered), :mod:`.semantics` (where frameworks differ by design,
and which reference variant models each difference), and :mod:`.plan` (the batch plan: every epoch's
batches, and ``plan.toml``, the one contract every engine reads).
"""
