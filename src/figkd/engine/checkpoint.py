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

A file that figkd cannot read back (malformed ``last.json``, a truncated state or weights file) is a
:class:`RunFileError` naming the file, what is wrong with it and what to do.
"""

from __future__ import annotations

import io
import json
import re
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file

from ..atomic import atomic_write_bytes, atomic_write_text
from ..errors import RunFileError
from ..models.checkpoints import save_weights

#: Names of the per-epoch files (the only files ``save`` ever removes).
EPOCH_FILE = re.compile(r"epoch_\d{4,}\.(safetensors|state\.pt)")
def read_json(path: Path) -> Any:
    """A JSON run file (``last.json``, ``best.json``, ``summary.json``); RunFileError when malformed."""
    try:
        return json.loads(path.read_text())
    except (ValueError, UnicodeDecodeError) as error:
        raise RunFileError(path, f"is not valid JSON ({error})") from None


def _pointer(path: Path) -> dict[str, Any]:
    pointer = read_json(path)
    if (not isinstance(pointer, dict) or not isinstance(pointer.get("epoch"), int)
            or not all(isinstance(pointer.get(k), str) for k in ("weights", "state"))):
        raise RunFileError(path, f"does not name a checkpoint (expected {{'epoch': E, 'weights': ..., "
                                 f"'state': ...}}, found {pointer!r:.80})")
    return pointer


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
        # Serialised in memory first: a write that fails (full disk) is then an OSError naming the file,
        # not an error from inside torch's zip writer.
        buffer = io.BytesIO()
        torch.save({**state, "epoch": epoch}, buffer)
        atomic_write_bytes(state_path, buffer.getvalue())
        pointer = {"epoch": epoch, "weights": weights.name, "state": state_path.name}
        atomic_write_text(self.dir / "last.json", json.dumps(pointer))
        for old in self.dir.iterdir():
            if EPOCH_FILE.fullmatch(old.name) and old.name not in (weights.name, state_path.name):
                old.unlink(missing_ok=True)

    def save_best(self, epoch: int, model: torch.nn.Module, top1: float) -> None:
        save_weights(model, self.dir / "best.safetensors", {"epoch": str(epoch), "top1": repr(top1)})
        atomic_write_text(self.dir / "best.json", json.dumps({"epoch": epoch, "top1": top1}))

    # -- reading ---------------------------------------------------------------------------
    def last_epoch(self) -> int | None:
        """The epoch of the checkpoint ``--resume`` continues from, or None when no epoch has finished."""
        pointer = self.dir / "last.json"
        if not pointer.is_file():
            return None
        return _pointer(pointer)["epoch"]

    def load_last(self) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        """Weights and training state of the checkpoint ``last.json`` names (RunFileError if damaged)."""
        pointer_path = self.dir / "last.json"
        if not pointer_path.is_file():
            raise FileNotFoundError(f"no checkpoint to resume from: {pointer_path} does not exist")
        pointer = _pointer(pointer_path)
        weights_path, state_path = self.dir / pointer["weights"], self.dir / pointer["state"]
        for path in (weights_path, state_path):
            if not path.is_file():
                raise RunFileError(path, f"is missing (named by {pointer_path.name})")
        try:
            weights = load_file(str(weights_path))
        except Exception as error:  # noqa: BLE001 - safetensors raises its own error types
            raise RunFileError(weights_path, f"is not a readable safetensors file ({error})") from None
        try:
            state = torch.load(state_path, map_location="cpu", weights_only=True)
        except Exception as error:  # noqa: BLE001 - torch raises RuntimeError/UnpicklingError/EOFError
            reason = " ".join(str(error).split())[:200]
            raise RunFileError(state_path, f"is not a readable training state ({type(error).__name__}: "
                                           f"{reason})") from None
        if not isinstance(state, dict) or state.get("epoch") != pointer["epoch"]:
            found = state.get("epoch") if isinstance(state, dict) else type(state).__name__
            raise RunFileError(state_path, f"holds epoch {found} but {pointer_path.name} names epoch "
                                           f"{pointer['epoch']}")
        return weights, state

    def weights_path(self, which: str = "best") -> Path:
        """Path of the ``best`` or ``last`` weights of this run."""
        if which == "best":
            path = self.dir / "best.safetensors"
        elif which == "last":
            pointer = self.dir / "last.json"
            if not pointer.is_file():
                raise FileNotFoundError(f"{pointer} does not exist: the run has not finished an epoch")
            path = self.dir / _pointer(pointer)["weights"]
        else:
            raise ValueError(f"which must be 'best' or 'last', got {which!r}")
        if not path.is_file():
            raise FileNotFoundError(f"{path} does not exist")
        return path


def kept_checkpoint(run_dir: str | Path) -> str:
    """What a run that stopped leaves to continue from, as a phrase for messages."""
    try:
        last = CheckpointManager(run_dir).last_epoch()
    except RunFileError as error:
        return str(error)
    ckpt_dir = Path(run_dir) / "checkpoints"
    if last is None:
        return "no epoch had finished, so there is no checkpoint (the run starts again from epoch 1)"
    return f"its last good checkpoint (epoch {last}) is kept in {ckpt_dir}"
