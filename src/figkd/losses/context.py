"""The build context: the facts a loss term is built from.

A term with trainable parts sizes them from the models it distils between: FitNet's connector from
the student's and the teacher's stage shapes, CRD's memory bank from the training-set size, OFD's
margins from the teacher's BatchNorm. The engine builds one :class:`BuildContext` per student, in the
order dataset -> teacher -> student -> objective, and passes it to every term of the student's
objective (`figkd.losses.build_objective(spec, context=...)`).

Feature shapes are probed on the ``meta`` device (shapes without data: no computation, no memory),
by calling the model with its parameters and buffers replaced by meta tensors
(``torch.func.functional_call``), so the real module is neither copied nor changed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from ..models.base import shape_only_batch_norm


@dataclass(frozen=True)
class FeatureShapes:
    """Shapes (without the batch dimension) of what ``model(x, return_features=True)`` returns.

    ``feats`` and ``preact_feats``: one ``(C_i, H_i, W_i)`` per entry of ``features["feats"]``;
    ``pooled``: the width D of ``features["pooled_feat"]``; ``logits``: the number of classes;
    ``prepool``: ``(D, H, W)`` of ``features["prepool_feat"]``; ``name``: the model's registry name (its
    class name if it has none), for messages; ``missing``: ``(entry, why)`` of each entry a model from
    outside the zoo does not give (``feats``, ``preact_feats``, ``pooled``, ``prepool``, ``cams``:
    `figkd.models.adapters`), whose shapes are then empty (0 for ``pooled``).
    """

    feats: tuple[tuple[int, ...], ...]
    preact_feats: tuple[tuple[int, ...], ...]
    pooled: int
    logits: int
    prepool: tuple[int, ...] = ()
    name: str = ""
    missing: tuple[tuple[str, str], ...] = ()

    @property
    def channels(self) -> tuple[int, ...]:
        return tuple(s[0] for s in self.feats)

    def lacks(self, entry: str) -> str | None:
        """Why the model does not give feature ``entry`` (``feats``, ``pooled``, ...), or None when it does."""
        return dict(self.missing).get(entry)


def probe_features(model: nn.Module, input_size: tuple[int, int]) -> FeatureShapes:
    """The feature shapes of ``model`` on a ``(H, W)`` RGB input, computed on the meta device.

    ``model`` must accept ``return_features=True`` (every figkd zoo model does; see
    `figkd.models.registry`; a model from outside the zoo is wrapped in an adapter that does, and whose
    ``missing_features`` says which entries it cannot give). Raises TypeError if it does not.
    """
    from torch.func import functional_call

    state = {**dict(model.named_parameters()), **dict(model.named_buffers())}
    meta = {k: torch.empty_like(v, device="meta") for k, v in state.items()}
    x = torch.empty(1, 3, *input_size, device="meta")
    try:
        with shape_only_batch_norm():
            out = functional_call(model, meta, (x,), {"return_features": True}, strict=False)
    except TypeError as exc:
        raise TypeError(f"{type(model).__name__} does not return stage features "
                        f"(model(x, return_features=True)): {exc}") from None
    logits, feats = out
    explain = getattr(model, "missing_features", None)
    missing = explain(feats) if callable(explain) else {}
    pooled = feats.get("pooled_feat")
    return FeatureShapes(
        feats=tuple(tuple(f.shape[1:]) for f in feats.get("feats", ())),
        preact_feats=tuple(tuple(f.shape[1:]) for f in feats.get("preact_feats", ())),
        pooled=int(pooled.shape[1]) if pooled is not None else 0,
        logits=int(logits.shape[1]),
        prepool=tuple(feats["prepool_feat"].shape[1:]) if "prepool_feat" in feats else (),
        name=getattr(model, "registry_name", "") or type(model).__name__,
        missing=tuple(sorted(missing.items())),
    )


class MissingContextError(ValueError):
    """A term needs a fact its build context lacks (:meth:`BuildContext.require`): nothing is wrong with the
    term's options (`figkd.losses.check_options` skips such a term)."""


@dataclass(frozen=True)
class BuildContext:
    """What a term may read when it is built. Every field may be None outside the engine (a term
    that needs a missing field raises a ValueError naming it: :meth:`require`).

    - ``num_classes``: C, the width of the logits.
    - ``train_size``: number of training samples (CRD's memory bank has one row per sample).
    - ``train_targets``: (N,) int64 CPU tensor, the class of each training sample by its row (CRD
      draws its negatives from the samples of the other classes).
    - ``input_size``: ``(H, W)`` of the training images.
    - ``student``, ``teacher``: :class:`FeatureShapes` of each model at ``input_size``.
    - ``teacher_module``: the teacher itself, read-only (OFD reads its BatchNorm, CAT-KD its
      classifier). A term must copy what it needs (``.detach().clone()``), never keep the module: a
      Learner whose parameters include the teacher's is refused.
    - ``seed``: the run's seed, from which a term that draws random numbers at every step makes its
      keys (`figkd.losses.random.make_key`).
    """

    num_classes: int | None = None
    train_size: int | None = None
    train_targets: torch.Tensor | None = None
    input_size: tuple[int, int] | None = None
    student: FeatureShapes | None = None
    teacher: FeatureShapes | None = None
    teacher_module: nn.Module | None = None
    seed: int = 0

    @classmethod
    def from_models(cls, student: nn.Module, teacher: nn.Module | None, *, input_size: tuple[int, int],
                    num_classes: int | None = None, train_size: int | None = None,
                    train_targets: Sequence[int] | torch.Tensor | None = None, seed: int = 0) -> BuildContext:
        """A context with both models' feature shapes probed at ``input_size`` (meta device).
        ``train_targets`` (the training labels by row) also gives ``train_size``; ValueError if both are
        given and differ."""
        s = probe_features(student, input_size)
        t = probe_features(teacher, input_size) if teacher is not None else None
        if train_targets is not None:
            train_targets = torch.as_tensor(train_targets, dtype=torch.int64, device="cpu")
            if train_size is not None and train_size != len(train_targets):
                raise ValueError(f"train_size {train_size} differs from the {len(train_targets)} train_targets")
            train_size = len(train_targets)
        return cls(num_classes=num_classes if num_classes is not None else s.logits, train_size=train_size,
                   train_targets=train_targets, input_size=tuple(input_size), student=s, teacher=t,
                   teacher_module=teacher, seed=seed)

    def require(self, term: str, *fields: str) -> Any:
        """The values of ``fields``; MissingContextError (a ValueError) naming the term and the missing fields
        if any is None."""
        missing = [f for f in fields if getattr(self, f) is None]
        if missing:
            raise MissingContextError(
                f"term {term!r} is built from the {' and '.join(missing)} of its build context: build it "
                "through the engine (figkd distill), or pass build_objective(..., context="
                "BuildContext.from_models(student, teacher, input_size=(H, W), train_size=N))")
        values = tuple(getattr(self, f) for f in fields)
        return values[0] if len(values) == 1 else values
