"""Evidential knowledge distillation (EKD; Xiang et al., "Evidential Knowledge Distillation", ICCV 2025).

Official code: lyxiang-casia/EKD, ``mdistiller/distillers/KD4eModel.py`` (class ``KD4eModel``, the
distiller its CIFAR-100 configs ``configs/cifar100/ekd/model/<pair>.yaml`` select). Each logit vector z
parameterises a Dirichlet distribution by *evidence* plus a prior ``exp(lamb)`` per class (``lamb`` is
``EKD.STUDENT.LAMB`` / ``EKD.TEACHER.LAMB``, set per pair, e.g. -1.22 for resnet32x4 -> resnet8x4).

What ``forward_train`` computes (T = ``EKD.LOSS.TEMPERATURE`` = 1):

- ``ce``: the evidential cross-entropy, the expected CE under Dir(alpha) with alpha = exp(z_s) + exp(lamb):
  ``mean_b [digamma(sum_c alpha) - digamma(alpha_y)]``.
- first-order term (the Dirichlet's expectation, alpha = exp(z / T) + exp(lamb), p = alpha / sum alpha):
  ``kd = KD_WEIGHT * T^2 * mean_b KL(p_t || p_s)``;
- second-order term (the distributions themselves, alpha' = log1p(softplus(z / T)) + exp(lamb)):
  ``dirichlet = min(epoch / WARMUP, 1) * EKD_WEIGHT * T^2 * mean_b KL(Dir(alpha'_t) || Dir(alpha'_s))``.

Then it **overwrites both**: ``loss_kd = KD_WEIGHT * kd_loss(z_s, z_t, T)`` (plain KD on the logits) and
``loss_ekd = EKD_WEIGHT * (z_s - z_t) ** 2``, which the trainer reduces with ``.mean()`` (mdistiller's
``sum(l.mean() for l in losses_dict.values())``): a mean squared error over all B x C logits. So the loss
that produced the published numbers is

    variant "code":  ce + KD_WEIGHT * KD_T(z_s, z_t) + EKD_WEIGHT * mean_{b,c} (z_s - z_t)^2

and the evidential terms above, as the code computes them before overwriting them, are

    variant "paper": ce + kd + dirichlet

(the ``ekd`` term's default; ``variant: code`` for the published numbers). Other quirks of the released
code: ``EKD.LOSS.CE_WEIGHT`` is read but never applied to ``ce`` (several configs set it to 5.0, without
effect; ``ce_weight`` here does apply, default 1 = the code's effective weight); the warm-up only ever
applied to the overwritten Dirichlet term; the code's ``lamb`` is a float32 tensor (the float64 reference
values of the tests use a float64 one).

One pair differs: ``configs/cifar100/ekd/model/vgg13_vgg8.yaml`` selects the repository's ``CAT_KD`` distiller
(``mdistiller/distillers/CAT_KD.py``), not ``KD4eModel``. It reads the same EKD section (LAMB -0.60, KD and
EKD weights 4.5, WARMUP 30) and does not overwrite the evidential terms: its loss is ``variant: paper`` plus
4.5 x CAT-KD's loss on the last stage's maps (`figkd.losses.catkd.CATKDFeats`, the ``cat_kd_feats`` term).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ._common import check_logits, check_positive, check_real, check_target, full_precision
from .registry import register_term

VARIANTS = ("paper", "code")


def _exp_bounded(z: torch.Tensor) -> torch.Tensor:
    """``exp(z)`` with ``z`` clamped so that a sum of C of them stays finite in float32 (z <= 80 - log C).
    Equal to the official ``exp`` for every logit below ~75 (any trained network's); beyond, where the
    official code overflows to inf and returns nan, the values saturate (and their gradient is 0)."""
    return z.clamp(max=80.0 - math.log(z.shape[-1])).exp()


def evidential_ce(student_logits: torch.Tensor, target: torch.Tensor, lamb: float) -> torch.Tensor:
    """``mean_b [digamma(S) - digamma(alpha_y)]``, alpha = exp(z) + exp(lamb), S = sum_c alpha (exp bounded:
    `_exp_bounded`)."""
    alpha = _exp_bounded(student_logits) + math.exp(lamb)
    total = alpha.sum(dim=1)
    return (torch.digamma(total) - torch.digamma(alpha.gather(1, target[:, None]).squeeze(1))).mean()


def dirichlet_kl(alpha_p: torch.Tensor, alpha_q: torch.Tensor) -> torch.Tensor:
    """Per-sample KL(Dir(alpha_p) || Dir(alpha_q)) of (B, C) concentrations, (B,) (``compute_ekd_loss``
    of the code with ``t_alpha = alpha_p``, ``s_alpha = alpha_q``, before its batch mean)."""
    sum_p, sum_q = alpha_p.sum(dim=1), alpha_q.sum(dim=1)
    return (torch.lgamma(sum_p) - torch.lgamma(sum_q) - (torch.lgamma(alpha_p) - torch.lgamma(alpha_q)).sum(1)
            + ((alpha_p - alpha_q) * (torch.digamma(alpha_p) - torch.digamma(sum_p)[:, None])).sum(1))


def _check_variant(variant: str) -> str:
    if variant not in VARIANTS:
        raise ValueError(f"ekd: variant must be one of {', '.join(VARIANTS)}, got {variant!r}")
    return variant


@full_precision
def ekd_loss(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    target: torch.Tensor,
    epoch: float | torch.Tensor | None = None,
    variant: str = "paper",
    lamb: float = -1.22,
    temperature: float = 1.0,
    ce_weight: float = 1.0,
    kd_weight: float = 4.5,
    ekd_weight: float = 4.5,
    dirichlet_warmup: int = 30,
) -> dict[str, torch.Tensor]:
    """EKD's weighted parts (see the module docstring): ``{"ce", "kd", "dirichlet"}`` (variant "paper")
    or ``{"ce", "kd", "mse"}`` (variant "code"); their sum is the loss.

    Args:
        student_logits, teacher_logits: (B, C) logits; the teacher is detached.
        target: (B,) class indices.
        epoch: the 1-based epoch (a number or a 0-dim tensor) of the Dirichlet term's warm-up; None:
            no warm-up (factor 1).
        variant: "paper" (the evidential terms) or "code" (the released code's effective loss).
        lamb, temperature, kd_weight, ekd_weight, dirichlet_warmup: lyxiang-casia/EKD
            ``configs/cifar100/ekd/model/resnet32x4_resnet8x4.yaml`` (LAMB -1.22, TEMPERATURE 1,
            KD_WEIGHT 4.5, EKD_WEIGHT 4.5, WARMUP 30). ``dirichlet_warmup`` ramps the Dirichlet term only, as
            the code's ``min(epoch / WARMUP, 1)``; it is not an objective entry's ``warmup``, which would ramp
            the whole term (CE and KD included).
        ce_weight: weight of the evidential CE (the code applies none: 1).
    """
    check_logits(student_logits, teacher_logits, name="ekd_loss")
    check_target(target, student_logits, name="ekd_loss")
    variant = _check_variant(variant)
    lam = check_real(lamb, "ekd_loss: lamb")
    t = check_positive(temperature, "ekd_loss: temperature")
    w_ce = check_real(ce_weight, "ekd_loss: ce_weight")
    w_kd = check_real(kd_weight, "ekd_loss: kd_weight")
    w_ekd = check_real(ekd_weight, "ekd_loss: ekd_weight")
    s, tl = student_logits, teacher_logits.detach()
    target = target.long()
    out = {"ce": w_ce * evidential_ce(s, target, lam)}
    if variant == "code":
        log_s, log_t = F.log_softmax(s / t, dim=1), F.log_softmax(tl / t, dim=1)
        out["kd"] = w_kd * F.kl_div(log_s, log_t, reduction="none", log_target=True).sum(1).mean() * (t * t)
        out["mse"] = w_ekd * (s - tl).square().mean()
        return out
    prior = math.exp(lam)
    # p = alpha / sum(alpha) with alpha = exp(z / T) + exp(lamb), in the log domain (log alpha =
    # logaddexp(z / T, lamb)): the official exp overflows to inf/inf = nan for large logits at small T.
    log_alpha_s = torch.logaddexp(s / t, torch.full_like(s, lam))
    log_alpha_t = torch.logaddexp(tl / t, torch.full_like(tl, lam))
    log_p_s = log_alpha_s - log_alpha_s.logsumexp(1, keepdim=True)
    log_p_t = log_alpha_t - log_alpha_t.logsumexp(1, keepdim=True)
    out["kd"] = w_kd * (t * t) * F.kl_div(log_p_s, log_p_t, reduction="none", log_target=True).sum(1).mean()
    second_s = torch.log1p(F.softplus(s / t)) + prior
    second_t = torch.log1p(F.softplus(tl / t)) + prior
    ramp = _ramp(epoch, dirichlet_warmup, s)
    out["dirichlet"] = ramp * w_ekd * (t * t) * dirichlet_kl(second_t, second_s).mean()
    return out


def _ramp(epoch: float | torch.Tensor | None, warmup: int, like: torch.Tensor) -> float | torch.Tensor:
    """``min(epoch / warmup, 1)`` (the code's rule; epochs count from 1); torch ops for a tensor epoch."""
    if warmup == 0 or epoch is None:
        return 1.0
    if isinstance(epoch, torch.Tensor):
        return torch.clamp(epoch.to(like.dtype) / warmup, max=1.0)
    return min(float(epoch) / warmup, 1.0)


@register_term("ekd", inputs=("student_logits", "teacher_logits", "target", "epoch"), function=ekd_loss,
               source="Xiang et al. ICCV 2025; lyxiang-casia/EKD mdistiller/distillers/KD4eModel.py "
                      "(defaults: configs/cifar100/ekd/model/resnet32x4_resnet8x4.yaml)",
               help="evidential KD: the logits as Dirichlet evidence (variant paper) or the released code's "
                    "KD + MSE (variant code); includes its evidential CE",
               presets={
                   # EKD: lyxiang-casia/EKD configs/cifar100/ekd/model/resnet32x4_resnet8x4.yaml (LAMB -1.22,
                   # TEMPERATURE 1, KD_WEIGHT 4.5, EKD_WEIGHT 4.5, WARMUP 30: the term's defaults); the term holds
                   # its evidential CE. "ekd": the evidential terms (the paper's), the Dirichlet term ramped over
                   # WARMUP 30 epochs (the term's dirichlet_warmup, its default); "ekd-code": the released code's
                   # effective loss (KD + MSE), which produced its numbers.
                   "ekd": [{"term": "ekd"}],
                   "ekd-code": [{"term": "ekd", "variant": "code"}],
               })
class EKDLoss(nn.Module):
    """`ekd_loss` as a module returning its parts: ``EKDLoss(variant="paper")(s, t, target, epoch)``.

    The term includes its (evidential) CE: an objective uses it alone (the ``ekd`` and ``ekd-code``
    presets), not beside the ``ce`` term.
    """

    def __init__(self, variant: str = "paper", lamb: float = -1.22, temperature: float = 1.0,
                 ce_weight: float = 1.0, kd_weight: float = 4.5, ekd_weight: float = 4.5,
                 dirichlet_warmup: int = 30) -> None:
        super().__init__()
        self.variant = _check_variant(variant)
        self.lamb = check_real(lamb, "EKDLoss: lamb")
        self.temperature = check_positive(temperature, "EKDLoss: temperature")
        self.ce_weight = check_real(ce_weight, "EKDLoss: ce_weight")
        self.kd_weight = check_real(kd_weight, "EKDLoss: kd_weight")
        self.ekd_weight = check_real(ekd_weight, "EKDLoss: ekd_weight")
        if isinstance(dirichlet_warmup, bool) or not isinstance(dirichlet_warmup, int) or dirichlet_warmup < 0:
            raise ValueError(f"EKDLoss: dirichlet_warmup must be an integer number of epochs >= 0, got "
                             f"{dirichlet_warmup!r}")
        self.dirichlet_warmup = dirichlet_warmup

    def forward(self, student_logits: torch.Tensor, teacher_logits: torch.Tensor, target: torch.Tensor,
                epoch: torch.Tensor) -> dict[str, torch.Tensor]:
        return ekd_loss(student_logits, teacher_logits, target, epoch, self.variant, self.lamb, self.temperature,
                        self.ce_weight, self.kd_weight, self.ekd_weight, self.dirichlet_warmup)

    def extra_repr(self) -> str:
        return (f"variant={self.variant!r}, lamb={self.lamb}, temperature={self.temperature}, "
                f"ce_weight={self.ce_weight}, kd_weight={self.kd_weight}, ekd_weight={self.ekd_weight}, "
                f"dirichlet_warmup={self.dirichlet_warmup}")
