"""Losses that take lists of stage tensors (issue 27, item 4): a bare tensor is never iterated along its batch
axis as if its samples were stages. Every public ``*_loss`` function with a list parameter takes a tensor
there as one stage (the same value as ``[tensor]``) and refuses anything else with a TypeError naming the
argument; every term module that indexes a model's whole stage list (``feats[1:]``, ``feats[-1]``)
refuses a tensor there with a TypeError naming the input."""

from __future__ import annotations

import inspect

import pytest
import torch

import figkd.losses as losses
from figkd.losses import (
    BuildContext,
    FeatureShapes,
    at_loss,
    build_objective,
    dml_loss,
    hcl_loss,
    ofd_loss,
    sp_loss,
    term_spec,
)
from figkd.models import build_model


def _maps(seed: int, shape=(4, 8, 6, 6)) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


#: Each stage-list function and its arguments: the list parameters as bare tensors (one stage each), then
#: the other positional arguments.
STAGE_FUNCTIONS = {
    "at_loss": (at_loss, lambda: ((_maps(0), _maps(1, (4, 16, 6, 6))), ())),
    "sp_loss": (sp_loss, lambda: ((_maps(0), _maps(1, (4, 16, 3, 3))), ())),
    "hcl_loss": (hcl_loss, lambda: ((_maps(0, (4, 8, 4, 4)), _maps(1, (4, 8, 4, 4))), ())),
    "ofd_loss": (ofd_loss, lambda: ((_maps(0), _maps(1), torch.linspace(-1, 0, 8)), ())),
    "dml_loss": (dml_loss, lambda: ((_maps(1, (4, 10)),), (_maps(0, (4, 10)),))),  # (student, peers)
}


def _list_parameters(function) -> list[str]:
    return [name for name, p in inspect.signature(function).parameters.items()
            if "Sequence[torch.Tensor]" in str(p.annotation)]


def test_every_public_stage_list_function_is_covered_here():
    found = {name for name in dir(losses) if name.endswith("_loss") and not name.startswith("_")
             and _list_parameters(getattr(losses, name))}
    assert found == set(STAGE_FUNCTIONS)


def _call(name, lists, wrap):
    function, make = STAGE_FUNCTIONS[name]
    tensors, others = make()
    args = [[x] if wrap else x for x in tensors]
    if name == "dml_loss":  # the student's logits come first
        return function(*others, *args)
    return function(*args, *others)


@pytest.mark.parametrize("name", sorted(STAGE_FUNCTIONS))
def test_a_bare_tensor_is_one_stage(name):
    assert torch.equal(_call(name, None, wrap=False), _call(name, None, wrap=True))


@pytest.mark.parametrize("name", sorted(STAGE_FUNCTIONS))
@pytest.mark.parametrize("bad", [3.0, None, "feats", {"a": 1}], ids=["number", "None", "str", "dict"])
def test_anything_else_is_a_type_error_naming_the_argument(name, bad):
    function, make = STAGE_FUNCTIONS[name]
    tensors, others = make()
    first = _list_parameters(function)[0]
    args = [bad, *tensors[1:]]
    with pytest.raises(TypeError, match=rf"{name}: {first} must be a list of tensors .* or one tensor"):
        function(*others, *args) if name == "dml_loss" else function(*args, *others)


def _context(model, feats):
    """The context of a resnet8 -> resnet8 pair, its shapes read from a real forward (probing on the meta
    device costs seconds the first time in a process)."""
    shapes = FeatureShapes(feats=tuple(tuple(f.shape[1:]) for f in feats["feats"]),
                           preact_feats=tuple(tuple(f.shape[1:]) for f in feats["preact_feats"]),
                           pooled=feats["pooled_feat"].shape[1], logits=10,
                           prepool=tuple(feats["prepool_feat"].shape[1:]), name="resnet8")
    return BuildContext(num_classes=10, input_size=(16, 16), student=shapes, teacher=shapes, teacher_module=model)


#: The terms whose module indexes the whole stage list of a model (the stem first).
STAGE_TERMS = ("at", "sp", "vid", "fitnet", "ofd", "reviewkd")


def test_term_modules_refuse_a_bare_tensor_for_a_stage_list():
    model = build_model("resnet8", 10)
    with torch.no_grad():
        _, feats = model(torch.randn(2, 3, 16, 16), return_features=True)
    context = _context(model, feats)
    stage_inputs = {"student_feats", "teacher_feats", "student_preact_feats", "teacher_preact_feats"}
    for name in STAGE_TERMS:
        term = build_objective([{"term": name}], context=context).terms[0]
        inputs = term_spec(name).inputs
        args = {n: (list(feats["preact_feats" if "preact" in n else "feats"]) if n in stage_inputs
                    else feats["pooled_feat"]) for n in inputs}
        term(*args.values())  # lists: fine
        # ReviewKD reads the student's post-ReLU features by default, not its pre-activation ones
        listed = [n for n in inputs if n in stage_inputs and (name, n) != ("reviewkd", "student_preact_feats")]
        for bare in listed:
            with pytest.raises(TypeError, match=rf"{bare} must be the list of a model's stage tensors"):
                term(*[args[n][-1] if n == bare else args[n] for n in inputs])
    peers = build_objective("dml", num_classes=10).terms[1]
    logits = torch.randn(4, 10)
    assert torch.equal(peers(logits, torch.randn(4, 10, generator=torch.Generator().manual_seed(0))),
                       peers(logits, [torch.randn(4, 10, generator=torch.Generator().manual_seed(0))]))
