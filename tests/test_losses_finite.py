"""Every registered loss term is finite, in value and gradient, at any logit scale (issue 17, section 1).

Property: for float32 logits of magnitude up to 1e4 (extreme, tied and one-hot vectors, every
student/teacher pairing of them), batch 1, C = 2 classes, each target and each temperature in
0.05..10 (for terms with a ``temperature`` option), the term's value and the gradients of every
student input are finite. Terms that read stage features, embeddings, the map before the pooling or
class activation maps get them at the same scales (zeros, ties, +-1e4, random values of magnitude 1e4
and 1e-4), shaped as a resnet8 pair's; a term that reads both logits and features (DiffKD) gets every
logit pairing and every feature kind, the kinds cycled over the pairings rather than crossed with
them. The samples of a batch are copies of each other. Terms with a
BatchNorm in their trainable modules get a batch of 2 (in training mode a BatchNorm over a 1 x 1 map
needs more than one sample: ReviewKD's fusion of the embedding, DiffKD's logits branch). The build
context has a training set of 16 samples of alternating classes (CRD's memory bank and negatives).
The terms come from the registry (`list_terms()`), so a term added later is tested without editing
this file; what a term needs is its declared inputs (`objective.needs`, the vocabulary of
`figkd.losses.inputs`). A batch of 0 samples is a ValueError for every term.
"""

import itertools

import pytest
import torch
from torch import nn

from figkd.losses import BuildContext, build_objective, list_terms, term_defaults
from figkd.models import build_model

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
    "ekd": [{"variant": "paper"}, {"variant": "code"}],
    # DiffKD's default autoencoder width is 1024 whatever the map's (the official wrapper's); the same formula at
    # the DiffKD class's half width runs the hundreds of cases ~100x faster (336 s at 1024 on this machine).
    "diffkd": [{"ae_channels": None}],
}


#: Feature values of the feature terms' cases: name -> function of a shape.
FEATURES = {
    "zeros": lambda shape: torch.zeros(shape),
    "tied_high": lambda shape: torch.full(shape, BIG),
    "alternating": lambda shape: BIG * (1 - 2 * (torch.arange(torch.Size(shape).numel()) % 2)).reshape(shape).float(),
    "random_big": lambda shape: BIG * torch.randn(shape, generator=torch.Generator().manual_seed(0)),
    "random_tiny": lambda shape: 1e-4 * torch.randn(shape, generator=torch.Generator().manual_seed(1)),
}


#: Suffixes of the feature inputs of each side (the rest of the vocabulary is built by `_inputs`).
FEATURE_INPUTS = ("feats", "preact_feats", "pooled", "prepool", "cams")


def _context():
    """A resnet8 -> resnet8 pair at C = 2 (features of 16-64 channels at 32x32 .. 8x8), trained on 16
    samples of alternating classes."""
    return BuildContext.from_models(build_model("resnet8", C), build_model("resnet8", C), input_size=(32, 32),
                                    train_targets=[i % C for i in range(16)])


def _batch(objective) -> int:
    """1, or 2 for an objective with a BatchNorm (see the module docstring)."""
    return 2 if any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in objective.modules()) else 1


def _is_feature(name: str) -> bool:
    return name.startswith(("student_", "teacher_")) and name.split("_", 1)[1] in FEATURE_INPUTS


def _needed_inputs(objective) -> frozenset[str]:
    """Names of the inputs the built objective (one term) declares, but the epoch (always passed)."""
    return frozenset(objective.needs.inputs - {"epoch"})


