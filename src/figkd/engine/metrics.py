"""Metrics accumulated on the device and read once per epoch (no host synchronisation per step)."""

from __future__ import annotations

import torch


def topk_correct(logits: torch.Tensor, target: torch.Tensor, ks: tuple[int, ...] = (1, 5)) -> torch.Tensor:
    """Number of samples whose target is among the top-k logits, for each k (a tensor of len(ks))."""
    kmax = min(max(ks), logits.shape[1])
    top = logits.topk(kmax, dim=1).indices
    hit = top.eq(target.unsqueeze(1))
    return torch.stack([hit[:, : min(k, kmax)].any(dim=1).sum() for k in ks])


class EpochAccumulator:
    """Sums of loss terms, top-1/top-5 hits and sample counts over an epoch, kept on ``device``.

    It also remembers, per term, the first step at which the term was not finite, and the first step
    at which a gradient was not finite (`figkd.engine.guard.GradientGuard`), so that a NaN is
    reported with its epoch, step and term while the step itself never waits for the host, and, with
    ``steps``, the total loss of each of the epoch's first ``steps`` steps (:meth:`step_losses`).

    Every update is in place and :meth:`reset` zeroes the same tensors, so one accumulator serves a
    whole run and a step captured in a CUDA graph keeps writing to the right memory.
    """

    def __init__(self, device: torch.device, steps: int = 0):
        self.device = device
        self.names: list[str] | None = None  # set from the first step's terms ("total" last)
        self.hits = torch.zeros(2, dtype=torch.int64, device=device)
        self.count = torch.zeros((), dtype=torch.int64, device=device)
        self.first_bad_grad = torch.full((), -1, dtype=torch.int64, device=device)
        self.step_total = torch.full((max(int(steps), 0),), float("nan"), dtype=torch.float64, device=device)

    def _start(self, terms: dict[str, torch.Tensor]) -> None:
        self.names = [k for k in terms if k != "total"] + ["total"]
        self.loss_sum = torch.zeros(len(self.names), dtype=torch.float64, device=self.device)
        self.first_bad = torch.full((len(self.names),), -1, dtype=torch.int64, device=self.device)

    def reset(self) -> None:
        """Zero every sum in place (a new epoch)."""
        self.hits.zero_()
        self.count.zero_()
        self.first_bad_grad.fill_(-1)
        self.step_total.fill_(float("nan"))
        if self.names is not None:
            self.loss_sum.zero_()
            self.first_bad.fill_(-1)

    def tensors(self) -> dict[str, torch.Tensor]:
        """The accumulator's state by name (what a captured step writes)."""
        out = {"hits": self.hits, "count": self.count, "step_total": self.step_total,
               "first_bad_grad": self.first_bad_grad}
        if self.names is not None:
            out.update(loss_sum=self.loss_sum, first_bad=self.first_bad)
        return out

    def add(self, terms: dict[str, torch.Tensor], logits: torch.Tensor, target: torch.Tensor,
            step: torch.Tensor, grad_found: torch.Tensor | None = None) -> None:
        """Add one step: its (weighted) terms, the logits' hits, and whether a gradient was not finite
        (``grad_found``: the guard's 1-element flag, sticky within the epoch)."""
        if self.names is None:
            self._start(terms)
        if grad_found is not None:
            bad_grad = (grad_found[0] > 0) & (self.first_bad_grad < 0)
            torch.where(bad_grad, step, self.first_bad_grad, out=self.first_bad_grad)
        values = torch.stack([terms[n].detach().to(torch.float64) for n in self.names])
        bad = ~torch.isfinite(values)
        torch.where(bad & (self.first_bad < 0), step, self.first_bad, out=self.first_bad)
        self.loss_sum += torch.where(bad, torch.zeros_like(values), values) * target.shape[0]
        self.hits += topk_correct(logits.detach(), target)
        self.count += target.shape[0]
        n = self.step_total.shape[0]
        if n:  # the total of step `step`, if step < n; written without reading `step` on the host
            slot = step.clamp(max=n - 1).view(1)
            keep = self.step_total.index_select(0, slot)
            self.step_total.index_copy_(0, slot, torch.where(step < n, values[-1:], keep))

    def step_losses(self) -> list[float]:
        """Total loss of each recorded step of the epoch (NaN for steps not reached). Synchronises."""
        return self.step_total.tolist()

    def first_nonfinite(self) -> tuple[str, int] | None:
        """(what, step) of the earliest non-finite value, or None: ``what`` is a term's key, or
        ``"gradient"`` when a gradient was not finite at a step whose terms all were (a term's own
        non-finite value is the more precise report). Synchronises with the device."""
        if self.names is None:
            return None
        bad = self.first_bad.tolist()
        found = [(step, 0, name) for name, step in zip(self.names, bad, strict=True) if step >= 0]
        grad_step = int(self.first_bad_grad)
        if grad_step >= 0:
            found.append((grad_step, 1, "gradient"))
        if not found:
            return None
        step, _, name = min(found)
        return name, step

    def all_reduce(self) -> None:
        """Sum over the processes of a distributed run (no-op otherwise)."""
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            for t in (self.loss_sum, self.hits, self.count) if self.names else (self.hits, self.count):
                torch.distributed.all_reduce(t)

    def result(self) -> dict[str, float]:
        count = max(int(self.count.item()), 1)
        hits = self.hits.tolist()
        out = {}
        if self.names is not None:
            sums = self.loss_sum.tolist()
            out = {f"loss/{n}": s / count for n, s in zip(self.names, sums, strict=True)}
        out["top1"] = 100.0 * hits[0] / count
        out["top5"] = 100.0 * hits[1] / count
        return out
