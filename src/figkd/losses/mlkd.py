"""Multi-level logit distillation (Jin, Wang and Lin, CVPR 2023).

Matches the effective behaviour of the official code, Jin-Ying/Multi-Level-Logit-Distillation,
`mdistiller/distillers/KD_ours.py` (class `KD_ours`, `forward_train`, commit 6327e73), because the
MLKD numbers the FiGKD paper compares with (Tables 1-9) and the base of its ablation (Table 10) come
from that code. Inputs are the logits of a weakly and a strongly augmented view of the same images
(the engine provides both views; the objective term declares `student_logits_strong` and
`teacher_logits_strong`).

What the official code computes (kd_weight = 0.9, ce_weight = 0.1, T = 4 from its `cfg.py`,
`CFG.KD.LOSS.KD_WEIGHT / CE_WEIGHT / TEMPERATURE`; the temperature set is (T, 3, 5, 2, 6)):

- ``ce = ce_weight * (CE(s_weak, y) + CE(s_strong, y))``.
- Confidence masks from the teacher's weak view at temperature 1: the per-sample maximum softmax
  probability and the per-class sum of softmax probabilities over the batch, each compared with its
  median (`np.percentile(., 50)`, linear interpolation) with ``<=``.
- ``kd = kd_weight * sum_T KD_T(weak) * frac(mask)``
  ``   + kd_weight * [KD_T(strong) + KD_3(strong) + KD_5(strong) + KD_2(weak) + KD_6(weak)]``
  where KD_T is the batch-mean KL times T^2 (`kd.kd_loss`).
- ``cc = kd_weight * sum_T CC_T(weak) * frac(class_mask)``, with the class-correlation loss
  CC_T = ||P_t^T P_t - P_s^T P_s||_F^2 / C, P = softmax(logits / T) of shape (B, C).
- ``bc = kd_weight * sum_T BC_T(weak) * frac(mask)``, with the batch-correlation loss
  BC_T = ||P_t P_t^T - P_s P_s^T||_F^2 / B.

Differences between that code's effective behaviour and the MLKD paper, all reproduced here:

1. The confidence masks are meant to select samples (paper: instance- and batch-level alignment on
   confident predictions), but the code multiplies an already batch-reduced scalar loss by the
   boolean mask vector and takes the mean: each masked term is scaled by the *fraction* of entries
   below the median (0.5 for an even batch without ties) instead of being restricted to them. The
   mask also keeps the *less* confident half (``confidence <= median``).
2. The "strong view" KD sum uses the weak-view logits for its T = 2 and T = 6 terms, so the weak
   view enters those two temperatures twice (once masked, once unmasked).
3. The code also computes strong-view class- and batch-correlation losses but does not return them
   (`losses_dict` holds `loss_cc_weak` and `loss_bc_weak` only); they do not reach the total and
   are not computed here.
4. The teacher is evaluated on both views without gradient; the mask thresholds are computed on the
   host with numpy in the official code. Here the median is the same linear interpolation computed
   on the device from a sort (no host synchronisation).

The total MLKD loss is ``ce + kd + cc + bc`` (the official trainer sums `losses_dict`).

``standardize=True`` (logit standardization, Sun et al. CVPR 2024; `figkd.losses.standardize`) z-scores
the logits of the KD sums only, as sunshangquan/logit-standardization-KD's ``mdistiller/distillers/MLKD.py``
does (its ``kd_loss(..., logit_stand=...)``): the class- and batch-correlation terms and the confidence
masks keep the raw logits. Its CIFAR-100 setting (``--logit-stand --base-temp 2 --kd-weight 9``) sets
T = 2 and kd_weight = 9 (the ``mlkd+ls`` preset); T = 2 is then also one of the fixed temperatures, so
the T = 2 KD terms count twice, as in that code.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ._common import check_logits, check_positive, check_real, check_target, full_precision
from .registry import register_term
from .standardize import check_flag, standardize_logits

#: The temperatures of `KD_ours.forward_train`, in the order the code sums them (the first is the
#: configurable `CFG.KD.TEMPERATURE`, 4 on CIFAR-100).
EXTRA_TEMPERATURES = (3.0, 5.0, 2.0, 6.0)


def _median_numpy_linear(x: torch.Tensor) -> torch.Tensor:
    """Median of a 1-D tensor with numpy's default 'linear' percentile rule (`np.percentile(x, 50)`),
    including numpy's lerp formula, from a sort: static indices, no host synchronisation."""
    n = x.shape[0]
    s = torch.sort(x).values
    pos = 0.5 * (n - 1)
    lo = int(pos)
    hi = min(lo + 1, n - 1)
    frac = pos - lo
    a, b = s[lo], s[hi]
    # numpy._lerp: a + (b - a) * t, computed as b - (b - a) * (1 - t) when t >= 0.5.
    if frac >= 0.5:
        return b - (b - a) * (1.0 - frac)
    return a + (b - a) * frac


