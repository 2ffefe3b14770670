"""Timing the engine's training step: a trainer on synthetic data of a dataset's shape, warmed up, timed.

The machinery of ``benchmarks/throughput.py``, ``benchmarks/profile_step.py`` and ``figkd analyze overhead``
(Table 14): :func:`build_trainer` builds the engine's own :class:`~figkd.engine.trainer.Trainer` (the real
step: augmentation on the device, teacher forward under inference mode, every student's forward and
backward, the objective, the SGD step, metrics on the device) for a teacher, a student and objectives, on
random uint8 images of the dataset's image size and class count; :func:`warm_up` runs untimed epochs
until the step is in its steady state; :func:`time_steps` times whole epochs of ``steps`` steps. Epochs
end with a device synchronisation (the metrics are read), so wall-clock time around an epoch measures
the device's work on CUDA too.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..config import RunConfig
from .device import resolve_channels_last
from .distributed import DistInfo
from .graph import RecordingBackend
from .member import build_member
from .trainer import Trainer

#: Image side, classes, real train and test sizes (CIFAR-100: 50,000/10,000 at 32x32; TinyImageNet:
#: 100,000/10,000 at 64x64; digits: figkd's bundled 1,437/360 split).
SHAPES = {
    "cifar100": (32, 100, 50_000, 10_000),
    "tiny_imagenet": (64, 200, 100_000, 10_000),
    "digits": (32, 10, 1_437, 360),
}
#: ``fp32`` (eager, float32), ``bf16_cl`` (bf16 autocast + channels_last), ``compile`` (torch.compile),
#: ``graph`` (the step captured in a CUDA graph; on CPU run through the recording backend).
MODES = ("fp32", "bf16_cl", "compile", "graph")


def mode_settings(mode: str, device: torch.device) -> dict[str, Any]:
    """The config fields of a mode on ``device``."""
    cuda = device.type == "cuda"
    if mode == "fp32":
        return {"amp": "none", "channels_last": "off", "compile": False, "cuda_graph": "off"}
    if mode == "bf16_cl":
        return {"amp": "bf16", "channels_last": "on", "compile": False, "cuda_graph": "off"}
    if mode == "compile":
        return {"amp": "bf16" if cuda else "none", "channels_last": "on" if cuda else "off", "compile": True,
                "cuda_graph": "off"}
    if mode == "graph":
        return {"amp": "bf16" if cuda else "none", "channels_last": "on" if cuda else "off", "compile": False,
                "cuda_graph": "on"}
    raise ValueError(f"unknown mode {mode!r}; valid: {', '.join(MODES)}")


def synthetic_split(dataset: str, n: int, train: bool, seed: int):
    """``n`` random uint8 images of ``dataset``'s shape with random labels (an ArrayDataset)."""
    from ..data.base import ArrayDataset

    side, classes, _, _ = SHAPES[dataset]
    rng = np.random.default_rng(seed + int(train))
    images = rng.integers(0, 256, size=(n, 3, side, side), dtype=np.uint8)
    targets = rng.integers(0, classes, size=n).tolist()
    return ArrayDataset(dataset, None, train, images, targets, [str(i) for i in range(classes)])


def build_trainer(teacher: str, student: str, objectives: Sequence[tuple[str, Any]], *, dataset: str,
                  batch_size: int, steps: int, device: torch.device, mode: str, workdir: str | Path,
                  eval_samples: int = 512, eval_batch_size: int = 512) -> Trainer:
    """The engine's trainer for ``objectives`` (``(label, preset or term list)`` pairs, one student each,
    one shared teacher forward per step) in ``mode`` on synthetic data of ``dataset``'s shape: ``steps``
    training steps of ``batch_size`` per epoch. Nothing is written under ``workdir`` unless the trainer
    saves checkpoints (the timing functions never do)."""
    from ..data import build_loader
    from ..models import build_model
    from .learner import build_learner

    if dataset not in SHAPES:
        raise ValueError(f"unknown dataset shape {dataset!r}; valid: {', '.join(SHAPES)}")
    side, classes, _, _ = SHAPES[dataset]
    cfg = RunConfig(dataset=dataset, batch_size=batch_size, device=str(device), epochs=10 ** 6, tensorboard=False,
                    progress="off", eval_batch_size=eval_batch_size, **mode_settings(mode, device))
    torch.manual_seed(0)
    teacher_model = build_model(teacher, classes)
    learners = []
    for _, spec in objectives:
        torch.manual_seed(0)
        learners.append(build_learner(build_model(student, classes), spec, teacher=teacher_model,
                                      num_classes=classes, input_size=(side, side),
                                      train_size=batch_size * steps))
    strong = any(learner.needs.strong() for learner in learners)
    train_ds = synthetic_split(dataset, batch_size * steps, True, 0)
    test_ds = synthetic_split(dataset, eval_samples, False, 0)
    train = build_loader(dataset, None, True, batch_size, device=device, strong_view=strong, dataset=train_ds)
    test = build_loader(dataset, None, False, eval_batch_size, device=device, dataset=test_ds)
    info = DistInfo()
    members = [build_member(f"{student}-{label}", student, label, learner,
                            Path(workdir) / f"{mode}-{label}-{len(objectives)}", cfg, device=device, info=info,
                            channels_last=resolve_channels_last(cfg, device), teacher=teacher_model)
               for (label, _), learner in zip(objectives, learners, strict=True)]
    backend = RecordingBackend() if mode == "graph" and device.type != "cuda" else None
    return Trainer(cfg, members, train, test, teacher=teacher_model, device=device, info=info,
                   log=lambda *a, **k: None, graph_backend=backend)


def warm_up(trainer: Trainer) -> int:
    """Train untimed epochs until the step is in its steady state (compiled, or captured in a CUDA graph:
    that takes more than one epoch when an epoch is shorter than the graph's warm-up steps); returns the
    next epoch."""
    epoch = 1
    trainer.train_epoch(epoch)
    while trainer.graph is not None and not trainer.graph.captured and trainer.graph.failed is None:
        epoch += 1
        trainer.train_epoch(epoch)
    return epoch + 1


def time_steps(trainer: Trainer, first_epoch: int, repeats: int) -> list[float]:
    """Seconds per training step of ``repeats`` timed epochs from ``first_epoch`` (one value per epoch:
    the epoch's training time over its steps)."""
    steps = len(trainer.train_loader)
    return [trainer.train_epoch(epoch)[0]["train_time_s"] / steps
            for epoch in range(first_epoch, first_epoch + repeats)]
