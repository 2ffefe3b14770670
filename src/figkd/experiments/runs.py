"""Finished and unfinished runs found under a folder, and what each one is: (dataset, teacher, student, method).

A run directory (`figkd.engine.rundir.RunDir`: ``config.yaml`` and at least one of ``summary.json``
(finished), ``metrics.jsonl`` or ``checkpoints/`` (started)) is read through its owner object. A ``train``
run is a model trained alone: teacher ``None``, student = its model. A ``distill`` run has ``teacher`` and
``student``; a deep-mutual-learning peer's student is its own architecture. The method is
:func:`method_name` of the config's ``objective``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..engine.rundir import RunDir, find_run_dirs

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
    dir: RunDir = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.dir = RunDir(self.run_dir)

    @property
    def command(self) -> str:
        return self.dir.command

    @property
    def peer(self) -> int | None:
        """The index of this run among the peers of a peers run (DML), else None (`RunDir.peer`)."""
        return self.dir.peer

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
        return str(self.dir.architecture)

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
        unfinished, and for a validation run (:attr:`eval_split` ``"val"``) but its ``test_at_end`` (``last``)."""
        if metric not in METRICS:
            raise ValueError(f"metric must be one of {', '.join(METRICS)}, got {metric!r}")
        if self.summary is None:
            return None
        value = self.summary.get(f"{metric}_top1")
        return None if value is None else float(value)

    @property
    def eval_split(self) -> str:
        """``"val"`` for a run that evaluated on a validation split held out of its training split (it never
        read the test split, unless ``test_at_end``), else ``"test"`` (`RunDir.eval_split`)."""
        return self.dir.eval_split

    def val_top1(self, metric: str = "last") -> float | None:
        """Validation top-1 (%) of the last epoch (``last``) or the best one (``best``) of a run with a
        validation split; None while unfinished or for a run without one."""
        if metric not in METRICS:
            raise ValueError(f"metric must be one of {', '.join(METRICS)}, got {metric!r}")
        value = (self.summary or {}).get(f"val_{metric}_top1")
        return None if value is None else float(value)

    def epochs_done(self) -> int:
        """Epochs recorded in ``metrics.jsonl`` (progress of an unfinished run)."""
        return len(self.dir.metrics())


def read_run(run_dir: str | Path) -> RunRecord:
    """The :class:`RunRecord` of one run directory (FileNotFoundError if it is not one; RunFileError for a
    damaged ``config.yaml`` or ``summary.json``)."""
    rd = RunDir(run_dir)
    if not rd.is_run():
        raise FileNotFoundError(f"{run_dir} is not a figkd run directory (config.yaml and summary.json, "
                                f"metrics.jsonl or checkpoints/ expected)")
    return RunRecord(rd.path, rd.config(), rd.summary())


def collect_runs(root: str | Path) -> list[RunRecord]:
    """Every run directory at or under ``root``, sorted by path (FileNotFoundError if ``root`` is missing)."""
    if not Path(root).is_dir():
        raise FileNotFoundError(f"{root} is not a folder")
    return [RunRecord(rd.path, rd.config(), rd.summary()) for rd in find_run_dirs(root)]
