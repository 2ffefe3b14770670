"""Run directories: their names, what a run writes, and whether a directory may be (re)used.

``<run>/config.yaml`` (the configuration as used, and under ``resolved`` what it resolved to: the
objective's full term list with every weight and option), ``metrics.jsonl`` (one JSON object per epoch),
``summary.json`` (written when the run has finished; its presence marks the run as done), TensorBoard
events under ``tb/`` and ``checkpoints/`` (see :mod:`figkd.engine.checkpoint`), and where used
``normalization.json`` (``mean``/``std: auto``), ``analysis/`` (``figkd analyze``) and ``sweep.log``
(``figkd sweep``; kept when the directory is cleared). Nothing else: a folder
holding anything else is not a figkd run directory, and figkd neither writes into it nor removes it.

The rules of :func:`prepare` (docs/engine.md, "Run directories"):

- a new or empty folder: a fresh run;
- a run directory without a finished epoch (a start that failed or was stopped in epoch 1): nothing can
  be lost, so it is cleared and the run starts afresh, whatever its configuration was;
- the same finished run: skipped (``"done"``); the same unfinished run: continued with ``--resume``,
  refused without it;
- a run that differs only in ``epochs``, with ``--resume``: extended (or shortened, not below the epochs
  it has already trained) - the learning rate is a function of the epoch alone, so the result is the
  run that had the new number of epochs from the start;
- a different run: refused unless ``--overwrite``, which removes only what figkd wrote there, and never
  the current directory, a folder above it, the home directory or the file-system root.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path
from typing import Any

import yaml

from ..atomic import atomic_write_text, write_error
from ..config import RunConfig
from ..errors import ConfigError
from ..models import default_lr
from .checkpoint import CheckpointManager, RunFileError, read_json

#: What figkd writes in a run directory (and all it ever removes there).
RUN_ENTRIES = ("config.yaml", "metrics.jsonl", "summary.json", "tb", "checkpoints",
               "normalization.json",  # mean/std: auto (figkd.data.normalization)
               "analysis",  # figkd analyze's default output folder (figkd.analysis.common.output_dir)
               "sweep.log")  # figkd sweep's log of the run's processes (figkd.experiments.sweep)
#: Entries a clear keeps: the sweep's log is open while the run it launched prepares its directory.
KEPT_ON_CLEAR = ("sweep.log",)
#: Fields that may differ between a run and its resumption without changing its results.
RUNTIME_FIELDS = ("device", "progress", "num_workers", "tensorboard", "out", "cache_dir", "eval_batch_size",
                  "cuda_graph")  # a captured step replays the eager step's kernels
#: Path fields recorded as absolute paths in config.yaml (so `figkd eval RUN_DIR` works from anywhere).
PATH_FIELDS = ("data_root", "teacher_ckpt")


# ------------------------------------------------------------------------------------------ names
def objective_name(spec: Any) -> str:
    """A preset's name; for a term list, its terms joined by ``+`` and a digest of the whole list
    (``ce+figkd-1a2b3c``): `figkd.losses.description.dirname`."""
    from ..losses.description import dirname
    return dirname(spec)


def member_name(cfg: RunConfig, command: str) -> str:
    """The name of one student of a run: the model (train), ``<student>-<objective>`` (distill), or
    ``peers-<arch>-<arch>-<objective>`` (a peers run: deep mutual learning)."""
    if command == "train":
        return str(cfg.model)
    if cfg.peers:
        return f"peers-{'-'.join(cfg.peers)}-{objective_name(cfg.objective)}"
    return f"{cfg.student}-{objective_name(cfg.objective)}"


def peer_dirs(cfg: RunConfig, run_dir: Path) -> list[Path]:
    """The run directory of each peer of a peers run whose directory is ``run_dir``: ``peer<i>-<arch>``."""
    return [Path(run_dir) / f"peer{i}-{arch}" for i, arch in enumerate(cfg.peers)]


def default_run_dir(cfg: RunConfig, command: str) -> Path:
    """``runs/train/<dataset>/<model>-s<seed>``, for distill
    ``runs/distill/<dataset>/<teacher>-<student>-<objective>-s<seed>`` (without a teacher, a peers run:
    ``runs/distill/<dataset>/peers-<arch>-<arch>-<objective>-s<seed>``)."""
    name = member_name(cfg, command)
    if command == "distill" and cfg.teacher:
        name = f"{cfg.teacher}-{name}"
    return Path("runs") / command / cfg.dataset / f"{name}-s{cfg.seed}"


# ------------------------------------------------------------------------------ the recorded config
def _model_name(cfg: dict[str, Any]) -> str | None:
    return cfg.get("student") or cfg.get("model")


def normalized(cfg: dict[str, Any]) -> dict[str, Any]:
    """``cfg`` with relative paths made absolute and a null ``lr`` replaced by the paper's default (what
    runs recorded before config.yaml held the values used; comparing them to a new run's stays fair)."""
    out = dict(cfg)
    for key in PATH_FIELDS:
        if isinstance(out.get(key), str):
            out[key] = os.path.abspath(os.path.expanduser(out[key]))
    if "lr" in out and out["lr"] is None and _model_name(out):
        out["lr"] = default_lr(_model_name(out))
    return out


