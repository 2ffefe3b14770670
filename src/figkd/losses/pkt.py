"""Probabilistic knowledge transfer (Passalis and Tefas, ECCV 2018), as in mdistiller.

mdistiller (``mdistiller/distillers/PKT.py``, ``pkt_loss``, itself from passalis/probabilistic_kt):
each side's penultimate embeddings are L2-normalised (``x / (||x|| + eps)``), their cosine
similarities over the batch are mapped to [0, 1] (``(cos + 1) / 2``) and each row is normalised to
sum to 1, giving a conditional distribution ``P(j | i)`` per side; the loss is

    L_pkt = mean_{i,j} P_t(j|i) log((P_t(j|i) + eps) / (P_s(j|i) + eps)),    eps = 1e-7

(the mean over all B x B entries, not a per-row sum). Each side enters through its own B x B
matrix, so student and teacher embeddings may differ in width. CIFAR-100 setting
(``mdistiller/engine/cfg.py``, ``CFG.PKT``): feature weight 30000, CE weight 1 (the ``pkt`` preset).
"""

from __future__ import annotations

import torch
from torch import nn

from ._common import check_features, full_precision
from .registry import register_term


def _conditional(embedding: torch.Tensor, eps: float) -> torch.Tensor:
    """(B, B) rows of ``(cos + 1) / 2`` normalised to sum to 1 (NaN entries of the normalised
    embedding set to 0, as the official code does). The norm is ``torch.linalg.vector_norm``: the same
    value as the official ``sqrt(sum(x^2))``, whose gradient at a zero embedding is nan (0 x inf)."""
    # vector_norm: the official sqrt of the sum of squares, but with a finite (zero) gradient at a zero row
    x = embedding / (torch.linalg.vector_norm(embedding, dim=1, keepdim=True) + eps)
    x = torch.where(torch.isnan(x), torch.zeros_like(x), x)
    similarity = (x @ x.t() + 1.0) / 2.0
    return similarity / similarity.sum(1, keepdim=True)


@full_precision
def pkt_loss(student_embedding: torch.Tensor, teacher_embedding: torch.Tensor, eps: float = 1e-7) -> torch.Tensor:
    """PKT loss between the conditional similarity distributions of the two embeddings.

    Args:
        student_embedding: (B, D_s) student penultimate features (differentiated).
        teacher_embedding: (B, D_t) teacher penultimate features (detached here); D_t may differ from D_s.
        eps: the official code's 1e-7, in the normalisation and inside the log ratio.

    Returns a 0-dim tensor (unweighted; mdistiller multiplies it by 30000). Raises ValueError for inputs
    that are not 2-D, that differ in batch size, or an empty batch. Mixes the samples of the batch (B x B
    matrices).
    """
    check_features(student_embedding, teacher_embedding, name="pkt_loss",
                   inputs=("student_embedding", "teacher_embedding"))
    if student_embedding.ndim != 2 or teacher_embedding.ndim != 2 or len(student_embedding) != len(teacher_embedding):
        raise ValueError(f"pkt_loss: needs (B, D_s) and (B, D_t) embeddings with one batch size, got "
                         f"{tuple(student_embedding.shape)} and {tuple(teacher_embedding.shape)}")
    p_s = _conditional(student_embedding, eps)
    p_t = _conditional(teacher_embedding.detach(), eps)
    return torch.mean(p_t * torch.log((p_t + eps) / (p_s + eps)))


@register_term("pkt", inputs=("student_pooled", "teacher_pooled"), batch_coupled=True, function=pkt_loss,
               source="Passalis and Tefas ECCV 2018; mdistiller/distillers/PKT.py (weight 30000: "
                      "mdistiller/engine/cfg.py CFG.PKT)",
               help="probabilistic knowledge transfer: KL between the batch's cosine-similarity distributions "
                    "of the embeddings",
               presets={
                   # mdistiller CIFAR-100 PKT: CFG.PKT.LOSS.CE_WEIGHT 1, FEAT_WEIGHT 30000 (mdistiller/engine/cfg.py;
                   # mdistiller/distillers/PKT.py, on the penultimate embeddings).
                   "pkt": [{"term": "ce"}, {"term": "pkt", "weight": 30000.0}],
               })
class PKT(nn.Module):
    """The PKT term on the penultimate embeddings: ``pkt_loss(student_pooled, teacher_pooled)``."""

    def forward(self, student_pooled: torch.Tensor, teacher_pooled: torch.Tensor) -> torch.Tensor:
        return pkt_loss(student_pooled, teacher_pooled)