def _kd_from_log_probs(log_p_s: torch.Tensor, log_p_t: torch.Tensor, t: float) -> torch.Tensor:
    return F.kl_div(log_p_s, log_p_t, reduction="none", log_target=True).sum(1).mean() * (t * t)


def _class_corr(p_s: torch.Tensor, p_t: torch.Tensor) -> torch.Tensor:
    c = p_s.shape[1]
    return ((p_t.T @ p_t - p_s.T @ p_s) ** 2).sum() / c


def _batch_corr(p_s: torch.Tensor, p_t: torch.Tensor) -> torch.Tensor:
    b = p_s.shape[0]
    return ((p_t @ p_t.T - p_s @ p_s.T) ** 2).sum() / b


@full_precision
def mlkd_loss(
    student_weak: torch.Tensor,
    teacher_weak: torch.Tensor,
    student_strong: torch.Tensor,
    teacher_strong: torch.Tensor,
    target: torch.Tensor,
    temperature: float = 4.0,
    ce_weight: float = 0.1,
    kd_weight: float = 0.9,
    standardize: bool = False,
) -> dict[str, torch.Tensor]:
    """MLKD losses of the official code (see the module docstring): ``dict(ce, kd, cc, bc)``.

    All four are already weighted (``ce_weight``, ``kd_weight``); their sum is the MLKD objective.

    Args:
        student_weak, teacher_weak: (B, C) logits of the weakly augmented view.
        student_strong, teacher_strong: (B, C) logits of the strongly augmented view.
        target: (B,) class indices.
        temperature: the first temperature of the set (T, 3, 5, 2, 6); 4 in the official config.
        ce_weight, kd_weight: 0.1 and 0.9 in the official config (`CFG.KD.LOSS`).
        standardize: z-score the logits of the KD terms (logit standardization; see the module docstring).
    """
    check_logits(student_weak, teacher_weak, name="mlkd_loss (weak view)")
    check_logits(student_strong, teacher_strong, name="mlkd_loss (strong view)")
    if student_strong.shape != student_weak.shape:
        raise ValueError(
            f"mlkd_loss: weak and strong views differ in shape: {tuple(student_weak.shape)} vs "
            f"{tuple(student_strong.shape)}"
        )
    check_target(target, student_weak, name="mlkd_loss")
    temps = (check_positive(temperature, "mlkd_loss: temperature"), *EXTRA_TEMPERATURES)
    w_ce = check_real(ce_weight, "mlkd_loss: ce_weight")
    w_kd = check_real(kd_weight, "mlkd_loss: kd_weight")
    teacher_weak = teacher_weak.detach()
    teacher_strong = teacher_strong.detach()
    target = target.long()
    standardized = check_flag(standardize, "mlkd_loss: standardize")
    if standardized:  # the KD sums only (LS's MLKD.py)
        kd_views = {"weak": (standardize_logits(student_weak), standardize_logits(teacher_weak)),
                    "strong": (standardize_logits(student_strong), standardize_logits(teacher_strong))}
    else:
        kd_views = {"weak": (student_weak, teacher_weak), "strong": (student_strong, teacher_strong)}

    # Confidence masks (teacher, weak view, T = 1), reduced to the fraction of kept entries.
    p_t1 = F.softmax(teacher_weak, dim=1)
    confidence = p_t1.max(dim=1).values
    frac = (confidence <= _median_numpy_linear(confidence)).to(p_t1.dtype).mean()
    class_confidence = p_t1.sum(dim=0)
    class_frac = (class_confidence <= _median_numpy_linear(class_confidence)).to(p_t1.dtype).mean()

    ce = w_ce * (F.cross_entropy(student_weak, target) + F.cross_entropy(student_strong, target))

    kd_weak = []
    cc_weak = []
    bc_weak = []
    log_weak = {}
    for t in temps:
        log_s = F.log_softmax(student_weak / t, dim=1)
        log_t = F.log_softmax(teacher_weak / t, dim=1)
        p_s, p_t = log_s.exp(), log_t.exp()
        if standardized:  # the KD terms on the standardised logits, cc and bc on the raw ones
            log_s = F.log_softmax(kd_views["weak"][0] / t, dim=1)
            log_t = F.log_softmax(kd_views["weak"][1] / t, dim=1)
        log_weak[t] = (log_s, log_t)
        kd_weak.append(_kd_from_log_probs(log_s, log_t, t))
        cc_weak.append(_class_corr(p_s, p_t))
        bc_weak.append(_batch_corr(p_s, p_t))

    kd_strong = []
    for t in temps[:3]:
        log_s = F.log_softmax(kd_views["strong"][0] / t, dim=1)
        log_t = F.log_softmax(kd_views["strong"][1] / t, dim=1)
        kd_strong.append(_kd_from_log_probs(log_s, log_t, t))
    for t in temps[3:]:  # the official "strong" sum uses the weak-view logits at T = 2 and T = 6
        kd_strong.append(_kd_from_log_probs(*log_weak[t], t))

    kd = w_kd * frac * torch.stack(kd_weak).sum() + w_kd * torch.stack(kd_strong).sum()
    cc = w_kd * class_frac * torch.stack(cc_weak).sum()
    bc = w_kd * frac * torch.stack(bc_weak).sum()
    return {"ce": ce, "kd": kd, "cc": cc, "bc": bc}


