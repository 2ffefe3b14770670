"""The student of a run directory as deployment needs it: the model with its weights, its metadata card, and
the images it is checked, evaluated and calibrated on (read with the run's evaluation transform).

Everything about the run is read through its owner, `figkd.engine.rundir.RunDir`: the architecture, which
weights, the dataset and its folder, the input size, the normalisation the run was trained with and the class
names. Nothing here depends on the model being of figkd's zoo: the model is whatever
``figkd.models.load_teacher`` builds for the run's architecture name.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from ..engine.rundir import RunDir
from ..errors import ConfigError
from .metadata import ModelCard

__all__ = ["RunStudent", "calibration_batches", "evaluation_loader", "load_student"]


@dataclass
class RunStudent:
    """A run's model (on the CPU, eval mode) with the weights it was loaded from and its card."""

    run_dir: RunDir
    model: nn.Module
    card: ModelCard
    weights: dict[str, Any]  # RunDir.weights_record: which, path, epoch, top1 (recorded), split (of top1)

    def describe_weights(self) -> str:
        """``best weights (epoch 2, recorded test top-1 81.25) from <path>``; ``recorded val top-1`` for a run
        that evaluated on a validation split (it never read the test split)."""
        w = self.weights
        facts = [f"epoch {w['epoch']}" if w["epoch"] is not None else None,
                 f"recorded {w['split']} top-1 {w['top1']:.2f}" if w["top1"] is not None else None]
        facts = [f for f in facts if f]
        return f"{w['which']} weights{' (' + ', '.join(facts) + ')' if facts else ''} from {w['path']}"


def load_student(path: str | os.PathLike, which: str = "best") -> RunStudent:
    """The model of run directory ``path`` with its ``best`` or ``last`` weights. ConfigError for a folder
    that is not a run directory, a run without those weights, or weights that do not fit the architecture."""
    from ..data import build_dataset, recipe_for
    from ..models import load_teacher, set_input_normalization

    run_dir = RunDir(path)
    if not run_dir.path.is_dir() or not run_dir.has_config():
        raise run_dir.missing_config("pass the folder of a finished run, e.g. runs/distill/<dataset>/<name>")
    architecture = run_dir.require_architecture()
    weights = run_dir.weights_record(which)
    dataset, data_root = run_dir.dataset, run_dir.data_root
    input_size = run_dir.input_size
    norm = run_dir.normalization()
    recipe = recipe_for(dataset)
    classes = run_dir.classes()
    if classes is None:  # a run recorded before figkd kept classes.json: the dataset's own names
        classes = build_dataset(dataset, data_root, train=False).classes
    try:
        model = load_teacher(architecture, str(weights["path"]), len(classes))
    except (ValueError, KeyError, RuntimeError) as exc:
        raise ConfigError(f"{architecture} from {weights['path']}: {exc}") from exc
    mean, std = tuple(norm.mean if norm else recipe.mean), tuple(norm.std if norm else recipe.std)
    set_input_normalization(model, mean, std)  # as in training: a Hugging Face model converts to its own convention
    source = {"run_dir": str(run_dir.path.resolve()), "weights": which, "epoch": weights["epoch"],
              "recorded_top1": weights["top1"], "recorded_split": weights["split"]}
    card = ModelCard(architecture=architecture, input_size=input_size,
                     mean=mean, std=std,
                     num_classes=len(classes), classes=tuple(classes), dataset=dataset, data_root=data_root,
                     source=source)
    return RunStudent(run_dir, model.cpu().eval(), card, weights)


def _split(card: ModelCard, train: bool, dataset: str | None, data_root: str | None):
    """The dataset name, folder and split to read for ``card``: the given ones, else the card's."""
    from ..data import build_dataset, list_datasets, recipe_for

    name = dataset or card.dataset
    root = data_root if data_root is not None else (card.data_root if dataset in (None, card.dataset) else None)
    if not name:
        raise ConfigError("the model names no dataset: pass --dataset (and --data-root)")
    if name not in list_datasets():
        raise ConfigError(f"unknown dataset {name!r}; valid: {', '.join(list_datasets())}")
    size = recipe_for(name).size
    if (size, size) != tuple(card.input_size):
        raise ConfigError(f"dataset {name} gives {size}x{size} images but the model takes "
                          f"{card.input_size[0]}x{card.input_size[1]}: evaluate it on a dataset of its input size")
    return name, root, build_dataset(name, root, train=train)


def evaluation_loader(card: ModelCard, batch_size: int, *, split: str = "test", dataset: str | None = None,
                      data_root: str | None = None):
    """A CPU evaluation loader (every sample once, no augmentation) of the ``split`` of ``dataset`` (default:
    the card's), normalised with the card's mean/std: the images as the model expects them."""
    from ..data import build_loader

    name, root, data = _split(card, split == "train", dataset, data_root)
    return build_loader(name, root, False, batch_size, device="cpu", dataset=data, mean=card.mean, std=card.std)


def calibration_batches(card: ModelCard, count: int, batch_size: int = 64, seed: int = 0) -> Iterator[np.ndarray]:
    """``count`` training images of the card's dataset (all of them when the split is smaller), drawn without
    replacement by a generator seeded with ``seed``, with the evaluation transform (no augmentation) and the
    card's normalisation, as float32 ``(N, C, H, W)`` batches: int8 calibration data. The dataset is read
    here (a missing one is an error now); the batches are made as they are consumed."""
    from ..data import build_loader

    if count < 1:
        raise ConfigError(f"--calibration must be a positive number of images, got {count}")
    name, root, train = _split(card, True, None, None)
    generator = torch.Generator().manual_seed(seed)
    rows = torch.randperm(len(train), generator=generator)[:count].tolist()
    loader = build_loader(name, root, False, batch_size, device="cpu", dataset=train.subset(rows), mean=card.mean,
                          std=card.std)
    return (batch.images.float().numpy() for batch in loader)
