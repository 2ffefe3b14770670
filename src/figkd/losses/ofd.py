"""OFD: a comprehensive overhaul of feature distillation (Heo et al., ICCV 2019), as in mdistiller.

The student's pre-activation stage features (before their last ReLU) go through a trained connector
per stage (a 1x1 convolution without bias and a BatchNorm) and are pulled towards the teacher's
pre-activation features with a *partial* L2 distance: where the teacher's value is negative the
ReLU discards it, so the student is only penalised for exceeding a per-channel **margin** there,

    m_c = E[x | x < 0]  for  x ~ N(beta_c, gamma_c^2)   (beta, gamma: the affine parameters of the
        = beta_c - |gamma_c| phi(beta_c / |gamma_c|) / Phi(-beta_c / |gamma_c|)     teacher's BatchNorm
                                                                                    before that ReLU)

or ``-3 |gamma_c|`` where ``Phi(-beta_c / |gamma_c|) <= 0.001`` (clovaai/overhaul-distillation
``distiller.py`` ``get_margin_from_BN``, kept in mdistiller ``mdistiller/distillers/OFD.py``). Per
stage, with the teacher map average-pooled to the student's size (adaptive pooling):

    d(s, t) = (s - m)^2 [s > m, t <= m] + (s - t)^2 [s > t, m < t <= 0] + (s - t)^2 [t > 0]
    L_stage = sum over (C, H, W) of d, averaged over the batch              (mdistiller ``feat_loss``)
    L_ofd   = sum_i L_stage_i / 2^(n - 1 - i)     (the deepest of the n stages has weight 1)

For margins <= 0 (always the case for margins from a BatchNorm) this is the original's
``(s - max(t, m))^2 [s > max(t, m) or t > 0]``; the three-case form is mdistiller's, which the pinned
test value uses (with positive margins, where the two differ). The stages are those after the stem
(``preact_feats[1:]``); where student and teacher have different numbers of them, the deepest ones
are paired (mdistiller's ``_align_list``).

CIFAR-100 setting (``mdistiller/engine/cfg.py`` ``CFG.OFD``): feature weight 0.001, CE weight 1,
connector kernel 1 (the ``ofd`` preset); mdistiller's ImageNet ResNet50 -> MobileNetV1 uses 0.0001.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ._common import check_batch, check_features, check_maps, full_precision, require_stage_lists, stage_list
from .registry import register_term

#: ``Phi(-beta / |gamma|)`` at or below which the margin is ``-3 |gamma|`` (overhaul-distillation).
TAIL_THRESHOLD = 0.001


def ofd_margins(weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """Per-channel margins from the affine parameters of a BatchNorm before a ReLU (module docstring).

    Args:
        weight, bias: (C,) the BatchNorm's ``gamma`` and ``beta`` (read, not differentiated).

    Returns a (C,) float32 tensor on their device, as the official code stores them (computed in
    float64 first; no host synchronisation). A channel with ``gamma = 0`` (a constant output ``beta``)
    gets ``min(beta, 0)``, the limit of the formula.
    """
    s = weight.detach().to(torch.float64).abs()
    m = bias.detach().to(torch.float64)
    ratio = m / s.clamp_min(torch.finfo(torch.float64).tiny)
    tail = torch.special.ndtr(-ratio)
    density = torch.exp(-ratio.square() / 2) / math.sqrt(2 * math.pi)
    expected = m - s * density / tail.clamp_min(TAIL_THRESHOLD)
    margin = torch.where(tail > TAIL_THRESHOLD, expected, -3.0 * s)
    margin = torch.where(s > 0, margin, m.clamp_max(0.0))
    return margin.to(torch.float32)


@full_precision
def _partial_l2(student: torch.Tensor, teacher: torch.Tensor, margin: torch.Tensor) -> torch.Tensor:
    m = margin.to(student.dtype).reshape(1, -1, 1, 1)
    below = ((student > m) & (teacher <= m)).to(student.dtype)
    between = ((student > teacher) & (teacher > m) & (teacher <= 0)).to(student.dtype)
    positive = (teacher > 0).to(student.dtype)
    loss = (student - m).square() * below + (student - teacher).square() * (between + positive)
    return loss.sum() / student.shape[0]


def ofd_loss(student_feats: Sequence[torch.Tensor], teacher_feats: Sequence[torch.Tensor],
             margins: Sequence[torch.Tensor]) -> torch.Tensor:
    """OFD's distillation loss over paired stages (see the module docstring).

    Args:
        student_feats: n (B, C_i, H_i, W_i) student pre-activation maps, already through the
            connectors (so with the teacher's channels).
        teacher_feats: n (B, C_i, H'_i, W'_i) teacher pre-activation maps (detached here; average-pooled
            to the student's spatial size when it differs).
        margins: n (C_i,) margins (`ofd_margins`).

    A tensor given for the three lists is one stage. Returns a scalar: the stage losses weighted
    ``1 / 2^(n - 1 - i)``. Raises ValueError for lists of different lengths or channel counts, a map that
    is not 4-D or an empty batch, TypeError for an argument that is neither a list of tensors nor a
    tensor. Computed in float32 or wider.
    """
    student_feats = stage_list(student_feats, "ofd_loss", "student_feats")
    teacher_feats = stage_list(teacher_feats, "ofd_loss", "teacher_feats")
    margins = stage_list(margins, "ofd_loss", "margins")
    n = len(student_feats)
    if n == 0 or len(teacher_feats) != n or len(margins) != n:
        raise ValueError(f"ofd_loss: needs as many student features, teacher features and margins, got {n}, "
                         f"{len(teacher_feats)} and {len(margins)}")
    check_features(student_feats, teacher_feats, name="ofd_loss", inputs=("student_feats", "teacher_feats"))
    check_maps("ofd_loss", student_feats=student_feats, teacher_feats=teacher_feats)
    total = None
    for i, (s, t, m) in enumerate(zip(student_feats, teacher_feats, margins, strict=True)):
        if s.shape[1] != t.shape[1] or m.shape != (s.shape[1],):
            raise ValueError(f"ofd_loss: stage {i}: student {tuple(s.shape)}, teacher {tuple(t.shape)} and margins "
                             f"{tuple(m.shape)} must have the same channels")
        t = t.detach()
        if t.shape[2:] != s.shape[2:]:
            t = F.adaptive_avg_pool2d(t, s.shape[2:])
        value = _partial_l2(s, t, m) / 2 ** (n - 1 - i)
        total = value if total is None else total + value
    return total


def connector(student_channels: int, teacher_channels: int) -> nn.Sequential:
    """OFD's connector: ``Conv2d(C_s, C_t, 1, bias=False)`` + ``BatchNorm2d(C_t)``, the convolution drawn
    from N(0, 2 / C_t) and the BatchNorm at weight 1, bias 0 (mdistiller ``ConnectorConvBN``, kernel 1:
    ``C_s C_t + 2 C_t`` parameters)."""
    conv = nn.Conv2d(student_channels, teacher_channels, kernel_size=1, bias=False)
    nn.init.normal_(conv.weight, 0.0, math.sqrt(2.0 / teacher_channels))
    bn = nn.BatchNorm2d(teacher_channels)
    return nn.Sequential(conv, bn)


@register_term("ofd", inputs=("student_preact_feats", "teacher_preact_feats"), function=ofd_loss,
               source="Heo et al. ICCV 2019; clovaai/overhaul-distillation CIFAR-100/distiller.py (margins) and "
                      "mdistiller/distillers/OFD.py (loss, connectors; weight 0.001: mdistiller/engine/cfg.py CFG.OFD)",
               help="overhaul of feature distillation: partial L2 to the teacher's pre-ReLU features, with margins",
               presets={
                   # mdistiller CIFAR-100 OFD: CFG.OFD.LOSS.CE_WEIGHT 1, FEAT_WEIGHT 0.001, CONNECTOR.KERNEL_SIZE 1
                   # (mdistiller/engine/cfg.py; mdistiller/distillers/OFD.py).
                   "ofd": [{"term": "ce"}, {"term": "ofd", "weight": 0.001}],
               })
class OFD(nn.Module):
    """The OFD term: connectors per paired stage, margins from the teacher's BatchNorms (buffers, float32).

    Built from a `figkd.losses.BuildContext` with both models' feature shapes and the teacher module
    (its ``get_bn_before_relu()``; the affine parameters are copied into the margins, the module is not
    kept). Raises ValueError naming the pair when the teacher has no BatchNorm before its stage ReLUs
    (ShuffleNetV2).
    """

    @classmethod
    def from_context(cls, context) -> OFD:
        student, teacher, module = context.require("ofd", "student", "teacher", "teacher_module")
        pair = f"{teacher.name} -> {student.name}"
        try:
            bns = module.get_bn_before_relu()
        except (AttributeError, NotImplementedError, ValueError) as exc:
            raise ValueError(f"OFD cannot distil {pair}: it needs the teacher's BatchNorm before each stage's ReLU "
                             f"(get_bn_before_relu), and {exc}") from None
        s_shapes, t_shapes = student.preact_feats[1:], teacher.preact_feats[1:]
        if len(bns) != len(t_shapes):
            raise ValueError(f"OFD cannot distil {pair}: the teacher lists {len(bns)} BatchNorms before ReLU for "
                             f"{len(t_shapes)} stages")
        n = min(len(s_shapes), len(t_shapes))
        if n == 0:
            raise ValueError(f"OFD cannot distil {pair}: a model has no stage after its stem")
        margins = [ofd_margins(bn.weight, bn.bias) for bn in bns[len(bns) - n:]]
        return cls([s[0] for s in s_shapes[len(s_shapes) - n:]], [t[0] for t in t_shapes[len(t_shapes) - n:]],
                   margins)

    def __init__(self, student_channels: Sequence[int], teacher_channels: Sequence[int],
                 margins: Sequence[torch.Tensor]) -> None:
        super().__init__()
        self.connectors = nn.ModuleList(connector(s, t) for s, t in zip(student_channels, teacher_channels,
                                                                           strict=True))
        self.num_stages = len(self.connectors)
        for i, m in enumerate(margins):
            self.register_buffer(f"margin{i}", m.detach().clone().to(torch.float32))

    def forward(self, student_preact_feats: list[torch.Tensor],
                teacher_preact_feats: list[torch.Tensor]) -> torch.Tensor:
        require_stage_lists("OFD", student_preact_feats=student_preact_feats, teacher_preact_feats=teacher_preact_feats)
        check_batch("OFD", student_preact_feats=student_preact_feats, teacher_preact_feats=teacher_preact_feats)
        n = self.num_stages
        s = [c(f) for c, f in zip(self.connectors, student_preact_feats[len(student_preact_feats) - n:],
                                  strict=True)]
        t = teacher_preact_feats[len(teacher_preact_feats) - n:]
        return ofd_loss(s, t, [getattr(self, f"margin{i}") for i in range(n)])

    def extra_repr(self) -> str:
        return f"stages={self.num_stages}"
