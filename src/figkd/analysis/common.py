"""What every analysis shares: a trained model loaded from its run directory, its outputs on the test split,
and where figures and numbers are written.

A run directory (`figkd.engine.rundir.RunDir`) names the architecture it trained (a train run's model, a
distill run's student, a deep-mutual-learning peer's own), the dataset and its folder, the normalisation it
was trained with, and its weights (``best``, or the last epoch's: ``which="last"``). Outputs go to ``--out``
or, by default, to ``<first run directory>/analysis/``; each analysis writes ``<name>.png`` (matplotlib, Agg:
no display needed) and ``<name>.json`` (the numbers the figure shows), atomically.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..atomic import atomic_write, atomic_write_text
from ..engine.rundir import RunDir
from ..errors import ConfigError


@dataclass
class LoadedRun:
    """A trained model of a run directory, in eval mode on ``device``."""

    run_dir: Path
    label: str
    cfg: dict[str, Any]
    model: torch.nn.Module
    device: torch.device
    weights: Path

    @property
    def dataset(self) -> str:
        return str(self.cfg["dataset"])


def default_label(run_dir: RunDir) -> str:
    """``resnet8 (alone)`` for a train run, ``resnet8 KD`` / ``resnet8 ce + 2*figkd(level=2)`` for a distill run
    (:func:`figkd.experiments.runs.method_name`, presets written as in the paper; a peer: ``resnet14 DML``)."""
    from ..experiments.runs import method_name

    arch = run_dir.require_architecture()
    if run_dir.command == "distill":
        method = method_name(run_dir.config().get("objective") or "dml")
        return f"{arch} {_SHOWN.get(method, method)}"
    return f"{arch} (alone)"


#: How the presets are written in the paper.
_SHOWN = {"kd": "KD", "dkd": "DKD", "mlkd": "MLKD", "dist": "DIST", "figkd": "FiGKD", "mlkd+figkd": "MLKD+FiGKD",
          "dml": "DML"}


@functools.lru_cache(maxsize=4)
def _split(dataset: str, data_root: str | None):
    from ..data import build_dataset, check_dataset_name

    check_dataset_name(dataset)
    return build_dataset(dataset, data_root, train=False)


def eval_split(cfg: dict[str, Any]):
    """The test split of a run's dataset (read once per process and dataset)."""
    return _split(str(cfg["dataset"]), cfg.get("data_root"))


def resolve_device(device: str) -> torch.device:
    from ..engine.device import resolve_device as engine_device
    from ..engine.distributed import DistInfo

    return engine_device(device, DistInfo())


def load_run(run_dir: str | Path, *, which: str = "best", device: str | torch.device = "cpu",
             label: str | None = None) -> LoadedRun:
    """The model of ``run_dir`` with its ``best`` or ``last`` weights. ConfigError when the folder is not a
    run directory or has no such checkpoint."""
    from ..models import load_teacher

    rd = RunDir(run_dir)
    cfg = rd.config()
    name = rd.require_architecture()
    weights = rd.weights(which)
    device = device if isinstance(device, torch.device) else resolve_device(device)
    model = load_teacher(name, str(weights), eval_split(cfg).num_classes).to(device).eval()
    return LoadedRun(rd.path, label or default_label(rd), cfg, model, device, weights)


def load_runs(run_dirs: list[str | Path], labels: list[str] | None, *, which: str, device: str,
              same_dataset: bool = True) -> list[LoadedRun]:
    """:func:`load_run` of each directory with its label; ConfigError when labels do not match the runs in
    number or (``same_dataset``) the runs were trained on different datasets."""
    if labels is not None and len(labels) != len(run_dirs):
        raise ConfigError(f"--labels: {len(labels)} labels for {len(run_dirs)} run directories")
    runs = [load_run(d, which=which, device=device, label=labels[i] if labels else None)
            for i, d in enumerate(run_dirs)]
    if same_dataset and len({r.dataset for r in runs}) > 1:
        raise ConfigError("the runs compared must share a dataset, got " + ", ".join(sorted({r.dataset for r in runs})))
    return runs


@torch.inference_mode()
def outputs(run: LoadedRun, batch_size: int = 512) -> dict[str, torch.Tensor]:
    """The model's outputs on the whole test split, in dataset order, on the CPU in float32:
    ``logits`` (N, C), ``pooled`` (N, D: the embedding the classifier receives) and ``targets`` (N,)."""
    from ..data import build_loader

    split = eval_split(run.cfg)
    norm = RunDir(run.run_dir).normalization()  # the normalisation the run was trained with, as figkd eval uses
    loader = build_loader(run.dataset, run.cfg.get("data_root"), False, batch_size, device=run.device, dataset=split,
                          mean=norm.mean if norm else None, std=norm.std if norm else None)
    logits, pooled, targets = [], [], []
    for batch in loader:
        out, features = run.model(batch.images, return_features=True)
        logits.append(out.float().cpu())
        pooled.append(features["pooled_feat"].float().cpu())
        targets.append(batch.target.cpu())
    return {"logits": torch.cat(logits), "pooled": torch.cat(pooled), "targets": torch.cat(targets)}


def output_dir(run_dirs: list[str | Path], out: str | Path | None) -> Path:
    """``out``, or ``<first run directory>/analysis``; created."""
    path = Path(out) if out is not None else Path(run_dirs[0]) / "analysis"
    path.mkdir(parents=True, exist_ok=True)
    return path


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, torch.Tensor):
        return _plain(value.tolist())
    if isinstance(value, np.ndarray | np.generic):
        return _plain(value.tolist())
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, float):
        return round(value, 6)
    return value


def write_json(path: Path, data: dict[str, Any]) -> Path:
    """``data`` (tensors and arrays as lists, floats to 6 decimals) as indented JSON, atomically."""
    atomic_write_text(path, json.dumps(_plain(data), indent=1) + "\n")
    return path


def new_figure(width: float, height: float):
    """A matplotlib Figure drawn by the Agg backend (no display, no global pyplot state)."""
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=100, layout="constrained")


def write_png(path: Path, figure) -> Path:
    """Save ``figure`` as PNG, atomically."""
    atomic_write(path, lambda fh: figure.savefig(fh, format="png"))
    return path


def class_names(run: LoadedRun) -> list[str]:
    return list(eval_split(run.cfg).classes)
