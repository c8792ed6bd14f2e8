"""The spec: defaults, TOML files, CLI precedence and clear errors for bad values."""
import pytest

from bridge.experiment.options import spec_from_args
from bridge.compare import parser
from bridge.experiment.spec import DATASET_DEFAULTS, Spec, SpecError, from_mapping, load_toml
from tests.support import ROOT


def test_defaults_are_valid_and_describe_the_original_iris_comparison():
    s = Spec()
    assert (s.dataset, s.model, s.optimizer, s.epochs) == ("iris", "mlp", "adam", 100)


def test_learning_rate_batch_size_epochs_timeout_and_hidden_widths_default_by_data_set():
    assert DATASET_DEFAULTS["iris"] == dict(learning_rate=0.01, batch_size=16, epochs=100, timeout=1800.0,
                                            hidden=(10,))
    assert DATASET_DEFAULTS["fashion-mnist"]["hidden"] == DATASET_DEFAULTS["synthetic"]["hidden"] == (256, 128)
    for dataset, expected in DATASET_DEFAULTS.items():
        s = Spec(dataset=dataset, model="mlp")
        assert {name: getattr(s, name) for name in expected} == expected, dataset
    fm = DATASET_DEFAULTS["fashion-mnist"]
    assert (fm["learning_rate"], fm["batch_size"]) != (0.01, 16)  # not the Iris settings
    assert Spec(dataset="fashion-mnist", epochs=2).epochs == 2  # a value given wins
    assert "epochs = 5\n" in Spec(dataset="fashion-mnist").to_toml()  # the saved spec holds the value in force


@pytest.mark.parametrize("config, argv, expected", [
    ('dataset = "fashion-mnist"\n', [], DATASET_DEFAULTS["fashion-mnist"]),
    ("", ["--dataset", "fashion-mnist"], DATASET_DEFAULTS["fashion-mnist"]),
    # the data set named on the command line brings its own defaults, not the config's data set's
    ('dataset = "fashion-mnist"\n', ["--dataset", "iris"], DATASET_DEFAULTS["iris"]),
    # a value from the config file or the command line wins over the data set's default
    ('dataset = "fashion-mnist"\nepochs = 2\n', ["--learning_rate", "0.05"],
     dict(DATASET_DEFAULTS["fashion-mnist"], epochs=2, learning_rate=0.05)),
])
def test_data_set_defaults_through_config_and_command_line(tmp_path, config, argv, expected):
    cfg = tmp_path / "exp.toml"
    cfg.write_text(config)
    s = spec_from_args(parser().parse_args(["--config", str(cfg), *argv]))
    assert {name: getattr(s, name) for name in expected} == expected


def test_toml_file_then_cli_override(tmp_path):
    cfg = tmp_path / "exp.toml"
    cfg.write_text('dataset = "synthetic"\nbatch_size = 64\nengines = ["reference"]\nlearning_rate = 0.1\n')
    args = parser().parse_args(["--config", str(cfg), "--batch-size", "32"])
    s = spec_from_args(args)
    assert s.dataset == "synthetic" and s.batch_size == 32 and s.engines == ("reference",)
    assert s.learning_rate == 0.1


def test_spec_table_in_toml_and_round_trip(tmp_path):
    s = Spec(dataset="fashion-mnist", model="cnn", engines=("keras:loop", "reference"), epsilon=1e-8)
    cfg = tmp_path / "s.toml"
    cfg.write_text("[spec]\n" + s.to_toml())
    assert load_toml(cfg) == s
    assert load_toml(cfg).hash() == s.hash()


def test_hash_ignores_which_engines_run_but_not_the_experiment():
    assert Spec(engines=("keras",)).hash() == Spec(engines=("reference",), repeats=3).hash()
    assert Spec(seed=1).hash() != Spec().hash()


@pytest.mark.parametrize("values, words", [
    ({"dataset": "mnist"}, ["dataset 'mnist'", "iris, fashion-mnist, synthetic"]),
    ({"batch_size": 0}, ["batch_size", "greater than zero", "0"]),
    ({"epochs": -3}, ["epochs", "-3"]),
    ({"optimizer": "rmsprop"}, ["optimizer 'rmsprop'", "sgd, adam"]),
    ({"model": "cnn", "dataset": "iris"}, ["cnn", "image"]),
    ({"beta_1": 1.0}, ["beta_1", "[0, 1)"]),
    ({"batch_size": "many"}, ["batch_size 'many'", "int"]),
    ({"bogus": 1}, ["unknown spec field 'bogus'", "dataset"]),
])
def test_bad_values_name_the_value_and_the_accepted_ones(values, words):
    with pytest.raises(SpecError) as e:
        from_mapping(values)
    for w in words:
        assert w in str(e.value)


def test_malformed_and_missing_config_files(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("dataset = \n")
    with pytest.raises(SpecError, match="not valid TOML"):
        load_toml(bad)
    with pytest.raises(SpecError, match="cannot be read"):
        load_toml(tmp_path / "missing.toml")


def test_the_readme_s_table_of_defaults_by_data_set_is_what_the_spec_applies(monkeypatch):
    """Every documented per-data-set default (README, "Defaults by data set") is the value a spec of that
    data set takes, and --help shows it: a changed default fails here until the documentation says so."""
    readme = (ROOT / "README.md").read_text()
    table = readme[readme.index("| data set | learning rate (Adam) | batch | epochs | timeout per engine run |"):]
    rows = [line for line in table.splitlines()[2:] if line.startswith("| `")]
    documented = {}
    for line in rows[:len(DATASET_DEFAULTS)]:
        dataset, lr, batch, epochs, timeout = (c.strip().strip("`") for c in line.strip("|").split("|"))
        documented[dataset] = dict(learning_rate=float(lr), batch_size=int(batch), epochs=int(epochs),
                                   timeout=float(timeout.removesuffix(" s")))
    assert set(documented) == set(DATASET_DEFAULTS)
    monkeypatch.setenv("COLUMNS", "1000")  # argparse wraps at the terminal's width, even inside a name
    help_text = " ".join(parser().format_help().split())
    for dataset, values in documented.items():
        spec = Spec(dataset=dataset)
        assert {name: getattr(spec, name) for name in values} == values, dataset
        assert f"{values['batch_size']} for {dataset}" in help_text, dataset
        assert f"{values['learning_rate']:g} for {dataset}" in help_text, dataset
