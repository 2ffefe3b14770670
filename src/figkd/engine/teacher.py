"""The teacher's forward: run once per step, its outputs shared by every student of the run.

It returns the vocabulary entries (`figkd.losses.inputs`) that the run's terms declare: always
``teacher_logits``; ``teacher_feats`` / ``teacher_preact_feats`` / ``teacher_pooled`` /
``teacher_prepool`` when a term needs the teacher's features (then the forward returns them:
``model(x, return_features=True)``), and ``teacher_cams`` when a term declares them; and
``teacher_logits_strong`` for the strong view. It runs under ``torch.no_grad()`` (its outputs are
ordinary tensors without history, usable as constants in the students' graphs: no copy) and under the
step's autocast.

The teacher's mode (:func:`resolve_teacher_mode`): eval by default - BatchNorm normalises with its
running statistics, which never change (mdistiller's `Distiller.train` ends with ``teacher.eval()``; a
teacher left in train mode by mistake is a bug users report in other toolkits). A term whose official
code runs the teacher in train mode declares it (`figkd.losses.TermSpec.teacher_mode`: OFD), and a run can
ask for it (``teacher_mode: train``: ReviewKD's CIFAR-100 cells, as dvlab-research/ReviewKD's trainer):
BatchNorm then normalises each batch with its own statistics and updates the running ones, in place,
inside the (captured) step; the engine checkpoints them with every member, so ``--resume`` continues
exactly. One run has one teacher forward: its students must agree on the mode.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ..data.batch import Batch
from ..errors import ConfigError
from ..losses.inputs import Needs
from ..models.base import class_activation_maps


def forward_outputs(model: nn.Module, images: torch.Tensor, side: str, features: bool,
                    cams: bool = False) -> dict[str, Any]:
    """``{side}_logits`` and, with ``features``, ``{side}_feats``, ``{side}_preact_feats``,
    ``{side}_pooled`` and ``{side}_prepool`` of ``model`` on ``images`` (the structure of
    `figkd.models.registry`); with ``cams`` also ``{side}_cams`` (`figkd.models.base.class_activation_maps`)."""
    if not features:
        return {f"{side}_logits": model(images)}
    logits, feats = model(images, return_features=True)
    # a model from outside the zoo may lack entries (None here); a term needing one was refused at build time
    out = {f"{side}_logits": logits, f"{side}_feats": feats.get("feats"),
           f"{side}_preact_feats": feats.get("preact_feats"), f"{side}_pooled": feats.get("pooled_feat"),
           f"{side}_prepool": feats.get("prepool_feat")}
    if cams:
        out[f"{side}_cams"] = class_activation_maps(model, feats["prepool_feat"])
    return out


class TeacherForward:
    """Calls ``teacher`` on a batch and returns what ``needs`` (the union over the run's terms) asks
    of it; see the module docstring."""

    def __init__(self, teacher: nn.Module, needs: Needs):
        self.teacher = teacher  # the module whose parameters and buffers the step reads
        self.module = teacher  # what is called: the teacher, or its torch.compile wrapper
        self.features = needs.features("teacher")
        self.cams = needs.cams("teacher")
        self.strong = needs.strong("teacher")

    @classmethod
    def on(cls, teacher: nn.Module, members, device: torch.device, channels_last: bool = False,
           mode: str = "eval") -> TeacherForward:
        """The teacher forward of a run's ``members`` (what their objectives need of it), with ``teacher`` moved
        to ``device`` (channels_last when asked), in ``mode`` (``"eval"`` or ``"train"``, see the module
        docstring) and frozen (no parameter requires a gradient)."""
        teacher.to(device, memory_format=torch.channels_last if channels_last else torch.contiguous_format)
        teacher.train(mode == "train")
        for p in teacher.parameters():
            p.requires_grad_(False)
        return cls(teacher, Needs.of(*(m.learner.needs.inputs for m in members)))

    def __call__(self, batch: Batch, autocast) -> dict[str, Any]:
        with torch.no_grad(), autocast:
            out = forward_outputs(self.module, batch.images, "teacher", self.features, self.cams)
            if self.strong:
                out["teacher_logits_strong"] = self.module(batch.strong)
        return out


def resolve_teacher_mode(setting: str, objectives) -> str:
    """The teacher's mode of a run: ``setting`` (the config's ``teacher_mode``) when ``"eval"`` or ``"train"``;
    for ``"auto"``, what the ``objectives`` (`figkd.losses.Objective`, one per student) ask for
    (``Objective.teacher_mode``). Raises ConfigError when, under ``auto``, the students ask for different
    modes: they share one teacher forward, and a second teacher in the other mode (its own running
    statistics, its own forward) would make the run two experiments; the message names who wants which and
    the two ways on."""
    if setting in ("eval", "train"):
        return setting
    wanted = {}
    for objective in objectives:
        wanted.setdefault(objective.teacher_mode, []).append(objective.description.label)
    if len(wanted) > 1:
        train = [s.name for o in objectives for s in o.specs if s.teacher_mode == "train"]
        raise ConfigError(f"the students of this run ask for different teacher modes: {', '.join(wanted['train'])} "
                          f"in train mode (the official code of {', '.join(sorted(set(train)))} runs its teacher so), "
                          f"{', '.join(wanted['eval'])} in eval mode; they share one teacher forward: run them "
                          "separately, or set teacher_mode: eval (or train) for all")
    return next(iter(wanted), "eval")
