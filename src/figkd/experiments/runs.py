"""Finished and unfinished runs found under a folder, and what each one is: (dataset, teacher, student, method).

A run directory is a folder with the engine's ``config.yaml`` and at least one of ``summary.json``
(finished), ``metrics.jsonl`` or ``checkpoints/`` (started). A ``train`` run (``model`` set) is a model
trained alone: teacher ``None``, student = its model. A ``distill`` run has ``teacher`` and ``student``.
The method is :func:`method_name` of the config's ``objective``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

METRICS = ("last", "best")


def method_name(objective: Any) -> str:
    """A readable, stable name of an objective, the method a run is grouped under: its label
    (`figkd.losses.description.label`: a preset's name, or ``"ce + 2*figkd(level=2)"``)."""
    from ..losses.description import label
    return label(objective)


@dataclass
class RunRecord:
    """One run directory: its configuration, its summary (None while unfinished) and its identity."""

    run_dir: Path
    cfg: dict[str, Any]
    summary: dict[str, Any] | None

    @property
    def command(self) -> str:
        return "distill" if (self.cfg.get("student") or self.cfg.get("peers")) else "train"

    @property
    def peer(self) -> int | None:
        """The index of this run among the peers of a peers run (DML: its directory is ``peer<i>-<arch>``),
        else None."""
        peers = self.cfg.get("peers")
        if not peers:
            return None
        name = self.run_dir.name
        index = name[4:].split("-", 1)[0] if name.startswith("peer") else ""
        return int(index) if index.isdigit() and int(index) < len(peers) else None

    @property
    def dataset(self) -> str:
        return str(self.cfg.get("dataset"))

    @property
    def teacher(self) -> str | None:
        """The teacher's architecture; for a peer of a two-peer run, the other peer's (the paper's DML cell
        is the student's peer trained beside the teacher's architecture)."""
        if self.peer is not None:
            others = [p for i, p in enumerate(self.cfg["peers"]) if i != self.peer]
            return others[0] if len(others) == 1 else "+".join(others)
        return self.cfg.get("teacher") if self.command == "distill" else None

    @property
    def student(self) -> str:
        if self.peer is not None:
            return str(self.cfg["peers"][self.peer])
        return str(self.cfg.get("student") or self.cfg.get("model"))

    @property
    def method(self) -> str:
        return method_name(self.cfg.get("objective"))

    @property
    def seed(self) -> int:
        return int(self.cfg.get("seed", 0))

    @property
    def finished(self) -> bool:
        return self.summary is not None

    def top1(self, metric: str = "last") -> float | None:
        """Test top-1 (%) of the last evaluated epoch (``last``) or the best one (``best``); None while
        unfinished."""
        if metric not in METRICS:
            raise ValueError(f"metric must be one of {', '.join(METRICS)}, got {metric!r}")
        if self.summary is None:
            return None
        value = self.summary.get(f"{metric}_top1")
        return None if value is None else float(value)

    def epochs_done(self) -> int:
        """Epochs recorded in ``metrics.jsonl`` (progress of an unfinished run)."""
        path = self.run_dir / "metrics.jsonl"
        if not path.is_file():
            return 0
        return sum(1 for line in path.read_text().splitlines() if line.strip())


def is_run_dir(path: Path) -> bool:
    return (path / "config.yaml").is_file() and any(
        (path / name).exists() for name in ("summary.json", "metrics.jsonl", "checkpoints"))


def read_run(run_dir: str | Path) -> RunRecord:
    """The :class:`RunRecord` of one run directory (FileNotFoundError if it is not one)."""
    run_dir = Path(run_dir)
    if not is_run_dir(run_dir):
        raise FileNotFoundError(f"{run_dir} is not a figkd run directory (config.yaml and summary.json, "
                                f"metrics.jsonl or checkpoints/ expected)")
    cfg = yaml.safe_load((run_dir / "config.yaml").read_text()) or {}
    summary_path = run_dir / "summary.json"
    summary = json.loads(summary_path.read_text()) if summary_path.is_file() else None
    return RunRecord(run_dir, cfg, summary)


def collect_runs(root: str | Path) -> list[RunRecord]:
    """Every run directory at or under ``root``, sorted by path (FileNotFoundError if ``root`` is missing)."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"{root} is not a folder")
    dirs = sorted({p.parent for p in root.rglob("config.yaml")} | ({root} if is_run_dir(root) else set()))
    return [read_run(d) for d in dirs if is_run_dir(d)]
