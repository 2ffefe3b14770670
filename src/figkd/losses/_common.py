"""Shared helpers of the loss functions: precision policy and input checks.

Every loss in `figkd.losses` is computed in float32 or wider (a convention of the package): floating
inputs are cast up to a common dtype (float64 if any input is float64, float32 otherwise) and the
computation runs with autocast disabled, so that a bf16/fp16 autocast region around the training
step never lowers the precision of a loss (CPU autocast would otherwise run `mm` in bf16).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

import torch

F = TypeVar("F", bound=Callable[..., object])


def compute_dtype(*tensors: torch.Tensor) -> torch.dtype:
    """float64 if any floating input is float64, else float32 (bf16/fp16 inputs are cast up)."""
    for t in tensors:
        if t.dtype == torch.float64:
            return torch.float64
    return torch.float32


def full_precision(fn: F) -> F:
    """Decorator: cast floating tensor arguments up (see `compute_dtype`), run with autocast off.

    Integer tensors (class targets) and non-tensor arguments pass through unchanged.
    """

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        floats = [a for a in (*args, *kwargs.values())
                  if isinstance(a, torch.Tensor) and a.is_floating_point()]
        if not floats:
            return fn(*args, **kwargs)
        dtype = compute_dtype(*floats)

        def up(a):
            if isinstance(a, torch.Tensor) and a.is_floating_point() and a.dtype != dtype:
                return a.to(dtype)
            return a

        args = tuple(up(a) for a in args)
        kwargs = {k: up(v) for k, v in kwargs.items()}
        device_type = floats[0].device.type
        if not torch.amp.is_autocast_available(device_type):  # e.g. "meta": nothing to switch off
            return fn(*args, **kwargs)
        with torch.autocast(device_type=device_type, enabled=False):
            return fn(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


def describe_value(value: object) -> str:
    """A value as an error message shows it: a tensor by dtype and shape (``a torch.int64 tensor of shape
    (8, 10)``), anything else by type."""
    if isinstance(value, torch.Tensor):
        return f"a {value.dtype} tensor of shape {tuple(value.shape)}"
    return f"a {type(value).__name__}"


def check_logits(student_logits: torch.Tensor, teacher_logits: torch.Tensor | None = None, *,
                 name: str = "loss") -> None:
    """Shape checks shared by the logit losses: (B, C) floating tensors, B >= 1, teacher of the same shape.

    Raises TypeError (not a floating tensor) or ValueError (wrong rank, empty batch, shape mismatch).
    A batch of 0 samples is refused: every loss is a batch mean, which over no samples is nan.
    """
    if not isinstance(student_logits, torch.Tensor) or not student_logits.is_floating_point():
        raise TypeError(f"{name}: student_logits must be a floating-point tensor, "
                        f"got {describe_value(student_logits)}")
    if student_logits.ndim != 2:
        raise ValueError(f"{name}: logits must have shape (batch, num_classes), "
                         f"got {tuple(student_logits.shape)}")
    if student_logits.shape[0] == 0:
        raise ValueError(f"{name}: empty batch (logits of shape {tuple(student_logits.shape)}): the batch mean "
                         f"of a loss over 0 samples is nan; skip empty batches before the loss")
    if teacher_logits is not None:
        if not isinstance(teacher_logits, torch.Tensor) or not teacher_logits.is_floating_point():
            raise TypeError(f"{name}: teacher_logits must be a floating-point tensor, "
                            f"got {describe_value(teacher_logits)}")
        if teacher_logits.shape != student_logits.shape:
            raise ValueError(
                f"{name}: student and teacher logits differ in shape: {tuple(student_logits.shape)} vs "
                f"{tuple(teacher_logits.shape)}"
            )


def check_class_count(num_classes: int | None, minimum: int, term: str, why: str, fix: str = "") -> None:
    """A term's class-count constraint, checked when the term is built from its context (``num_classes``
    None: unknown there, checked by the loss at the call). ValueError ``<term> needs at least <minimum>
    classes (<why>), but there are <num_classes>[: <fix>]``."""
    if num_classes is not None and num_classes < minimum:
        have = "there is 1" if num_classes == 1 else f"there are {num_classes}"
        raise ValueError(f"{term} needs at least {minimum} classes ({why}), but {have}" + (f": {fix}" if fix else ""))


def stage_list(value: Any, name: str, arg: str, unit: str = "stage") -> list[torch.Tensor]:
    """The stages (or other ``unit``: a peer) given as ``arg`` to the pure function ``name``: a list or
    tuple as it is; one tensor as one stage (``[value]``: iterating a tensor would take the samples of
    its batch for stages). Anything else is a TypeError naming the argument."""
    if isinstance(value, torch.Tensor):
        return [value]
    if isinstance(value, list | tuple):
        return list(value)
    raise TypeError(f"{name}: {arg} must be a list of tensors (one per {unit}) or one tensor (one {unit}), got "
                    f"{describe_value(value)}")


def check_maps(name: str, /, **inputs: Any) -> None:
    """Each named list holds (B, C, H, W) maps: ValueError naming the input, its index and its shape."""
    for arg, maps in inputs.items():
        for i, x in enumerate(maps):
            if x.ndim != 4:
                raise ValueError(f"{name}: {arg}[{i}] must be a (B, C, H, W) map, got shape {tuple(x.shape)}")


def require_stage_lists(name: str, /, **inputs: Any) -> None:
    """A term module's inputs that hold the whole list of a model's stages (the stem first), which it
    indexes (``feats[1:]``, ``feats[-1]``): each must be a list or tuple, since indexing a tensor there
    would pick samples of its batch. TypeError naming the input otherwise."""
    for arg, value in inputs.items():
        if not isinstance(value, list | tuple):
            raise TypeError(f"{name}: {arg} must be the list of a model's stage tensors, the stem first (what "
                            f"model(x, return_features=True) returns under its key), got {describe_value(value)}")


def check_features(student, teacher, *, name: str = "loss",
                   inputs: tuple[str, str] = ("student features", "teacher features")) -> None:
    """Checks shared by the feature losses: floating tensors (or lists of them) with a non-empty batch.

    ``inputs``: how the error names the two arguments (a term passes its vocabulary names, e.g.
    ``("student_pooled", "teacher_pooled")``). Raises TypeError (not a floating tensor) or ValueError
    (empty batch, or lists of different lengths). Reads shapes only (no host synchronisation).
    """
    s_list = list(student) if isinstance(student, list | tuple) else [student]
    t_list = list(teacher) if isinstance(teacher, list | tuple) else [teacher]
    if len(s_list) != len(t_list) or not s_list:
        raise ValueError(f"{name}: needs equally long, non-empty lists of features, got {len(s_list)} (student) "
                         f"and {len(t_list)} (teacher)")
    check_batch(name, **{inputs[0]: student, inputs[1]: teacher})


def check_batch(name: str, /, **inputs) -> None:
    """Each named input (a floating tensor, or a list of them) has a batch of at least one sample.

    Raises TypeError (not a floating tensor) or ValueError naming ``name`` and the input, e.g.
    ``pkt_loss: empty batch (student_embedding of shape (0, 64)) ...``: every loss is a batch mean, which
    over no samples is nan. Reads shapes only (no host synchronisation).
    """
    for label, value in inputs.items():
        listed = isinstance(value, list | tuple)
        for i, x in enumerate(value if listed else [value]):
            where = f"{label}[{i}]" if listed else label
            if not isinstance(x, torch.Tensor) or not x.is_floating_point():
                raise TypeError(f"{name}: {where} must be a floating-point tensor, got {describe_value(x)}")
            if x.ndim == 0:
                raise ValueError(f"{name}: {where} must have a batch dimension first, got a 0-dim tensor")
            if x.shape[0] == 0:
                raise ValueError(f"{name}: empty batch ({where} of shape {tuple(x.shape)}): the batch mean of a "
                                 "loss over 0 samples is nan; skip empty batches before the loss")


def check_target(target: torch.Tensor, logits: torch.Tensor, *, name: str = "loss") -> None:
    """A target is a (B,) integer tensor of class indices (checked by shape only: no host sync)."""
    if not isinstance(target, torch.Tensor) or target.dtype not in (torch.int64, torch.int32, torch.int16,
                                                                     torch.int8, torch.uint8):
        raise TypeError(f"{name}: target must be an integer tensor of class indices, got {describe_value(target)}")
    if target.shape != logits.shape[:1]:
        raise ValueError(f"{name}: target must have shape ({logits.shape[0]},), got {tuple(target.shape)}")


def check_positive(value: float, what: str, *, allow_zero: bool = False) -> float:
    """A finite real number > 0 (or >= 0); returned as float. Booleans are rejected."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{what} must be a number, got {value!r}")
    v = float(value)
    if not (v >= 0.0 if allow_zero else v > 0.0) or v != v or v == float("inf"):
        raise ValueError(f"{what} must be {'>= 0' if allow_zero else '> 0'} and finite, got {value!r}")
    return v


def check_real(value: float, what: str) -> float:
    """A finite real number; returned as float."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{what} must be a number, got {value!r}")
    v = float(value)
    if v != v or abs(v) == float("inf"):
        raise ValueError(f"{what} must be finite, got {value!r}")
    return v
