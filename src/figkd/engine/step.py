"""The training step: every member's forward, objective, backward, guard and update on one batch.

    step = TrainStep(members, teacher_forward, device=..., amp_dtype=..., channels_last=...)
    step.begin_epoch(epoch, steps)          # learning rates, epoch tensor, zeroed sums: all in place
    for batch in loader:
        step(**step.inputs(batch))          # or a StepGraph replaying its capture (figkd.engine.graph)
    step.accs[i].result()                   # member i's losses and hits of the epoch, read once

With a teacher, its forward runs once per batch and its outputs feed every member (several objectives
or students cost one teacher forward per step, on the same data: a paired comparison). Each member's
learner then computes its objective's terms under autocast; the total is differentiated, the gradient
guard checks every gradient on the device (a non-finite one makes this and every later update of the
epoch a no-op, `figkd.engine.guard`), the optimizer steps, and the epoch's sums are updated
(`figkd.engine.metrics.EpochAccumulator`).

Deep mutual learning (a term reading ``peer_logits``: the members are peers) needs every peer's logits
before any update, so its step has two phases: all forwards, then each peer's loss, backward and
update with the other peers' detached logits.

The capture rules (why the step can be recorded once in a CUDA graph and replayed): it has static
shapes, reads nothing on the host (no ``.item()``, no branch on a tensor's value), and everything it
reads that changes during a run - the learning rate, the epoch of the warm-ups, the step counter, the
metric sums, the guard's flag - is a tensor updated in place (:meth:`TrainStep.persistent_tensors`
lists them all, for the capture's address guard).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ..data.batch import Batch
from ..errors import ConfigError
from ..losses.inputs import Needs
from .device import autocast_context
from .member import Member
from .metrics import EpochAccumulator
from .recipe import set_lr
from .teacher import TeacherForward


class TrainStep:
    """The step of ``members`` (see the module docstring); callable on the batch's tensors."""

    def __init__(self, members: list[Member], teacher_forward: TeacherForward | None, *, device: torch.device,
                 amp_dtype: torch.dtype | None, channels_last: bool, record_step_losses: bool = False):
        self.members = members
        self.teacher_forward = teacher_forward
        self.device = device
        self.amp_dtype = amp_dtype
        self.channels_last = channels_last
        self.needs = Needs.of(*(m.learner.needs.inputs for m in members))
        self.record_step_losses = record_step_losses  # per-step totals (equivalence checks); off: fewer kernels
        self.graphed = False  # run inside a StepGraph (set by its owner): autocast's weight cache is then off
        # State that changes during the run, as tensors updated in place (the capture rules).
        self.epoch = torch.zeros((), dtype=torch.float32, device=device)  # 1-based, for the warm-ups
        self.count = torch.zeros((), dtype=torch.int64, device=device)  # the step within the epoch
        self.accs: list[EpochAccumulator] | None = None

    # -- one step --------------------------------------------------------------------------
    def __call__(self, images: torch.Tensor, target: torch.Tensor, strong: torch.Tensor | None = None,
                 index: torch.Tensor | None = None) -> None:
        batch = Batch(images, target, strong=strong, index=index)
        teacher = self.teacher_outputs(batch)
        if self.needs.peers:
            self._peer_step(batch, teacher)
        else:
            for m, acc in zip(self.members, self.accs, strict=True):
                with self.autocast():
                    terms, logits = m.step_module(batch, teacher, self.epoch)
                self._update(m, acc, terms, logits, target)
        self.count += 1

    def teacher_outputs(self, batch: Batch) -> dict[str, Any]:
        """The teacher's outputs by vocabulary name (empty without a teacher)."""
        return self.teacher_forward(batch, self.autocast()) if self.teacher_forward is not None else {}

    def _update(self, m: Member, acc: EpochAccumulator, terms: dict[str, torch.Tensor], logits: torch.Tensor,
                target: torch.Tensor) -> None:
        m.optimizer.zero_grad(set_to_none=True)
        terms["total"].backward()
        m.guard.check()  # a non-finite gradient: this and every later update of the epoch are skipped
        m.optimizer.step()
        acc.add(terms, logits, target, self.count, m.guard.found)

    def peer_outputs(self, batch: Batch, modules: list[nn.Module]) -> list[dict[str, Any]]:
        """Phase 1 of a peer step: every peer's forward passes (one each), before any update."""
        with self.autocast():
            return [module(batch, {}, self.epoch, outputs_only=True) for module in modules]

    def _peer_step(self, batch: Batch, teacher: dict[str, Any]) -> None:
        """Deep mutual learning: every peer's forward, then each peer's loss (reading the other peers'
        logits of this step, detached), backward and update."""
        outputs = self.peer_outputs(batch, [m.step_module for m in self.members])
        logits = [o["student_logits"].detach() for o in outputs]
        for i, (m, acc, out) in enumerate(zip(self.members, self.accs, outputs, strict=True)):
            with self.autocast():
                terms, own = m.learner.losses(out, batch, teacher, self.epoch, peer_logits=logits[:i] + logits[i + 1:])
            self._update(m, acc, terms, own, batch.target)

    def autocast(self):
        # Autocast's cache of cast weights must be off inside a CUDA graph capture (PyTorch's notes).
        return autocast_context(self.device, self.amp_dtype, cache=not self.graphed)

    # -- around the steps ------------------------------------------------------------------
    def inputs(self, batch: Batch) -> dict[str, torch.Tensor | None]:
        """The batch as the step's keyword inputs: the memory format of the run, and only the fields a
        term needs (each one a static buffer of a captured step)."""
        def fmt(x):
            return x.contiguous(memory_format=torch.channels_last) if self.channels_last and x is not None else x

        return {"images": fmt(batch.images), "target": batch.target,
                "strong": fmt(batch.strong) if self.needs.strong() else None,
                "index": batch.index if self.needs.index else None}

    def begin_epoch(self, epoch: int, steps: int) -> None:
        """Set the epoch's learning rates, epoch tensor and zeroed sums, all in place."""
        self.epoch.fill_(epoch)
        self.count.zero_()
        for m in self.members:
            m.learner.train()
            m.guard.reset()
            set_lr(m.optimizer, m.lr_at(epoch))
        if self.accs is None:
            recorded = steps if self.record_step_losses else 0
            self.accs = [EpochAccumulator(self.device, steps=recorded) for _ in self.members]
        for acc in self.accs:
            acc.reset()

    def drop(self, members: list[Member]) -> None:
        """Stop stepping ``members`` (students that diverged): the step goes on with the others. What the
        step needs stays the union of the run's objectives (the teacher forward and the loader were built
        for it); a captured step must be captured again (`figkd.engine.graph.StepGraph.restart`)."""
        keep = [i for i, m in enumerate(self.members) if m not in members]
        self.members = [self.members[i] for i in keep]
        if self.accs is not None:
            self.accs = [self.accs[i] for i in keep]

    def persistent_tensors(self, static_inputs: dict[str, torch.Tensor | None] | None = None
                           ) -> dict[str, torch.Tensor]:
        """Every tensor that outlives a step and that the step reads or writes, by name (what a captured
        step keeps the addresses of); ``static_inputs``: the capture's input buffers."""
        out: dict[str, torch.Tensor] = {"step": self.count, "epoch": self.epoch}
        out.update({f"input/{k}": v for k, v in (static_inputs or {}).items() if v is not None})
        modules = [("teacher", self.teacher_forward.teacher)] if self.teacher_forward is not None else []
        modules += [(m.name, m.learner) for m in self.members]
        for prefix, module in modules:
            for name, p in module.named_parameters():
                out[f"{prefix}/{name}"] = p
                if p.grad is not None:
                    out[f"{prefix}/{name}.grad"] = p.grad
            for name, b in module.named_buffers():
                out[f"{prefix}/{name}"] = b
        for m in self.members:
            for g, group in enumerate(m.optimizer.param_groups):
                if isinstance(group["lr"], torch.Tensor):
                    out[f"{m.name}/optimizer/lr{g}"] = group["lr"]
            for i, state in enumerate(m.optimizer.state.values()):
                for key, value in state.items():
                    if isinstance(value, torch.Tensor):
                        out[f"{m.name}/optimizer/{i}/{key}"] = value
            out.update({f"{m.name}/guard/{k}": v for k, v in m.guard.tensors().items()})
        for m, acc in zip(self.members, self.accs or [], strict=False):
            out.update({f"{m.name}/metrics/{k}": v for k, v in acc.tensors().items()})
        return out

    def step_losses(self) -> list[list[float]]:
        """Per member, the total loss of every step of the last epoch (synchronises); empty lists unless
        made with ``record_step_losses=True``."""
        return [acc.step_losses() for acc in self.accs or []]


def check_members(step: TrainStep, members: list[Member]) -> None:
    """Refuse a run whose objectives need what it lacks, or whose members stopped at different epochs."""
    if step.needs.teacher and step.teacher_forward is None:
        needed = ", ".join(sorted(n for n in step.needs.inputs if n.startswith("teacher_")))
        raise ConfigError(f"the objective needs a teacher's outputs ({needed}); use figkd distill with --teacher "
                          "and --teacher-ckpt")
    if step.needs.peers and len(members) < 2:
        raise ConfigError("the objective reads the other peers' logits (deep mutual learning: peer_logits), and "
                          "this run has one model: train two or more peers with figkd distill --peers A B")
    if len({m.start_epoch for m in members}) > 1:
        raise ConfigError("the students of this run stopped at different epochs "
                          f"({', '.join(f'{m.name}: {m.start_epoch - 1}' for m in members)}); "
                          "resume them as separate runs")
