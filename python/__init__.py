"""Engines written against Python frameworks; installed as ``bridge.engines``."""
