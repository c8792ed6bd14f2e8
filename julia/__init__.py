"""The Julia engine packages, shipped with bridge as package data (``bridge.julia_packages``).

``BridgeFlux/`` and ``BridgeKnet/`` are Julia packages (Project.toml, src/, ext/, test/) and ``common/``
holds the files both include; ``golden/`` holds the fixtures of their Pkg.test and stays in the source
checkout. ``python -m bridge.julia setup`` develops the packages from wherever this folder is installed
into a Julia environment of its own, outside the installation: Julia never writes here.
"""
