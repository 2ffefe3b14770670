"""Refined logit distillation (RLD; Sun et al., "Knowledge Distillation with Refined Logits", 2024).

Formula of the official code, zju-SWJ/RLD ``mdistiller/distillers/RLD.py`` (``rld_loss``):

- **Sample confidence distillation** (SCD): the student's binary distribution
  ``[p_s(y), 1 - p_s(y)]`` at the true class y against the teacher's ``[p_t(m), 1 - p_t(m)]`` at the
  teacher's own top class m = argmax t, both at the confidence temperature ``alpha_temperature``:
  ``scd = T_a^2 * mean_b KL(teacher binary || student binary)``.
- **Masked correlation distillation** (MCD): KD at temperature T restricted to the classes the
  teacher scores strictly *below* the true class; every class with ``t_c >= t_y`` (the true class,
  and every class the teacher wrongly ranks above it) is dropped from both softmaxes:
  ``mcd = T^2 * mean_b KL(softmax(t/T)|kept || softmax(s/T)|kept)``.
- ``rld = alpha * scd + beta * mcd``; the objective adds CE (weight 1) and the 20-epoch linear warm-up
  of mdistiller's DKD rule (``min(epoch / 20, 1)`` on the whole RLD term, as ``RLD.forward_train``).

Defaults: ``CFG.RLD`` of its ``mdistiller/engine/cfg.py`` (``CE_WEIGHT 1, ALPHA 1, BETA 8, T 4,
WARMUP 20``) and the README's command (``tools/train.py --cfg configs/cifar100/rld/<pair>.yaml --same-t
RLD.ALPHA 1. RLD.BETA 8. RLD.T 4.``): ``--same-t`` sets the confidence temperature ``ALPHA_T`` to ``T``
= 4, whereas ``cfg.py``'s default ``ALPHA_T`` is 1. figkd follows the README (``alpha_temperature=4``);
``alpha_temperature: 1`` gives ``cfg.py``'s loss.

Computed as the official code but numerically safer: the binary log-probabilities come from
log-sum-exp (the code takes ``log`` of summed probabilities), and the masked classes are excluded
exactly (the code fills them with -1e9 before the softmax). A sample whose true class the teacher
ranks last has no kept class: its MCD is 0 with a zero gradient (the code's -1e9 rows give two equal
uniform distributions, hence 0 too). ``standardize`` z-scores both logits first (logit
standardization; the official ``--logit-stand``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ._common import check_class_count, check_logits, check_positive, check_real, check_target, full_precision
from .registry import register_term
from .standardize import check_flag, maybe_standardize


def _log_binary(z: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """log [p(index), 1 - p(index)] of softmax(z), (B, 2), from log-sum-exp."""
    chosen = torch.zeros_like(z, dtype=torch.bool).scatter_(1, index[:, None], True)
    lse_all = torch.logsumexp(z, dim=1, keepdim=True)
    lse_rest = torch.logsumexp(z.masked_fill(chosen, float("-inf")), dim=1, keepdim=True)
    return torch.cat([z.gather(1, index[:, None]) - lse_all, lse_rest - lse_all], dim=1)


def _masked_kl(s: torch.Tensor, t: torch.Tensor, drop: torch.Tensor) -> torch.Tensor:
    """Per-sample KL(softmax(t)|kept || softmax(s)|kept) over the classes not in ``drop`` (B,); 0 (with a
    zero gradient) for a sample with no kept class."""
    some = (~drop).any(dim=1, keepdim=True)
    drop = drop & some  # a row with nothing kept is computed whole (finite) and then zeroed
    s = s.masked_fill(drop, float("-inf"))
    t = t.masked_fill(drop, float("-inf"))
    log_s = s - torch.logsumexp(s, dim=1, keepdim=True)
    log_t = t - torch.logsumexp(t, dim=1, keepdim=True)
    terms = log_t.exp() * (log_t - log_s)
    return torch.where(drop | ~some, torch.zeros_like(terms), terms).sum(1)


@full_precision
def rld_loss(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    target: torch.Tensor,
    alpha: float = 1.0,
    beta: float = 8.0,
    temperature: float = 4.0,
    alpha_temperature: float = 4.0,
    standardize: bool = False,
) -> torch.Tensor:
    """RLD loss ``alpha * scd + beta * mcd`` (see the module docstring), without CE and warm-up.

    Args:
        student_logits, teacher_logits: (B, C) logits, C >= 2; the teacher is detached.
        target: (B,) class indices.
        alpha, beta, temperature: zju-SWJ/RLD ``CFG.RLD.ALPHA = 1``, ``BETA = 8``, ``T = 4``.
        alpha_temperature: the confidence temperature of SCD; 4 (README's ``--same-t``; ``cfg.py``: 1).
        standardize: z-score each sample's logits first (logit standardization).
    """
    check_logits(student_logits, teacher_logits, name="rld_loss")
    check_target(target, student_logits, name="rld_loss")
    if student_logits.shape[1] < 2:
        raise ValueError("rld_loss: needs at least 2 classes")
    a = check_real(alpha, "rld_loss: alpha")
    b = check_real(beta, "rld_loss: beta")
    t = check_positive(temperature, "rld_loss: temperature")
    ta = check_positive(alpha_temperature, "rld_loss: alpha_temperature")
    s, tl = maybe_standardize(student_logits, teacher_logits.detach(), check_flag(standardize, "rld_loss: standardize"))
    target = target.long()
    # SCD: the student's confidence in the true class against the teacher's in its own top class.
    bin_s = _log_binary(s / ta, target)
    bin_t = _log_binary(tl / ta, tl.argmax(dim=1))
    scd = F.kl_div(bin_s, bin_t, reduction="none", log_target=True).sum(1).mean() * (ta * ta)
    # MCD: KD over the classes the teacher scores below the true class.
    drop = tl >= tl.gather(1, target[:, None])
    mcd = _masked_kl(s / t, tl / t, drop).mean() * (t * t)
    return a * scd + b * mcd


@register_term("rld", inputs=("student_logits", "teacher_logits", "target"), function=rld_loss,
               source="Sun et al. 2024 (Knowledge Distillation with Refined Logits); zju-SWJ/RLD "
                      "mdistiller/distillers/RLD.py (defaults: its mdistiller/engine/cfg.py CFG.RLD and README)",
               help="refined logit distillation: a binary confidence KL (true class against the teacher's top "
                    "class) and KD over the classes the teacher ranks below the true one",
               presets={
                   # RLD: zju-SWJ/RLD CFG.RLD CE_WEIGHT 1, ALPHA 1, BETA 8, T 4, WARMUP 20 (mdistiller/engine/cfg.py;
                   # the warm-up multiplies the RLD term only, RLD.forward_train) and its README's --same-t
                   # (ALPHA_T = T = 4; cfg.py: 1); alpha, beta, T and alpha_T are the term's defaults.
                   "rld": [{"term": "ce"}, {"term": "rld", "warmup": 20}],
               })
class RLDLoss(nn.Module):
    """`rld_loss` as a module: ``RLDLoss(alpha=1, beta=8, temperature=4, alpha_temperature=4)(s, t, y)``."""

    @classmethod
    def from_context(cls, context, alpha: float = 1.0, beta: float = 8.0, temperature: float = 4.0,
                     alpha_temperature: float = 4.0, standardize: bool = False) -> RLDLoss:
        """The ``rld`` objective term; a class count below 2 (known from the context) is refused here, at
        build time, rather than by `rld_loss` at the first step."""
        check_class_count(context.num_classes, 2, "rld", "its non-target term is over the classes the teacher "
                                                         "ranks below the true one")
        return cls(alpha, beta, temperature, alpha_temperature, standardize)

    def __init__(self, alpha: float = 1.0, beta: float = 8.0, temperature: float = 4.0,
                 alpha_temperature: float = 4.0, standardize: bool = False) -> None:
        super().__init__()
        self.alpha = check_real(alpha, "RLDLoss: alpha")
        self.beta = check_real(beta, "RLDLoss: beta")
        self.temperature = check_positive(temperature, "RLDLoss: temperature")
        self.alpha_temperature = check_positive(alpha_temperature, "RLDLoss: alpha_temperature")
        self.standardize = check_flag(standardize, "RLDLoss: standardize")

    def forward(self, student_logits: torch.Tensor, teacher_logits: torch.Tensor,
                target: torch.Tensor) -> torch.Tensor:
        return rld_loss(student_logits, teacher_logits, target, self.alpha, self.beta, self.temperature,
                        self.alpha_temperature, self.standardize)

    def extra_repr(self) -> str:
        return (f"alpha={self.alpha}, beta={self.beta}, temperature={self.temperature}, "
                f"alpha_temperature={self.alpha_temperature}, standardize={self.standardize}")
