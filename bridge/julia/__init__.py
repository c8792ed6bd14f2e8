"""The Julia engines' Python side: what was set up (:mod:`.record`), the one module that configures and
imports juliacall (:mod:`.boundary`), the set-up itself (:mod:`.setup`, ``python -m bridge.julia``), the
plan's files for Julia (:mod:`.plan`) and the golden fixtures of the Julia packages' tests
(:mod:`.golden`). The Julia packages themselves are ``julia/`` (installed as ``bridge.julia_packages``).
"""
