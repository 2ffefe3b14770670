"""Objectives: weighted sums of named loss terms, built from a preset name or a term list.

    objective = build_objective("figkd")                       # CE 1 + FiGKD 2 (Eq. 7)
    objective = build_objective([{"term": "ce", "weight": 1.0},
                                 {"term": "figkd", "weight": 2.0, "bands": "both"}])
    out = objective(student_logits=s, teacher_logits=t, target=y, epoch=e)
    out["total"].backward()

A term entry is ``{"term": <name>, "weight": w (default 1), "warmup": N epochs (default 0),
"warmup_start": S (default 0, below), "name": <output key> (optional), **options of the term}``. The terms
are those registered with `figkd.losses.register_term` (``list_terms()``; ``term_defaults(name)`` gives their options),
``list_presets()`` / ``preset_spec(name)`` the presets, which the methods declare where they register
their terms. What an objective resolves to (every weight, warm-up and option), its report label and its
run-directory name come from one description (`figkd.losses.description`).

Inputs are keyword arguments named from the vocabulary of `figkd.losses.inputs`; ``objective.needs``
(a `figkd.losses.inputs.Needs`) is the union of what the terms declare (plus ``epoch`` when a term
warms up), from which the engine derives which forwards return features and what the loader yields.
A term with trainable modules or buffers (FitNet's connector, ...) is part of the objective's
``parameters()`` / ``state_dict()``: the engine trains, synchronises, saves and resumes them with the
student (`figkd.engine.learner.Learner`). Terms that need facts about the run (feature shapes,
training-set size, the teacher) are built from a `figkd.losses.BuildContext`.

Warm-up: the weight of a term with ``"warmup": N`` is multiplied by ``min(epoch / N, 1)`` (clamped to
[0, 1]), the rule of mdistiller's DKD (`mdistiller/distillers/DKD.py`: ``min(kwargs["epoch"] /
self.warmup, 1.0)``). Epochs are counted from 1 as in mdistiller's trainer (`BaseTrainer.train`
starts at ``epoch = 1``): in the first epoch the factor is 1/N, from epoch N on it is 1. With
``"warmup_start": S`` the factor is ``min((epoch - S) / N, 1)``: ``S = 1`` is the rule of a trainer that
counts epochs from 0 (dvlab-research/ReviewKD ``CIFAR-100/train.py``: ``min(1, epoch/args.kd_warm_up)`` with
``for epoch in range(args.epochs)``), whose first epoch has weight 0.

A term may return a dict of named parts (MLKD: ce, kd, cc, bc): the output then holds each weighted
part as ``<key>/<part>`` and their sum as ``<key>``. Under DDP the inputs of a ``batch_coupled`` term
are gathered over the ranks (`figkd.losses._distributed`).

For the engine: the forward pass does no host synchronisation (no ``.item()``, no Python branch on
tensor values); ``epoch`` may be a Python number or a 0-dim tensor (then the ramp is computed with
torch ops, on the tensor's device - pass a tensor on the logits' device when capturing the step in a
CUDA graph).
"""

from __future__ import annotations

import copy
import math
import numbers
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn

from ._distributed import gather_batch, world_size
from .context import BuildContext, MissingContextError
from .description import Description, describe
from .inputs import NOT_PER_SAMPLE, VOCABULARY, Needs
from .registry import term_spec

# --------------------------------------------------------------------------- objective


class Objective(nn.Module):
    """Weighted sum of loss terms; see the module docstring. Build with `build_objective`.

    Attributes: ``description`` (its `figkd.losses.description.Description`: resolved terms, label,
    directory name), ``keys`` (output key of each term), ``terms`` (the term modules), ``specs`` (their
    registrations), ``weights``, ``warmups``, ``spec`` (the resolved term list: every weight and option,
    what a run directory records) and ``needs`` (the inputs the terms declare).
    """

    def __init__(self, description: Description, terms: Sequence[nn.Module]) -> None:
        super().__init__()
        self.description = description
        self.keys = tuple(t.key for t in description.terms)
        self.terms = nn.ModuleList(terms)
        self.specs = tuple(term_spec(t.term) for t in description.terms)
        self.weights = tuple(float(t.weight) for t in description.terms)
        self.warmups = tuple(int(t.warmup) for t in description.terms)
        self.warmup_starts = tuple(int(t.warmup_start) for t in description.terms)
        self.spec = description.resolved
        self.needs = Needs.of(*(s.inputs for s in self.specs), ["epoch"] if any(self.warmups) else [])

    @property
    def teacher_mode(self) -> str:
        """``"train"`` when a term's official code runs the teacher in train mode (`TermSpec.teacher_mode`),
        else ``"eval"``."""
        return "train" if any(s.teacher_mode == "train" for s in self.specs) else "eval"

    def forward(self, **inputs: Any) -> dict[str, torch.Tensor]:
        """The weighted terms by key, their parts (``key/part``) and ``total``. Inputs are keyword
        arguments named from the vocabulary; names a term does not need are ignored. Raises TypeError
        naming unknown or missing inputs."""
        unknown = sorted(set(inputs) - set(VOCABULARY))
        if unknown:
            raise TypeError(f"objective got unknown inputs {unknown}; inputs are named from the vocabulary "
                            f"{', '.join(VOCABULARY)} (figkd.losses.inputs)")
        missing = sorted(n for n in self.needs.inputs if inputs.get(n) is None)
        if missing:
            raise TypeError(f"objective ({', '.join(self.keys)}) needs inputs {missing}")
        epoch = inputs.get("epoch")
        coupled = world_size() > 1
        out: dict[str, torch.Tensor] = {}
        total = None
        for key, term, spec, weight, warmup, start in zip(self.keys, self.terms, self.specs, self.weights,
                                                          self.warmups, self.warmup_starts, strict=True):
            args = [gather_batch(inputs[n]) if coupled and spec.batch_coupled and n not in NOT_PER_SAMPLE
                    else inputs[n] for n in spec.inputs]
            value = term(*args)
            if isinstance(value, Mapping):
                value = _sum([out.setdefault(f"{key}/{part}", _scaled(v, weight, epoch, warmup, start))
                              for part, v in value.items()])
            else:
                value = _scaled(value, weight, epoch, warmup, start)
            out[key] = value
            total = value if total is None else total + value
        out["total"] = total
        return out

    def extra_repr(self) -> str:
        parts = []
        for key, w, n in zip(self.keys, self.weights, self.warmups, strict=True):
            parts.append(f"{key}: weight={w}" + (f", warmup={n}" if n else ""))
        return "\n".join(parts)


