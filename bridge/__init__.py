"""bridge: the same deep-learning experiment in several frameworks, on the same batches and weights."""

__version__ = "0.1.0"
