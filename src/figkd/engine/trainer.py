"""The training loop of ``figkd train`` and ``figkd distill``: epochs of steps, evaluation, recording.

One run trains one or more members (`figkd.engine.member.Member`: a student's learner, optimizer and run
directory) on the same batches; the loop reads like a plain PyTorch one because each rule it must keep
lives behind a named piece:

- the step (`figkd.engine.step.TrainStep`): forwards, objective, backward, guard, update - static shapes,
  no host reads, state updated in place, so that on CUDA it is captured once in a CUDA graph and replayed
  (`figkd.engine.graph.StepGraph`; ``cuda_graph`` in the config);
- the data order and augmentation: a pure function of (seed, epoch, step) (`figkd.data.loaders`), which is
  what makes ``--resume`` and DDP bit-identical to one uninterrupted process;
- the first NaN: read once per epoch, named with its epoch, step and term; a student that diverged stops
  alone, its run directory saying why (`figkd.engine.nonfinite`);
- an unexpected error: one line naming the epoch, step, student and term, the traceback in each run
  directory's ``error.log`` (`figkd.engine.failure`);
- evaluation on the split the run selects on: the test split, or the validation split held out of the
  training split (``val_fraction``; metrics ``val/top1`` ..., the test split then unread);
- the caller's say after each epoch (``on_epoch_end``): a reason to stop early (a pruned trial of
  ``figkd tune``), kept in the summary;
- the recording: metrics, TensorBoard, checkpoints, summary (`figkd.engine.recording.Recorder`);
- what the user sees meanwhile: a bar, or lines when output is not a terminal (`figkd.engine.progress`).
"""

from __future__ import annotations

import time
from typing import Any

import torch
from torch import nn

from ..config import RunConfig
from . import distributed as dist_utils
from .device import resolve_amp, resolve_channels_last
from .evaluate import evaluate
from .failure import expected, training_error
from .faults import fault_point, kill_now
from .graph import StepGraph, step_graph
from .member import Member
from .nonfinite import NonFiniteLossError, stop_diverged
from .progress import Progress
from .recording import Recorder, epoch_line
from .step import TrainStep, check_members
from .teacher import TeacherForward, resolve_teacher_mode


