"""Every registered loss term is finite, in value and gradient, at any logit scale (issue 17, section 1).

Property: for float32 logits of magnitude up to 1e4 (extreme, tied and one-hot vectors, every
student/teacher pairing of them), batch 1, C = 2 classes, each target and each temperature in
0.05..10 (for terms with a ``temperature`` option), the term's value and the gradients of every
student input are finite. The terms come from the registry (`list_terms()`), so a term added later
is tested without editing this file; what a term needs is looked up in one place, `_needed_inputs`.
A batch of 0 samples is a ValueError for every term.
"""

import itertools

import pytest
import torch

from figkd.losses import build_objective, list_terms, term_defaults

C = 2
TEMPERATURES = (0.05, 0.3, 1.0, 4.0, 10.0)
BIG = 1e4

#: Logit vectors of C = 2 classes (float32): extreme, tied, one-hot, and the issue's DKD teacher.
VECTORS = {
    "extreme": [BIG, -BIG],
    "extreme_reversed": [-BIG, BIG],
    "extreme_one_sided": [BIG, 0.0],
    "tied_zero": [0.0, 0.0],
    "tied_high": [BIG, BIG],
    "tied_low": [-BIG, -BIG],
    "one_hot_0": [1.0, 0.0],
    "one_hot_1": [0.0, 1.0],
    "confident_100": [100.0, 0.0],  # issue 17: the DKD teacher whose gradient was nan at T = 1
}

#: Options a term needs to be defined at C = 2, and its variants worth covering. FiGKD's default
#: 2-D transform needs a grid of at least 2 x 2 (2 classes give a 2 x 1 grid: `build_objective`
#: refuses level 1), so at C = 2 it runs on the logit vector (dims=1), once per criterion.
VARIANTS = {
    "figkd": [{"dims": 1, "criterion": c} for c in ("mse", "l1", "kl")],
}


def _needed_inputs(objective) -> frozenset[str]:
    """Names of the inputs the built objective (one term) takes besides student_logits and epoch.

    The only place that reads the registry's input declarations: adapt it when the terms declare
    their inputs from a closed vocabulary (issue #10).
    """
    needed = set(objective.required_inputs)
    if objective.needs_teacher:
        needed.add("teacher_logits")
    if objective.needs_target:
        needed.add("target")
    return frozenset(needed)


def _entries(name: str):
    variants = VARIANTS.get(name, [{}])
    temps = TEMPERATURES if "temperature" in term_defaults(name) else (None,)
    for options, temp in itertools.product(variants, temps):
        entry = {"term": name, **options}
        if temp is not None:
            entry["temperature"] = temp
        yield entry


def _inputs(student, teacher, target, needed, *, batch=1):
    """Keyword inputs of one call; student views require grad (returned separately)."""
    s = torch.tensor([student] * batch, dtype=torch.float32).reshape(batch, C).requires_grad_()
    kw = {"student_logits": s, "epoch": 1}
    grads = [s]
    if "teacher_logits" in needed:
        kw["teacher_logits"] = torch.tensor([teacher] * batch, dtype=torch.float32).reshape(batch, C)
    if "target" in needed:
        kw["target"] = torch.full((batch,), target, dtype=torch.long)
    if "student_logits_strong" in needed:  # the strong view gets the pair the other way round
        s2 = torch.tensor([teacher] * batch, dtype=torch.float32).reshape(batch, C).requires_grad_()
        kw["student_logits_strong"] = s2
        grads.append(s2)
    if "teacher_logits_strong" in needed:
        kw["teacher_logits_strong"] = torch.tensor([student] * batch, dtype=torch.float32).reshape(batch, C)
    unknown = needed - set(kw)
    assert not unknown, f"the property test does not know how to make inputs {sorted(unknown)}"
    return kw, grads


@pytest.mark.parametrize("name", list_terms())
def test_every_term_is_finite_in_value_and_gradient(name):
    failures = []
    for entry in _entries(name):
        objective = build_objective([entry], num_classes=C)
        needed = _needed_inputs(objective)
        targets = range(C) if "target" in needed else (0,)
        for (sn, s), (tn, t), y in itertools.product(VECTORS.items(), VECTORS.items(), targets):
            kw, grads = _inputs(s, t, y, needed)
            loss = objective(**kw)["total"]
            loss.backward()
            if not torch.isfinite(loss) or not all(torch.isfinite(g.grad).all() for g in grads):
                failures.append(f"{entry} student={sn} teacher={tn} target={y}: loss {loss.item()}, "
                                f"grad {[g.grad.tolist() for g in grads]}")
    assert not failures, f"{len(failures)} non-finite cases, first: " + "; ".join(failures[:3])


@pytest.mark.parametrize("name", list_terms())
def test_every_term_refuses_an_empty_batch(name):
    entry = next(_entries(name))
    objective = build_objective([entry], num_classes=C)
    kw, _ = _inputs([0.0, 0.0], [0.0, 0.0], 0, _needed_inputs(objective), batch=0)
    with pytest.raises(ValueError, match="empty batch"):
        objective(**kw)
