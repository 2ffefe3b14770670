"""The gradient guard: a step whose gradients are not all finite changes nothing, and is remembered.

After the backward pass and before the optimizer step, every gradient of a Learner is checked on the
device with one fused kernel (``torch._amp_foreach_non_finite_check_and_unscale_`` with a scale of 1:
the check ``torch.amp.GradScaler`` runs). It sets ``found`` to 1 if any value is NaN or infinite and
never resets it within an epoch, and the fused SGD step skips its update while ``found`` is 1 (the
``found_inf`` protocol of PyTorch's fused optimizers, which GradScaler uses). So from the first bad
step on, no update is applied: the weights stay those the bad step saw, finite, without a host read
in the step (the step can still be captured in a CUDA graph). The engine reads the flag with the
loss sums (``EpochAccumulator.first_nonfinite``) and stops the run, naming the term whose gradient
was not finite (`figkd.engine.nonfinite`).
"""

from __future__ import annotations

import torch


class GradientGuard:
    """The non-finite-gradient flag of one optimizer (see the module docstring)."""

    def __init__(self, optimizer: torch.optim.Optimizer, device: torch.device):
        self.optimizer = optimizer
        self.found = torch.zeros(1, dtype=torch.float32, device=device)
        self._one = torch.ones(1, dtype=torch.float32, device=device)
        # Only the fused kernels take found_inf (PyTorch's SGD refuses it otherwise); the engine's SGD is
        # fused on CPU and CUDA (`figkd.engine.recipe.build_optimizer`). Without it the flag is still
        # raised and the run stopped, one update later.
        if all(group.get("fused") for group in optimizer.param_groups):
            optimizer.found_inf = self.found

    def check(self) -> None:
        """Raise the flag if a gradient of the optimizer's parameters is not finite (on the device)."""
        grads = [p.grad for group in self.optimizer.param_groups for p in group["params"] if p.grad is not None]
        if grads:
            torch._amp_foreach_non_finite_check_and_unscale_(grads, self.found, self._one)

    def reset(self) -> None:
        self.found.zero_()

    def tensors(self) -> dict[str, torch.Tensor]:
        """The guard's state by name (what a captured step reads and writes)."""
        return {"found": self.found, "one": self._one}
