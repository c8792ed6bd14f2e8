"""Engines written against Python frameworks; installed as ``bridge.engines``.

One module per engine, named after it (``keras``, ``keras_jax``, ``keras_torch``, ``torch``, ``jax``,
``reference``, ``flux``, ``knet``); what several share is in ``common/`` (``numpy_nn``: the reference's
math; ``keras_model``: the Keras 3 code of the three Keras engines; ``xla_threads``: XLA's CPU pool;
``julia_session``: driving a Julia package through juliacall). No engine imports another.

The contract every engine follows, with its types, is :mod:`bridge.contract`; the registry that maps an
engine's name to its module is :mod:`bridge.running.selection`.
"""
