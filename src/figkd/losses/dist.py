"""DIST: knowledge distillation from a stronger teacher (Huang et al., NeurIPS 2022).

Formula of the official code (hunto/DIST_KD; the classification loss lives in the author's
classification code base, `lib/models/losses/dist_kd.py`, class `DIST(beta, gamma, tau)`):

    y = softmax(z / tau)
    inter = 1 - mean_b pearson(y_s[b, :], y_t[b, :])      (inter-class relation, per sample)
    intra = 1 - mean_c pearson(y_s[:, c], y_t[:, c])      (intra-class relation, per class)
    loss  = tau^2 * (beta * inter + gamma * intra)

with pearson(a, b) = <a - mean a, b - mean b> / (||a - mean a|| * ||b - mean b|| + 1e-8).
Defaults beta = gamma = tau = 1 are the class defaults (the ImageNet setting). The CIFAR-100 recipe
of the same code base (`configs/strategies/distill/dist_cifar.yaml`: `kd: dist_t4`,
`ori_loss_weight: 1`, `kd_loss_weight: 2`) is the `dist` preset of `build_objective`.

``standardize=True`` z-scores both logit vectors before the softmax (logit standardization, Sun et al.
CVPR 2024, `figkd.losses.standardize`); the LS authors did not publish a DIST setting.
"""

from __future__ import annotations

import torch
from torch import nn

from ._common import check_logits, check_positive, check_real, full_precision
from .registry import register_term
from .standardize import check_flag, maybe_standardize

#: Denominator guard of the official `cosine_similarity`.
EPS = 1e-8


def _pearson_rows(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    a = a - a.mean(dim=1, keepdim=True)
    b = b - b.mean(dim=1, keepdim=True)
    return (a * b).sum(1) / (a.norm(dim=1) * b.norm(dim=1) + EPS)


@full_precision
def dist_loss(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    beta: float = 1.0,
    gamma: float = 1.0,
    temperature: float = 1.0,
    standardize: bool = False,
) -> torch.Tensor:
    """DIST loss tau^2 * (beta * inter + gamma * intra) (see the module docstring); ``standardize``
    z-scores each sample's logits first."""
    check_logits(student_logits, teacher_logits, name="dist_loss")
    student_logits, teacher_logits = maybe_standardize(student_logits, teacher_logits,
                                                       check_flag(standardize, "dist_loss: standardize"))
    b = check_real(beta, "dist_loss: beta")
    g = check_real(gamma, "dist_loss: gamma")
    t = check_positive(temperature, "dist_loss: temperature")
    y_s = torch.softmax(student_logits / t, dim=1)
    y_t = torch.softmax(teacher_logits.detach() / t, dim=1)
    inter = 1.0 - _pearson_rows(y_s, y_t).mean()
    intra = 1.0 - _pearson_rows(y_s.T, y_t.T).mean()
    return (t * t) * (b * inter + g * intra)


@register_term("dist", inputs=("student_logits", "teacher_logits"), batch_coupled=True, function=dist_loss,
               source="Huang et al. NeurIPS 2022; hunto/DIST_KD (classification code: lib/models/losses/dist_kd.py)",
               help="DIST: Pearson correlations of the predictions within each sample (inter-class) and within "
                    "each class over the batch (intra-class)",
               presets={
                   # DIST CIFAR-100 recipe of the official code base: configs/strategies/distill/dist_cifar.yaml
                   # (ori_loss_weight 1, kd_loss_weight 2, kd "dist_t4" = DIST(beta=1, gamma=1, tau=4) in
                   # lib/models/losses/kd_loss.py; beta and gamma 1 are the term's defaults).
                   "dist": [{"term": "ce"}, {"term": "dist", "weight": 2.0, "temperature": 4.0}],
               })
class DISTLoss(nn.Module):
    """`dist_loss` as a module: `DISTLoss(beta=1.0, gamma=1.0, temperature=1.0)(s, t)`."""

    def __init__(self, beta: float = 1.0, gamma: float = 1.0, temperature: float = 1.0,
                 standardize: bool = False) -> None:
        super().__init__()
        self.beta = check_real(beta, "DISTLoss: beta")
        self.gamma = check_real(gamma, "DISTLoss: gamma")
        self.temperature = check_positive(temperature, "DISTLoss: temperature")
        self.standardize = check_flag(standardize, "DISTLoss: standardize")

    def forward(self, student_logits: torch.Tensor, teacher_logits: torch.Tensor) -> torch.Tensor:
        return dist_loss(student_logits, teacher_logits, self.beta, self.gamma, self.temperature, self.standardize)

    def extra_repr(self) -> str:
        return (f"beta={self.beta}, gamma={self.gamma}, temperature={self.temperature}, "
                f"standardize={self.standardize}")
