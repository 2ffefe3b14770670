"""Cross-entropy with the ground truth, as a loss term of the objective."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ._common import check_logits, check_target, full_precision
from .registry import register_term


@full_precision
def ce_loss(student_logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy of (B, C) logits against (B,) class indices, in float32 or wider."""
    check_logits(student_logits, name="ce_loss")
    check_target(target, student_logits, name="ce_loss")
    return F.cross_entropy(student_logits, target.long())


@register_term("ce", inputs=("student_logits", "target"), function=ce_loss,
               source="cross-entropy with the ground truth",
               help="cross-entropy with the ground-truth labels",
               presets={
                   # Student trained alone: CE only (mdistiller "NONE"/vanilla distiller).
                   "vanilla": [{"term": "ce"}],
               })
class CELoss(nn.Module):
    """`ce_loss` as a module: `CELoss()(student_logits, target)`."""

    def forward(self, student_logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return ce_loss(student_logits, target)
