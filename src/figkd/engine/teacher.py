"""The teacher's forward: run once per step, its outputs shared by every student of the run.

It returns the vocabulary entries (`figkd.losses.inputs`) that the run's terms declare: always
``teacher_logits``; ``teacher_feats`` / ``teacher_preact_feats`` / ``teacher_pooled`` when a term needs
the teacher's features (then the forward returns them: ``model(x, return_features=True)``); and
``teacher_logits_strong`` for the strong view. It runs in eval mode under ``torch.no_grad()`` (its
outputs are ordinary tensors without history, usable as constants in the students' graphs: no copy)
and under the step's autocast.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ..data.batch import Batch
from ..losses.inputs import Needs


def forward_outputs(model: nn.Module, images: torch.Tensor, side: str, features: bool) -> dict[str, Any]:
    """``{side}_logits`` and, with ``features``, ``{side}_feats``, ``{side}_preact_feats`` and
    ``{side}_pooled`` of ``model`` on ``images`` (the structure of `figkd.models.registry`)."""
    if not features:
        return {f"{side}_logits": model(images)}
    logits, feats = model(images, return_features=True)
    return {f"{side}_logits": logits, f"{side}_feats": feats["feats"],
            f"{side}_preact_feats": feats["preact_feats"], f"{side}_pooled": feats["pooled_feat"]}


class TeacherForward:
    """Calls ``teacher`` on a batch and returns what ``needs`` (the union over the run's terms) asks
    of it; see the module docstring."""

    def __init__(self, teacher: nn.Module, needs: Needs):
        self.module = teacher
        self.features = needs.features("teacher")
        self.strong = needs.strong("teacher")

    def __call__(self, batch: Batch, autocast) -> dict[str, Any]:
        with torch.no_grad(), autocast:
            out = forward_outputs(self.module, batch.images, "teacher", self.features)
            if self.strong:
                out["teacher_logits_strong"] = self.module(batch.strong)
        return out
