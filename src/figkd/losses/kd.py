"""Vanilla knowledge distillation (Hinton et al., 2015).

Convention of mdistiller (`mdistiller/distillers/KD.py`, `kd_loss`) and RepDistiller: the KL
divergence KL(softmax(t/T) || softmax(s/T)) summed over classes, averaged over the batch and
multiplied by T^2 (so that gradient magnitudes do not shrink with T).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ._common import check_logits, check_positive, full_precision
from .registry import register_term


@full_precision
def kd_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor,
            temperature: float = 4.0) -> torch.Tensor:
    """KD loss: T^2 * mean_b sum_c p_t (log p_t - log p_s), p = softmax(logits / T).

    Args:
        student_logits: (B, C) student logits (differentiated).
        teacher_logits: (B, C) teacher logits (detached here; never differentiated).
        temperature: softening temperature T (default 4, mdistiller's CIFAR-100 `CFG.KD.TEMPERATURE`).
    """
    check_logits(student_logits, teacher_logits, name="kd_loss")
    t = check_positive(temperature, "kd_loss: temperature")
    log_p_s = F.log_softmax(student_logits / t, dim=1)
    log_p_t = F.log_softmax(teacher_logits.detach() / t, dim=1)
    kl = F.kl_div(log_p_s, log_p_t, reduction="none", log_target=True).sum(1).mean()
    return kl * (t * t)


@register_term("kd", inputs=("student_logits", "teacher_logits"),
               source="Hinton et al. 2015; mdistiller/distillers/KD.py (T = 4: mdistiller/engine/cfg.py CFG.KD)")
class KDLoss(nn.Module):
    """`kd_loss` as a module: `KDLoss(temperature=4.0)(student_logits, teacher_logits)`."""

    def __init__(self, temperature: float = 4.0) -> None:
        super().__init__()
        self.temperature = check_positive(temperature, "KDLoss: temperature")

    def forward(self, student_logits: torch.Tensor, teacher_logits: torch.Tensor) -> torch.Tensor:
        return kd_loss(student_logits, teacher_logits, self.temperature)

    def extra_repr(self) -> str:
        return f"temperature={self.temperature}"
