"""TeKAP, logit level (Hossain et al., "Single Teacher, Multiple Perspectives: Teacher Knowledge
Augmentation for Enhanced Knowledge Distillation", ICLR 2025).

Formula of the official code, mdimtiazh/TeKAP ``distiller_zoo/Ours_TeKAP_L.py`` (``DistillKL.forward``):
the student is distilled from the real teacher and from K = 3 *perturbed teachers*, each the teacher's
logits mixed with fresh Gaussian noise,

    t_k = 0.9 * t + 0.1 * eps_k,   eps_k ~ N(0, I)   (a new draw at every step)
    tekap = KD_T(s, t) + 0.8 * sum_k KD_T(s, t_k)

with KD_T the batch-mean KL times T^2 (`figkd.losses.kd.kd_loss`) at T = 4 (``--kd_T`` default). Its
training script weighs CE by ``-r 0.1`` and this term by ``-a 0.9`` (README command; ``helper/loops.py``:
``loss = gamma * loss_cls + alpha * loss_div``): the ``tekap`` preset.

The official code draws the noise with ``torch.randn(...).cuda()`` from the global generator; here every
draw comes from `figkd.losses.random` keyed by the run's seed, the epoch and each sample's index in the
training set, so ``--resume``, DDP (N processes draw what one process would) and the captured step stay
exact. ``standardize`` z-scores student and teacher logits first; the perturbed teachers are then made
from the standardised teacher (logit standardization; not in TeKAP's code).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from . import random as draws
from ._common import check_logits, check_positive, check_real, full_precision
from .registry import register_term
from .standardize import check_flag, maybe_standardize


def _kd(log_p_s: torch.Tensor, teacher: torch.Tensor, t: float) -> torch.Tensor:
    log_p_t = F.log_softmax(teacher / t, dim=1)
    return F.kl_div(log_p_s, log_p_t, reduction="none", log_target=True).sum(1).mean() * (t * t)


@full_precision
def tekap_loss(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    noise: torch.Tensor,
    temperature: float = 4.0,
    teacher_weight: float = 0.9,
    noise_weight: float = 0.1,
    augmented_weight: float = 0.8,
    standardize: bool = False,
) -> torch.Tensor:
    """TeKAP's logit loss ``KD(s, t) + augmented_weight * sum_k KD(s, teacher_weight * t + noise_weight *
    noise[k])`` (see the module docstring).

    Args:
        student_logits, teacher_logits: (B, C) logits; the teacher is detached.
        noise: (K, B, C) standard-normal draws, one (B, C) slice per perturbed teacher (K = 3 in the code;
            zeros give K copies of the teacher scaled by ``teacher_weight``).
        temperature: T = 4 (TeKAP ``train_student.py --kd_T``).
        teacher_weight, noise_weight, augmented_weight: 0.9, 0.1, 0.8 (``Ours_TeKAP_L.py``).
        standardize: z-score each sample's logits first (logit standardization).
    """
    check_logits(student_logits, teacher_logits, name="tekap_loss")
    if noise.ndim != 3 or noise.shape[1:] != student_logits.shape:
        raise ValueError(f"tekap_loss: noise must have shape (K, {', '.join(map(str, student_logits.shape))}), "
                         f"got {tuple(noise.shape)}")
    t = check_positive(temperature, "tekap_loss: temperature")
    tw = check_real(teacher_weight, "tekap_loss: teacher_weight")
    nw = check_real(noise_weight, "tekap_loss: noise_weight")
    aw = check_real(augmented_weight, "tekap_loss: augmented_weight")
    s, teacher = maybe_standardize(student_logits, teacher_logits.detach(),
                                   check_flag(standardize, "tekap_loss: standardize"))
    log_p_s = F.log_softmax(s / t, dim=1)
    loss = _kd(log_p_s, teacher, t)
    augmented = [_kd(log_p_s, tw * teacher + nw * noise[k], t) for k in range(noise.shape[0])]
    if augmented:
        loss = loss + aw * torch.stack(augmented).sum()
    return loss


@register_term("tekap", inputs=("student_logits", "teacher_logits", "index", "epoch"), function=tekap_loss,
               source="Hossain et al. ICLR 2025; mdimtiazh/TeKAP distiller_zoo/Ours_TeKAP_L.py "
                      "(T 4: train_student.py --kd_T; weights: README command -r 0.1 -a 0.9)",
               help="TeKAP: KD from the teacher and from perturbed copies of its logits (teacher knowledge "
                    "augmentation)",
               presets={
                   # TeKAP (logit level): mdimtiazh/TeKAP README command -r 0.1 -a 0.9 (--kd_T 4); Ours_TeKAP_L.py:
                   # 3 perturbed teachers 0.9 t + 0.1 N(0, 1), weighted 0.8 each (the term's defaults).
                   "tekap": [{"term": "ce", "weight": 0.1}, {"term": "tekap", "weight": 0.9}],
               })
class TeKAPLoss(nn.Module):
    """`tekap_loss` with the noise drawn per sample from `figkd.losses.random` (key: the run's seed and
    ``"tekap/noise"``; counter: the 1-based epoch and the sample's index in the training set).

    ``TeKAPLoss(seed=0)(student_logits, teacher_logits, index, epoch)``; ``index`` (B,) int64, ``epoch``
    a 0-dim tensor. Built by the engine from the run's seed (`from_context`).
    """

    @classmethod
    def from_context(cls, context, temperature: float = 4.0, num_teachers: int = 3, teacher_weight: float = 0.9,
                     noise_weight: float = 0.1, augmented_weight: float = 0.8,
                     standardize: bool = False) -> TeKAPLoss:
        return cls(temperature=temperature, num_teachers=num_teachers, teacher_weight=teacher_weight,
                   noise_weight=noise_weight, augmented_weight=augmented_weight, standardize=standardize,
                   seed=context.seed)

    def __init__(self, temperature: float = 4.0, num_teachers: int = 3, teacher_weight: float = 0.9,
                 noise_weight: float = 0.1, augmented_weight: float = 0.8, standardize: bool = False,
                 seed: int = 0) -> None:
        super().__init__()
        if isinstance(num_teachers, bool) or not isinstance(num_teachers, int) or num_teachers < 0:
            raise ValueError(f"TeKAPLoss: num_teachers must be an integer >= 0, got {num_teachers!r}")
        self.temperature = check_positive(temperature, "TeKAPLoss: temperature")
        self.num_teachers = num_teachers
        self.teacher_weight = check_real(teacher_weight, "TeKAPLoss: teacher_weight")
        self.noise_weight = check_real(noise_weight, "TeKAPLoss: noise_weight")
        self.augmented_weight = check_real(augmented_weight, "TeKAPLoss: augmented_weight")
        self.standardize = check_flag(standardize, "TeKAPLoss: standardize")
        self.key = draws.make_key(seed, "tekap/noise")

    def noise(self, index: torch.Tensor, epoch: torch.Tensor, num_classes: int,
              dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """(K, B, C) standard-normal draws for the samples ``index`` at ``epoch``."""
        z = draws.normal(self.key, epoch, index, self.num_teachers * num_classes, dtype)
        return z.reshape(index.shape[0], self.num_teachers, num_classes).transpose(0, 1)

    def forward(self, student_logits: torch.Tensor, teacher_logits: torch.Tensor, index: torch.Tensor,
                epoch: torch.Tensor) -> torch.Tensor:
        check_logits(student_logits, teacher_logits, name="TeKAPLoss")
        if not isinstance(epoch, torch.Tensor):  # a Python epoch outside the engine (the engine passes a tensor)
            epoch = torch.tensor(float(epoch), device=index.device)
        noise = self.noise(index, epoch, student_logits.shape[1])
        return tekap_loss(student_logits, teacher_logits, noise, self.temperature, self.teacher_weight,
                          self.noise_weight, self.augmented_weight, self.standardize)

    def extra_repr(self) -> str:
        return (f"temperature={self.temperature}, num_teachers={self.num_teachers}, "
                f"teacher_weight={self.teacher_weight}, noise_weight={self.noise_weight}, "
                f"augmented_weight={self.augmented_weight}, standardize={self.standardize}")
