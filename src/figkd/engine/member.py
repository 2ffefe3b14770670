"""A member of a run: one student being trained, built complete by :func:`build_member`.

A member is what every other piece of the engine works on: the step (`figkd.engine.step`) runs its
``step_module`` and updates its ``optimizer`` under its ``guard``; the loop sets its learning rate from
``base_lr`` and the schedule of its ``cfg``; the recorder (`figkd.engine.recording`) writes its metrics,
checkpoints and summary into its ``run_dir``. Resuming a member restores its weights, objective state,
optimizer state, best top-1, start epoch and the RNG states from its last checkpoint
(`figkd.engine.state`) before anything else is built on it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from ..config import RunConfig
from . import distributed as dist_utils
from .guard import GradientGuard
from .learner import Learner
from .recipe import build_optimizer, initial_lr, scheduled_lr
from .rundir import RunDir
from .state import restore


@dataclass
class Member:
    """One student being trained (see the module docstring). Build it with :func:`build_member`."""

    name: str
    model_name: str
    objective_name: str
    learner: Learner
    run_dir: RunDir
    cfg: RunConfig
    optimizer: torch.optim.Optimizer
    guard: GradientGuard
    base_lr: float
    step_module: nn.Module  # the learner, or its DDP / torch.compile wrapper: what the step calls
    start_epoch: int = 1
    best_top1: float = -1.0
    best_epoch: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)

    @property
    def model(self) -> nn.Module:
        """The student (what the exported weights hold)."""
        return self.learner.model

    def lr_at(self, epoch: int) -> float:
        """The learning rate of ``epoch`` (1-based): a function of the epoch alone - milestones, decay and
        warm-up of the member's config (`figkd.engine.recipe.scheduled_lr`)."""
        return scheduled_lr(self.cfg, self.base_lr, epoch)


def build_member(name: str, model_name: str, objective_name: str, learner: Learner, run_dir: RunDir | str,
                 cfg: RunConfig, *, device: torch.device, info: dist_utils.DistInfo, channels_last: bool = False,
                 teacher: nn.Module | None = None, resume: bool = False, log=print) -> Member:
    """A complete :class:`Member`: ``learner`` on ``device`` (channels_last memory format when asked), its
    SGD optimizer at the model's learning rate (`figkd.engine.recipe`), its gradient guard, and - with
    ``resume`` and a checkpoint in ``run_dir`` - everything restored from that checkpoint; the learner
    wrapped for the step (DDP across processes, ``torch.compile`` when ``cfg.compile``).

    Raises ConfigError when the objective holds the teacher's tensors, and RunFileError for a damaged
    checkpoint."""
    run_dir = run_dir if isinstance(run_dir, RunDir) else RunDir(run_dir)
    learner.check_not_sharing(teacher)
    learner.to(device, memory_format=torch.channels_last if channels_last else torch.contiguous_format)
    base_lr = initial_lr(cfg, model_name)
    optimizer = build_optimizer(learner, cfg, base_lr, device)
    member = Member(name=name, model_name=model_name, objective_name=objective_name, learner=learner,
                    run_dir=run_dir, cfg=cfg, optimizer=optimizer, guard=GradientGuard(optimizer, device),
                    base_lr=base_lr, step_module=learner)
    if resume and run_dir.last_epoch() is not None:
        weights, state = run_dir.checkpoints.load_last()
        restore(member, weights, state, device)
        run_dir.truncate_metrics(state["epoch"])  # epochs after the checkpoint were lost with the process
        member.history = run_dir.metrics()
        log(f"[{name}] resuming after epoch {state['epoch']} from {run_dir.path}")
    elif info.is_main and run_dir.path.is_dir():
        run_dir.truncate_metrics(0)
    member.step_module = _wrapped(learner, cfg, device, info)
    return member


def _wrapped(learner: Learner, cfg: RunConfig, device: torch.device, info: dist_utils.DistInfo) -> nn.Module:
    """The learner as the step calls it: inside DDP across processes (connector gradients all-reduced
    too), then ``torch.compile`` when the config asks for it."""
    module: nn.Module = learner
    if info.enabled:
        from torch.nn.parallel import DistributedDataParallel as DDP

        module = DDP(learner, device_ids=[device.index] if device.type == "cuda" else None)
    if cfg.compile:
        module = torch.compile(module)
    return module
