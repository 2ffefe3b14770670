"""Gathering a term's per-sample inputs over the ranks of a distributed run, with gradients.

A term that mixes samples (DIST's inter-class relation, MLKD's batch- and class-level terms) is not
a mean of per-sample losses, so under DDP each rank must see the whole global batch for N processes
of batch b to compute what one process of batch N*b does. :func:`gather_batch` concatenates a tensor
over the ranks (rank order = the order of the global batch, `figkd.data.loaders`); every rank then
computes the same loss value L on the global batch.

Gradient: each rank's own rows carry its autograd graph. The backward pass sums the incoming
gradients over the ranks before taking the rank's rows (a reduce-scatter, written as an all-reduce
because gloo has no reduce-scatter): rank r receives sum_r' dL/dz_r = N dL/dz_r, and DDP's average
over the N ranks then gives exactly sum_r dL/dz_r dz_r/dtheta, the gradient of one process.
"""

from __future__ import annotations

import torch
import torch.distributed as dist


def world_size() -> int:
    """Processes of the current distributed run (1 when there is none)."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_world_size()
    return 1


class _GatherWithGrad(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        ctx.rank, ctx.rows = dist.get_rank(), x.shape[0]
        parts = [torch.empty_like(x) for _ in range(dist.get_world_size())]
        dist.all_gather(parts, x.contiguous())
        return torch.cat(parts)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        grad = grad.contiguous().clone()
        dist.all_reduce(grad)
        return grad[ctx.rank * ctx.rows:(ctx.rank + 1) * ctx.rows]


def gather_batch(x):
    """``x`` (a tensor with the batch first, or a list of them) concatenated over the ranks in rank
    order; unchanged outside a distributed run. Differentiable for tensors that require grad."""
    if world_size() == 1:
        return x
    if isinstance(x, list | tuple):
        return [gather_batch(v) for v in x]
    if x.requires_grad:
        return _GatherWithGrad.apply(x)
    parts = [torch.empty_like(x) for _ in range(dist.get_world_size())]
    dist.all_gather(parts, x.contiguous())
    return torch.cat(parts)
