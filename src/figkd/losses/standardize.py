"""Logit standardization (Sun et al., "Logit Standardization in Knowledge Distillation", CVPR 2024).

Each sample's logit vector is z-scored before a distillation term sees it:

    standardize(z)[b, c] = (z[b, c] - mean_c z[b]) / (eps + std_c z[b])

with the *unbiased* standard deviation (``torch.std``'s default, Bessel's correction) and
``eps = 1e-7`` added to the deviation, as the official code does (sunshangquan/logit-standardization-KD,
``normalize`` in ``mdistiller/distillers/KD.py``, ``DKD.py`` and ``MLKD.py``; zju-SWJ/RLD
``mdistiller/distillers/RLD.py`` has the same function). Student and teacher are standardised
separately, so the student matches the teacher's logit *relations* rather than their range, and the
temperature of the term becomes a "base temperature" (the official CIFAR-100 command uses 2, with the
KD weight raised to 9: ``--logit-stand --base-temp 2 --kd-weight 9``).

The logit terms of figkd take ``standardize=True`` (kd, dkd, mlkd, dist, rld, tekap, ldrld, figkd); the
presets ``kd+ls``, ``dkd+ls``, ``mlkd+ls`` and ``figkd+ls`` use it (docs/method.md).
"""

from __future__ import annotations

import torch

#: Added to the standard deviation (official ``normalize``: ``(logit - mean) / (1e-7 + stdv)``).
EPS = 1e-7


def standardize_logits(logits: torch.Tensor, eps: float = EPS) -> torch.Tensor:
    """Z-score each row of (B, C) ``logits`` over its C classes (unbiased std, ``eps`` added to it).

    Same dtype and shape as the input; differentiable. C must be at least 2 (the unbiased deviation of
    one value is undefined).
    """
    if logits.ndim != 2 or logits.shape[1] < 2:
        raise ValueError(f"standardize_logits: logits must have shape (batch, num_classes >= 2), "
                         f"got {tuple(logits.shape)}")
    mean = logits.mean(dim=1, keepdim=True)
    std = logits.std(dim=1, keepdim=True)
    return (logits - mean) / (eps + std)


def maybe_standardize(student_logits: torch.Tensor, teacher_logits: torch.Tensor,
                      standardize: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Both logit tensors standardised (`standardize_logits`) if ``standardize``, else unchanged."""
    if not standardize:
        return student_logits, teacher_logits
    return standardize_logits(student_logits), standardize_logits(teacher_logits)


def check_flag(value: object, what: str) -> bool:
    """A boolean option (``standardize``); ValueError for anything else (a YAML "yes" string, 1, ...)."""
    if not isinstance(value, bool):
        raise ValueError(f"{what} must be true or false, got {value!r}")
    return value
