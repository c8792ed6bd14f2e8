"""Framework code the tests need, each module run in a subprocess of its own by
``tests.support.framework_check``: ``tf_checks`` imports TensorFlow and Keras, ``torch_checks`` PyTorch,
``jax_checks`` JAX and optax, and no module imports two of them (PyPI's CUDA PyTorch and TensorFlow in one
process segfault). Each serves named functions over NumPy arrays (``exchange``); the assertions stay in
the test modules.
"""
