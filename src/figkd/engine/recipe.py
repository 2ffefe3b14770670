"""The optimisation recipe: SGD and the step learning-rate schedule of the paper (Section 4.2).

The learning rate is a pure function of the epoch, so the schedule has no state of its own to save:
resuming at epoch e sets it from ``lr_at_epoch``. It lives in a 0-dim tensor inside the optimizer's
parameter group and is updated in place (``fill_``) once per epoch, so a captured training step
(CUDA graph) reads the new value without being re-captured.
"""

from __future__ import annotations

import torch

from ..config import RunConfig, default_lr


def initial_lr(cfg: RunConfig, model_name: str) -> float:
    """``cfg.lr`` if given, else the paper's 0.05 (0.01 for ShuffleNet/MobileNet, Section 4.2)."""
    return float(cfg.lr) if cfg.lr is not None else default_lr(model_name)


def lr_at_epoch(base_lr: float, epoch: int, milestones: list[int], decay: float) -> float:
    """Learning rate during 1-based ``epoch``: ``base_lr * decay ** (number of milestones < epoch)``.

    mdistiller (``mdistiller/engine/utils.py: adjust_learning_rate``) uses
    ``steps = np.sum(epoch > np.asarray(milestones))`` with 1-based epochs: epochs 1..150 run at the
    initial rate and epoch 151 is the first at a tenth of it. The same rule here.
    """
    return base_lr * decay ** sum(1 for m in milestones if epoch > m)


def build_optimizer(model: torch.nn.Module, cfg: RunConfig, base_lr: float, device: torch.device):
    """SGD with momentum and weight decay on every parameter (mdistiller decays all parameters).

    On CUDA the fused implementation is used (one kernel for the whole update); elsewhere the
    default multi-tensor one. The learning rate is a tensor on the parameters' device.
    """
    fused = device.type == "cuda"
    lr = torch.tensor(base_lr, dtype=torch.float32, device=device if fused else "cpu")
    return torch.optim.SGD(
        [p for p in model.parameters() if p.requires_grad],
        lr=lr,
        momentum=cfg.momentum,
        weight_decay=cfg.weight_decay,
        fused=fused or None,
    )


def set_lr(optimizer: torch.optim.Optimizer, value: float) -> None:
    for group in optimizer.param_groups:
        lr = group["lr"]
        if isinstance(lr, torch.Tensor):
            lr.fill_(value)
        else:
            group["lr"] = value
