"""An unexpected error while training: one line for the user, the full traceback in the run directory.

An error a user can fix is a `figkd.errors.UserError` (or an ``OSError`` such as a full disk), a diverged
loss a `figkd.engine.nonfinite.NonFiniteLossError`: each already says what to do. Anything else raised
while a run trains (a bug in figkd, a plugin's term or PyTorch; a device out of memory) is turned by
:func:`training_error` into a :class:`TrainingError` whose message is one line naming where it happened -
the epoch, the step, the student and the loss term, where they are known - and the exception, and says
where the full traceback was written: ``error.log`` in the run directory of each student of the run
(`figkd.engine.rundir.RunDir.write_error_log`). The command line prints that line and exits with status 3.

The student and the term are read from the traceback itself: the frame of the step that was working on
a member (a local ``m``, `figkd.engine.step.TrainStep`), the frame of the objective that was computing a
term (its local ``key``, `figkd.losses.objective.Objective.forward`) and the teacher's forward
(`figkd.engine.teacher.TeacherForward`), so the step needs no bookkeeping of its own (it stays a function
a CUDA graph can capture). An error in a backward pass names the student, not the term.
"""

from __future__ import annotations

import traceback

import torch

from ..errors import UserError
from ..losses.objective import Objective
from .checkpoint import kept_checkpoint
from .member import Member
from .nonfinite import NonFiniteLossError
from .step import TrainStep
from .teacher import TeacherForward


class TrainingError(RuntimeError):
    """An unexpected error while training (see the module docstring); ``logs``: the error logs written."""

    def __init__(self, message: str, logs: list | None = None):
        super().__init__(message)
        self.logs = list(logs or [])


def expected(exc: BaseException) -> bool:
    """Whether ``exc`` already says what to do (a user's error, a file-system error, a divergence)."""
    return isinstance(exc, UserError | OSError | NonFiniteLossError | TrainingError)


def where(exc: BaseException) -> tuple[str | None, str | None]:
    """``(student, term)`` that ``exc`` was raised in, read from its traceback (None where not known); the
    teacher's forward is the student ``"teacher"``."""
    member = term = None
    for frame, _ in traceback.walk_tb(exc.__traceback__):
        local = frame.f_locals
        if isinstance(local.get("self"), TrainStep) and isinstance(local.get("m"), Member):
            member = local["m"].name
        elif isinstance(local.get("self"), TeacherForward):
            member = "teacher"
        if frame.f_code is Objective.forward.__code__ and isinstance(local.get("key"), str):
            term = local["key"]
    return member, term


def training_error(exc: BaseException, members: list[Member], *, epoch: int, step: int | None,
                   main: bool = True) -> TrainingError:
    """A :class:`TrainingError` for ``exc`` raised in ``epoch`` (at ``step`` of it, None: after the steps),
    after writing the full traceback into each member's ``error.log`` (only in the ``main`` process)."""
    member, term = where(exc)
    place = f"epoch {epoch}" + (f", step {step}" if step is not None else " (after its steps: evaluation or recording)")
    place += f", loss term {term!r}" if term else ""
    what = " ".join(str(exc).split()) or "(no message)"
    head = (f"[{member}] " if member else "") + f"unexpected error in {place}: {type(exc).__name__}: {what}"
    text = head + "\n\n" + "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    logs = [m.run_dir.write_error_log(text) for m in members] if main else []
    hint = ("; lower --batch-size (the device ran out of memory)"
            if isinstance(exc, torch.OutOfMemoryError) else "")
    kept = (kept_checkpoint(members[0].run_dir.path) if len(members) == 1
            else "each student keeps its last good checkpoint")
    where_logged = f"; the full traceback is in {logs[0]}" + (
        f" (and in the run directory of each of the {len(logs) - 1} other students)" if len(logs) > 1 else "")
    return TrainingError(f"{head}{hint}; the run stopped: {kept}{where_logged if logs else ''}", logs)
