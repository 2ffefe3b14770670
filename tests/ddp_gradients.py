"""Run under ``torchrun --nproc_per_node N``: one step of an objective on this rank's shard of a fixed
global batch, through DDP as the engine wraps a Learner; rank 0 saves the loss values and the summed
gradients. ``tests/test_distributed_run.py`` compares them with one process on the whole batch.

Usage: python -m torch.distributed.run --nproc_per_node 2 tests/ddp_gradients.py OBJECTIVE OUT.pt
(without torchrun: one process on the whole batch).
"""

import os
import sys

import torch
import torch.distributed as dist

from figkd.data.batch import Batch
from figkd.engine.distributed import convert_batchnorm
from figkd.engine.learner import Learner
from figkd.losses import build_objective
from figkd.models import build_model


def step(objective: str, batch_size: int = 64):
    """(loss values by key, flattened gradient of the learner) of one step on this rank's shard."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = 0
    if world > 1:
        dist.init_process_group("gloo")
        rank = dist.get_rank()
    torch.manual_seed(0)
    teacher = build_model("resnet8", 10).eval()
    g = torch.Generator().manual_seed(1)
    x, y = torch.randn(batch_size, 3, 32, 32, generator=g), torch.randint(0, 10, (batch_size,), generator=g)
    strong = torch.randn(batch_size, 3, 32, 32, generator=g)
    rows = slice(rank * batch_size // world, (rank + 1) * batch_size // world)
    batch = Batch(x[rows], y[rows], strong=strong[rows])
    torch.manual_seed(2)
    learner = Learner(build_model("resnet8", 10), build_objective(objective, num_classes=10))
    module = learner
    if world > 1:
        from torch.nn.parallel import DistributedDataParallel as DDP
        module = DDP(convert_batchnorm(learner))
    with torch.no_grad():
        teacher_out = {"teacher_logits": teacher(batch.images), "teacher_logits_strong": teacher(batch.strong)}
    terms, _ = module(batch, teacher_out, torch.tensor(1.0))
    terms["total"].backward()
    grad = torch.cat([p.grad.flatten() for p in learner.parameters()])
    values = {k: v.detach() for k, v in terms.items()}
    if world > 1:
        dist.barrier()
        dist.destroy_process_group()
    return values, grad, rank


if __name__ == "__main__":
    values, grad, rank = step(sys.argv[1])
    if rank == 0:
        torch.save({"values": values, "grad": grad}, sys.argv[2])
