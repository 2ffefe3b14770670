"""Similarity-preserving knowledge distillation (Tung and Mori, ICCV 2019), as in mdistiller.

mdistiller (``mdistiller/distillers/SP.py``, ``sp_loss`` / ``similarity_loss``): a (B, C, H, W) map is
flattened to (B, C H W), its B x B Gram matrix ``G = f f^T`` is row-wise L2-normalised
(``F.normalize``), and the loss of a stage is the squared Frobenius distance of the two normalised
Gram matrices divided by B^2; the stage losses are summed:

    L_sp = sum_i ||normalize(G_t^i) - normalize(G_s^i)||_F^2 / B^2

Student and teacher maps may differ in channels and size (each enters through its own B x B matrix).
mdistiller applies it to the last stage only (``feats[-1]``); CIFAR-100 setting
(``mdistiller/engine/cfg.py``, ``CFG.SP``): feature weight 3000, CE weight 1 (the ``sp`` preset).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ._common import check_features, full_precision, require_stage_lists, stage_list
from .registry import register_term


def _normalised_gram(feat: torch.Tensor) -> torch.Tensor:
    f = feat.reshape(len(feat), -1)
    return F.normalize(f @ f.t())


@full_precision
def _stage_loss(f_s: torch.Tensor, f_t: torch.Tensor) -> torch.Tensor:
    b = len(f_s)
    if len(f_t) != b:
        raise ValueError(f"sp_loss: student and teacher maps differ in batch size: {tuple(f_s.shape)} and "
                         f"{tuple(f_t.shape)}")
    return (_normalised_gram(f_t.detach()) - _normalised_gram(f_s)).pow(2).sum() / (b * b)


def sp_loss(student_feats: Sequence[torch.Tensor], teacher_feats: Sequence[torch.Tensor]) -> torch.Tensor:
    """Similarity-preserving loss summed over stage pairs (see the module docstring).

    Args:
        student_feats, teacher_feats: equally long, non-empty lists of (B, ...) maps (the teacher is
            detached); each pair may differ in channels and spatial size; a tensor is one stage.

    Returns a 0-dim tensor in float32 or wider (unweighted; mdistiller multiplies it by 3000). Raises
    ValueError for lists of different lengths, an empty list, maps of different batch sizes or an empty
    batch, TypeError for an argument that is neither a list of tensors nor a tensor. Mixes the samples of
    the batch (B x B matrices).
    """
    student_feats = stage_list(student_feats, "sp_loss", "student_feats")
    teacher_feats = stage_list(teacher_feats, "sp_loss", "teacher_feats")
    check_features(student_feats, teacher_feats, name="sp_loss", inputs=("student_feats", "teacher_feats"))
    losses = [_stage_loss(s, t) for s, t in zip(student_feats, teacher_feats, strict=True)]
    total = losses[0]
    for value in losses[1:]:
        total = total + value
    return total


@register_term("sp", inputs=("student_feats", "teacher_feats"), batch_coupled=True, function=sp_loss,
               source="Tung and Mori ICCV 2019; mdistiller/distillers/SP.py (last stage, weight 3000: "
                      "mdistiller/engine/cfg.py CFG.SP)",
               help="similarity-preserving KD: the batch's normalised Gram matrices of the last stage",
               presets={
                   # mdistiller CIFAR-100 SP: CFG.SP.LOSS.CE_WEIGHT 1, FEAT_WEIGHT 3000, last stage
                   # (mdistiller/engine/cfg.py; mdistiller/distillers/SP.py).
                   "sp": [{"term": "ce"}, {"term": "sp", "weight": 3000.0}],
               })
class SP(nn.Module):
    """The SP term on the last stage's maps, as mdistiller: ``sp_loss([student_feats[-1]], [teacher_feats[-1]])``."""

    def forward(self, student_feats: list[torch.Tensor], teacher_feats: list[torch.Tensor]) -> torch.Tensor:
        require_stage_lists("SP", student_feats=student_feats, teacher_feats=teacher_feats)
        return sp_loss([student_feats[-1]], [teacher_feats[-1]])
