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
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file

from ..atomic import atomic_write, atomic_write_text
from ..models.checkpoints import save_weights


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
        save_weights(model, weights, {"epoch": str(epoch)})
        atomic_write(state_path, lambda p: torch.save({**state, "epoch": epoch}, p))
        pointer = {"epoch": epoch, "weights": weights.name, "state": state_path.name}
        atomic_write_text(self.dir / "last.json", json.dumps(pointer))
        for old in self.dir.glob("epoch_*"):
            if old.name not in (weights.name, state_path.name):
                old.unlink(missing_ok=True)

    def save_best(self, epoch: int, model: torch.nn.Module, top1: float) -> None:
        save_weights(model, self.dir / "best.safetensors", {"epoch": str(epoch), "top1": repr(top1)})
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
