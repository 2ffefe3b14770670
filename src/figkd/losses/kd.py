"""Vanilla knowledge distillation (Hinton et al., 2015).

Convention of mdistiller (`mdistiller/distillers/KD.py`, `kd_loss`) and RepDistiller: the KL
divergence KL(softmax(t/T) || softmax(s/T)) summed over classes, averaged over the batch and
multiplied by T^2 (so that gradient magnitudes do not shrink with T).

``standardize=True`` z-scores both logit vectors first (logit standardization, Sun et al. CVPR 2024;
`figkd.losses.standardize`): KD+LS, whose official CIFAR-100 setting is T = 2 and weight 9.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ._common import check_logits, check_positive, full_precision
from .registry import register_term
from .standardize import check_flag, maybe_standardize


@full_precision
def kd_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor,
            temperature: float = 4.0, standardize: bool = False) -> torch.Tensor:
    """KD loss: T^2 * mean_b sum_c p_t (log p_t - log p_s), p = softmax(logits / T).

    Args:
        student_logits: (B, C) student logits (differentiated).
        teacher_logits: (B, C) teacher logits (detached here; never differentiated).
        temperature: softening temperature T (default 4, mdistiller's CIFAR-100 `CFG.KD.TEMPERATURE`).
        standardize: z-score each sample's student and teacher logits first (logit standardization).
    """
    check_logits(student_logits, teacher_logits, name="kd_loss")
    t = check_positive(temperature, "kd_loss: temperature")
    student_logits, teacher_logits = maybe_standardize(student_logits, teacher_logits,
                                                       check_flag(standardize, "kd_loss: standardize"))
    log_p_s = F.log_softmax(student_logits / t, dim=1)
    log_p_t = F.log_softmax(teacher_logits.detach() / t, dim=1)
    kl = F.kl_div(log_p_s, log_p_t, reduction="none", log_target=True).sum(1).mean()
    return kl * (t * t)


@register_term("kd", inputs=("student_logits", "teacher_logits"), function=kd_loss,
               source="Hinton et al. 2015; mdistiller/distillers/KD.py (T = 4: mdistiller/engine/cfg.py CFG.KD)",
               help="knowledge distillation: T^2 KL between the teacher's and the student's softened predictions",
               presets={
                   # mdistiller CIFAR-100 KD: CFG.KD.LOSS.CE_WEIGHT 0.1, KD_WEIGHT 0.9, CFG.KD.TEMPERATURE 4 (the
                   # term's default) (mdistiller/engine/cfg.py; mdistiller/distillers/KD.py).
                   "kd": [{"term": "ce", "weight": 0.1}, {"term": "kd", "weight": 0.9}],
                   # Logit standardization (sunshangquan/logit-standardization-KD README: --logit-stand
                   # --base-temp 2 --kd-weight 9; tools/train.py: KD weight and T replaced; the CE weight as
                   # configured: 0.1, its cfg.py CFG.KD.LOSS.CE_WEIGHT).
                   "kd+ls": [{"term": "ce", "weight": 0.1},
                             {"term": "kd", "weight": 9.0, "temperature": 2.0, "standardize": True}],
               })
class KDLoss(nn.Module):
    """`kd_loss` as a module: `KDLoss(temperature=4.0, standardize=False)(student_logits, teacher_logits)`."""

    def __init__(self, temperature: float = 4.0, standardize: bool = False) -> None:
        super().__init__()
        self.temperature = check_positive(temperature, "KDLoss: temperature")
        self.standardize = check_flag(standardize, "KDLoss: standardize")

    def forward(self, student_logits: torch.Tensor, teacher_logits: torch.Tensor) -> torch.Tensor:
        return kd_loss(student_logits, teacher_logits, self.temperature, self.standardize)

    def extra_repr(self) -> str:
        return f"temperature={self.temperature}, standardize={self.standardize}"
