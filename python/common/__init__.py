"""What several engines share (see :mod:`bridge.engines`)."""
