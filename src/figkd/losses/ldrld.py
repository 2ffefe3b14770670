"""Local dense relational logit distillation (LDRLD; Xu et al., "Local Dense Logit Relations for Enhanced
Knowledge Distillation", ICCV 2025).

Formula of the official code, yema-web/LDRLD ``distiller_zoo/LDRLD.py`` (``selective_softmax_loss`` and
``calculate_recursion_combinations``). With the student's top-k classes (k = 7) in rank order r = 1..k,
all logits divided by T:

- for every pair of ranks (i, j), i < j: the KL between teacher and student softmax over those two
  classes only, weighted by the adaptive decay weight
  ``w(i, j) = 2 / (1.5 + |i - j|) * exp(-0.05 (i + j))`` (``ADW`` with a = 2, gamma = 0.05);
- one KL over the softmax of the k classes together (weight 1);
- ``ldrld = T^2 * mean_b [sum_pairs w KL_pair + KL_group] / (k (k - 1) / 2 + 1)`` (the code divides the
  sum over the 21 pairs and the group by their number, 22);
- ``rntk`` (remaining non-target knowledge): T^2 * the batch-mean KL over the classes outside the top k;
- ``loss = alpha * ldrld + beta * rntk`` with alpha = 10.5, beta = 7 (README command ``-a 10.5 -b 7``,
  ``--kd_T 4``, ``--k 7``), plus CE with weight 1 (``-r 1.0``).

The code's quirk: ``LDRLD.forward`` adds ``ce_loss_weight * CE`` with ``ce_loss_weight = gamma`` (``-r``),
and the training loop (``helper/loops.py``) then multiplies the whole returned loss by ``gamma`` again
(``loss = opt.gamma * loss_kd``): CE is weighted by gamma^2 and the distillation terms by gamma. At the
published gamma = 1 this changes nothing; figkd implements the intent (CE weighted once, by the ``ce``
term of the objective; the ``ldrld`` preset: ce 1 + ldrld 1). The code removes the unselected classes by
subtracting 1000 from their scaled logits; here they are excluded exactly (same values in float64).
Its training script also warms the *learning rate* up linearly over the first 20 epochs
(``--wram_up 20``, ``adjust_learning_rate_wram_up``, which then keeps 19/20 of the rate until epoch 150): a
recipe setting, not part of the loss, which the LDRLD configs of ``configs/paper`` reproduce with the
``lr_warmup_epochs`` and ``lr_warmup_hold`` fields (docs/engine.md, "Learning-rate warm-up").
"""

from __future__ import annotations

import math
from itertools import combinations

import torch
import torch.nn.functional as F
from torch import nn

from ._common import check_class_count, check_logits, check_positive, check_real, full_precision
from .registry import register_term
from .standardize import check_flag, maybe_standardize

#: ``ADW`` of the official code: a = 2, gamma = 0.05, offset 1.5.
ADW_A, ADW_GAMMA, ADW_OFFSET = 2.0, 0.05, 1.5


def pair_weights(k: int, decay: float = ADW_GAMMA) -> list[tuple[int, int, float]]:
    """(i, j, w) for every pair of ranks i < j of the top ``k`` (0-based), in the code's order
    (``itertools.combinations``), with ``w = 2 / (1.5 + |i - j|) * exp(-decay * (i + 1 + j + 1))``."""
    return [(i, j, ADW_A / (ADW_OFFSET + abs(i - j)) * math.exp(-decay * (i + 1 + j + 1)))
            for i, j in combinations(range(k), 2)]


def _kl_rows(log_s: torch.Tensor, log_t: torch.Tensor) -> torch.Tensor:
    return (log_t.exp() * (log_t - log_s)).sum(-1)


