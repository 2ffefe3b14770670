"""ReviewKD: distilling knowledge via knowledge review (Chen et al., CVPR 2021), as in mdistiller.

The student's stage features and its pooled embedding (as a 1x1 map) are fused from the deepest level
to the shallowest by attention-based fusion modules (ABF, trained with the student): each level's
feature goes through a 1x1 convolution + BatchNorm to ``mid`` channels, is blended with the fused
result of the level below (upsampled, nearest) by two sigmoid attention maps, resized (nearest) to the
teacher's spatial size and mapped by a 3x3 convolution + BatchNorm to the teacher's channels. The
outputs are compared with the teacher's pre-activation stage features (and its pooled embedding) by
the hierarchical context loss (HCL):

    hcl(s, t) = [ mse(s, t) + sum_{l in (4, 2, 1), l < H} 2^-k_l mse(pool_l(s), pool_l(t)) ]
                / (1 + sum 2^-k_l)                 (k_l = 1, 2, 3 for the pyramid levels kept)
    L_reviewkd = sum over levels of hcl

(``mse``: mean squared error; ``pool_l``: adaptive average pooling to l x l; ``H``: the level's height).
Sources: dvlab-research/ReviewKD ``CIFAR-100/model/reviewkd.py`` (``ABF``, ``build_review_kd``, ``hcl``)
and mdistiller ``mdistiller/distillers/ReviewKD.py`` (``hcl_loss``; the same code).

CIFAR-100 setting (mdistiller ``configs/cifar100/reviewkd.yaml`` with ``CFG.REVIEWKD``): ReviewKD
weight 5 with a 20-epoch linear warm-up (``min(epoch / 20, 1)``, epochs from 1: the objective's
``warmup`` entry), CE weight 1, student features after their ReLU (``STU_PREACT: False``), ``mid`` =
min(512, the student's embedding width). The official repository's per-pair weights
(``CIFAR-100/script/reviewKD.sh``): 5, except resnet32x4 -> ShuffleV2 8, resnet56 -> resnet20 0.6,
resnet110 -> resnet32 1.0; its own trainer starts epochs at 0 (a first epoch at weight 0).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ._common import check_batch, check_features, check_maps, full_precision, require_stage_lists, stage_list
from .registry import register_term

#: The pyramid sizes of HCL, each kept when smaller than the level's height (official ``hcl``).
HCL_LEVELS = (4, 2, 1)
#: Upper bound of ABF's middle width (``min(512, in_channels[-1])`` in both sources).
MAX_MID_CHANNELS = 512


@full_precision
def _hcl_level(fs: torch.Tensor, ft: torch.Tensor) -> torch.Tensor:
    loss = F.mse_loss(fs, ft)
    weight, total = 1.0, 1.0
    for size in HCL_LEVELS:
        if size >= fs.shape[2]:
            continue
        weight /= 2.0
        loss = loss + weight * F.mse_loss(F.adaptive_avg_pool2d(fs, size), F.adaptive_avg_pool2d(ft, size))
        total += weight
    return loss / total


def hcl_loss(student_feats: Sequence[torch.Tensor], teacher_feats: Sequence[torch.Tensor]) -> torch.Tensor:
    """ReviewKD's hierarchical context loss, summed over levels (see the module docstring).

    Args:
        student_feats: (B, C_i, H_i, W_i) fused student maps (the ABF outputs); a tensor is one level.
        teacher_feats: the teacher maps of the same shapes (detached here); a tensor is one level.

    Raises ValueError for lists of different lengths, no level, shapes that differ, a map that is not 4-D
    or an empty batch, TypeError for an argument that is neither a list of tensors nor a tensor.
    Computed in float32 or wider.
    """
    student_feats = stage_list(student_feats, "hcl_loss", "student_feats")
    teacher_feats = stage_list(teacher_feats, "hcl_loss", "teacher_feats")
    if len(student_feats) != len(teacher_feats) or not student_feats:
        raise ValueError(f"hcl_loss: needs equally long, non-empty lists, got {len(student_feats)} (student) and "
                         f"{len(teacher_feats)} (teacher)")
    check_features(student_feats, teacher_feats, name="hcl_loss", inputs=("student_feats", "teacher_feats"))
    check_maps("hcl_loss", student_feats=student_feats, teacher_feats=teacher_feats)
    total = None
    for i, (s, t) in enumerate(zip(student_feats, teacher_feats, strict=True)):
        if s.shape != t.shape:
            raise ValueError(f"hcl_loss: level {i}: student {tuple(s.shape)} and teacher {tuple(t.shape)} differ")
        value = _hcl_level(s, t.detach())
        total = value if total is None else total + value
    return total


class ABF(nn.Module):
    """Attention-based fusion of one level (dvlab-research/ReviewKD ``ABF``, parameter names kept).

    ``conv1``: 1x1 conv (no bias) + BN to ``mid``; ``att_conv`` (all levels but the deepest): 1x1 conv of
    ``2 mid`` -> 2 channels with bias + sigmoid; ``conv2``: 3x3 conv (no bias) + BN to ``out``. Both
    convolutions' weights are ``kaiming_uniform_(a=1)``, the rest PyTorch's defaults, as the source.
    """

    def __init__(self, in_channels: int, mid_channels: int, out_channels: int, fuse: bool) -> None:
        super().__init__()
        self.conv1 = nn.Sequential(nn.Conv2d(in_channels, mid_channels, kernel_size=1, bias=False),
                                   nn.BatchNorm2d(mid_channels))
        self.conv2 = nn.Sequential(nn.Conv2d(mid_channels, out_channels, kernel_size=3, padding=1, bias=False),
                                   nn.BatchNorm2d(out_channels))
        self.att_conv = (nn.Sequential(nn.Conv2d(2 * mid_channels, 2, kernel_size=1), nn.Sigmoid())
                         if fuse else None)
        nn.init.kaiming_uniform_(self.conv1[0].weight, a=1)
        nn.init.kaiming_uniform_(self.conv2[0].weight, a=1)

    def forward(self, x: torch.Tensor, residual: torch.Tensor | None, out_size: tuple[int, int]):
        """``(output, fused)``: the level's output at ``out_size`` and the fused map passed to the next
        (shallower) level."""
        x = self.conv1(x)
        if self.att_conv is not None:
            residual = F.interpolate(residual, size=x.shape[2:], mode="nearest")
            z = self.att_conv(torch.cat([x, residual], dim=1))
            x = x * z[:, 0:1] + residual * z[:, 1:2]
        if tuple(x.shape[2:]) != tuple(out_size):
            x = F.interpolate(x, size=out_size, mode="nearest")
        return self.conv2(x), x


def review_levels(shapes, pooled: int, stem: bool) -> list[tuple[int, int, int]]:
    """(C, H, W) of the levels ReviewKD compares, deepest first: the pooled embedding as a 1x1 map, then
    the stage features from the deepest (the stem included when ``stem``)."""
    stages = shapes if stem else shapes[1:]
    return [(pooled, 1, 1)] + [tuple(s) for s in reversed(stages)]


@register_term("reviewkd", inputs=("student_feats", "student_preact_feats", "student_pooled",
                                   "teacher_preact_feats", "teacher_pooled"), function=hcl_loss,
               source="Chen et al. CVPR 2021; dvlab-research/ReviewKD CIFAR-100/model/reviewkd.py and mdistiller/"
                      "distillers/ReviewKD.py (weight 5, warm-up 20: mdistiller configs/cifar100/reviewkd.yaml)",
               help="ReviewKD: the student's stages fused deepest-first (attention-based fusion) and matched to the "
                    "teacher's by the hierarchical context loss",
               presets={
                   # mdistiller CIFAR-100 ReviewKD: configs/cifar100/reviewkd.yaml REVIEWKD_WEIGHT 5 over
                   # CFG.REVIEWKD (CE_WEIGHT 1, WARMUP_EPOCHS 20 with min(epoch / 20, 1), STU_PREACT False: the
                   # term's default; mdistiller/engine/cfg.py).
                   "reviewkd": [{"term": "ce"}, {"term": "reviewkd", "weight": 5.0, "warmup": 20}],
               })
class ReviewKD(nn.Module):
    """The ReviewKD term: ABF modules sized from the build context, then `hcl_loss` against the teacher's
    pre-activation stage features (``preact_feats[1:]``) and pooled embedding.

    The teacher fixes the number of levels n (its stages after the stem, plus the embedding); the
    student's n deepest levels are used (its stem only when it has no more stages: MobileNetV1 lists
    none). ``student_preact``: take the student's pre-activation features (mdistiller's ImageNet
    configs, ``STU_PREACT: True``) instead of its post-ReLU ones (CIFAR-100, the default). Raises
    ValueError naming the pair when the student has fewer levels than the teacher.
    """

    @classmethod
    def from_context(cls, context, student_preact: bool = False) -> ReviewKD:
        student, teacher = context.require("reviewkd", "student", "teacher")
        t_levels = review_levels(teacher.preact_feats, teacher.pooled, stem=False)
        s_all = review_levels(student.feats, student.pooled, stem=True)
        if len(s_all) < len(t_levels):
            raise ValueError(f"ReviewKD cannot distil {teacher.name} -> {student.name}: the teacher has "
                             f"{len(t_levels)} levels (stages after its stem and its embedding) and the student "
                             f"only {len(s_all)}")
        return cls(s_all[:len(t_levels)], t_levels, student_preact)

    def __init__(self, student_levels: Sequence[Sequence[int]], teacher_levels: Sequence[Sequence[int]],
                 student_preact: bool = False) -> None:
        super().__init__()
        if not isinstance(student_preact, bool):
            raise ValueError(f"student_preact must be true or false, got {student_preact!r}")
        self.student_preact = student_preact
        self.num_levels = len(teacher_levels)
        mid = min(MAX_MID_CHANNELS, student_levels[0][0])  # the deepest level: the embedding width
        # abfs[0] is the deepest level (no fusion), as the source's reversed list.
        self.abfs = nn.ModuleList(ABF(s[0], mid, t[0], fuse=i > 0)
                                  for i, (s, t) in enumerate(zip(student_levels, teacher_levels, strict=True)))
        self.out_sizes = [tuple(t[1:]) for t in teacher_levels]

    def forward(self, student_feats, student_preact_feats, student_pooled, teacher_preact_feats, teacher_pooled):
        feats = student_preact_feats if self.student_preact else student_feats
        require_stage_lists("ReviewKD", **{"student_preact_feats" if self.student_preact else "student_feats": feats},
                            teacher_preact_feats=teacher_preact_feats)
        check_batch("ReviewKD", **{"student_preact_feats" if self.student_preact else "student_feats": feats},
                    student_pooled=student_pooled, teacher_preact_feats=teacher_preact_feats,
                    teacher_pooled=teacher_pooled)
        n = self.num_levels
        levels = [student_pooled[:, :, None, None], *reversed(feats)][:n]  # deepest first
        outputs, residual = [], None
        for abf, x, size in zip(self.abfs, levels, self.out_sizes, strict=True):
            out, residual = abf(x, residual, size)
            outputs.append(out)
        teacher = [teacher_pooled[:, :, None, None], *reversed(teacher_preact_feats[1:])]
        return hcl_loss(outputs[::-1], teacher[::-1])

    def extra_repr(self) -> str:
        return f"levels={self.num_levels}, student_preact={self.student_preact}"
