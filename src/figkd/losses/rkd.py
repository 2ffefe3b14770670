"""Relational knowledge distillation (Park et al., CVPR 2019), as in mdistiller.

mdistiller (``mdistiller/distillers/RKD.py``, ``rkd_loss``) on the penultimate embeddings, flattened
to (B, D):

- **distance**: the B x B Euclidean distance matrix of each side (``||e_i||^2 + ||e_j||^2 - 2 e_i.e_j``
  clamped at ``eps = 1e-12``, square-rooted, diagonal set to 0), divided by the mean of its positive
  entries; the loss is the smooth-L1 (Huber, beta 1) mean over the B x B entries;
- **angle**: for every triple (i, j, k) the cosine of the angle at sample j between ``e_i - e_j`` and
  ``e_k - e_j`` (differences L2-normalised with ``F.normalize``); smooth-L1 mean over the B^3 entries;

    L_rkd = 25 L_distance + 50 L_angle

The teacher's side is detached. Weights from ``mdistiller/engine/cfg.py`` (``CFG.RKD``): distance 25,
angle 50, feature weight 1, CE weight 1, ``PDIST.SQUARED False``, ``PDIST.EPSILON 1e-12`` (the ``rkd``
preset). The mean of the positive distances is computed as a masked sum over a count (the official
``d[d > 0].mean()`` selects a data-dependent number of entries, which would read the device on the
host); the value is the same. Cost: the angle term builds (B, B, D) differences and a (B, B, B) cosine
tensor per side.

Deviation, only where the official code returns nan: the off-diagonal distances are clamped at
``sqrt(eps) > 0``, so the distance matrix has positive entries whenever the batch has two samples or
more, even for tied or all-zero embeddings; with a single sample it has none, and the official mean
over no entries is nan. Here the distance term is then 0 (a zero matrix normalised by 1: one sample
has no pairwise relation to transfer), with a zero gradient.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ._common import check_features, check_positive, check_real, full_precision
from .registry import register_term


def _pairwise_distance(e: torch.Tensor, squared: bool, eps: float) -> torch.Tensor:
    """(B, B) distances (squared if ``squared``), clamped at ``eps``, zero on the diagonal."""
    square = e.pow(2).sum(1)
    d = (square[:, None] + square[None, :] - 2.0 * (e @ e.t())).clamp(min=eps)
    if not squared:
        d = d.sqrt()
    eye = torch.eye(len(e), dtype=torch.bool, device=e.device)
    return d.masked_fill(eye, 0.0)


def _normalised_distance(e: torch.Tensor, squared: bool, eps: float) -> torch.Tensor:
    """The distances divided by the mean of the positive ones; all zeros when none is positive (one
    sample: the official code's mean over no entries is nan there)."""
    d = _pairwise_distance(e, squared, eps)
    positive = d > 0
    count = positive.sum()
    mean = (d * positive).sum() / count.clamp(min=1)
    return d / torch.where(count > 0, mean, torch.ones_like(mean))


def _angles(e: torch.Tensor) -> torch.Tensor:
    """(B^3,) cosines of the angle at j between e_i - e_j and e_k - e_j, in the official order."""
    diff = F.normalize(e.unsqueeze(0) - e.unsqueeze(1), p=2, dim=2)
    return torch.bmm(diff, diff.transpose(1, 2)).reshape(-1)


@full_precision
def rkd_distance_loss(student_embedding: torch.Tensor, teacher_embedding: torch.Tensor, squared: bool = False,
                      eps: float = 1e-12) -> torch.Tensor:
    """RKD's distance term (unweighted): smooth-L1 between the mean-normalised distance matrices."""
    _check(student_embedding, teacher_embedding)
    s = student_embedding.reshape(len(student_embedding), -1)
    t = teacher_embedding.detach().reshape(len(teacher_embedding), -1)
    return F.smooth_l1_loss(_normalised_distance(s, squared, eps), _normalised_distance(t, squared, eps))


@full_precision
def rkd_angle_loss(student_embedding: torch.Tensor, teacher_embedding: torch.Tensor) -> torch.Tensor:
    """RKD's angle term (unweighted): smooth-L1 between the triplet angle cosines."""
    _check(student_embedding, teacher_embedding)
    s = student_embedding.reshape(len(student_embedding), -1)
    t = teacher_embedding.detach().reshape(len(teacher_embedding), -1)
    return F.smooth_l1_loss(_angles(s), _angles(t))


def _check(student_embedding: torch.Tensor, teacher_embedding: torch.Tensor) -> None:
    check_features(student_embedding, teacher_embedding, name="rkd_loss",
                   inputs=("student_embedding", "teacher_embedding"))
    if student_embedding.ndim < 2 or teacher_embedding.ndim < 2 or len(student_embedding) != len(teacher_embedding):
        raise ValueError(f"rkd_loss: needs (B, ...) embeddings with one batch size, got "
                         f"{tuple(student_embedding.shape)} and {tuple(teacher_embedding.shape)}")


def rkd_loss(student_embedding: torch.Tensor, teacher_embedding: torch.Tensor, distance_weight: float = 25.0,
             angle_weight: float = 50.0, squared: bool = False, eps: float = 1e-12) -> torch.Tensor:
    """``distance_weight * L_distance + angle_weight * L_angle`` (see the module docstring).

    Args:
        student_embedding: (B, ...) student features, flattened to (B, D_s) (differentiated).
        teacher_embedding: (B, ...) teacher features, flattened to (B, D_t) (detached); D_t may differ.
        distance_weight, angle_weight: mdistiller ``CFG.RKD.DISTANCE_WEIGHT = 25``, ``ANGLE_WEIGHT = 50``.
        squared, eps: mdistiller ``CFG.RKD.PDIST.SQUARED = False``, ``EPSILON = 1e-12``.

    Returns a 0-dim tensor in float32 or wider. Raises ValueError for inputs of different batch sizes
    or an empty batch. Mixes the samples of the batch (B x B distances, B^3 angles).
    """
    return (distance_weight * rkd_distance_loss(student_embedding, teacher_embedding, squared, eps)
            + angle_weight * rkd_angle_loss(student_embedding, teacher_embedding))


@register_term("rkd", inputs=("student_pooled", "teacher_pooled"), batch_coupled=True, function=rkd_loss,
               source="Park et al. CVPR 2019; mdistiller/distillers/RKD.py (distance 25, angle 50: "
                      "mdistiller/engine/cfg.py CFG.RKD)",
               help="relational KD: the distances and angles between the embeddings of the batch",
               presets={
                   # mdistiller CIFAR-100 RKD: CFG.RKD DISTANCE_WEIGHT 25, ANGLE_WEIGHT 50, PDIST.SQUARED False,
                   # PDIST.EPSILON 1e-12 (the term's defaults), LOSS.CE_WEIGHT 1, FEAT_WEIGHT 1
                   # (mdistiller/engine/cfg.py; mdistiller/distillers/RKD.py).
                   "rkd": [{"term": "ce"}, {"term": "rkd"}],
               })
class RKD(nn.Module):
    """The RKD term on the penultimate embeddings; returns its parts ``distance`` and ``angle`` (each
    already multiplied by its weight), whose sum is `rkd_loss`."""

    def __init__(self, distance_weight: float = 25.0, angle_weight: float = 50.0, squared: bool = False,
                 eps: float = 1e-12) -> None:
        super().__init__()
        self.distance_weight = check_real(distance_weight, "RKD: distance_weight")
        self.angle_weight = check_real(angle_weight, "RKD: angle_weight")
        if not isinstance(squared, bool):
            raise ValueError(f"RKD: squared must be true or false, got {squared!r}")
        self.squared = squared
        self.eps = check_positive(eps, "RKD: eps")

    def forward(self, student_pooled: torch.Tensor, teacher_pooled: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"distance": self.distance_weight * rkd_distance_loss(student_pooled, teacher_pooled, self.squared,
                                                                     self.eps),
                "angle": self.angle_weight * rkd_angle_loss(student_pooled, teacher_pooled)}

    def extra_repr(self) -> str:
        return f"distance_weight={self.distance_weight}, angle_weight={self.angle_weight}, squared={self.squared}"
