"""Logit vectors as H x W signals, so that FiGKD can apply a 2D wavelet transform to them.

FiGKD (paper Section 3.3) reshapes each C-dimensional logit vector into an H x W matrix before the
2D DWT.  Footnote 1 says that when C is not a perfect square H and W are chosen "as close as
possible" to sqrt(C), and lists one grid per dataset, but the text extraction lost every number
(docs/method.md, §3).  MIT67 has C = 67, a prime, so an exact factorisation cannot be close to
square; the grid must therefore allow padding.  The project's decision (docs/method.md, §3 "Open
points of the paper") is the ``pad`` policy, with the floor-based reading and an exact
factorisation as options:

* ``pad`` (default): H = ceil(sqrt(C)), W = ceil(C / H); the logits are zero-padded at the end to
  H*W.  100 -> 10x10, 200 -> 15x14, 120 -> 11x11, 67 -> 9x8, 40 -> 7x6.
* ``pad_floor``: H = floor(sqrt(C)), W = ceil(C / H), zero-padded likewise (H <= W, the transpose
  of ``pad`` where both are near-square).  100 -> 10x10, 200 -> 14x15, 120 -> 10x12, 67 -> 8x9,
  40 -> 6x7; C <= 3 gives a single row (1 x C).
* ``factor``: the exact factorisation C = H*W closest to a square, H <= W.  200 -> 10x20,
  120 -> 10x12; a prime C gives 1 x C, where the 2D transform degenerates to a 1D one along W
  (with the zero boundary mode the single row is transformed against padding), so it warns.
* an explicit ``(H, W)`` with H*W >= C.

The row-major layout (class ``k`` at row ``k // W``, column ``k % W``) is ``torch.reshape``'s.
"""

from __future__ import annotations

import math
import warnings

import torch
import torch.nn.functional as F

__all__ = ["POLICIES", "from_grid", "grid_shape", "to_grid"]

#: Names accepted by :func:`grid_shape` as ``policy``.
POLICIES: tuple[str, ...] = ("pad", "pad_floor", "factor")


def _positive_int(value, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{what} must be an int, got {value!r}")
    if value < 1:
        raise ValueError(f"{what} must be >= 1, got {value}")
    return value


def grid_shape(num_classes: int, policy: str | tuple[int, int] = "pad") -> tuple[int, int]:
    """The ``(H, W)`` grid for ``num_classes`` logits under ``policy``.

    ``policy`` is ``"pad"`` (default: H = ceil(sqrt C), W = ceil(C / H), zero padding), ``"pad_floor"``
    (H = floor(sqrt C), W = ceil(C / H), zero padding), ``"factor"``
    (exact factorisation closest to a square, H <= W; warns for a prime C, which gives 1 x C), or an
    explicit ``(H, W)``, which is validated (positive ints, H * W >= C) and returned.
    """
    c = _positive_int(num_classes, "num_classes")
    if isinstance(policy, str):
        if policy == "pad":
            h = math.isqrt(c - 1) + 1  # ceil(sqrt(c)) in exact integer arithmetic
            return h, -(-c // h)
        if policy == "pad_floor":
            h = math.isqrt(c)  # floor(sqrt(c)) in exact integer arithmetic
            return h, -(-c // h)
        if policy == "factor":
            h = next(d for d in range(math.isqrt(c), 0, -1) if c % d == 0)
            if h == 1 and c > 1:
                warnings.warn(
                    f"grid policy 'factor': {c} classes is prime, so the grid is 1 x {c} and the 2D wavelet "
                    "transform degenerates to a 1D one along the single row; the 'pad' policy "
                    f"({grid_shape(c, 'pad')[0]} x {grid_shape(c, 'pad')[1]}) keeps it two-dimensional",
                    stacklevel=2,
                )
            return h, c // h
        raise ValueError(
            f"unknown grid policy {policy!r}; valid policies: {', '.join(POLICIES)} or an (H, W) tuple"
        )
    if isinstance(policy, (tuple, list)) and len(policy) == 2:
        h = _positive_int(policy[0], "grid height H")
        w = _positive_int(policy[1], "grid width W")
        if h * w < c:
            raise ValueError(f"grid {h} x {w} holds {h * w} values, fewer than the {c} classes")
        return h, w
    raise TypeError(f"grid policy must be one of {', '.join(POLICIES)} or an (H, W) tuple, got {policy!r}")


def to_grid(logits: torch.Tensor, shape: str | tuple[int, int]) -> torch.Tensor:
    """``(..., C)`` logits -> ``(..., H, W)`` grid, zero-padded at the end (differentiable).

    ``shape`` is an ``(H, W)`` tuple or a policy name, resolved by :func:`grid_shape` with ``C`` taken
    from ``logits``.
    """
    if not isinstance(logits, torch.Tensor) or logits.dim() < 1:
        raise ValueError("to_grid expects a tensor of logits with the classes on the last axis")
    c = logits.shape[-1]
    h, w = grid_shape(c, shape)
    if h * w > c:
        logits = F.pad(logits, (0, h * w - c))
    return logits.reshape(*logits.shape[:-1], h, w)


def from_grid(grid: torch.Tensor, num_classes: int) -> torch.Tensor:
    """``(..., H, W)`` grid -> ``(..., C)`` logits: the first ``num_classes`` cells in row-major order,
    dropping the padding that :func:`to_grid` added (differentiable)."""
    c = _positive_int(num_classes, "num_classes")
    if not isinstance(grid, torch.Tensor) or grid.dim() < 2:
        raise ValueError("from_grid expects a tensor whose last two axes are the H x W grid")
    h, w = grid.shape[-2:]
    if h * w < c:
        raise ValueError(f"grid {h} x {w} holds {h * w} values, fewer than the {c} classes")
    return grid.flatten(-2)[..., :c]
