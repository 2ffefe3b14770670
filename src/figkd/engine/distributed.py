"""Multi-process training under ``torchrun``: process group set-up and synchronised BatchNorm.

``torchrun --nproc_per_node N -m figkd distill ...`` sets ``RANK``, ``WORLD_SIZE`` and
``LOCAL_RANK``; figkd then joins a process group (NCCL on GPUs, gloo on CPU), wraps each student in
DistributedDataParallel, gives every rank its shard of each global batch (see ``figkd.data``), and
writes logs and checkpoints from rank 0 only.

BatchNorm: with plain DDP each rank normalises with the statistics of its own shard, so N
processes of batch b do not compute what one process of batch N*b does. figkd converts every
BatchNorm of a student to :class:`GlobalBatchNorm`, whose statistics are all-reduced over the
ranks, so a run's results do not depend on how its global batch is split. PyTorch's own
``nn.SyncBatchNorm`` refuses CPU tensors, which is why the layer is figkd's: one implementation
for gloo and NCCL alike.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
import torch.nn as nn


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def from_environment() -> DistInfo:
    """The process's place in a ``torchrun`` launch (a single process when not launched by it)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo()
    return DistInfo(int(os.environ["RANK"]), world, int(os.environ.get("LOCAL_RANK", "0")))


def init(info: DistInfo, device: torch.device) -> None:
    if info.enabled and not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        dist.init_process_group(backend=backend, rank=info.rank, world_size=info.world_size)


def shutdown() -> None:
    """Leave the process group once every rank is done (a rank tearing gloo down while a peer is
    still writing its last files was seen to abort the peer at exit)."""
    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def decide_on_main(decide):
    """Run ``decide()`` on rank 0 only and give every rank its result (or raise its error everywhere).

    For decisions that read and change the file system (may a run directory be reused?), which the
    ranks must not race on.
    """
    if not (dist.is_available() and dist.is_initialized()):
        return decide()
    box: list = [None]
    if dist.get_rank() == 0:
        try:
            box[0] = ("ok", decide())
        except Exception as exc:  # every rank raises the same error below
            box[0] = ("error", exc)
    dist.broadcast_object_list(box, src=0)
    kind, value = box[0]
    if kind == "error":
        raise value
    return value


def barrier() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.barrier()


class _AllReduceSum(torch.autograd.Function):
    """Sum over ranks; its gradient is the sum over ranks of the incoming gradients."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        y = x.clone()
        dist.all_reduce(y)
        return y

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        g = grad.clone()
        dist.all_reduce(g)
        return g


class GlobalBatchNorm(nn.BatchNorm2d):
    """BatchNorm2d whose training-mode statistics are taken over the whole distributed batch.

    The per-channel sum and sum of squares are all-reduced with a differentiable all-reduce, so the
    backward pass is exact as well. With one process (or in eval mode) it is ``BatchNorm2d``.
    Running statistics use the unbiased variance over the global batch, as BatchNorm2d does over its
    local one.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (self.training and dist.is_available() and dist.is_initialized()
                and dist.get_world_size() > 1):
            return super().forward(x)
        dims = (0, 2, 3)
        xf = x.float() if x.dtype in (torch.float16, torch.bfloat16) else x
        c = x.shape[1]
        # Two passes, each one all-reduce: the global mean, then the global mean of squared deviations
        # (E[x^2] - mean^2 in one pass loses digits when |mean| >> std).
        local = torch.cat([xf.sum(dims), torch.full((1,), float(x.numel() // c), device=x.device, dtype=xf.dtype)])
        total = _AllReduceSum.apply(local)
        n = total[c]
        mean = total[:c] / n
        centered = xf - mean[None, :, None, None]
        var = _AllReduceSum.apply((centered * centered).sum(dims)) / n
        with torch.no_grad():
            self.num_batches_tracked += 1
            momentum = self.momentum if self.momentum is not None else 1.0 / float(self.num_batches_tracked)
            unbiased = var * n / (n - 1).clamp_min(1)
            self.running_mean.mul_(1 - momentum).add_(mean.detach(), alpha=momentum)
            self.running_var.mul_(1 - momentum).add_(unbiased.detach(), alpha=momentum)
        y = centered * torch.rsqrt(var[None, :, None, None] + self.eps)
        if self.affine:
            y = y * self.weight[None, :, None, None] + self.bias[None, :, None, None]
        return y.to(x.dtype)


def convert_batchnorm(module: nn.Module) -> nn.Module:
    """Replace every ``BatchNorm2d`` in ``module`` by a :class:`GlobalBatchNorm` with the same state."""
    if isinstance(module, nn.BatchNorm2d) and not isinstance(module, GlobalBatchNorm):
        new = GlobalBatchNorm(module.num_features, module.eps, module.momentum, module.affine,
                              module.track_running_stats, device=module.running_mean.device
                              if module.running_mean is not None else None)
        new.load_state_dict(module.state_dict())
        new.train(module.training)
        return new
    for name, child in module.named_children():
        setattr(module, name, convert_batchnorm(child))
    return module

