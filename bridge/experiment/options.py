"""The spec on the command line: one option per spec field, with its default shown, for ``bridge.compare``
and ``bridge.sweep``; a config file under the options given (CLI > file > defaults)."""
from __future__ import annotations

import argparse
from dataclasses import MISSING

from .spec import DATASET_DEFAULTS, FIELDS, Spec, from_mapping, toml_values


def add_spec_options(p: argparse.ArgumentParser) -> None:
    """One option per spec field (bridge.compare's and bridge.sweep's), with its default shown where it
    has one and its help does not already say it."""
    group = p.add_argument_group("experiment spec (defaults shown)")
    for name, f in FIELDS.items():
        default = f.default if f.default is not MISSING else None
        shown = format_value(default) if default is not None else ""
        if default is None and name in DATASET_DEFAULTS["iris"]:
            shown = ", ".join(f"{format_value(d[name])} for {dataset}" for dataset, d in DATASET_DEFAULTS.items())
        text = f.metadata.get("help", "")
        if shown and "default" not in text:
            text = f"{text} (default: {shown})"
        flags = [f"--{name}"] + ([f"--{name.replace('_', '-')}"] if "_" in name else [])
        group.add_argument(*flags, dest=name, default=None, metavar=metavar(name), help=text)


def metavar(name: str) -> str:
    """The placeholder ``--help`` shows for field ``name``: its last word (``--batch_size SIZE``), or the
    whole name where that word is a number (``--beta_1 BETA_1``, not ``--beta_1 1``)."""
    last = name.split("_")[-1]
    return (name if last.isdigit() else last).upper()


def format_value(value) -> str:
    """A spec value as the command line writes it: ``64,32`` for a list, ``0.001`` for a float."""
    if isinstance(value, tuple):
        return ",".join(map(str, value))
    return f"{value:g}" if isinstance(value, float) else str(value)


def given_fields(args: argparse.Namespace) -> dict:
    """The spec fields set on the command line."""
    return {name: getattr(args, name) for name in FIELDS if getattr(args, name) is not None}


def spec_from_args(args: argparse.Namespace) -> Spec:
    """Config file, then the command line over it; what neither sets takes the defaults of the data set
    the two name together (so ``--dataset`` on the command line also brings its defaults)."""
    config = {}
    if args.config:
        config = toml_values(args.config)
        from_mapping(config, origin=args.config)  # a bad value is named as the file's
    return from_mapping({**config, **given_fields(args)}, origin="the command line")

