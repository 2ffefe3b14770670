"""A loss term or a gradient that became NaN or infinite: found once per epoch, named, and its student stopped.

The step never reads a value on the host; it records, per member, the first step at which a term was not
finite and the first step at which a gradient was not (`figkd.engine.metrics.EpochAccumulator`, the
gradient guard `figkd.engine.guard`). :func:`diverged` reads those once per epoch (and every few steps
while progress is shown) and :func:`describe` names the member, the epoch, the step, the term and the
checkpoint that is kept. A student that diverged stops alone when others train beside it (the trainer
drops it from the step, `figkd.engine.trainer`); when none is left, or the students are peers reading
each other's logits, the run stops with :class:`NonFiniteLossError`. For a non-finite gradient with every
loss finite it finds the term whose gradient it was: the guard skipped every update from that step on, so the learner's
parameters are those the step saw, and the loaders are a pure function of (seed, epoch, step), so the
batch is the same; each term's gradient is then taken alone, eagerly, on this error path only.
"""

from __future__ import annotations

import torch

from ..data.batch import Batch
from .checkpoint import kept_checkpoint
from .member import Member
from .step import TrainStep


class NonFiniteLossError(RuntimeError):
    """A loss term or a gradient became NaN or infinite; the student stops and keeps its last good checkpoint.

    Raised when every student of a run has stopped, or at the end of a run in which some stopped and the
    others finished: ``summaries`` holds the finished students' summaries (what `figkd.engine.run.run` would
    have returned for them)."""

    def __init__(self, message: str, summaries: list | None = None):
        super().__init__(message)
        self.summaries = list(summaries or [])


def diverged(step: TrainStep, *, distributed: bool) -> list[tuple[Member, str, int]]:
    """``(member, what, step)`` of every member whose loss term or gradient was not finite in the epoch so
    far (``what``: the term's key or ``"gradient"``; one read of the device). ``distributed``: the ranks'
    findings are all-reduced so that every rank stops the same members (a member that diverged only on
    another rank is ``("another process", -1)``)."""
    found = [(m, acc.first_nonfinite()) for m, acc in zip(step.members, step.accs or [], strict=False)]
    if distributed:
        flags = torch.tensor([bad is not None for _, bad in found], dtype=torch.int32, device=step.device)
        torch.distributed.all_reduce(flags, op=torch.distributed.ReduceOp.MAX)
        found = [(m, bad if bad is not None else (("another process", -1) if flag else None))
                 for (m, bad), flag in zip(found, flags.tolist(), strict=True)]
    return [(m, *bad) for m, bad in found if bad is not None]


def describe(step: TrainStep, m: Member, what: str, at: int, epoch: int, train_loader, *, distributed: bool,
             alone: bool) -> str:
    """The one-line message of ``m``'s divergence (see the module docstring); ``alone``: the other students
    go on. For a non-finite gradient it finds the term (eagerly, reading ``train_loader``: call it after the
    epoch's iteration, or when the run stops)."""
    kept = kept_checkpoint(m.run_dir.path)
    stopped = f"{'this student stopped, the others go on' if alone else 'the run stopped'}: {kept}"
    if what == "another process":
        return f"[{m.name}] a loss or gradient was not finite in another process at epoch {epoch}; {stopped}"
    if what != "gradient":
        return f"[{m.name}] loss term {what!r} is not finite at epoch {epoch}, step {at}; {stopped}"
    term = None if distributed else term_with_nonfinite_gradient(step, m, epoch, at, train_loader)
    which = f"the gradient of loss term {term!r}" if term else "a gradient"
    return (f"[{m.name}] {which} is not finite at epoch {epoch}, step {at} (every loss value was finite); no "
            f"update from that step on was applied; {stopped}")


def check_finite(step: TrainStep, epoch: int, train_loader, *, distributed: bool) -> None:
    """Raise :class:`NonFiniteLossError` for the first member whose loss or gradient was not finite in
    ``epoch`` so far (see :func:`describe`); under DDP the gradient's term is not searched (the ranks would
    have to agree on a second backward pass) and the message says "gradient"."""
    for m, what, at in diverged(step, distributed=distributed)[:1]:
        raise NonFiniteLossError(describe(step, m, what, at, epoch, train_loader, distributed=distributed,
                                          alone=False))


def term_with_nonfinite_gradient(step: TrainStep, m: Member, epoch: int, at: int, train_loader) -> str | None:
    """The first term of ``m``'s objective whose gradient is not finite on the batch of (``epoch``, ``at``),
    or None (see the module docstring)."""
    train_loader.set_epoch(epoch)
    batch = Batch(**step.inputs(next(iter(train_loader.iter_from(at)))))
    teacher = step.teacher_outputs(batch)
    if step.needs.peers:  # the other peers as they are now (their updates went on after that step)
        outputs = step.peer_outputs(batch, [x.learner for x in step.members])
        i = step.members.index(m)
        logits = [o["student_logits"].detach() for o in outputs]
        with step.autocast():
            terms, _ = m.learner.losses(outputs[i], batch, teacher, step.epoch, peer_logits=logits[:i] + logits[i + 1:])
    else:
        with step.autocast():
            terms, _ = m.learner(batch, teacher, step.epoch)
    params = [p for p in m.learner.parameters() if p.requires_grad]
    for key in m.learner.objective.keys:
        grads = torch.autograd.grad(terms[key], params, retain_graph=True, allow_unused=True)
        if any(g is not None and not bool(torch.isfinite(g).all()) for g in grads):
            return key
    return None


def stop_diverged(step: TrainStep, epoch: int, train_loader, *, info, stopped: list[str],
                  only_all: bool = False) -> list[str]:
    """Stop the members of ``step`` whose loss or gradient was not finite in ``epoch`` so far: each one's
    ``error.log`` says why (written by the main process), and they are dropped from the step; returns their
    messages (empty when none diverged). Raises :class:`NonFiniteLossError` (with ``stopped``, the messages of
    members stopped earlier) when none would be left, or the members are peers (each reads the others'
    logits). ``only_all`` (mid-epoch): act only when the run stops; the others' epoch goes on undisturbed.
    ``info``: the run's `figkd.engine.distributed.DistInfo`."""
    found = diverged(step, distributed=info.enabled)
    alone = bool(found) and len(found) < len(step.members) and not step.needs.peers
    if not found or (only_all and alone):
        return []
    messages = [describe(step, m, what, at, epoch, train_loader, distributed=info.enabled, alone=alone)
                for m, what, at in found]
    if info.is_main:
        for (m, _, _), message in zip(found, messages, strict=True):
            m.run_dir.write_error_log(message)
    if not alone:
        raise NonFiniteLossError("; ".join(stopped + messages))
    step.drop([m for m, _, _ in found])
    return messages
