"""The max-pool gradient line (bridge.results.parity.describe) and its section of the report: one plain
sentence when every engine run follows one rule; which runs follow which rule, and what each does, only
when they differ. Built from summary.json's ``semantics`` as a dict: both are pure functions of it."""
import html

from bridge.experiment.semantics import RULES
from bridge.presentation import report
from bridge.results import parity


def run(rule: str, compared_with: str | None) -> dict:
    return {"maxpool_gradient": rule, "compared_with": compared_with}


SAME = {"maxpool_gradient": {"reference/float64": run("exact", None), "keras/fit": run("exact", "reference/float64"),
                             "torch/loop": run("exact", "reference/float64")},
        "rules": {"exact": RULES["exact"]}}
DIFFERENT = {"maxpool_gradient": {"reference/float64": run("exact", None),
                                  "reference/nnlib": run("nnlib", "reference/float64"),
                                  "keras/fit": run("exact", "reference/float64"),
                                  "flux/loop": run("nnlib", "reference/nnlib")},
             "rules": {"exact": RULES["exact"], "nnlib": RULES["nnlib"]},
             "reference_variants": {"steps": 50, "max_rel_diff": 3.2e-4}}


def page(semantics: dict) -> str:
    doc = {"spec": {"dataset": "synthetic", "model": "cnn", "optimizer": "adam"}, "semantics": semantics}
    text = report.render(doc, {})
    return text[text.index("id='semantics'"):text.index("id='figures'")]


def test_one_rule_for_every_engine_is_one_plain_sentence():
    line = parity.describe(SAME)
    assert line == f"max-pool gradient: every engine routes each window's gradient by the exact rule, {RULES['exact']}"
    assert "keras/fit" not in line and "variant" not in line  # no list of runs when there is nothing to tell apart


def test_rules_that_differ_say_which_engines_follow_which_and_how_far_apart_they_are():
    line = parity.describe(DIFFERENT)
    assert line.startswith("max-pool gradient: the engines follow different rules, each compared with the reference "
                           "variant of its own. ")
    assert f"exact (reference/float64, keras/fit): {RULES['exact']}." in line
    assert f"nnlib (reference/nnlib, flux/loop): {RULES['nnlib']}." in line
    assert line.endswith("The variants differ by up to 3.2e-04 over 50 steps.")
    assert parity.describe({}) == ""  # an MLP has no max-pool


def test_the_report_section_is_one_sentence_for_one_rule_and_a_table_where_rules_differ():
    same = page(SAME)
    assert "<table" not in same and html.escape(f"{parity.describe(SAME)}.") in same
    different = page(DIFFERENT)
    assert "<table" in different and "id='variant-size'" in different
    for label in DIFFERENT["maxpool_gradient"]:
        assert f"<td>{label}</td>" in different, label
    assert "<td>nnlib</td>" in different and "<td>reference/nnlib</td>" in different
