"""The training loop of ``figkd train`` and ``figkd distill``.

One run trains one or more *members* (a student's :class:`~figkd.engine.learner.Learner`, its
optimizer and its run directory) on the same batches. With a teacher, the teacher's forward runs once
per batch (`figkd.engine.teacher.TeacherForward`) and its outputs are shared by every member: several
objectives or students cost one teacher forward per step, and they see the same data order and
augmentation (a paired comparison).

The step (``_train_step``) has static shapes and no host synchronisation: loss terms, hits and the
first non-finite step (loss or gradient) are accumulated on the device (:class:`EpochAccumulator`)
and read once per epoch (and every ``_SYNC_EVERY`` steps while a progress bar is shown). Everything
it reads that changes during a run (learning rate, epoch, metric sums, step counter, the gradient
guard) is a tensor updated in place, so on CUDA the step is captured once in a CUDA graph and
replayed (``figkd.engine.graph``, ``cuda_graph`` in the config); where it cannot be, the log says why.

Deep mutual learning (a term reading ``peer_logits``: the members are peers) needs every peer's
logits before any update, so its step has two phases (``_peer_step``): all forwards, then each peer's
loss, backward and update with the other peers' detached logits. Runs without such a term keep the
one-phase step.
"""

from __future__ import annotations

import json
import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

from ..config import RunConfig
from ..data.batch import Batch
from ..errors import ConfigError
from ..losses.inputs import Needs
from . import distributed as dist_utils
from .checkpoint import CheckpointManager, kept_checkpoint
from .device import autocast_context, resolve_amp, resolve_channels_last, resolve_cuda_graph
from .evaluate import evaluate
from .faults import fault_point, kill_now
from .graph import CudaGraphBackend, StepGraph
from .guard import GradientGuard
from .learner import Learner
from .metrics import EpochAccumulator
from .recipe import build_optimizer, initial_lr, lr_at_epoch, set_lr
from .rundir import RunDir
from .state import restore, training_state
from .teacher import TeacherForward

_SYNC_EVERY = 25


class NonFiniteLossError(RuntimeError):
    """A loss term or a gradient became NaN or infinite; the run stops and keeps its last good checkpoint."""


@dataclass
class Member:
    """One student being trained: its learner (model + objective), optimizer and run directory."""

    name: str
    model_name: str
    objective_name: str
    learner: Learner
    run_dir: Path
    cfg: RunConfig
    optimizer: torch.optim.Optimizer | None = None
    guard: GradientGuard | None = None
    step_module: nn.Module | None = None  # the learner, or its DDP / torch.compile wrapper
    base_lr: float = 0.0
    ckpt: CheckpointManager | None = None
    writer: Any = None
    best_top1: float = -1.0
    best_epoch: int = 0
    start_epoch: int = 1
    status: str = "fresh"
    history: list[dict[str, Any]] = field(default_factory=list)

    @property
    def model(self) -> nn.Module:
        """The student (what the exported weights hold)."""
        return self.learner.model


