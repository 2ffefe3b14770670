"""The optimisation recipe: SGD and the step learning-rate schedule of the paper (Section 4.2), with an
optional linear warm-up (``lr_warmup_epochs``; LDRLD's cells).

The learning rate is a pure function of the epoch, so the schedule has no state of its own to save:
resuming at epoch e sets it from ``lr_at_epoch``. It lives in a 0-dim tensor inside the optimizer's
parameter group and is updated in place (``fill_``) once per epoch, so a captured training step
(CUDA graph) reads the new value without being re-captured.
"""

from __future__ import annotations

import torch

from ..config import RunConfig
from ..models import default_lr


def initial_lr(cfg: RunConfig, model_name: str) -> float:
    """``cfg.lr`` if given, else the model's default in the registry (`figkd.models.default_lr`: the
    paper's 0.05, 0.01 for ShuffleNet-V1/V2 and MobileNet-V2, Section 4.2)."""
    return float(cfg.lr) if cfg.lr is not None else default_lr(model_name)


def lr_at_epoch(base_lr: float, epoch: int, milestones: list[int], decay: float,
                warmup_epochs: int | None = None, warmup_hold: bool = False) -> float:
    """Learning rate during 1-based ``epoch``: ``base_lr * decay ** (number of milestones < epoch)``, and
    before the first milestone the warm-up's rate, if any. A pure function of the epoch: resuming or
    extending a run sets the rate of any epoch exactly.

    mdistiller (``mdistiller/engine/utils.py: adjust_learning_rate``) uses
    ``steps = np.sum(epoch > np.asarray(milestones))`` with 1-based epochs: epochs 1..150 run at the
    initial rate and epoch 151 is the first at a tenth of it. The same rule here.

    Warm-up (``warmup_epochs`` N, None: none), as yema-web/LDRLD ``helper/util.py``
    ``adjust_learning_rate_wram_up`` (called with ``--wram_up`` N > 1 before every epoch of its
    ``train_student.py``): once a milestone has passed, the decayed rate above; before, epoch e < N runs at
    ``(e / N) * base_lr``, and from epoch N on ``base_lr``, or with ``warmup_hold`` the last warm-up rate
    ``((N - 1) / N) * base_lr``: the official function computes ``base_lr`` there but never writes it to the
    optimizer, which keeps epoch N - 1's rate until the first milestone (LDRLD: 0.95 of the rate for epochs
    19-150). The products are in the official order, so the rates are equal to the last bit.
    """
    steps = sum(1 for m in milestones if epoch > m)
    if steps or not warmup_epochs:
        return base_lr * decay ** steps
    if epoch < warmup_epochs:
        return epoch * 1.0 / warmup_epochs * base_lr
    return (warmup_epochs - 1) * 1.0 / warmup_epochs * base_lr if warmup_hold else base_lr


def scheduled_lr(cfg: RunConfig, base_lr: float, epoch: int) -> float:
    """`lr_at_epoch` with the schedule of ``cfg`` (milestones, decay, warm-up) from ``base_lr``
    (`initial_lr`)."""
    return lr_at_epoch(base_lr, epoch, cfg.lr_milestones, cfg.lr_decay, cfg.lr_warmup_epochs, cfg.lr_warmup_hold)


def build_optimizer(model: torch.nn.Module, cfg: RunConfig, base_lr: float, device: torch.device):
    """SGD with momentum and weight decay on every parameter (mdistiller decays all parameters).

    The fused implementation (one kernel per device for the whole update; CPU and CUDA) takes the
    learning rate as a tensor on the parameters' device and reads it there. The default
    multi-tensor SGD would read a tensor learning rate on the host at every step (``alpha=-lr``),
    which a CUDA graph cannot contain. Fused and multi-tensor SGD round differently in the last bits
    for some tensor sizes (docs/performance.md: the demo before and after). Other devices (e.g.
    meta) get the default implementation.
    """
    fused = device.type in ("cpu", "cuda")
    lr = torch.tensor(base_lr, dtype=torch.float32, device=device if fused else "cpu")
    return torch.optim.SGD(
        [p for p in model.parameters() if p.requires_grad],
        lr=lr,
        momentum=cfg.momentum,
        weight_decay=cfg.weight_decay,
        fused=fused or None,
    )


def load_optimizer_state(optimizer: torch.optim.Optimizer, state: dict) -> None:
    """Load a saved optimizer state but keep this optimizer's own learning-rate tensors and kernel
    choice (``fused``/``foreach``).

    ``Optimizer.load_state_dict`` replaces each parameter group's settings with the saved ones: the
    learning rate would become the checkpoint's tensor, loaded on the CPU (a fused CUDA step needs
    it on the GPU, and a captured step needs it to be the tensor ``set_lr`` updates), and ``fused``
    whatever the saving machine chose. The schedule sets the value at the start of every epoch.
    """
    keep = [{k: g[k] for k in ("lr", "fused", "foreach") if k in g} for g in optimizer.param_groups]
    optimizer.load_state_dict(state)
    for group, kept in zip(optimizer.param_groups, keep, strict=True):
        group.update(kept)


def set_lr(optimizer: torch.optim.Optimizer, value: float) -> None:
    for group in optimizer.param_groups:
        lr = group["lr"]
        if isinstance(lr, torch.Tensor):
            lr.fill_(value)
        else:
            group["lr"] = value