def pair_tensors(k: int, decay: float = ADW_GAMMA, device=None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """`pair_weights` as tensors: first ranks (P,), second ranks (P,) (int64) and weights (P,) (float64)."""
    pairs = pair_weights(k, decay)
    return (torch.tensor([p[0] for p in pairs], device=device), torch.tensor([p[1] for p in pairs], device=device),
            torch.tensor([p[2] for p in pairs], dtype=torch.float64, device=device))


@full_precision
def ldrld_loss(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    alpha: float = 10.5,
    beta: float = 7.0,
    k: int = 7,
    temperature: float = 4.0,
    decay: float = ADW_GAMMA,
    standardize: bool = False,
) -> torch.Tensor:
    """LDRLD loss ``alpha * ldrld + beta * rntk`` (see the module docstring), without CE.

    Args:
        student_logits, teacher_logits: (B, C) logits with C > k; the teacher is detached.
        alpha, beta, k, temperature: 10.5, 7, 7, 4 (yema-web/LDRLD README command).
        decay: the gamma of ``ADW`` (0.05 in the code).
        standardize: z-score each sample's logits first (logit standardization; not in LDRLD's code).
    """
    k = _check_k(k)
    return _ldrld(student_logits, teacher_logits, pair_tensors(k, check_real(decay, "ldrld_loss: decay"),
                                                              student_logits.device),
                  alpha, beta, k, temperature, standardize)


def _check_classes(num_classes: int | None, k: int) -> None:
    """LDRLD needs more than ``k`` classes: the remaining-class term is over the classes outside the top k."""
    if num_classes is None or num_classes > k:
        return
    why = "the remaining-class term is over the classes outside the student's top k"
    if num_classes < 3:  # k >= 2: no k fits
        check_class_count(num_classes, 3, "ldrld", why, "LDRLD cannot distil so few classes; use another method")
    raise ValueError(f"ldrld: k = {k} needs more than {k} classes ({why}), but there are {num_classes}: set k below "
                     f"{num_classes}, e.g. {{term: ldrld, k: {num_classes - 1}}}")


def _check_k(k: int) -> int:
    if isinstance(k, bool) or not isinstance(k, int) or k < 2:
        raise ValueError(f"ldrld: k must be an integer >= 2, got {k!r}")
    return k


@full_precision
def _ldrld(student_logits: torch.Tensor, teacher_logits: torch.Tensor,
           pairs: tuple[torch.Tensor, torch.Tensor, torch.Tensor], alpha: float, beta: float, k: int,
           temperature: float, standardize: bool) -> torch.Tensor:
    """`ldrld_loss` with the pair indices and weights given (`pair_tensors`: made once by the module, so
    that the step creates no tensor from host data)."""
    check_logits(student_logits, teacher_logits, name="ldrld_loss")
    if student_logits.shape[1] <= k:
        _check_classes(student_logits.shape[1], k)
    a = check_real(alpha, "ldrld_loss: alpha")
    b = check_real(beta, "ldrld_loss: beta")
    t = check_positive(temperature, "ldrld_loss: temperature")
    s, tl = maybe_standardize(student_logits, teacher_logits.detach(),
                              check_flag(standardize, "ldrld_loss: standardize"))
    i, j, w = (x.to(s.device) for x in pairs)  # no-op on the module's device (its buffers move with it)
    top = s.detach().topk(k, dim=1).indices  # (B, k), the student's ranking
    s_top, t_top = s.gather(1, top) / t, tl.gather(1, top) / t
    s_pair = F.log_softmax(torch.stack([s_top[:, i], s_top[:, j]], dim=-1), dim=-1)  # (B, P, 2)
    t_pair = F.log_softmax(torch.stack([t_top[:, i], t_top[:, j]], dim=-1), dim=-1)
    pair_kl = (_kl_rows(s_pair, t_pair) * w.to(s.dtype)).sum(1)  # (B,)
    group_kl = _kl_rows(F.log_softmax(s_top, dim=1), F.log_softmax(t_top, dim=1))
    ldrld = (pair_kl + group_kl).mean() * (t * t) / (i.shape[0] + 1)
    # remaining non-target knowledge: KL over the classes outside the student's top k
    chosen = torch.zeros_like(s, dtype=torch.bool).scatter_(1, top, True)
    s_rest = (s / t).masked_fill(chosen, float("-inf"))
    t_rest = (tl / t).masked_fill(chosen, float("-inf"))
    log_s = s_rest - torch.logsumexp(s_rest, dim=1, keepdim=True)
    log_t = t_rest - torch.logsumexp(t_rest, dim=1, keepdim=True)
    terms = log_t.exp() * (log_t - log_s)
    rntk = torch.where(chosen, torch.zeros_like(terms), terms).sum(1).mean() * (t * t)
    return a * ldrld + b * rntk


@register_term("ldrld", inputs=("student_logits", "teacher_logits"), function=ldrld_loss,
               source="Xu et al. ICCV 2025; yema-web/LDRLD distiller_zoo/LDRLD.py "
                      "(defaults: README command -r 1.0 -a 10.5 -b 7.0 --kd_T 4, train_student.py --k 7)",
               help="local dense relational logit distillation: KLs over the pairs of the student's top-k "
                    "classes, weighted by rank, and KD over the remaining classes",
               presets={
                   # LDRLD: yema-web/LDRLD README command -r 1.0 -a 10.5 -b 7.0 --kd_T 4 (train_student.py --k 7;
                   # the term's defaults); CE once (the code applies -r twice to CE: gamma^2, = 1 here).
                   "ldrld": [{"term": "ce"}, {"term": "ldrld"}],
               })
class LDRLDLoss(nn.Module):
    """`ldrld_loss` as a module: ``LDRLDLoss(alpha=10.5, beta=7, k=7, temperature=4)(s, t)``."""

    @classmethod
    def from_context(cls, context, alpha: float = 10.5, beta: float = 7.0, k: int = 7, temperature: float = 4.0,
                     decay: float = ADW_GAMMA, standardize: bool = False) -> LDRLDLoss:
        """The ``ldrld`` objective term; a class count of at most ``k`` (known from the context) is refused
        here, at build time, naming the ``k`` that fits, rather than by `ldrld_loss` at the first step."""
        term = cls(alpha, beta, k, temperature, decay, standardize)
        _check_classes(context.num_classes, term.k)
        return term

    def __init__(self, alpha: float = 10.5, beta: float = 7.0, k: int = 7, temperature: float = 4.0,
                 decay: float = ADW_GAMMA, standardize: bool = False) -> None:
        super().__init__()
        self.alpha = check_real(alpha, "LDRLDLoss: alpha")
        self.beta = check_real(beta, "LDRLDLoss: beta")
        self.k = _check_k(k)
        self.temperature = check_positive(temperature, "LDRLDLoss: temperature")
        self.decay = check_real(decay, "LDRLDLoss: decay")
        self.standardize = check_flag(standardize, "LDRLDLoss: standardize")
        first, second, weight = pair_tensors(self.k, self.decay)
        # constants of the step, moved with the module (not state: left out of checkpoints)
        self.register_buffer("pair_first", first, persistent=False)
        self.register_buffer("pair_second", second, persistent=False)
        self.register_buffer("pair_weight", weight, persistent=False)  # float64, cast to the logits' dtype

    def forward(self, student_logits: torch.Tensor, teacher_logits: torch.Tensor) -> torch.Tensor:
        return _ldrld(student_logits, teacher_logits, (self.pair_first, self.pair_second, self.pair_weight),
                      self.alpha, self.beta, self.k, self.temperature, self.standardize)

    def extra_repr(self) -> str:
        return (f"alpha={self.alpha}, beta={self.beta}, k={self.k}, temperature={self.temperature}, "
                f"decay={self.decay}, standardize={self.standardize}")
