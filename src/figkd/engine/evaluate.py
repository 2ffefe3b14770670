"""Evaluation: top-1 / top-5 accuracy and cross-entropy of a model on a loader's split."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .device import autocast_context
from .metrics import topk_correct


@torch.inference_mode()
def evaluate(model: torch.nn.Module, loader, device: torch.device, amp_dtype: torch.dtype | None = None,
             channels_last: bool = False) -> dict[str, float]:
    """Top-1, top-5 (percent) and mean cross-entropy of ``model`` over every sample of ``loader``.

    Sums stay on the device until the end (one synchronisation). In a distributed run each rank
    evaluates its shard and the sums are all-reduced.
    """
    was_training = model.training
    model.eval()
    hits = torch.zeros(2, dtype=torch.int64, device=device)
    loss_sum = torch.zeros((), dtype=torch.float64, device=device)
    count = torch.zeros((), dtype=torch.int64, device=device)
    for batch in loader:
        images, target = batch.images, batch.target
        if channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        with autocast_context(device, amp_dtype):
            logits = model(images)
        logits = logits.float()
        hits += topk_correct(logits, target)
        loss_sum += F.cross_entropy(logits, target, reduction="sum").double()
        count += target.shape[0]
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        for t in (hits, loss_sum, count):
            torch.distributed.all_reduce(t)
    model.train(was_training)
    n = max(int(count.item()), 1)
    h = hits.tolist()
    return {"top1": 100.0 * h[0] / n, "top5": 100.0 * h[1] / n, "loss": float(loss_sum.item()) / n, "count": n}
