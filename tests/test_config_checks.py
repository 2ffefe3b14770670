"""Every config field is checked from one declaration of its type and range (issue 15, section 2)."""

import dataclasses
import re
from pathlib import Path

import pytest

from figkd.checks import Check, Choice, Float, Int
from figkd.config import ConfigError, RunConfig

DOCS = Path(__file__).resolve().parents[1] / "docs" / "engine.md"


def test_every_field_declares_a_check():
    for f in dataclasses.fields(RunConfig):
        assert isinstance(f.metadata.get("check"), Check), f.name


def test_docs_table_of_accepted_values_is_the_declaration():
    text = DOCS.read_text()
    table = text[text.index("| field | accepted values |"):]
    table = table[:table.index("\n\n")]
    documented = {}
    for row in table.splitlines()[2:]:
        names, accepted = row.strip("|").split("|", 1)
        for name in re.findall(r"`(\w+)`", names):
            documented[name] = accepted.strip()
    for f in dataclasses.fields(RunConfig):
        assert documented[f.name].startswith(f.metadata["check"].describe()), f.name
    assert set(documented) == set(RunConfig.field_names())


@pytest.mark.parametrize("key,value", [
    ("momentum", "fast"), ("momentum", 1.5), ("momentum", True), ("weight_decay", -1), ("seed", "abc"),
    ("seed", 1.0), ("seed", -1), ("lr_decay", [1]), ("lr_decay", 0), ("num_workers", -3), ("tensorboard", "maybe"),
    ("compile", 1), ("device", "tpu"), ("device", "cuda:x"), ("lr", float("nan")), ("lr", "fast"),
    ("lr_milestones", [0]), ("lr_milestones", [True]), ("objective", []), ("objective", [{"weight": 1}]),
    ("objective", [{"term": "ce", "weight": -1}]), ("objective", 3), ("dataset", ""), ("dataset", None),
])
def test_values_outside_the_declaration_are_refused_on_construction(key, value):
    with pytest.raises(ConfigError, match=f"^{key}" if key != "objective" else "objective") as info:
        RunConfig(**{key: value})
    assert "\n" not in str(info.value)


def test_yaml_readings_are_normalised():
    cfg = RunConfig(lr="1e-3", momentum=0, progress=False, cuda_graph=True, device="cuda:1")
    assert cfg.lr == 0.001 and isinstance(cfg.momentum, float)
    assert (cfg.progress, cfg.cuda_graph, cfg.device) == ("off", "on", "cuda:1")


def test_descriptions():
    assert Int(min=1).describe() == "a positive integer"
    assert Float(min=0, max=1, max_open=True).describe() == "a number in [0, 1)"
    assert Choice(("a", "b")).describe() == "one of a, b"
