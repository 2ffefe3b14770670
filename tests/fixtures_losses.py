"""Inputs shared by the pinned-value tests of the logit losses (test_losses_kd_dkd.py, test_losses_logit.py):
the values pinned there were computed by the official code on exactly these tensors."""

import torch


def logit_inputs():
    """(student logits, teacher logits, targets): float64 (64, 100), (64, 100) and int64 (64,), drawn after
    ``torch.manual_seed(0)`` as ``randn * 2``, ``randn * 4`` and ``randint(0, 100)``."""
    torch.manual_seed(0)
    ls = torch.randn(64, 100, dtype=torch.float64) * 2
    lt = torch.randn(64, 100, dtype=torch.float64) * 4
    y = torch.randint(0, 100, (64,))
    return ls, lt, y
