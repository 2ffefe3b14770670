"""The training state of one student beside its weights: what ``--resume`` needs to continue exactly.

Saved every epoch in ``checkpoints/epoch_NNNN.state.pt`` (`figkd.engine.checkpoint`): the optimizer
state (momentum buffers), the objective's parameters and buffers (connectors, memory banks:
`figkd.engine.learner.Learner.objective_state`), the best top-1 so far, the schedule, and the RNG
states (torch, Python, CUDA) that the next epoch continues from. Only tensors and plain Python
values, so the file loads with ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import os
import random
from typing import Any

import torch


def rng_state(device: torch.device) -> dict[str, Any]:
    """The global RNG states the run draws from (torch CPU, Python, and CUDA on a CUDA device)."""
    state = {"torch": torch.get_rng_state(), "python": list(random.getstate()[1]),
             "python_version": random.getstate()[0], "python_gauss": random.getstate()[2]}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def set_rng_state(state: dict[str, Any], device: torch.device) -> None:
    torch.set_rng_state(state["torch"])
    random.setstate((state["python_version"], tuple(state["python"]), state["python_gauss"]))
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"], device)


def training_state(member, device: torch.device) -> dict[str, Any]:
    """Everything of ``member`` (a `figkd.engine.member.Member`) but its weights, for its checkpoint."""
    return {"optimizer": member.optimizer.state_dict(), "objective": member.learner.objective_state(),
            "best_top1": member.best_top1, "best_epoch": member.best_epoch, "rng": rng_state(device),
            "scheduler": {"base_lr": member.base_lr, "milestones": list(member.cfg.lr_milestones),
                          "decay": member.cfg.lr_decay, "warmup_epochs": member.cfg.lr_warmup_epochs,
                          "warmup_hold": member.cfg.lr_warmup_hold}}


def restore(member, weights: dict[str, torch.Tensor], state: dict[str, Any], device: torch.device) -> None:
    """Load a checkpoint written by :func:`training_state` into ``member``: weights, objective state,
    optimizer state, best top-1, start epoch and the RNG states."""
    from .recipe import load_optimizer_state

    member.learner.model.load_state_dict(weights)
    member.learner.load_objective_state(state.get("objective"), f"the checkpoint of {os.fspath(member.run_dir)}")
    load_optimizer_state(member.optimizer, state["optimizer"])
    member.best_top1, member.best_epoch = state["best_top1"], state["best_epoch"]
    member.start_epoch = state["epoch"] + 1
    set_rng_state(state["rng"], device)
