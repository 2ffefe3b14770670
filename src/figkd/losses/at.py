"""Attention transfer (Zagoruyko and Komodakis, ICLR 2017), as in mdistiller.

mdistiller (``mdistiller/distillers/AT.py``, ``at_loss`` / ``single_stage_at_loss``): for each entry of the
feature lists after the first (``feats[1:]``: the stages after the stem, for the models whose list starts with
their stem), the spatial attention map of a (B, C, H, W) feature is ``a = normalize(mean_c f^p)``
flattened to (B, H W) and L2-normalised per sample; the loss of a stage is the mean over batch and
positions of the squared difference of the two maps, and the stage losses are summed:

    L_at = sum_i mean((a(f_s[i]) - a(f_t[i]))^2)

When the spatial sizes differ, the larger map is average-pooled to the smaller (adaptive pooling,
square maps, as the official code). CIFAR-100 setting (``mdistiller/engine/cfg.py``, ``CFG.AT``):
p = 2, feature weight 1000, CE weight 1 (the ``at`` preset).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ._common import check_features, check_maps, check_positive, full_precision, require_stage_lists, stage_list
from .registry import register_term


def _attention(feat: torch.Tensor, p: float) -> torch.Tensor:
    return F.normalize(feat.pow(p).mean(1).reshape(feat.shape[0], -1))


@full_precision
def _stage_loss(f_s: torch.Tensor, f_t: torch.Tensor, p: float) -> torch.Tensor:
    s_h, t_h = f_s.shape[2], f_t.shape[2]
    if s_h > t_h:
        f_s = F.adaptive_avg_pool2d(f_s, (t_h, t_h))
    elif s_h < t_h:
        f_t = F.adaptive_avg_pool2d(f_t, (s_h, s_h))
    return (_attention(f_s, p) - _attention(f_t.detach(), p)).pow(2).mean()


def at_loss(student_feats: Sequence[torch.Tensor], teacher_feats: Sequence[torch.Tensor],
            p: float = 2.0) -> torch.Tensor:
    """Attention-transfer loss summed over stage pairs (see the module docstring).

    Args:
        student_feats, teacher_feats: equally long lists of (B, C_i, H_i, W_i) maps (channels may
            differ between student and teacher; the teacher is detached); a tensor is one stage.
        p: exponent of the attention map (mdistiller ``CFG.AT.P = 2``).

    Raises ValueError for lists of different lengths, no stage, a map that is not 4-D or an empty batch,
    TypeError for an argument that is neither a list of tensors nor a tensor. Computed in float32 or
    wider.
    """
    student_feats = stage_list(student_feats, "at_loss", "student_feats")
    teacher_feats = stage_list(teacher_feats, "at_loss", "teacher_feats")
    check_features(student_feats, teacher_feats, name="at_loss", inputs=("student_feats", "teacher_feats"))
    check_maps("at_loss", student_feats=student_feats, teacher_feats=teacher_feats)
    p = check_positive(p, "at_loss: p")
    losses = [_stage_loss(s, t, p) for s, t in zip(student_feats, teacher_feats, strict=True)]
    total = losses[0]
    for value in losses[1:]:
        total = total + value
    return total


#: How AT pairs the stages after the stem when student and teacher have different numbers of them.
STAGE_PAIRINGS = ("same", "first", "last")


@register_term("at", inputs=("student_feats", "teacher_feats"), function=at_loss,
               source="Zagoruyko and Komodakis ICLR 2017; mdistiller/distillers/AT.py (p = 2: "
                      "mdistiller/engine/cfg.py CFG.AT)",
               help="attention transfer: squared distance between the stages' normalised spatial attention maps",
               presets={
                   # mdistiller CIFAR-100 AT: CFG.AT.P 2 (the term's default), LOSS.CE_WEIGHT 1, FEAT_WEIGHT 1000
                   # (mdistiller/engine/cfg.py; mdistiller/distillers/AT.py).
                   "at": [{"term": "ce"}, {"term": "at", "weight": 1000.0}],
               })
class AT(nn.Module):
    """The AT term: ``at_loss`` over the stages after the stem (``feats[1:]``, as mdistiller).

    ``stages`` says how the entries of ``feats[1:]`` are paired: ``"same"`` (default) needs as many on both
    sides (checked at build time when the context knows both models' shapes); ``"first"`` pairs them from the
    first and drops the deeper extra ones, which is what mdistiller's ``zip`` does silently; ``"last"`` pairs
    the deepest ones and drops the shallow extra ones. Example, ImageNet-style MobileNetV1 -> ResNet18 at
    224x224: MobileNetV1's list (mdistiller's) has no stem entry, so its ``feats[1:]`` holds three of its four
    stages (28, 14, 7 px) against ResNet18's four (56, 28, 14, 7 px): ``"first"`` pairs 56-28, 28-14, 14-7 (the
    larger map pooled), as mdistiller; ``"last"`` pairs them by resolution, 28-28, 14-14, 7-7.
    """

    @classmethod
    def from_context(cls, context, p: float = 2.0, stages: str = "same") -> AT:
        if stages == "same" and context.student is not None and context.teacher is not None:
            s, t = len(context.student.feats), len(context.teacher.feats)
            if s != t:
                raise ValueError(f"attention transfer pairs stages one to one, but the student has {s - 1} stages "
                                 f"after its stem and the teacher {t - 1}: set stages to 'first' (mdistiller's "
                                 "pairing) or 'last'")
        return cls(p, stages)

    def __init__(self, p: float = 2.0, stages: str = "same") -> None:
        super().__init__()
        self.p = check_positive(p, "AT: p")
        if stages not in STAGE_PAIRINGS:
            raise ValueError(f"AT: stages must be one of {', '.join(STAGE_PAIRINGS)}, got {stages!r}")
        self.stages = stages

    def forward(self, student_feats: list[torch.Tensor], teacher_feats: list[torch.Tensor]) -> torch.Tensor:
        require_stage_lists("AT", student_feats=student_feats, teacher_feats=teacher_feats)
        s, t = student_feats[1:], teacher_feats[1:]
        n = min(len(s), len(t))
        if self.stages == "first":
            s, t = s[:n], t[:n]
        elif self.stages == "last":
            s, t = s[len(s) - n:], t[len(t) - n:]
        return at_loss(s, t, self.p)

    def extra_repr(self) -> str:
        return f"p={self.p}, stages={self.stages!r}"
