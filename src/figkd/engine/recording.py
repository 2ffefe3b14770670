"""What a run keeps of each epoch: ``metrics.jsonl``, TensorBoard scalars, checkpoints and the summary.

One :class:`Recorder` per run writes, for each member, into its run directory (`figkd.engine.rundir.RunDir`)
- only in the main process (rank 0 speaks for a DDP run):

- at the end of every epoch (:meth:`Recorder.end_epoch`): the epoch's record appended to ``metrics.jsonl``
  and TensorBoard (``tb/``), ``best.safetensors`` when the top-1 on the evaluation split improved, and the
  checkpoint ``--resume`` continues from (weights and training state, `figkd.engine.checkpoint`; with a
  train-mode teacher also the teacher's buffers, its running statistics), in that order, so a kill between
  two files loses at most this epoch;
- at the end of the run (:meth:`Recorder.finish`): ``summary.json``, whose presence marks the run as done.

The evaluation split is the test split (``test/top1`` each epoch; the summary's ``last_top1``,
``best_top1``, ``best_epoch``) or, with ``val_fraction``, the validation split (``val/top1``; the summary's
``val_last_top1``, ``val_best_top1``, ``val_best_epoch``, and ``last_top1`` null: the test split was not
read, unless ``test_at_end`` fills it). A run stopped early by its caller has ``stopped`` in its summary.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from .member import Member
from .state import training_state


class Recorder:
    """Writes the results of ``members`` (see the module docstring); ``main``: this process writes;
    ``tensorboard``: TensorBoard event files too."""

    def __init__(self, members: list[Member], *, main: bool, tensorboard: bool, device: torch.device,
                 dataset: str, epochs: int, seed: int, split: str = "test", teacher: torch.nn.Module | None = None):
        self.main, self.device, self.split = main, device, split
        self.teacher = teacher  # a train-mode teacher: its buffers (running statistics) move and are checkpointed
        self.run_facts = {"dataset": dataset, "epochs": epochs, "seed": seed}
        self.writers: dict[str, Any] = {}
        if main and tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            self.writers = {m.name: SummaryWriter(str(m.run_dir.path / "tb"), purge_step=m.start_epoch)
                            for m in members}

    def end_epoch(self, m: Member, epoch: int, record: dict[str, Any]) -> None:
        """Keep the record of ``epoch`` (see the module docstring)."""
        m.history.append(record)
        if not self.main:
            return
        m.run_dir.append_metrics(record)
        writer = self.writers.get(m.name)
        if writer is not None:
            for key, value in record.items():
                if key != "epoch" and isinstance(value, int | float):
                    writer.add_scalar(key, value, epoch)
            writer.flush()
        top1 = record.get(f"{self.split}/top1")
        if top1 is not None and top1 > m.best_top1:
            m.best_top1, m.best_epoch = top1, epoch
            m.run_dir.checkpoints.save_best(epoch, m.model, top1)
        state = training_state(m, self.device)
        if self.teacher is not None:
            state["teacher_buffers"] = dict(self.teacher.named_buffers())
        m.run_dir.checkpoints.save(epoch, m.model, state)

    def finish(self, m: Member, stopped: dict[str, Any] | None = None) -> dict[str, Any]:
        """The member's summary (last and best top-1 on the evaluation split; ``stopped``: the epoch and reason
        of an early stop), written as ``summary.json``."""
        split = self.split
        last = next((r for r in reversed(m.history) if f"{split}/top1" in r), {})
        summary = {"name": m.name, "model": m.model_name, "objective": m.objective_name, **self.run_facts,
                   "eval_split": split}
        if split == "test":
            summary.update(last_top1=last.get("test/top1"), last_top5=last.get("test/top5"), best_top1=m.best_top1,
                           best_epoch=m.best_epoch)
        else:  # the test split was not read (test_at_end fills last_top1 afterwards)
            summary.update(last_top1=None, last_top5=None, best_top1=None, best_epoch=None,
                           val_last_top1=last.get(f"{split}/top1"), val_last_top5=last.get(f"{split}/top5"),
                           val_best_top1=m.best_top1, val_best_epoch=m.best_epoch)
        summary["epochs_trained"] = m.history[-1]["epoch"] if m.history else 0
        summary["run_dir"] = str(m.run_dir.path)
        if stopped:
            summary["stopped"] = dict(stopped)
        if self.main:
            m.run_dir.write_summary(summary)
        return summary

    def close(self) -> None:
        for writer in self.writers.values():
            writer.close()


def epoch_line(members: list[Member], epoch: int, epochs: int, split: str = "test") -> str:
    """The log line of an epoch: time, throughput, and each member's loss and top-1 on the evaluation split."""
    parts = []
    for m in members:
        r = m.history[-1]
        loss = r.get("train/loss/total", math.nan)
        top1 = r.get(f"{split}/top1")
        parts.append(f"{m.name}: loss {loss:.4f}" + (f" {split} top-1 {top1:.2f}" if top1 is not None else ""))
    t = members[0].history[-1]
    return (f"epoch {epoch}/{epochs} ({t['train_time_s']:.1f}s, {t['images_per_s']:.0f} img/s) "
            + " | ".join(parts))
