"""Engine pieces for tests that run the step on the meta device (shapes only, no data, no run directory)."""

import torch

from figkd.engine.guard import GradientGuard
from figkd.engine.member import Member
from figkd.engine.rundir import RunDir


def meta_member(name: str, learner, cfg, device: torch.device) -> Member:
    """A member of ``learner`` with a plain SGD optimizer (the engine's is fused, which the meta device lacks)."""
    optimizer = torch.optim.SGD(learner.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4)
    return Member(name=name, model_name="resnet8", objective_name=name, learner=learner, run_dir=RunDir("unused"),
                  cfg=cfg, optimizer=optimizer, guard=GradientGuard(optimizer, device), base_lr=0.05,
                  step_module=learner)
