"""Variational information distillation (Ahn et al., CVPR 2019), as in RepDistiller and mdistiller.

For each stage after the stem, a regressor maps the student's map to the mean ``mu`` of a Gaussian over
the teacher's map, with a learned variance per teacher channel, ``sigma_c^2 = softplus(alpha_c) + eps``;
the loss of a stage is the negative log-likelihood without its constant, averaged over batch, channels
and positions, and the stage losses are summed:

    L_vid = sum_i mean_{b,c,h,w} 0.5 ((mu_{bchw} - t_{bchw})^2 / sigma_c^2 + log sigma_c^2)

Where the spatial sizes differ, the larger map is average-pooled to the smaller (adaptive pooling,
square maps) before the regressor, as the official code does. Sources: HobbitLong/RepDistiller
``distiller_zoo/VID.py`` (``VIDLoss``: the regressor ``conv1x1(C_s, C_t) - ReLU - conv1x1(C_t, C_t) -
ReLU - conv1x1(C_t, C_t)``, 1x1 convolutions without bias, and ``log_scale`` an ``nn.Parameter``
initialised to ``log(exp(5 - eps) - 1)`` so that the initial variance is 5; ``eps = 1e-5``) and
mdistiller ``mdistiller/distillers/VID.py`` (same loss; ``CFG.VID``: ``INIT_PRED_VAR 5.0``, ``EPS 1e-5``,
feature weight 1, CE weight 1: the ``vid`` preset). The variance is trained here, as in RepDistiller;
mdistiller keeps its ``log_scales`` in a plain list, so they are neither registered nor given to its
optimizer and stay at their initial value (docs/method.md).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ._common import check_batch, check_features, check_positive, full_precision, require_stage_lists
from .at import STAGE_PAIRINGS
from .registry import register_term


@full_precision
def vid_loss(mean: torch.Tensor, teacher_feat: torch.Tensor, log_scale: torch.Tensor,
             eps: float = 1e-5) -> torch.Tensor:
    """Gaussian negative log-likelihood (without its constant) of the teacher's map under the
    predicted mean and the per-channel variance ``softplus(log_scale) + eps``, averaged over all entries.

    Args:
        mean: (B, C, H, W) predicted mean (the regressor's output; differentiated).
        teacher_feat: (B, C, H, W) teacher map (detached here).
        log_scale: (C,) unconstrained variance parameter alpha (differentiated).
        eps: variance floor (RepDistiller / mdistiller ``eps = 1e-5``).

    Raises ValueError if the shapes do not match or the batch is empty. Computed in float32 or wider.
    """
    check_features(mean, teacher_feat, name="vid_loss", inputs=("mean", "teacher_feat"))
    if mean.shape != teacher_feat.shape or mean.ndim != 4 or log_scale.shape != mean.shape[1:2]:
        raise ValueError(f"vid_loss: needs a (B, C, H, W) mean and teacher map of one shape and a (C,) log-scale, "
                         f"got {tuple(mean.shape)}, {tuple(teacher_feat.shape)} and {tuple(log_scale.shape)}")
    variance = (F.softplus(log_scale) + eps).reshape(1, -1, 1, 1)
    return torch.mean(0.5 * ((mean - teacher_feat.detach()).pow(2) / variance + torch.log(variance)))


def _match_size(f_s: torch.Tensor, f_t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The larger of two square maps average-pooled to the smaller's size (the official pooling)."""
    s_h, t_h = f_s.shape[2], f_t.shape[2]
    if s_h > t_h:
        f_s = F.adaptive_avg_pool2d(f_s, (t_h, t_h))
    elif s_h < t_h:
        f_t = F.adaptive_avg_pool2d(f_t, (s_h, s_h))
    return f_s, f_t


def _conv1x1(c_in: int, c_out: int) -> nn.Conv2d:
    return nn.Conv2d(c_in, c_out, kernel_size=1, bias=False)


class VIDRegressor(nn.Module):
    """One stage's regressor and variance: ``conv1x1(C_s, C_t) - ReLU - conv1x1(C_t, C_t) - ReLU -
    conv1x1(C_t, C_t)`` (no biases: ``C_s C_t + 2 C_t^2`` weights) and ``log_scale`` (C_t,), initialised
    so that ``softplus(log_scale) + eps = init_variance`` (RepDistiller ``distiller_zoo/VID.py``)."""

    def __init__(self, student_channels: int, teacher_channels: int, init_variance: float = 5.0,
                 eps: float = 1e-5) -> None:
        super().__init__()
        self.regressor = nn.Sequential(_conv1x1(student_channels, teacher_channels), nn.ReLU(),
                                       _conv1x1(teacher_channels, teacher_channels), nn.ReLU(),
                                       _conv1x1(teacher_channels, teacher_channels))
        alpha = math.log(math.exp(init_variance - eps) - 1.0)  # the inverse softplus of init_variance - eps
        self.log_scale = nn.Parameter(torch.full((teacher_channels,), alpha))

    def forward(self, f_s: torch.Tensor, f_t: torch.Tensor, eps: float) -> torch.Tensor:
        f_s, f_t = _match_size(f_s, f_t)
        return vid_loss(self.regressor(f_s), f_t, self.log_scale, eps)


def pair_stages(student_feats, teacher_feats, stages: str):
    """The stages after the stem of both sides, paired as AT pairs them (`figkd.losses.at.AT`):
    ``same`` (as many on both sides), ``first`` (from the first, mdistiller's and RepDistiller's
    ``zip``) or ``last`` (the deepest)."""
    s, t = list(student_feats[1:]), list(teacher_feats[1:])
    n = min(len(s), len(t))
    if stages == "last":
        return s[len(s) - n:], t[len(t) - n:]
    return s[:n], t[:n]


@register_term("vid", inputs=("student_feats", "teacher_feats"), function=vid_loss,
               source="Ahn et al. CVPR 2019; RepDistiller distiller_zoo/VID.py and mdistiller/distillers/VID.py "
                      "(init variance 5, eps 1e-5: mdistiller/engine/cfg.py CFG.VID)",
               help="variational information distillation: Gaussian likelihood of the teacher's stages given "
                    "the student's (trained regressors and variances)",
               presets={
                   # VID: CFG.VID.LOSS.CE_WEIGHT 1, FEAT_WEIGHT 1, INIT_PRED_VAR 5, EPS 1e-5 (the term's defaults)
                   # (mdistiller/engine/cfg.py; RepDistiller distiller_zoo/VID.py, whose variance is trained).
                   "vid": [{"term": "ce"}, {"term": "vid"}],
               })
class VID(nn.Module):
    """The VID term: one `VIDRegressor` per stage after the stem (``self.regressors``), trained with the
    student; ``stages`` pairs the stages as AT does (``same`` refuses a pair with different stage counts
    at build time)."""

    @classmethod
    def from_context(cls, context, init_variance: float = 5.0, eps: float = 1e-5, stages: str = "same") -> VID:
        student, teacher = context.require("vid", "student", "teacher")
        if stages not in STAGE_PAIRINGS:
            raise ValueError(f"VID: stages must be one of {', '.join(STAGE_PAIRINGS)}, got {stages!r}")
        if stages == "same" and len(student.feats) != len(teacher.feats):
            raise ValueError(f"VID pairs stages one to one, but the student has {len(student.feats) - 1} stages after "
                             f"its stem and the teacher {len(teacher.feats) - 1}: set stages to 'first' (the official "
                             "pairing) or 'last'")
        s, t = pair_stages(student.channels, teacher.channels, stages)
        return cls(s, t, init_variance, eps, stages)

    def __init__(self, student_channels, teacher_channels, init_variance: float = 5.0, eps: float = 1e-5,
                 stages: str = "same") -> None:
        super().__init__()
        self.eps = check_positive(eps, "VID: eps")
        init_variance = check_positive(init_variance, "VID: init_variance")
        if init_variance <= self.eps:
            raise ValueError(f"VID: init_variance must exceed eps ({self.eps}), got {init_variance}")
        self.stages = stages
        self.regressors = nn.ModuleList(VIDRegressor(s, t, init_variance, self.eps)
                                        for s, t in zip(student_channels, teacher_channels, strict=True))

    def forward(self, student_feats: list[torch.Tensor], teacher_feats: list[torch.Tensor]) -> torch.Tensor:
        require_stage_lists("VID", student_feats=student_feats, teacher_feats=teacher_feats)
        # the deepest stage of each side (the stem, unused, may be absent): a batch is empty in all of them or none
        check_batch("VID", **{f"student_feats[{len(student_feats) - 1}]": student_feats[-1],
                              f"teacher_feats[{len(teacher_feats) - 1}]": teacher_feats[-1]})
        s, t = pair_stages(student_feats, teacher_feats, self.stages)
        losses = [r(f_s, f_t, self.eps) for r, f_s, f_t in zip(self.regressors, s, t, strict=True)]
        total = losses[0]
        for value in losses[1:]:
            total = total + value
        return total

    def extra_repr(self) -> str:
        return f"eps={self.eps}, stages={self.stages!r}"
