"""Pretrained initialisation: a model's starting weights from a file (``--init PATH``).

:func:`init_from` loads a safetensors file or a PyTorch state dict (read as every weights file of figkd:
`figkd.models.checkpoints.load_state_dict_file`, ``torch.load(weights_only=True)``, a ``module.`` or
``_orig_mod.`` prefix on every key stripped) into a freshly built model, and says what it did:

- a ``model.`` prefix on every key of the file and on none of the model's (a LightningModule's
  ``self.model``, a wrapper's) is stripped too;
- the classifier's weight and bias are kept at their fresh initialisation when their shapes differ from the
  file's (a head of another class count: an ImageNet-pretrained backbone fine-tuned on 200 bird species);
  the classifier is the model's ``classifier_name`` (the zoo's ``fc``/``linear``/``classifier``, a registered
  model's ``classifier`` or its last ``nn.Linear`` with ``num_classes`` outputs);
- keys of the model missing from the file keep their initialisation, keys of the file the model lacks are
  ignored; both are listed in the summary (:meth:`InitSummary.line`), which the engine prints;
- a shape that differs anywhere else, or a file that shares no tensor with the model, is a
  `figkd.errors.CheckpointError` (the file is of another architecture).

The zoo's ``resnet18_imagenet``, ``resnet34_imagenet`` and ``resnet50_imagenet`` have torchvision's parameter
names, so a torchvision ResNet state dict (``resnet18-f37072fd.pth``) initialises them, its 1000-class ``fc``
re-initialised for the dataset's classes.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import torch
from torch import nn

from ..errors import CheckpointError
from .checkpoints import load_state_dict_file, unwrap_model

#: A prefix stripped from every key of an ``--init`` file when the model's own keys do not have it.
EXTRA_PREFIXES = ("model.",)
_SHOWN = 4


@dataclass
class InitSummary:
    """What :func:`init_from` loaded: key lists by kind."""

    path: str
    loaded: list[str] = field(default_factory=list)
    reinitialised: list[tuple[str, tuple[int, ...], tuple[int, ...]]] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)

    def line(self) -> str:
        """One line for the log: how many tensors were loaded, which were re-initialised, missing, ignored."""
        total = len(self.loaded) + len(self.reinitialised) + len(self.missing)
        out = f"--init {self.path}: loaded {len(self.loaded)} of the model's {total} tensors"
        if self.reinitialised:
            out += "; re-initialised (another class count): " + ", ".join(
                f"{k} {tuple(a)} -> {tuple(b)}" for k, a, b in self.reinitialised)
        if self.missing:
            out += f"; not in the file, kept at initialisation ({len(self.missing)}): {_few(self.missing)}"
        if self.unexpected:
            out += f"; in the file, not in the model, ignored ({len(self.unexpected)}): {_few(self.unexpected)}"
        return out


def _few(keys: list[str]) -> str:
    return ", ".join(keys[:_SHOWN]) + (" ..." if len(keys) > _SHOWN else "")


def _classifier_keys(model: nn.Module) -> set[str]:
    name = getattr(model, "classifier_name", "") or ""
    return {f"{name}.weight", f"{name}.bias"} if name else set()


def init_from(model: nn.Module, path: str | os.PathLike) -> InitSummary:
    """Load the weights of ``path`` into ``model`` (in place) by the rules of the module docstring.

    Raises FileNotFoundError for a missing file and CheckpointError for a file that is not a weights file,
    shares no tensor with the model or differs from it in a shape outside the classifier."""
    target = unwrap_model(model)
    state = load_state_dict_file(path)
    own = target.state_dict()
    for prefix in EXTRA_PREFIXES:
        if state and all(k.startswith(prefix) for k in state) and not all(k.startswith(prefix) for k in own):
            state = {k[len(prefix):]: v for k, v in state.items()}
    summary = InitSummary(os.fspath(path))
    head = _classifier_keys(target)
    differing = []
    for key, mine in own.items():  # in the model's order
        value = state.get(key)
        if value is None:
            if not key.endswith("num_batches_tracked"):  # BatchNorm counts its own
                summary.missing.append(key)
        elif value.shape == mine.shape:
            summary.loaded.append(key)
        elif key in head:
            summary.reinitialised.append((key, tuple(value.shape), tuple(mine.shape)))
        else:
            differing.append(f"{key}: file {tuple(value.shape)} vs model {tuple(mine.shape)}")
    summary.unexpected = [k for k in state if k not in own]
    name = getattr(target, "registry_name", "") or type(target).__name__
    if differing:
        raise CheckpointError(f"--init {path} does not fit model {name!r}: shapes differ outside the classifier "
                              f"({len(differing)}): {'; '.join(differing[:_SHOWN])} - is it another architecture?")
    if not summary.loaded:
        raise CheckpointError(f"--init {path} shares no tensor with model {name!r} (its keys: {_few(list(state))}; "
                              f"the model's: {_few(list(own))}) - is it another architecture?")
    with torch.no_grad():
        target.load_state_dict({k: state[k] for k in summary.loaded}, strict=False)
    return summary
