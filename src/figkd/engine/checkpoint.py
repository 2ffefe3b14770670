"""Training checkpoints that survive being killed at any instant.

Layout of ``<run>/checkpoints/``::

    epoch_0012.safetensors   student weights (and buffers) after epoch 12
    epoch_0012.state.pt      optimizer, schedule, RNG states, epoch, best top-1 (tensors and plain
                             Python values only: loaded with ``torch.load(weights_only=True)``)
    last.json                {"epoch": 12, "weights": ..., "state": ...}: the commit point
    best.safetensors         weights of the epoch with the best test top-1
    best.json                {"epoch": ..., "top1": ...}

Every file is written to a temporary name in the same folder and renamed into place
(``os.replace`` is atomic on POSIX and Windows). ``last.json`` is replaced only after both files of
its epoch are complete, and older epoch files are removed only after that, so at every instant
``last.json`` names a complete pair: a crash loses at most the epoch in progress.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file


def atomic_write(path: Path, write: Callable[[Path], None]) -> None:
    """Call ``write(tmp)`` on a temporary file next to ``path``, fsync it, then rename it onto ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        write(tmp_path)
        with open(tmp_path, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp_path, path)
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write(path, lambda p: p.write_text(text))


def _plain_state_dict(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The model's state dict as contiguous CPU tensors (safetensors needs both); unwraps DDP/compile."""
    model = unwrap(model)
    return {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}


def unwrap(model: torch.nn.Module) -> torch.nn.Module:
    """The user's module inside DistributedDataParallel and/or torch.compile wrappers."""
    while True:
        if hasattr(model, "module") and isinstance(model.module, torch.nn.Module):
            model = model.module
        elif hasattr(model, "_orig_mod"):
            model = model._orig_mod
        else:
            return model


def save_weights_atomic(model: torch.nn.Module, path: Path, metadata: dict[str, str] | None = None) -> None:
    tensors = _plain_state_dict(model)
    atomic_write(path, lambda p: save_file(tensors, str(p), metadata=metadata or {}))


class CheckpointManager:
    """Writes and finds the checkpoints of one run directory (see the module docstring)."""

    def __init__(self, run_dir: str | Path):
        self.dir = Path(run_dir) / "checkpoints"

    # -- writing ---------------------------------------------------------------------------
    def save(self, epoch: int, model: torch.nn.Module, state: dict[str, Any]) -> None:
        """Save the end-of-epoch checkpoint ``epoch`` and make it the one ``--resume`` continues."""
        self.dir.mkdir(parents=True, exist_ok=True)
        weights = self.dir / f"epoch_{epoch:04d}.safetensors"
        state_path = self.dir / f"epoch_{epoch:04d}.state.pt"
        save_weights_atomic(model, weights, {"epoch": str(epoch)})
        atomic_write(state_path, lambda p: torch.save({**state, "epoch": epoch}, p))
        pointer = {"epoch": epoch, "weights": weights.name, "state": state_path.name}
        atomic_write_text(self.dir / "last.json", json.dumps(pointer))
        for old in self.dir.glob("epoch_*"):
            if old.name not in (weights.name, state_path.name):
                old.unlink(missing_ok=True)

    def save_best(self, epoch: int, model: torch.nn.Module, top1: float) -> None:
        save_weights_atomic(model, self.dir / "best.safetensors", {"epoch": str(epoch), "top1": repr(top1)})
        atomic_write_text(self.dir / "best.json", json.dumps({"epoch": epoch, "top1": top1}))

    # -- reading ---------------------------------------------------------------------------
    def last_epoch(self) -> int | None:
        pointer = self.dir / "last.json"
        if not pointer.is_file():
            return None
        return int(json.loads(pointer.read_text())["epoch"])

    def load_last(self) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        """Weights and training state of the checkpoint ``last.json`` names."""
        pointer_path = self.dir / "last.json"
        if not pointer_path.is_file():
            raise FileNotFoundError(f"no checkpoint to resume from: {pointer_path} does not exist")
        pointer = json.loads(pointer_path.read_text())
        weights = load_file(str(self.dir / pointer["weights"]))
        state = torch.load(self.dir / pointer["state"], map_location="cpu", weights_only=True)
        if state.get("epoch") != pointer["epoch"]:
            raise RuntimeError(f"checkpoint {pointer_path} names epoch {pointer['epoch']} but its state file "
                               f"holds epoch {state.get('epoch')}")
        return weights, state

    def weights_path(self, which: str = "best") -> Path:
        """Path of the ``best`` or ``last`` weights of this run."""
        if which == "best":
            path = self.dir / "best.safetensors"
        elif which == "last":
            pointer = self.dir / "last.json"
            if not pointer.is_file():
                raise FileNotFoundError(f"{pointer} does not exist: the run has not finished an epoch")
            path = self.dir / json.loads(pointer.read_text())["weights"]
        else:
            raise ValueError(f"which must be 'best' or 'last', got {which!r}")
        if not path.is_file():
            raise FileNotFoundError(f"{path} does not exist")
        return path
