"""The training loop of ``figkd train`` and ``figkd distill``: epochs of steps, evaluation, recording.

One run trains one or more members (`figkd.engine.member.Member`: a student's learner, optimizer and run
directory) on the same batches; the loop reads like a plain PyTorch one because each rule it must keep
lives behind a named piece:

- the step (`figkd.engine.step.TrainStep`): forwards, objective, backward, guard, update - static shapes,
  no host reads, state updated in place, so that on CUDA it is captured once in a CUDA graph and replayed
  (`figkd.engine.graph.StepGraph`; ``cuda_graph`` in the config);
- the data order and augmentation: a pure function of (seed, epoch, step) (`figkd.data.loaders`), which is
  what makes ``--resume`` and DDP bit-identical to one uninterrupted process;
- the first NaN: read once per epoch, named with its epoch, step and term (`figkd.engine.nonfinite`);
- the recording: metrics, TensorBoard, checkpoints, summary (`figkd.engine.recording.Recorder`);
- evaluation on the split the run selects on: the test split, or the validation split held out of the
  training split (``val_fraction``; metrics ``val/top1`` ..., the test split then unread);
- the caller's say after each epoch (``on_epoch_end``): a reason to stop early (a pruned trial of
  ``figkd tune``), kept in the summary.
"""

from __future__ import annotations

import sys
import time
from typing import Any

import torch
from torch import nn

from ..config import RunConfig
from ..errors import ConfigError
from . import distributed as dist_utils
from .device import resolve_amp, resolve_channels_last, resolve_cuda_graph
from .evaluate import evaluate
from .faults import fault_point, kill_now
from .graph import CudaGraphBackend, StepGraph
from .member import Member
from .nonfinite import check_finite
from .recording import Recorder, epoch_line
from .step import TrainStep
from .teacher import TeacherForward

#: Steps between two reads of the loss sums while a progress bar is shown (each read synchronises).
SYNC_EVERY = 25


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
        teacher_forward = TeacherForward.on(teacher, members, device, self.channels_last) if teacher else None
        if cfg.compile:  # the learners were compiled when their members were built (figkd.engine.member)
            self.log("compiling the learners and the teacher with torch.compile (first steps are slow)")
            if teacher_forward is not None:
                teacher_forward.module = torch.compile(teacher)
        self.step = TrainStep(members, teacher_forward, device=device, amp_dtype=self.amp_dtype,
                              channels_last=self.channels_last, record_step_losses=record_step_losses)
        _check_members(self.step, members)
        self.graph = self._graph(graph_backend)
        self.recorder = Recorder(members, main=info.is_main, tensorboard=cfg.tensorboard, device=device,
                                 dataset=cfg.dataset, epochs=cfg.epochs, seed=cfg.seed, split=eval_split)
        self.fault = fault_point()

    def fit(self) -> list[dict[str, Any]]:
        """Train from the members' start epoch to ``cfg.epochs`` (or until ``on_epoch_end`` stops the run);
        returns each member's summary."""
        stopped = None
        try:
            for epoch in range(self.members[0].start_epoch, self.cfg.epochs + 1):
                results = self.train_epoch(epoch)
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
        finally:
            self.recorder.close()
        return [self.recorder.finish(m, stopped=stopped) for m in self.members]

    def train_epoch(self, epoch: int) -> list[dict[str, float]]:
        """One epoch of steps; returns each member's training record (losses, top-1/5, lr, time)."""
        steps = len(self.train_loader)
        self.step.begin_epoch(epoch, steps)
        self._check_graph()
        self.train_loader.set_epoch(epoch)
        bar = self._progress(steps, epoch)
        start = time.perf_counter()
        for i, batch in enumerate(self.train_loader.iter_from(0)):
            if self.fault == (epoch, i):
                kill_now()  # the test hook of the kill/resume tests (FIGKD_FAULT_AT)
            (self.graph or self.step)(**self.step.inputs(batch))
            if bar is not None:
                self._show(bar, i + 1, epoch, start)
        if bar is not None:
            bar.close()
        elapsed = self._elapsed(start)
        self._check_graph()
        check_finite(self.step, epoch, self.train_loader, distributed=self.info.enabled)
        images = steps * self.cfg.batch_size * self.info.world_size
        results = []
        for m, acc in zip(self.members, self.step.accs, strict=True):
            acc.all_reduce()
            results.append({**{f"train/{k}": v for k, v in acc.result().items()}, "lr": m.lr_at(epoch),
                            "train_time_s": elapsed, "images_per_s": images / elapsed,
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
    def _graph(self, backend) -> StepGraph | None:
        """The step captured in a CUDA graph where it can be (on CUDA, one process, no compile), else None;
        the log says why not."""
        use, why = resolve_cuda_graph(self.cfg, self.device, self.info, backend is not None)
        if not use:
            if self.device.type == "cuda":
                self.log(f"CUDA graph: not used ({why}); training steps run eagerly")
            return None
        self.step.graphed = True
        graph = StepGraph(self.step, backend or CudaGraphBackend(self.device), persistent=lambda: self.persistent,
                          fallback=self.cfg.cuda_graph == "auto", log=self.log)
        return graph

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

    def _progress(self, steps: int, epoch: int):
        on = self.cfg.progress == "on" or (self.cfg.progress == "auto" and sys.stderr.isatty())
        if not (on and self.info.is_main):
            return None
        from tqdm import tqdm
        return tqdm(total=steps, desc=f"epoch {epoch}/{self.cfg.epochs}", leave=False, unit="step")

    def _show(self, bar, done: int, epoch: int, start: float) -> None:
        """Advance the progress bar; every SYNC_EVERY steps read the loss (one synchronisation) and check it."""
        bar.update(1)
        if done % SYNC_EVERY:
            return
        if not self.info.enabled:  # under DDP every rank checks at the epoch's end, together
            check_finite(self.step, epoch, self.train_loader, distributed=False)
        acc = self.step.accs[0]
        rate = done * self.cfg.batch_size * self.info.world_size / (time.perf_counter() - start)
        bar.set_postfix(loss=f"{float(acc.loss_sum[-1]) / max(int(acc.count), 1):.4f}", img_s=f"{rate:.0f}")


def _check_members(step: TrainStep, members: list[Member]) -> None:
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
