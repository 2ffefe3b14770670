"""Decoupled knowledge distillation (Zhao et al., CVPR 2022).

Same values as the official code (megvii-research/mdistiller, `mdistiller/distillers/DKD.py`,
`dkd_loss`), computed in a numerically safer way:

- TCKD: KL between the binary distributions (p_target, 1 - p_target) of teacher and student at
  temperature T. The official code forms these by summing softmax probabilities and taking
  `torch.log`; here the log-probabilities come from log-sum-exp over the target / non-target
  logits (identical values, no log(0)).
- NCKD: KL between the distributions over the non-target classes only. The official code removes
  the target class by subtracting 1000 from its scaled logit before the softmax; here it is
  excluded exactly (masked log-sum-exp), which gives the same numbers in float32 and float64.
- Both are summed over classes, averaged over the batch and multiplied by T^2; the loss is
  alpha * TCKD + beta * NCKD.
- Finite at any logit scale: the target entry of the non-target log-softmax is meaningless (it can be
  +88.7 or more, whose `exp` overflows float32 when the teacher is confident). It is replaced by 0 in
  both student and teacher *before* the KL, so it contributes exp(0) * (0 - 0) = 0 and no gradient;
  masking the KL term afterwards (`torch.where`) would still send inf * 0 = nan backwards.

The linear warm-up of the DKD weight (20 epochs on CIFAR-100, `CFG.DKD.WARMUP`) is not part of the
loss: it is a property of the objective term (`build_objective`, `"warmup": 20`).

``standardize=True`` z-scores both logit vectors first (logit standardization, Sun et al. CVPR 2024,
`figkd.losses.standardize`), as sunshangquan/logit-standardization-KD's ``dkd_loss`` does with
``logit_stand``; its CIFAR-100 command multiplies alpha and beta by 9 and sets T = 2 (the ``dkd+ls``
preset: weight 9 on alpha 1, beta 8, T 2).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ._common import check_class_count, check_logits, check_positive, check_real, check_target, full_precision
from .registry import register_term
from .standardize import check_flag, maybe_standardize


def _log_binary_and_nontarget(z: torch.Tensor, gt: torch.Tensor, target: torch.Tensor):
    """For scaled logits z (B, C): log of (p_target, 1 - p_target) as (B, 2), and the log-softmax
    over the non-target classes as (B, C) (its value at the target position is meaningless)."""
    lse_all = torch.logsumexp(z, dim=1, keepdim=True)
    lse_nt = torch.logsumexp(z.masked_fill(gt, float("-inf")), dim=1, keepdim=True)
    z_gt = z.gather(1, target[:, None])
    log_binary = torch.cat([z_gt - lse_all, lse_nt - lse_all], dim=1)
    return log_binary, z - lse_nt


@full_precision
def dkd_loss(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    target: torch.Tensor,
    alpha: float = 1.0,
    beta: float = 8.0,
    temperature: float = 4.0,
    standardize: bool = False,
) -> torch.Tensor:
    """DKD loss alpha * TCKD + beta * NCKD (see the module docstring).

    Args:
        student_logits, teacher_logits: (B, C) logits, C >= 2; the teacher is detached.
        target: (B,) ground-truth class indices.
        alpha, beta, temperature: mdistiller's CIFAR-100 defaults `CFG.DKD.ALPHA = 1.0`,
            `CFG.DKD.BETA = 8.0`, `CFG.DKD.T = 4.0` (`mdistiller/engine/cfg.py`).
        standardize: z-score each sample's student and teacher logits first (logit standardization).
    """
    check_logits(student_logits, teacher_logits, name="dkd_loss")
    check_target(target, student_logits, name="dkd_loss")
    if student_logits.shape[1] < 2:
        raise ValueError("dkd_loss: needs at least 2 classes (NCKD is over the non-target classes)")
    a = check_real(alpha, "dkd_loss: alpha")
    b = check_real(beta, "dkd_loss: beta")
    t = check_positive(temperature, "dkd_loss: temperature")
    student_logits, teacher_logits = maybe_standardize(student_logits, teacher_logits,
                                                       check_flag(standardize, "dkd_loss: standardize"))
    target = target.long()
    gt = torch.zeros_like(student_logits, dtype=torch.bool).scatter_(1, target[:, None], True)
    bin_s, nt_s = _log_binary_and_nontarget(student_logits / t, gt, target)
    bin_t, nt_t = _log_binary_and_nontarget(teacher_logits.detach() / t, gt, target)
    tckd = F.kl_div(bin_s, bin_t, reduction="none", log_target=True).sum(1).mean()
    # target entry set to 0 in both *inputs* of the KL (not masked after it): see the module docstring
    nt_s, nt_t = nt_s.masked_fill(gt, 0.0), nt_t.masked_fill(gt, 0.0)
    nckd = F.kl_div(nt_s, nt_t, reduction="none", log_target=True).sum(1).mean()
    return (a * tckd + b * nckd) * (t * t)


@register_term("dkd", inputs=("student_logits", "teacher_logits", "target"), function=dkd_loss,
               source="Zhao et al. CVPR 2022; mdistiller/distillers/DKD.py "
                      "(defaults: mdistiller/engine/cfg.py CFG.DKD)",
               help="decoupled KD: the target-class (alpha) and non-target-class (beta) parts of the KD loss",
               presets={
                   # mdistiller CIFAR-100 DKD: CFG.DKD.CE_WEIGHT 1, ALPHA 1, BETA 8, T 4 (the term's defaults),
                   # WARMUP 20 (mdistiller/engine/cfg.py; warm-up rule in mdistiller/distillers/DKD.py). Some
                   # pairs override BETA in configs/cifar100/dkd/*.yaml (6 or 2): use a term list for those.
                   "dkd": [{"term": "ce"}, {"term": "dkd", "warmup": 20}],
                   # Logit standardization (sunshangquan/logit-standardization-KD README: --logit-stand
                   # --base-temp 2 --kd-weight 9; tools/train.py: T replaced, DKD alpha and beta multiplied by 9;
                   # the CE weight as configured: 1).
                   "dkd+ls": [{"term": "ce"},
                              {"term": "dkd", "alpha": 9.0, "beta": 72.0, "temperature": 2.0, "standardize": True,
                               "warmup": 20}],
               })
class DKDLoss(nn.Module):
    """`dkd_loss` as a module: `DKDLoss(alpha=1.0, beta=8.0, temperature=4.0)(s, t, target)`."""

    @classmethod
    def from_context(cls, context, alpha: float = 1.0, beta: float = 8.0, temperature: float = 4.0,
                     standardize: bool = False) -> DKDLoss:
        """The ``dkd`` objective term; a class count below 2 (known from the context) is refused here, at
        build time, rather than by `dkd_loss` at the first step."""
        check_class_count(context.num_classes, 2, "dkd", "NCKD is over the non-target classes")
        return cls(alpha, beta, temperature, standardize)

    def __init__(self, alpha: float = 1.0, beta: float = 8.0, temperature: float = 4.0,
                 standardize: bool = False) -> None:
        super().__init__()
        self.alpha = check_real(alpha, "DKDLoss: alpha")
        self.beta = check_real(beta, "DKDLoss: beta")
        self.temperature = check_positive(temperature, "DKDLoss: temperature")
        self.standardize = check_flag(standardize, "DKDLoss: standardize")

    def forward(self, student_logits: torch.Tensor, teacher_logits: torch.Tensor,
                target: torch.Tensor) -> torch.Tensor:
        return dkd_loss(student_logits, teacher_logits, target, self.alpha, self.beta, self.temperature,
                        self.standardize)

    def extra_repr(self) -> str:
        return f"alpha={self.alpha}, beta={self.beta}, temperature={self.temperature}, standardize={self.standardize}"
