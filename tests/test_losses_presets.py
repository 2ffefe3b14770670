"""Every objective preset resolves to the term list it resolved to when presets moved from a table in
``figkd/losses/objective.py`` to the registrations of their methods (issue 21).

``tests/data/presets_resolved.json`` holds ``build_objective(name, context=...).spec`` of every preset
(every weight, warm-up and option, in order), written by `_resolved` below on the code before that change
(main at commit afa53e4), in the order of ``list_presets()``. A preset's numbers change only with a
deliberate edit of this file. Deliberate edits so far (issue 22, each to its official setting): ``fitnet``
gained ``teacher_hint_layer`` (null: mdistiller's one index); ``cat_kd`` the bias-free student classifier;
``diffkd`` the official autoencoder width 1024; ``ekd`` and ``ekd-code`` ramp only the Dirichlet term
(``dirichlet_warmup`` 30), not the whole term (an entry ``warmup`` of 30 did).
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


def test_labels_and_directory_names_are_those_of_before():
    """Pinned on the code before the objective description (main at afa53e4): what ``rundir.objective_name``
    and ``runs.method_name`` returned; both now delegate to `figkd.losses.description`."""
    from figkd.engine.rundir import objective_name
    from figkd.experiments.runs import method_name
    from figkd.losses import describe

    cases = [
        ([{"term": "ce", "weight": 1.0}, {"term": "figkd", "weight": 2.0, "bands": "high"}], "ce+figkd-1a858d",
         "figkd"),
        ([{"term": "ce"}, {"term": "dkd", "beta": 6.0, "warmup": 20}], "ce+dkd-568dc4", "ce + dkd(beta=6, warmup=20)"),
        ([{"term": "ekd", "variant": "code", "warmup": 30}], "ekd-21e1b8", "ekd(variant=code, warmup=30)"),
        ([{"term": "ce", "weight": "1e-3"}], "ce-f43a6f", "0.001*ce"),
        ("kd", "kd", "kd"),
    ]
    for spec, dirname, label in cases:
        assert (objective_name(spec), method_name(spec)) == (dirname, label)
        assert (describe(spec).dirname, describe(spec).label) == (dirname, label)
    # a term this process does not know (a plugin not loaded): named from what the run recorded
    unknown = [{"term": "mykd", "weight": 0.5, "temperature": 3.0}]
    assert (objective_name(unknown), method_name(unknown)) == ("mykd-4fec46", "0.5*mykd(temperature=3)")
    assert (method_name(None), method_name(3)) == ("default", "3")


def test_a_term_list_equal_to_a_preset_is_labelled_by_it():
    from figkd.losses import describe, preset_spec
    from figkd.losses.description import label

    for name in list_presets():
        terms = preset_spec(name)
        assert label(terms) == name and describe(terms).label == name
        assert describe(name).terms == describe(terms).terms  # the same resolved terms


def test_docs_table_lists_every_preset_with_its_weights():
    """docs/method.md section 5: one row per preset, in order; each row's terms with their weights as
    ``figkd distill --help`` shows them, and each warm-up."""
    import re

    from figkd.losses import preset_spec

    text = (Path(__file__).resolve().parents[1] / "docs" / "method.md").read_text()
    table = text[text.index("| preset | terms | source |"):]
    rows = [row.split(" | ") for row in table[:table.index("\n\n")].splitlines()[2:]]
    assert [row[0].strip("| `") for row in rows] == list_presets()
    for row in rows:
        name, terms = row[0].strip("| `"), row[1]
        spec = preset_spec(name)
        weights = " + ".join(f"{t['term']} {t.get('weight', 1.0):g}" for t in spec)
        assert re.sub(r"\s*\([^)]*\)", "", terms).split(",")[0] == weights, name
        for t in spec:
            assert "warmup" not in t or f"warm-up {t['warmup']}" in terms, name