@register_term("mlkd", inputs=("student_logits", "teacher_logits", "student_logits_strong",
                                 "teacher_logits_strong", "target"), batch_coupled=True, function=mlkd_loss,
               source="Jin et al. CVPR 2023; Jin-Ying/Multi-Level-Logit-Distillation "
                      "mdistiller/distillers/KD_ours.py (defaults: its mdistiller/engine/cfg.py CFG.KD)",
               help="multi-level logit distillation: instance, batch and class relations at several temperatures, "
                    "on a weak and a strong view (includes its CE)",
               presets={
                   # MLKD official code: KD_ours.py with CFG.KD TEMPERATURE 4, CE_WEIGHT 0.1, KD_WEIGHT 0.9 (the
                   # term's defaults; Jin-Ying/Multi-Level-Logit-Distillation, mdistiller/engine/cfg.py); CE is
                   # part of the term.
                   "mlkd": [{"term": "mlkd"}],
                   # Logit standardization (sunshangquan/logit-standardization-KD README: --logit-stand
                   # --base-temp 2 --kd-weight 9; tools/train.py: MLKD kd_weight 9 and T 2; its MLKD.py; the CE
                   # weight as configured: 0.1).
                   "mlkd+ls": [{"term": "mlkd", "temperature": 2.0, "kd_weight": 9.0, "standardize": True}],
               })
class MLKDLoss(nn.Module):
    """`mlkd_loss` as a module; returns the dict of the four weighted parts.

    `MLKDLoss()(student_weak, teacher_weak, student_strong, teacher_strong, target)`.
    """

    def __init__(self, temperature: float = 4.0, ce_weight: float = 0.1, kd_weight: float = 0.9,
                 standardize: bool = False) -> None:
        super().__init__()
        self.temperature = check_positive(temperature, "MLKDLoss: temperature")
        self.ce_weight = check_real(ce_weight, "MLKDLoss: ce_weight")
        self.kd_weight = check_real(kd_weight, "MLKDLoss: kd_weight")
        self.standardize = check_flag(standardize, "MLKDLoss: standardize")

    def forward(self, student_weak: torch.Tensor, teacher_weak: torch.Tensor, student_strong: torch.Tensor,
                teacher_strong: torch.Tensor, target: torch.Tensor) -> dict[str, torch.Tensor]:
        return mlkd_loss(student_weak, teacher_weak, student_strong, teacher_strong, target,
                         self.temperature, self.ce_weight, self.kd_weight, self.standardize)

    def extra_repr(self) -> str:
        return (f"temperature={self.temperature}, ce_weight={self.ce_weight}, kd_weight={self.kd_weight}, "
                f"standardize={self.standardize}")
