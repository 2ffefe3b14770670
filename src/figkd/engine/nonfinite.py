"""A loss term or a gradient that became NaN or infinite: found once per epoch, named, and the run stopped.

The step never reads a value on the host; it records, per member, the first step at which a term was not
finite and the first step at which a gradient was not (`figkd.engine.metrics.EpochAccumulator`, the
gradient guard `figkd.engine.guard`). :func:`check_finite` reads those once per epoch (and every few
steps while a progress bar is shown) and raises :class:`NonFiniteLossError` naming the member, the epoch,
the step, the term and the checkpoint that is kept. For a non-finite gradient with every loss finite it
finds the term whose gradient it was: the guard skipped every update from that step on, so the learner's
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
    """A loss term or a gradient became NaN or infinite; the run stops and keeps its last good checkpoint."""


def check_finite(step: TrainStep, epoch: int, train_loader, *, distributed: bool) -> None:
    """Raise :class:`NonFiniteLossError` for the first member whose loss or gradient was not finite in
    ``epoch`` so far (see the module docstring); ``distributed``: under DDP the gradient's term is not
    searched (the ranks would have to agree on a second backward pass) and the message says "gradient"."""
    for m, acc in zip(step.members, step.accs or [], strict=False):
        bad = acc.first_nonfinite()
        if bad is None:
            continue
        what, at = bad
        kept = f"the run stopped: {kept_checkpoint(m.run_dir.path)}"
        if what != "gradient":
            raise NonFiniteLossError(f"[{m.name}] loss term {what!r} is not finite at epoch {epoch}, step {at}; {kept}")
        term = None if distributed else term_with_nonfinite_gradient(step, m, epoch, at, train_loader)
        which = f"the gradient of loss term {term!r}" if term else "a gradient"
        raise NonFiniteLossError(f"[{m.name}] {which} is not finite at epoch {epoch}, step {at} (every loss value "
                                 f"was finite); no update from that step on was applied; {kept}")


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