def recorded_config(cfg: RunConfig, command: str) -> dict[str, Any]:
    """What ``config.yaml`` records: ``cfg`` with absolute ``data_root``/``teacher_ckpt`` and the
    learning rate the run uses (``figkd.engine.recipe.initial_lr``)."""
    from .recipe import initial_lr
    out = normalized(cfg.to_dict())
    if not cfg.peers:  # peers of other architectures may have other default learning rates: kept as given
        out["lr"] = initial_lr(cfg, cfg.model if command == "train" else cfg.student)
    return out


def _comparable(cfg: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in normalized(cfg).items() if k not in RUNTIME_FIELDS and k != "resolved"}


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


def _differences(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    a, b = _comparable(old), _comparable(new)
    return sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))


# ------------------------------------------------------------------------ what a directory holds
_TEMPORARY = re.compile(r"\.(config\.yaml|metrics\.jsonl|summary\.json)\.\w+\.tmp")


def _is_figkd_entry(name: str) -> bool:
    """One of RUN_ENTRIES, or an atomic write's temporary file of one (``.config.yaml.XXXX.tmp``)."""
    return name in RUN_ENTRIES or _TEMPORARY.fullmatch(name) is not None


def foreign_entries(run_dir: Path) -> list[str]:
    """Entries of ``run_dir`` that figkd does not write (sorted)."""
    return sorted(p.name for p in Path(run_dir).iterdir() if not _is_figkd_entry(p.name))


def _not_a_run_dir(run_dir: Path, foreign: list[str]) -> ConfigError:
    shown = ", ".join(foreign[:5]) + (f" and {len(foreign) - 5} more" if len(foreign) > 5 else "")
    return ConfigError(f"{os.path.abspath(run_dir)} is not a figkd run directory (it holds {shown}); figkd writes "
                       "a run only into a new or empty folder or one of its own run directories, and never deletes "
                       "other files: choose another --out")


def _protected(run_dir: Path) -> str | None:
    """Why ``run_dir`` may never be removed (the current directory, above it, home, root), else None."""
    target = run_dir.resolve()
    cwd = Path.cwd().resolve()
    if target == cwd:
        return "it is the current directory"
    if target in cwd.parents:
        return "it holds the current directory"
    if target == Path.home().resolve():
        return "it is the home directory"
    if target == Path(target.anchor):
        return "it is the file-system root"
    return None


def clear(run_dir: Path) -> None:
    """Remove what figkd wrote in ``run_dir`` (RUN_ENTRIES and temporary files); the folder stays."""
    for entry in Path(run_dir).iterdir():
        if not _is_figkd_entry(entry.name) or entry.name in KEPT_ON_CLEAR:
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()


def check_writable(run_dir: Path) -> None:
    """Refuse (ConfigError) a run directory that cannot be created or written, before anything is."""
    run_dir = Path(run_dir)
    existing = run_dir
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        if existing == run_dir:
            raise ConfigError(f"{run_dir} is a file, not a run directory; choose another --out")
        raise ConfigError(f"cannot create run directory {run_dir}: {existing} is a file, not a folder; "
                          "choose another --out")
    if not os.access(existing, os.W_OK | os.X_OK):
        try:
            read_only = bool(os.statvfs(existing).f_flag & os.ST_RDONLY)
        except (OSError, AttributeError):
            read_only = False
        why = "is on a read-only file system" if read_only else "is not writable (permission denied)"
        action = "create" if existing != run_dir else "write to"
        raise ConfigError(f"cannot {action} run directory {run_dir}: {existing} {why}; choose another --out")


def read_config(run_dir: Path) -> dict[str, Any]:
    """The ``config.yaml`` of a run directory (RunFileError when it is not a YAML mapping)."""
    path = Path(run_dir) / "config.yaml"
    try:
        data = yaml.safe_load(path.read_text())
    except (yaml.YAMLError, UnicodeDecodeError) as error:
        raise RunFileError(path, f"is not valid YAML ({' '.join(str(error).split())})") from None
    if not isinstance(data, dict):
        raise RunFileError(path, f"does not hold a mapping of config fields (found {type(data).__name__})")
    return data


