"""Every objective preset resolves to the term list it resolved to when presets moved from a table in
``figkd/losses/objective.py`` to the registrations of their methods (issue 21).

``tests/data/presets_resolved.json`` holds ``build_objective(name, context=...).spec`` of every preset
(every weight, warm-up and option, in order), written by `_resolved` below on the code before that change
(main at commit afa53e4), in the order of ``list_presets()``. A preset's numbers change only with a
deliberate edit of this file.
"""

import json
from pathlib import Path

import torch

from figkd.losses import BuildContext, build_objective, list_presets
from figkd.models import build_model

FIXTURE = Path(__file__).parent / "data" / "presets_resolved.json"


def _resolved() -> dict:
    """``{preset: resolved term list}`` of every preset, each built on the meta device (no data)."""
    with torch.device("meta"):
        student, teacher = build_model("resnet8", 10), build_model("resnet8", 10).eval()
        context = BuildContext.from_models(student, teacher, input_size=(32, 32), num_classes=10,
                                           train_targets=[i % 10 for i in range(64)], seed=0)
        return {name: build_objective(name, context=context).spec for name in list_presets()}


def test_every_preset_resolves_as_recorded():
    expected = json.loads(FIXTURE.read_text())
    actual = json.loads(json.dumps(_resolved()))  # tuples as lists, as the fixture holds them
    assert list(actual) == list(expected)  # the same presets, in the same order (--help and docs show it)
    for name in expected:  # key order and number types (1 vs 1.0) too
        assert json.dumps(actual[name]) == json.dumps(expected[name]), name