def _scaled(value: torch.Tensor, weight: float, epoch: float | torch.Tensor | None, warmup: int,
            start: int = 0) -> torch.Tensor:
    """``value * weight``, times the warm-up ramp when ``warmup > 0``."""
    value = value * weight
    return value * _ramp(epoch, warmup, value, start) if warmup > 0 else value


def _sum(values: list[torch.Tensor]) -> torch.Tensor:
    total = values[0]
    for v in values[1:]:
        total = total + v
    return total


def _ramp(epoch: float | torch.Tensor, warmup: int, like: torch.Tensor, start: int = 0) -> float | torch.Tensor:
    """min((epoch - start) / warmup, 1), clamped at 0; torch ops for a tensor epoch (no host sync)."""
    if isinstance(epoch, torch.Tensor):
        e = epoch.to(like.dtype)
        return torch.clamp((e - start if start else e) / warmup, min=0.0, max=1.0)
    if isinstance(epoch, bool) or not isinstance(epoch, numbers.Real) or math.isnan(epoch):
        raise TypeError(f"epoch must be a number or a 0-dim tensor, got {epoch!r}")
    return min(max((float(epoch) - start) / warmup, 0.0), 1.0)


#: What each feature entry is, in the words of error messages.
_ENTRY_WORDS = {"feats": "stage feature maps", "preact_feats": "pre-activation stage features",
                "pooled": "pooled embedding", "prepool": "map before the global pooling",
                "cams": "class activation maps"}


def _check_features(term: str, context: BuildContext) -> None:
    """ValueError naming the term, the model and what it lacks when the term needs a feature (stage maps,
    pooled embedding, ...) that a model of the context does not give (a model from outside the zoo:
    `figkd.losses.context.FeatureShapes.missing`)."""
    for name in term_spec(term).inputs:
        side, _, entry = name.partition("_")
        shapes = getattr(context, side, None) if side in ("student", "teacher") else None
        why = shapes.lacks(entry) if shapes is not None else None
        if why:
            raise ValueError(f"{term} cannot distil with the {side} {shapes.name}: it needs the {side}'s "
                             f"{_ENTRY_WORDS[entry]} ({name}), and {why}")


def check_options(spec: str | Sequence[Mapping[str, Any]]) -> None:
    """Check an objective's option values without models or data: `describe` (terms, options, weights,
    warm-ups), then each term built on an empty `BuildContext`, so that the term's own checks run (KD's
    ``temperature`` > 0, ...) - ValueError ``objective term 'kd': KDLoss: temperature must be > 0``, as
    `build_objective` says it. A term built from the models or the training set (FitNet, CRD, OFD, ...:
    `MissingContextError`) is not judged here; the engine's build checks it. The global torch RNG is left
    as it was (a term may draw its initial parameters)."""
    description = describe(spec)
    with torch.random.fork_rng(devices=[]):
        for term in description.terms:
            try:
                term_spec(term.term).build(BuildContext(), **copy.deepcopy(term.options))
            except MissingContextError:
                continue
            except (ValueError, TypeError) as err:
                raise ValueError(f"objective term {term.term!r}: {err}") from None


def build_objective(spec: str | Sequence[Mapping[str, Any]], *, num_classes: int | None = None,
                    context: BuildContext | None = None) -> Objective:
    """Build an `Objective` from a preset name (`list_presets()`) or a list of term entries.

    Each entry: ``{"term": name, "weight": 1.0, "warmup": 0, "name": key, **options}``; unknown
    terms, presets or options and invalid values raise ValueError naming the valid ones (weights and
    warm-ups: `figkd.checks.TERM_WEIGHT`, `figkd.checks.TERM_WARMUP`, the rules of the config checks).
    Output keys are the terms' names (``name`` overrides; a term used twice without names gets ``term_1``,
    ``term_2``, ...). The terms are resolved by `figkd.losses.description.describe`. ``context``
    (`BuildContext`) gives the terms the facts they are built from; ``num_classes`` alone is the context
    of logit terms (it fixes the FiGKD grid, checked on every call). A term needing a fact the context
    lacks raises ValueError naming it.
    """
    description = describe(spec)
    if num_classes is not None and (isinstance(num_classes, bool) or not isinstance(num_classes, int)
                                    or num_classes < 1):
        raise ValueError(f"num_classes must be a positive integer, got {num_classes!r}")
    if context is None:
        context = BuildContext(num_classes=num_classes)
    elif num_classes is not None and context.num_classes not in (None, num_classes):
        raise ValueError(f"num_classes={num_classes} differs from the context's {context.num_classes}")
    modules = []
    for term in description.terms:
        _check_features(term.term, context)
        try:
            modules.append(term_spec(term.term).build(context, **copy.deepcopy(term.options)))
        except (ValueError, TypeError) as err:
            raise ValueError(f"objective term {term.term!r}: {err}") from None
    return Objective(description, modules)