# --------------------------------------------------------------------------------- the decision
def prepare(run_dir: Path, cfg: dict[str, Any], *, resume: bool, overwrite: bool) -> str:
    """Decide what to do with ``run_dir``: ``"fresh"``, ``"resume"`` or ``"done"`` (skip: finished).

    See the module docstring for the rules. Raises ConfigError for a folder that is not a figkd run
    directory, one that cannot be written, a different run without ``overwrite``, an unfinished run
    without ``resume``, and RunFileError for a damaged run file. A directory without a finished epoch
    and (with ``overwrite``) a replaced run are cleared here.
    """
    run_dir = Path(run_dir)
    check_writable(run_dir)
    if not run_dir.exists():
        return "fresh"
    foreign = foreign_entries(run_dir)
    if foreign:
        raise _not_a_run_dir(run_dir, foreign)
    if not any(run_dir.iterdir()):
        return "fresh"
    if overwrite:
        why = _protected(run_dir)
        if why:
            raise ConfigError(f"--overwrite refuses to clear {run_dir}: {why}; choose another --out")
        clear(run_dir)
        return "fresh"
    has_config = (run_dir / "config.yaml").is_file()
    finished = (run_dir / "summary.json").is_file()
    last = CheckpointManager(run_dir).last_epoch()
    if last is None and not finished:
        clear(run_dir)  # no epoch finished: nothing to lose (a failed or stopped start)
        return "fresh"
    if not has_config:
        raise RunFileError(run_dir / "config.yaml", "is missing but the run has checkpoints")
    old = read_config(run_dir)
    differ = _differences(old, cfg)
    # The objective as it resolved (every weight and option): a preset whose defaults changed since the
    # run started is a different run. Runs written before figkd recorded it are compared by config only.
    objective = []
    if _resolved_objective(old) is not None and _resolved_objective(cfg) is not None:
        objective = objective_differences(_resolved_objective(old), _resolved_objective(cfg))
    if differ == ["epochs"] and not objective and resume:
        return _extend(run_dir, old, cfg, last, finished)
    if differ or objective:
        shown = ", ".join(([f"{k}: {old.get(k)!r} -> {cfg.get(k)!r}" for k in differ] + objective)[:5])
        hint = " add --resume to extend or shorten it," if differ == ["epochs"] and not objective else ""
        raise ConfigError(f"{run_dir} holds a run with a different configuration ({shown});{hint} "
                          f"use --overwrite to replace it or --out to choose another directory")
    if finished:
        read_summary(run_dir)  # a damaged summary is named now, not after the decision
        return "done"
    if not resume:
        raise ConfigError(f"{run_dir} holds an unfinished run of this configuration (last checkpoint: epoch "
                          f"{last}): add --resume to continue it or --overwrite to start it again")
    return "resume"


def _extend(run_dir: Path, old: dict[str, Any], cfg: dict[str, Any], last: int | None, finished: bool) -> str:
    """A run resumed with another number of epochs (docs/engine.md: extending a run)."""
    if last is None:
        raise RunFileError(run_dir / "checkpoints" / "last.json", "is missing but the run has finished")
    if cfg.get("epochs", 0) < last:
        raise ConfigError(f"{run_dir} has already trained {last} epochs: --epochs {cfg.get('epochs')} cannot shorten "
                          f"it; use --overwrite to start again or --out to choose another directory")
    if finished:
        (run_dir / "summary.json").unlink()  # the longer run is not finished (config.yaml follows)
    return "resume"


# ------------------------------------------------------------------------------------ the files
def write_config(run_dir: Path, cfg: dict[str, Any]) -> None:
    atomic_write_text(Path(run_dir) / "config.yaml", yaml.safe_dump(cfg, sort_keys=False))


def append_metrics(run_dir: Path, record: dict[str, Any]) -> None:
    path = Path(run_dir) / "metrics.jsonl"
    try:
        with open(path, "a") as fh:
            fh.write(json.dumps(record) + "\n")
            fh.flush()
    except OSError as error:
        raise write_error(path, error) from error


def _metric_lines(path: Path) -> list[tuple[str, dict[str, Any]]]:
    """``(line, record)`` of each line; a torn last line (a process killed while appending) is dropped,
    a malformed line before it is a RunFileError."""
    lines = [line for line in path.read_text().splitlines() if line.strip()]
    out = []
    for i, line in enumerate(lines):
        try:
            record = json.loads(line)
        except ValueError:
            if i == len(lines) - 1:
                break
            raise RunFileError(path, f"line {i + 1} is not valid JSON") from None
        if not isinstance(record, dict):
            raise RunFileError(path, f"line {i + 1} is not a JSON object")
        out.append((line, record))
    return out


def truncate_metrics(run_dir: Path, last_epoch: int) -> None:
    """Drop metric lines of epochs after ``last_epoch`` (written by a run killed before its checkpoint)."""
    path = Path(run_dir) / "metrics.jsonl"
    if not path.is_file():
        return
    keep = [line for line, record in _metric_lines(path) if record.get("epoch", 0) <= last_epoch]
    atomic_write_text(path, "".join(line + "\n" for line in keep))


def read_metrics(run_dir: Path) -> list[dict[str, Any]]:
    path = Path(run_dir) / "metrics.jsonl"
    if not path.is_file():
        return []
    return [record for _, record in _metric_lines(path)]


def write_summary(run_dir: Path, summary: dict[str, Any]) -> None:
    atomic_write_text(Path(run_dir) / "summary.json", json.dumps(summary, indent=2))


def read_summary(run_dir: Path) -> dict[str, Any]:
    path = Path(run_dir) / "summary.json"
    summary = read_json(path)
    if not isinstance(summary, dict):
        raise RunFileError(path, "is not a JSON object")
    return summary