class Trainer:
    """Trains ``members`` (optionally distilled from ``teacher``) on ``train_loader``."""

    def __init__(self, cfg: RunConfig, members: list[Member], train_loader, test_loader, *,
                 teacher: nn.Module | None, device: torch.device, info: dist_utils.DistInfo,
                 log=print, graph_backend=None, record_step_losses: bool = False):
        self.cfg = cfg
        self.members = members
        self.train_loader = train_loader
        self.test_loader = test_loader
        self.teacher = teacher
        self.device = device
        self.info = info
        self.amp_dtype = resolve_amp(cfg, device)
        self.channels_last = resolve_channels_last(cfg, device)
        self.needs = Needs.of(*(m.learner.needs.inputs for m in members))
        if self.needs.teacher and teacher is None:
            raise ConfigError("the objective needs a teacher's outputs "
                              f"({', '.join(sorted(n for n in self.needs.inputs if n.startswith('teacher_')))}); "
                              "use figkd distill with --teacher and --teacher-ckpt")
        if self.needs.peers and len(members) < 2:
            raise ConfigError("the objective reads the other peers' logits (deep mutual learning: peer_logits), and "
                              "this run has one model: train two or more peers with figkd distill --peers A B")
        self.teacher_forward = TeacherForward(teacher, self.needs) if teacher is not None else None
        self.log = log if info.is_main else (lambda *a, **k: None)
        self.fault = fault_point()
        self.graph_backend = graph_backend
        self.record_step_losses = record_step_losses  # per-step totals (equivalence checks); off: fewer kernels
        self.graph: StepGraph | None = None
        # State the step reads or writes that changes during the run: tensors updated in place.
        self._epoch_t = torch.zeros((), dtype=torch.float32, device=device)  # 1-based, for warm-ups
        self._step_t = torch.zeros((), dtype=torch.int64, device=device)
        self._accs: list[EpochAccumulator] | None = None

    # -- set-up ------------------------------------------------------------------------------
    def setup(self) -> None:
        """Optimizers, checkpoints, and the state of each member's run directory (fresh/resume)."""
        mf = torch.channels_last if self.channels_last else torch.contiguous_format
        if self.teacher is not None:
            self.teacher.to(self.device, memory_format=mf).eval()
            for p in self.teacher.parameters():
                p.requires_grad_(False)
        for m in self.members:
            m.learner.check_not_sharing(self.teacher)
            m.learner.to(self.device, memory_format=mf)
            m.base_lr = initial_lr(m.cfg, m.model_name)
            m.optimizer = build_optimizer(m.learner, m.cfg, m.base_lr, self.device)
            m.guard = GradientGuard(m.optimizer, self.device)
            m.ckpt = CheckpointManager(m.run_dir)
            if m.status == "resume" and m.ckpt.last_epoch() is not None:
                weights, state = m.ckpt.load_last()
                restore(m, weights, state, self.device)
                RunDir(m.run_dir).truncate_metrics(state["epoch"])
                m.history = RunDir(m.run_dir).metrics()
                self.log(f"[{m.name}] resuming after epoch {state['epoch']} from {m.run_dir}")
            elif self.info.is_main:
                RunDir(m.run_dir).truncate_metrics(0)
        starts = {m.start_epoch for m in self.members}
        if len(starts) > 1:
            raise ConfigError("the students of this run stopped at different epochs "
                              f"({', '.join(f'{m.name}: {m.start_epoch - 1}' for m in self.members)}); "
                              "resume them as separate runs")
        for m in self.members:
            m.step_module = m.learner
            if self.info.enabled:
                from torch.nn.parallel import DistributedDataParallel as DDP
                ids = [self.device.index] if self.device.type == "cuda" else None
                m.step_module = DDP(m.learner, device_ids=ids)
        if self.cfg.compile:
            self.log("compiling the learners and the teacher with torch.compile (first steps are slow)")
            for m in self.members:
                m.step_module = torch.compile(m.step_module)
            if self.teacher_forward is not None:
                self.teacher_forward.module = torch.compile(self.teacher)
        self._setup_graph()
        if self.info.is_main and self.cfg.tensorboard:
            from torch.utils.tensorboard import SummaryWriter
            for m in self.members:
                m.writer = SummaryWriter(str(m.run_dir / "tb"), purge_step=m.start_epoch)

    def _setup_graph(self) -> None:
        use, why = resolve_cuda_graph(self.cfg, self.device, self.info, self.graph_backend is not None)
        if not use:
            if self.device.type == "cuda":
                self.log(f"CUDA graph: not used ({why}); training steps run eagerly")
            return
        backend = self.graph_backend or CudaGraphBackend(self.device)
        self.graph = StepGraph(self._train_step, backend, persistent=self.persistent_tensors,
                               fallback=self.cfg.cuda_graph == "auto", log=self.log)

    def persistent_tensors(self) -> dict[str, torch.Tensor]:
        """Every tensor that outlives a step and that the step reads or writes, by name (what a
        captured step keeps the addresses of)."""
        out: dict[str, torch.Tensor] = {"step": self._step_t, "epoch": self._epoch_t}
        if self.graph is not None and self.graph.static is not None:
            out.update({f"input/{k}": v for k, v in self.graph.static.items() if v is not None})
        modules = [("teacher", self.teacher)] if self.teacher is not None else []
        modules += [(m.name, m.learner) for m in self.members]
        for prefix, module in modules:
            for name, p in module.named_parameters():
                out[f"{prefix}/{name}"] = p
                if p.grad is not None:
                    out[f"{prefix}/{name}.grad"] = p.grad
            for name, b in module.named_buffers():
                out[f"{prefix}/{name}"] = b
        for m in self.members:
            for g, group in enumerate(m.optimizer.param_groups if m.optimizer else []):
                if isinstance(group["lr"], torch.Tensor):
                    out[f"{m.name}/optimizer/lr{g}"] = group["lr"]
            for i, state in enumerate(m.optimizer.state.values() if m.optimizer else []):
                for key, value in state.items():
                    if isinstance(value, torch.Tensor):
                        out[f"{m.name}/optimizer/{i}/{key}"] = value
            if m.guard is not None:
                out.update({f"{m.name}/guard/{k}": v for k, v in m.guard.tensors().items()})
        for m, acc in zip(self.members, self._accs or [], strict=False):
            out.update({f"{m.name}/metrics/{k}": v for k, v in acc.tensors().items()})
        return out

    def step_losses(self) -> list[list[float]]:
        """Per member, the total loss of every step of the last epoch (synchronises); empty lists unless
        the trainer was made with ``record_step_losses=True``."""
        return [acc.step_losses() for acc in self._accs or []]

    # -- the step --------------------------------------------------------------------------
    def _autocast(self):
        # Autocast's cache of cast weights must be off inside a CUDA graph capture (PyTorch's notes).
        return autocast_context(self.device, self.amp_dtype, cache=self.graph is None)

    def _teacher_outputs(self, batch: Batch) -> dict[str, Any]:
        return self.teacher_forward(batch, self._autocast()) if self.teacher_forward is not None else {}

    def _train_step(self, images: torch.Tensor, target: torch.Tensor, strong: torch.Tensor | None = None,
                    index: torch.Tensor | None = None) -> None:
        """One step of every member on one batch. It reads the epoch, step and learning rate from
        tensors and writes only in place, so it can be captured once and replayed."""
        batch = Batch(images, target, strong=strong, index=index)
        teacher = self._teacher_outputs(batch)
        if self.needs.peers:
            self._peer_step(batch, teacher)
        else:
            for m, acc in zip(self.members, self._accs, strict=True):
                with self._autocast():
                    terms, logits = m.step_module(batch, teacher, self._epoch_t)
                self._update(m, acc, terms, logits, target)
        self._step_t += 1

    def _update(self, m: Member, acc: EpochAccumulator, terms: dict[str, torch.Tensor], logits: torch.Tensor,
                target: torch.Tensor) -> None:
        m.optimizer.zero_grad(set_to_none=True)
        terms["total"].backward()
        m.guard.check()  # a non-finite gradient: this and every later update of the epoch are skipped
        m.optimizer.step()
        acc.add(terms, logits, target, self._step_t, m.guard.found)

    def _peer_outputs(self, batch: Batch, modules: list[nn.Module]) -> list[dict[str, Any]]:
        """Phase 1 of a peer step: every peer's forward passes (one each), before any update."""
        with self._autocast():
            return [module(batch, {}, self._epoch_t, outputs_only=True) for module in modules]

    def _peer_step(self, batch: Batch, teacher: dict[str, Any]) -> None:
        """Deep mutual learning: every peer's forward, then each peer's loss (reading the other peers'
        logits of this step, detached), backward and update."""
        outputs = self._peer_outputs(batch, [m.step_module for m in self.members])
        logits = [o["student_logits"].detach() for o in outputs]
        for i, (m, acc, out) in enumerate(zip(self.members, self._accs, outputs, strict=True)):
            with self._autocast():
                terms, own = m.learner.losses(out, batch, teacher, self._epoch_t,
                                              peer_logits=logits[:i] + logits[i + 1:])
            self._update(m, acc, terms, own, batch.target)

    def _step_inputs(self, batch: Batch) -> dict[str, torch.Tensor | None]:
        """The batch as the step's keyword inputs: the memory format of the run, and only the fields a
        term needs (each one a static buffer of a captured step)."""
        def fmt(x):
            return x.contiguous(memory_format=torch.channels_last) if self.channels_last and x is not None else x

        return {"images": fmt(batch.images), "target": batch.target,
                "strong": fmt(batch.strong) if self.needs.strong() else None,
                "index": batch.index if self.needs.index else None}

    def _begin_epoch(self, epoch: int, steps: int) -> None:
        """Set the epoch's learning rates, epoch tensor and zeroed sums, all in place."""
        self._epoch_t.fill_(epoch)
        self._step_t.zero_()
        for m in self.members:
            m.learner.train()
            m.guard.reset()
            set_lr(m.optimizer, lr_at_epoch(m.base_lr, epoch, m.cfg.lr_milestones, m.cfg.lr_decay))
        if self._accs is None:
            recorded = steps if self.record_step_losses else 0
            self._accs = [EpochAccumulator(self.device, steps=recorded) for _ in self.members]
        for acc in self._accs:
            acc.reset()
        if self.graph is not None:
            self.graph.check()

    # -- epochs ----------------------------------------------------------------------------
    def _train_epoch(self, epoch: int) -> list[dict[str, float]]:
        steps = len(self.train_loader)
        self._begin_epoch(epoch, steps)
        accs = self._accs
        self.train_loader.set_epoch(epoch)
        bar = self._progress(steps, epoch)
        start = time.perf_counter()
        for step, batch in enumerate(self.train_loader.iter_from(0)):
            if self.fault == (epoch, step):
                kill_now()
            inputs = self._step_inputs(batch)
            if self.graph is not None:
                self.graph(**inputs)
            else:
                self._train_step(**inputs)
            if bar is not None:
                bar.update(1)  # host-side only; the loss shown is read every _SYNC_EVERY steps
                if (step + 1) % _SYNC_EVERY == 0:
                    if not self.info.enabled:  # under DDP every rank checks at the epoch's end, together
                        self._check_finite(accs, epoch)
                    rate = (step + 1) * self.cfg.batch_size * self.info.world_size / (time.perf_counter() - start)
                    bar.set_postfix(loss=f"{float(accs[0].loss_sum[-1]) / max(int(accs[0].count), 1):.4f}",
                                    img_s=f"{rate:.0f}")
        if bar is not None:
            bar.close()
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        elapsed = time.perf_counter() - start
        if self.graph is not None:
            self.graph.check()
        self._check_finite(accs, epoch)
        results = []
        for m, acc in zip(self.members, accs, strict=True):
            acc.all_reduce()
            r = {f"train/{k}": v for k, v in acc.result().items()}
            r["lr"] = lr_at_epoch(m.base_lr, epoch, m.cfg.lr_milestones, m.cfg.lr_decay)
            r["train_time_s"] = elapsed
            r["images_per_s"] = steps * self.cfg.batch_size * self.info.world_size / elapsed
            r["cuda_graph"] = int(self.graph is not None and self.graph.captured)
            results.append(r)
        return results

    def _check_finite(self, accs: list[EpochAccumulator], epoch: int) -> None:
        for m, acc in zip(self.members, accs, strict=True):
            bad = acc.first_nonfinite()
            if bad is None:
                continue
            what, step = bad
            kept = f"the run stopped: {kept_checkpoint(m.run_dir)}"
            if what != "gradient":
                raise NonFiniteLossError(f"[{m.name}] loss term {what!r} is not finite at epoch {epoch}, step {step}; "
                                         f"{kept}")
            term = self._term_with_nonfinite_gradient(m, epoch, step)
            which = f"the gradient of loss term {term!r}" if term else "a gradient"
            raise NonFiniteLossError(f"[{m.name}] {which} is not finite at epoch {epoch}, step {step} (every loss "
                                     f"value was finite); no update from that step on was applied; {kept}")

    def _term_with_nonfinite_gradient(self, m: Member, epoch: int, step: int) -> str | None:
        """The first term whose gradient is not finite on the batch of (epoch, step), or None.

        The guard skipped every update from that step on, so the learner's parameters are still those
        the step saw; the loaders are a pure function of (seed, epoch, step), so the batch is the same.
        Each term's gradient is then taken alone (eagerly, on the error path only). Not under DDP
        (the ranks would have to agree on a second backward pass): there the report says "gradient".
        """
        if self.info.enabled:
            return None
        self.train_loader.set_epoch(epoch)
        batch = next(iter(self.train_loader.iter_from(step)))
        batch = Batch(**self._step_inputs(batch))
        if self.needs.peers:  # the other peers as they are now (their updates went on after that step)
            outputs = self._peer_outputs(batch, [x.learner for x in self.members])
            i = self.members.index(m)
            logits = [o["student_logits"].detach() for o in outputs]
            with self._autocast():
                terms, _ = m.learner.losses(outputs[i], batch, self._teacher_outputs(batch), self._epoch_t,
                                            peer_logits=logits[:i] + logits[i + 1:])
        else:
            with self._autocast():
                terms, _ = m.learner(batch, self._teacher_outputs(batch), self._epoch_t)
        params = [p for p in m.learner.parameters() if p.requires_grad]
        for key in m.learner.objective.keys:
            grads = torch.autograd.grad(terms[key], params, retain_graph=True, allow_unused=True)
            if any(g is not None and not bool(torch.isfinite(g).all()) for g in grads):
                return key
        return None

    def _progress(self, steps: int, epoch: int):
        on = self.cfg.progress == "on" or (self.cfg.progress == "auto" and sys.stderr.isatty())
        if not (on and self.info.is_main):
            return None
        from tqdm import tqdm
        return tqdm(total=steps, desc=f"epoch {epoch}/{self.cfg.epochs}", leave=False, unit="step")

    def fit(self) -> list[dict[str, Any]]:
        """Train from each member's start epoch to ``cfg.epochs``; returns each member's summary."""
        try:
            for epoch in range(self.members[0].start_epoch, self.cfg.epochs + 1):
                train_results = self._train_epoch(epoch)
                do_eval = epoch % self.cfg.eval_every == 0 or epoch == self.cfg.epochs
                for m, tr in zip(self.members, train_results, strict=True):
                    record = {"epoch": epoch, **tr}
                    if do_eval:
                        t0 = time.perf_counter()
                        ev = evaluate(m.model, self.test_loader, self.device, self.amp_dtype, self.channels_last)
                        record.update({"test/top1": ev["top1"], "test/top5": ev["top5"],
                                       "test/loss": ev["loss"], "eval_time_s": time.perf_counter() - t0})
                    self._end_epoch(m, epoch, record)
                self.log(_epoch_line(self.members, epoch, self.cfg.epochs))
        finally:
            for m in self.members:
                if m.writer is not None:
                    m.writer.close()
        return [self._finish(m) for m in self.members]

    def _end_epoch(self, m: Member, epoch: int, record: dict[str, Any]) -> None:
        m.history.append(record)
        if not self.info.is_main:
            return
        RunDir(m.run_dir).append_metrics(record)
        if m.writer is not None:
            for key, value in record.items():
                if key != "epoch" and isinstance(value, int | float):
                    m.writer.add_scalar(key, value, epoch)
            m.writer.flush()
        top1 = record.get("test/top1")
        if top1 is not None and top1 > m.best_top1:
            m.best_top1, m.best_epoch = top1, epoch
            m.ckpt.save_best(epoch, m.model, top1)
        m.ckpt.save(epoch, m.model, training_state(m, self.device))

    def _finish(self, m: Member) -> dict[str, Any]:
        last = next((r for r in reversed(m.history) if "test/top1" in r), {})
        summary = {
            "name": m.name, "model": m.model_name, "objective": m.objective_name,
            "dataset": self.cfg.dataset, "epochs": self.cfg.epochs, "seed": self.cfg.seed,
            "last_top1": last.get("test/top1"), "last_top5": last.get("test/top5"),
            "best_top1": m.best_top1, "best_epoch": m.best_epoch, "run_dir": str(m.run_dir),
        }
        if self.info.is_main:
            RunDir(m.run_dir).write_summary(summary)
        return summary


def _epoch_line(members: list[Member], epoch: int, epochs: int) -> str:
    parts = []
    for m in members:
        r = m.history[-1]
        loss = r.get("train/loss/total", math.nan)
        top1 = r.get("test/top1")
        parts.append(f"{m.name}: loss {loss:.4f}" + (f" test top-1 {top1:.2f}" if top1 is not None else ""))
    t = members[0].history[-1]
    return (f"epoch {epoch}/{epochs} ({t['train_time_s']:.1f}s, {t['images_per_s']:.0f} img/s) "
            + " | ".join(parts))


def summary_json(summaries: list[dict[str, Any]]) -> str:
    return json.dumps(summaries, indent=2)