class Trainer:
    """Trains ``members`` (optionally distilled from ``teacher``) on ``train_loader`` and evaluates them on
    ``eval_loader``, the split named ``eval_split`` (``"test"``, or ``"val"``: a validation split); see the
    module docstring. ``on_epoch_end``: see `figkd.engine.run.run`. ``graph_backend``: the capture backend
    (tests pass the CPU recording backend)."""

    def __init__(self, cfg: RunConfig, members: list[Member], train_loader, eval_loader, *,
                 teacher: nn.Module | None, device: torch.device, info: dist_utils.DistInfo, log=print,
                 graph_backend=None, record_step_losses: bool = False, eval_split: str = "test",
                 on_epoch_end=None):
        self.cfg, self.members, self.info, self.device = cfg, members, info, device
        self.train_loader, self.eval_loader, self.eval_split = train_loader, eval_loader, eval_split
        self.on_epoch_end = on_epoch_end
        self.log = log if info.is_main else (lambda *a, **k: None)
        self.amp_dtype = resolve_amp(cfg, device)
        self.channels_last = resolve_channels_last(cfg, device)
        self.teacher_mode = resolve_teacher_mode(cfg.teacher_mode, [m.learner.objective for m in members])
        teacher_forward = (TeacherForward.on(teacher, members, device, self.channels_last, self.teacher_mode)
                           if teacher is not None else None)
        if cfg.compile:  # the learners were compiled when their members were built (figkd.engine.member)
            self.log("compiling the learners and the teacher with torch.compile (first steps are slow)")
            if teacher_forward is not None:
                teacher_forward.module = torch.compile(teacher)
        self.step = TrainStep(members, teacher_forward, device=device, amp_dtype=self.amp_dtype,
                              channels_last=self.channels_last, record_step_losses=record_step_losses)
        check_members(self.step, members)
        self.graph: StepGraph | None = step_graph(self.step, cfg, device, info, graph_backend, log=self.log,
                                                  persistent=lambda: self.persistent)  # where it can be captured
        self.recorder = Recorder(members, main=info.is_main, tensorboard=cfg.tensorboard, device=device,
                                 dataset=cfg.dataset, epochs=cfg.epochs, seed=cfg.seed, split=eval_split,
                                 teacher=teacher if self.teacher_mode == "train" else None)
        self.fault = fault_point()
        self.at_step: int | None = None  # the step in progress (for the message of an unexpected error)
        self.stopped: list[str] = []  # why each student that diverged stopped

    def fit(self) -> list[dict[str, Any]]:
        """Train from the members' start epoch to ``cfg.epochs`` (or until ``on_epoch_end`` stops the run);
        returns each member's summary. A student whose loss diverged stops alone (`figkd.engine.nonfinite`):
        the others finish, then NonFiniteLossError names it (``summaries``: the others'); an unexpected
        error is a TrainingError (`figkd.engine.failure`)."""
        epoch, stopped = self.members[0].start_epoch, None
        try:
            for epoch in range(self.members[0].start_epoch, self.cfg.epochs + 1):
                results = self.train_epoch(epoch)
                self.at_step = None
                evaluate_now = epoch % self.cfg.eval_every == 0 or epoch == self.cfg.epochs
                for m, record in zip(self.members, results, strict=True):
                    if evaluate_now:
                        record.update(self.evaluate(m))
                    self.recorder.end_epoch(m, epoch, {"epoch": epoch, **record})
                self.log(epoch_line(self.members, epoch, self.cfg.epochs, self.eval_split))
                reason = self._stop_reason(epoch)
                if reason:
                    stopped = {"epoch": epoch, "reason": reason}
                    self.log(f"stopped after epoch {epoch}: {reason}")
                    break
        except Exception as exc:
            if expected(exc):
                raise
            raise training_error(exc, self.members, epoch=epoch, step=self.at_step, main=self.info.is_main) from exc
        finally:
            self.recorder.close()
        summaries = [self.recorder.finish(m, stopped=stopped) for m in self.members]
        if self.stopped:
            raise NonFiniteLossError("; ".join(self.stopped) + f"; {len(summaries)} other student(s) finished",
                                     summaries)
        return summaries

    def train_epoch(self, epoch: int) -> list[dict[str, float]]:
        """One epoch of steps; returns each member's training record (losses, top-1/5, lr, time). Members
        whose loss diverged are stopped (:meth:`_stop_diverged`) and have no record."""
        steps = len(self.train_loader)
        self.step.begin_epoch(epoch, steps)
        self._check_graph()
        self.train_loader.set_epoch(epoch)
        images = self.cfg.batch_size * self.info.world_size
        progress = Progress.open(self.cfg.progress, self.info.is_main, steps, epoch, self.cfg.epochs, images, self.log)
        start = time.perf_counter()
        for i, batch in enumerate(self.train_loader.iter_from(0)):
            self.at_step = i
            if self.fault == (epoch, i):
                kill_now()  # the test hook of the kill/resume tests (FIGKD_FAULT_AT)
            (self.graph or self.step)(**self.step.inputs(batch))
            if progress is not None and progress.update(i + 1, self._loss) and not self.info.enabled:
                self._stop_diverged(epoch, only_all=True)  # under DDP every rank checks at the epoch's end
        if progress is not None:
            progress.close()
        elapsed = self._elapsed(start)
        self._check_graph()
        self._stop_diverged(epoch)
        results = []
        for m, acc in zip(self.members, self.step.accs, strict=True):
            acc.all_reduce()
            results.append({**{f"train/{k}": v for k, v in acc.result().items()}, "lr": m.lr_at(epoch),
                            "train_time_s": elapsed, "images_per_s": steps * images / elapsed,
                            "cuda_graph": int(self.graph is not None and self.graph.captured)})
        return results

    def evaluate(self, m: Member, loader=None) -> dict[str, float]:
        """Top-1/top-5/loss of a member on the evaluation split (``<split>/top1`` ...; ``loader`` given: on the
        test split, ``test/top1`` ...) and the time it took."""
        split = self.eval_split if loader is None else "test"
        start = time.perf_counter()
        ev = evaluate(m.model, loader or self.eval_loader, self.device, self.amp_dtype, self.channels_last)
        return {f"{split}/top1": ev["top1"], f"{split}/top5": ev["top5"], f"{split}/loss": ev["loss"],
                "eval_time_s": time.perf_counter() - start}

    def _stop_reason(self, epoch: int) -> str | None:
        """The first reason ``on_epoch_end`` gives to stop after ``epoch`` (decided on rank 0), else None."""
        if self.on_epoch_end is None:
            return None

        def decide() -> str | None:
            for m in self.members:
                reason = self.on_epoch_end(m, epoch, m.history[-1])
                if reason:
                    return str(reason)
            return None

        return dist_utils.decide_on_main(decide)

    # -- named helpers -----------------------------------------------------------------------
    @property
    def persistent(self) -> dict[str, torch.Tensor]:
        """Every tensor the (captured) step reads or writes across steps, by name."""
        return self.step.persistent_tensors(self.graph.static if self.graph is not None else None)

    def _check_graph(self) -> None:
        if self.graph is not None:
            self.graph.check()  # a tensor the captured step uses must not have moved

    def _elapsed(self, start: float) -> float:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        return time.perf_counter() - start

    def _loss(self) -> float:
        """The first member's mean total loss of the epoch so far (synchronises)."""
        acc = self.step.accs[0]
        return float(acc.loss_sum[-1]) / max(int(acc.count), 1)

    def _stop_diverged(self, epoch: int, only_all: bool = False) -> None:
        """Stop the members whose loss or gradient was not finite (`figkd.engine.nonfinite.stop_diverged`); the
        step is captured again without them."""
        messages = stop_diverged(self.step, epoch, self.train_loader, info=self.info, stopped=self.stopped,
                                 only_all=only_all)
        self.stopped += messages
        for message in messages:
            self.log(message)
        if messages:
            self.members = self.step.members
            if self.graph is not None:
                self.graph.restart()
