"""Run directories: what a run writes, and whether a directory may be (re)used.

``<run>/config.yaml`` (the configuration, and under ``resolved`` what it resolved to: the objective's
full term list with every weight and option), ``metrics.jsonl`` (one JSON object per epoch),
``summary.json`` (written when the run has finished; its presence marks the run as done), TensorBoard
events under ``tb/`` and ``checkpoints/`` (see :mod:`figkd.engine.checkpoint`).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import yaml

from ..atomic import atomic_write_text
from ..config import ConfigError

#: Fields that may differ between a run and its resumption without changing its results.
RUNTIME_FIELDS = ("device", "progress", "num_workers", "tensorboard", "out", "cache_dir", "eval_batch_size",
                  "cuda_graph")  # a captured step replays the eager step's kernels


def _comparable(cfg: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in cfg.items() if k not in RUNTIME_FIELDS and k != "resolved"}


def objective_differences(old: list[dict[str, Any]], new: list[dict[str, Any]]) -> list[str]:
    """Where two resolved term lists differ, as ``"<term key>.<option>: old -> new"`` (or a term
    present on one side only)."""
    a = {t.get("name", t.get("term")): t for t in old}
    b = {t.get("name", t.get("term")): t for t in new}
    out = [f"objective term {k!r}: {'removed' if k in a else 'added'}" for k in [*a, *b] if (k in a) != (k in b)]
    for key in (k for k in a if k in b):
        for opt in sorted(set(a[key]) | set(b[key])):
            if a[key].get(opt) != b[key].get(opt):
                out.append(f"objective term {key!r} {opt}: {a[key].get(opt)!r} -> {b[key].get(opt)!r}")
    if not out and [t.get("name") for t in old] != [t.get("name") for t in new]:
        out.append("objective: the terms are in another order")
    return out


def _resolved_objective(cfg: dict[str, Any]) -> list[dict[str, Any]] | None:
    return (cfg.get("resolved") or {}).get("objective")


def prepare(run_dir: Path, cfg: dict[str, Any], *, resume: bool, overwrite: bool) -> str:
    """Decide what to do with ``run_dir``: ``"fresh"``, ``"resume"`` or ``"done"`` (skip: finished).

    Refuses (ConfigError) to start into a directory holding a different run unless ``overwrite``,
    and to restart an unfinished run of the same configuration without ``resume`` (which would
    silently throw its epochs away).
    """
    run_dir = Path(run_dir)
    cfg_path = run_dir / "config.yaml"
    if overwrite and run_dir.exists():
        shutil.rmtree(run_dir)
    if not cfg_path.is_file():
        if resume and (run_dir / "checkpoints").exists():
            raise ConfigError(f"cannot resume {run_dir}: it has checkpoints but no config.yaml")
        return "fresh"
    old = yaml.safe_load(cfg_path.read_text()) or {}
    differ = sorted(k for k in set(_comparable(old)) | set(_comparable(cfg))
                    if _comparable(old).get(k) != _comparable(cfg).get(k))
    shown = [f"{k}: {old.get(k)!r} -> {cfg.get(k)!r}" for k in differ]
    # The objective as it resolved (every weight and option): a preset whose defaults changed since the
    # run started is a different run. Runs written before figkd recorded it are compared by config only.
    if _resolved_objective(old) is not None and _resolved_objective(cfg) is not None:
        shown += objective_differences(_resolved_objective(old), _resolved_objective(cfg))
    if shown:
        raise ConfigError(f"{run_dir} holds a run with a different configuration ({', '.join(shown[:5])}); "
                          f"use --overwrite to replace it or --out to choose another directory")
    if (run_dir / "summary.json").is_file():
        return "done"
    if not resume:
        raise ConfigError(f"{run_dir} holds an unfinished run of this configuration: add --resume to "
                          f"continue it or --overwrite to start it again")
    return "resume"


def write_config(run_dir: Path, cfg: dict[str, Any]) -> None:
    atomic_write_text(Path(run_dir) / "config.yaml", yaml.safe_dump(cfg, sort_keys=False))


def append_metrics(run_dir: Path, record: dict[str, Any]) -> None:
    with open(Path(run_dir) / "metrics.jsonl", "a") as fh:
        fh.write(json.dumps(record) + "\n")
        fh.flush()


def truncate_metrics(run_dir: Path, last_epoch: int) -> None:
    """Drop metric lines of epochs after ``last_epoch`` (written by a run killed before its checkpoint)."""
    path = Path(run_dir) / "metrics.jsonl"
    if not path.is_file():
        return
    keep = [line for line in path.read_text().splitlines()
            if line.strip() and json.loads(line).get("epoch", 0) <= last_epoch]
    atomic_write_text(path, "".join(line + "\n" for line in keep))


def read_metrics(run_dir: Path) -> list[dict[str, Any]]:
    path = Path(run_dir) / "metrics.jsonl"
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def write_summary(run_dir: Path, summary: dict[str, Any]) -> None:
    atomic_write_text(Path(run_dir) / "summary.json", json.dumps(summary, indent=2))


def read_summary(run_dir: Path) -> dict[str, Any]:
    return json.loads((Path(run_dir) / "summary.json").read_text())