def _feature_inputs(needed, kind: str, context, batch: int):
    """Features and embeddings of both sides filled with the values of FEATURES[kind]; student ones
    require grad (returned separately)."""
    kw, grads = {}, []
    for side in ("student", "teacher"):
        shapes = getattr(context, side)
        per_sample = {"feats": list(shapes.feats), "preact_feats": list(shapes.preact_feats),
                      "pooled": (shapes.pooled,), "prepool": shapes.prepool,
                      "cams": (shapes.logits, *shapes.prepool[1:])}  # CAMs: one map per class, prepool's size
        for suffix, dims in per_sample.items():
            name = f"{side}_{suffix}"
            if name not in needed:
                continue
            listed = isinstance(dims, list)  # a list input (one tensor per stage) or one tensor
            values = [FEATURES[kind]((batch, *d)).requires_grad_(side == "student")
                      for d in (dims if listed else [dims])]
            kw[name] = values if listed else values[0]
            grads += values if side == "student" else []
    return kw, grads


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
    kw = {"student_logits": s, "epoch": torch.tensor(1.0), "index": torch.arange(batch)}
    grads = [s] if "student_logits" in needed else []
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
    if "peer_logits" in needed:  # DML: the other peer's logits (the teacher vector plays that peer)
        kw["peer_logits"] = [torch.tensor([teacher] * batch, dtype=torch.float32).reshape(batch, C)]
    unknown = needed - set(kw) - {n for n in needed if _is_feature(n)}
    assert not unknown, f"the property test does not know how to make inputs {sorted(unknown)}"
    return kw, grads


def _cases(needed, context, batch=1):
    """(description, keyword inputs, student tensors) of every case of a term's declared inputs."""
    logits = any(n.endswith(("logits", "logits_strong")) for n in needed)
    features = any(_is_feature(n) for n in needed)
    targets = range(C) if "target" in needed else (0,)
    pairs = (list(itertools.product(VECTORS.items(), VECTORS.items())) if logits
             else [(("-", VECTORS["tied_zero"]),) * 2])
    if logits and features:  # every logit pair and every feature kind, the kinds cycled over the pairs: both
        combos = list(zip(pairs, itertools.cycle(FEATURES)))  # covered, at a fifth of their product (DiffKD)
    else:
        combos = list(itertools.product(pairs, FEATURES if features else ["-"]))
    for ((sn, s), (tn, t)), kind, y in ((pair, kind, y) for pair, kind in combos for y in targets):
        kw, grads = _inputs(s, t, y, needed, batch=batch)
        if features:
            extra, more = _feature_inputs(needed, kind, context, batch)
            kw.update(extra)
            grads += more
        yield f"student={sn} teacher={tn} target={y} features={kind}", kw, grads


#: Terms undefined at C = 2, which must say so when they are built: LDRLD ranks the top k >= 2 classes
#: against the rest.
NEEDS_MORE_CLASSES = {"ldrld": "ldrld needs at least 3 classes"}


def _refuses_two_classes(name: str) -> bool:
    """For a term of NEEDS_MORE_CLASSES: check that building it for C = 2 is refused with its one-line
    error; True."""
    if name not in NEEDS_MORE_CLASSES:
        return False
    with pytest.raises(ValueError, match=NEEDS_MORE_CLASSES[name]):
        build_objective([next(_entries(name))], context=_context())
    return True


@pytest.mark.parametrize("name", list_terms())
def test_every_term_is_finite_in_value_and_gradient(name):
    if _refuses_two_classes(name):
        return
    failures = []
    context = _context()
    for entry in _entries(name):
        objective = build_objective([entry], context=context)
        for case, kw, grads in _cases(_needed_inputs(objective), context, batch=_batch(objective)):
            loss = objective(**kw)["total"]
            loss.backward()
            if not torch.isfinite(loss) or not all(g.grad is None or torch.isfinite(g.grad).all() for g in grads):
                failures.append(f"{entry} {case}: loss {loss.item()}")
            assert any(g.grad is not None for g in grads), f"{entry}: no gradient reached the student inputs"
    assert not failures, f"{len(failures)} non-finite cases, first: " + "; ".join(failures[:3])


@pytest.mark.parametrize("name", list_terms())
def test_every_term_refuses_an_empty_batch(name):
    if _refuses_two_classes(name):
        return
    entry = next(_entries(name))
    context = _context()
    objective = build_objective([entry], context=context)
    _, kw, _ = next(_cases(_needed_inputs(objective), context, batch=0))
    with pytest.raises(ValueError, match="empty batch"):
        objective(**kw)
