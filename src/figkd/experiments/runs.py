"""Finished and unfinished runs found under a folder, and what each one is: (dataset, teacher, student, method).

A run directory (`figkd.engine.rundir.RunDir`: ``config.yaml`` and at least one of ``summary.json``
(finished), ``metrics.jsonl`` or ``checkpoints/`` (started)) is read through its owner object. A ``train``
run is a model trained alone: teacher ``None``, student = its model. A ``distill`` run has ``teacher`` and
``student``; a deep-mutual-learning peer's student is its own architecture. The method is
:func:`method_name` of the config's ``objective``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..engine.rundir import RunDir, find_run_dirs

METRICS = ("last", "best")
_ENTRY_KEYS = ("term", "weight", "warmup", "name")


def _num(v: Any) -> str:
    return f"{v:g}" if isinstance(v, float) else str(v)


def _terms(spec: Sequence[Mapping[str, Any]]) -> list[tuple[str, float, int, dict[str, Any]]]:
    """(term, weight, warmup, options with the term's defaults filled in) of each entry of a term list."""
    from ..losses import term_defaults

    out = []
    for e in spec:
        term = e.get("term")
        try:
            defaults = term_defaults(term)
        except ValueError:  # a term this version does not know: its options as written
            defaults = {}
        options = {**defaults, **{k: v for k, v in e.items() if k not in _ENTRY_KEYS}}
        out.append((term, float(e.get("weight", 1.0)), int(e.get("warmup", 0)), options))
    return out


def method_name(objective: Any) -> str:
    """A readable, stable name of an objective, the method a run is grouped under.

    A preset name (``"kd"``, ``"mlkd+figkd"``) is itself. A term list equal to a preset (defaults
    filled in, output names ignored) is that preset's name. Any other term list is named by its terms:
    ``weight*term(option=value, ...)`` joined by ``" + "``, the weight left out when 1 and only the
    options that differ from the term's defaults shown, e.g. ``"ce + 2*figkd(level=2)"``,
    ``"ce + dkd(beta=6, warmup=20)"``, ``"0.5*ce + 2*figkd"``.
    """
    if isinstance(objective, str):
        return objective
    if objective is None:
        return "default"
    if not isinstance(objective, Sequence) or not all(isinstance(e, Mapping) for e in objective):
        return str(objective)
    from ..losses import list_presets, preset_spec

    terms = _terms(objective)
    for preset in list_presets():
        if _terms(preset_spec(preset)) == terms:
            return preset
    from ..losses import term_defaults

    parts = []
    for term, weight, warmup, options in terms:
        try:
            defaults = term_defaults(term)
        except ValueError:
            defaults = {}
        shown = {k: v for k, v in options.items() if k not in defaults or defaults[k] != v}
        if warmup:
            shown["warmup"] = warmup
        opts = ", ".join(f"{k}={_num(v)}" for k, v in sorted(shown.items()))
        parts.append(("" if weight == 1.0 else f"{_num(weight)}*") + str(term) + (f"({opts})" if opts else ""))
    return " + ".join(parts)


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
        unfinished."""
        if metric not in METRICS:
            raise ValueError(f"metric must be one of {', '.join(METRICS)}, got {metric!r}")
        if self.summary is None:
            return None
        value = self.summary.get(f"{metric}_top1")
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
