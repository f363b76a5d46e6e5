"""The plan's fast YAML dumper writes exactly what PyYAML's safe dump writes with libyaml's
emitter (the plan's format since the plan first used libyaml)."""

from __future__ import annotations

import yaml

from offline import plan_yaml
from offline.plan import render
from tests.helpers.factories import stack_plan


def reference(doc):
    return yaml.dump(doc, Dumper=yaml.CSafeDumper, sort_keys=True, default_flow_style=False, width=120)


def test_every_file_of_the_prod_plan_is_what_the_safe_dumper_writes():
    rendered = render(stack_plan("prod"))
    assert len(rendered.files) > 100
    for path, text in rendered.files.items():
        doc = yaml.safe_load(text)
        assert text == reference(doc) == plan_yaml.dump(doc), path


def test_edge_cases_are_what_the_safe_dumper_writes():
    shared = {"app": "web"}
    docs = [
        {},
        [],
        {"a": shared, "b": shared, "c": [shared, [1, 2]]},  # repeated containers become anchors
        {"strings": ["", "yes", "no", "on", "null", "~", "1", "0x1f", "1e3", "12:30", "2026-11-25", "-", "- x",
                     "a: b", "#x", "x #y", "*a", "&a", "!t", "%x", "@x", "`x", "'q'", '"q"', "tab\there",
                     "line\nbreak", "trailing ", " leading", "ünïcödé", "é" * 200, "word " * 60, "{a}", "[a]"]},
        {"numbers": [0, -1, 10**20, 1.5, -0.0, float("inf"), 1e-7, True, False, None]},
        {3: "int key", "3": "str key"},  # keys that cannot be sorted together stay in insertion order
        {"nested": {"deep": [{"x": [{"y": {"z": []}}]}]}},
        ("a", "tuple"),
    ]
    for doc in docs:
        try:
            expected = reference(doc)
        except yaml.representer.RepresenterError:
            continue
        assert plan_yaml.dump(doc) == expected, doc
