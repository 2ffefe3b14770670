"""Run directories: their names, what a run records, and the one object that reads and writes them.

A run directory holds ``config.yaml`` (the run's *record*: the configuration as used, and under
``resolved`` what it resolved to - the objective's full term list with every weight and option, the
architecture this directory trained, the peer index of a deep-mutual-learning peer, the world size and
the global batch), ``metrics.jsonl`` (one JSON object per epoch), ``summary.json`` (written when the run
has finished; its presence marks the run as done), TensorBoard events under ``tb/``, ``checkpoints/``
(`figkd.engine.checkpoint`), ``classes.json`` (the dataset's class names, in label order) and, where
used, ``normalization.json`` (``mean``/``std: auto``), ``validation.json`` (``val_fraction > 0``: the
held-out indices, `figkd.data.split`), ``analysis/`` (``figkd analyze``), ``deploy/`` (``figkd export``
/ ``figkd bench``), ``sweep.log`` (``figkd sweep``; kept when the directory is cleared), ``error.log``
(why the run stopped: a member that diverged, or an unexpected error with its full traceback; removed
when the run starts again) and ``run.lock`` (the lock of the process writing the directory,
:meth:`RunDir.lock`; kept). Nothing else: a folder holding anything else is not a figkd run
directory, and figkd neither writes into it nor removes it.

:class:`RunDir` is the one owner of these files: the engine (start, resume, record, finish), the sweep
(which runs are finished), ``figkd eval``, ``figkd analyze`` and ``figkd report`` all go through it, so
"which architecture did this run train", "which weights", "which normalisation" and "is this the same
run" have one answer each.

The rules of :meth:`RunDir.prepare` (docs/engine.md, "Run directories"); :meth:`RunDir.state` is the same
decision without side effects (what ``figkd sweep`` asks):

- a new or empty folder: a fresh run;
- a run directory without a finished epoch (a start that failed or was stopped in epoch 1): nothing can
  be lost, so it is cleared and the run starts afresh, whatever its configuration was;
- the same finished run: skipped (``"done"``); the same unfinished run: continued with ``--resume``,
  refused without it; a run *stopped early* by its caller (a pruned trial of ``figkd tune``: its summary
  says ``stopped``, :meth:`RunDir.stopped`) is unfinished - ``--resume`` trains it to its last epoch;
- a run that differs only in ``epochs``, with ``--resume``: extended (or shortened, not below the epochs
  it has already trained) - the learning rate is a function of the epoch alone, so the result is the
  run that had the new number of epochs from the start;
- the same run at another world size (number of processes): the same run when the global batch
  (``batch_size`` x world size) is the same - resumed, and the log says so; another global batch is a
  one-line error naming both sizes and how to go on;
- a different run: refused unless ``--overwrite``, which removes only what figkd wrote there, and never
  the current directory, a folder above it, the home directory or the file-system root.
"""

from __future__ import annotations

import copy
import functools
import json
import os
import re
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from ..atomic import atomic_write_text, write_error
from ..config import RunConfig, yaml_load
from ..errors import ConfigError, RunFileError
from ..models import default_lr
from .checkpoint import CheckpointManager, read_json
from .runlock import RunLock

#: What figkd writes in a run directory (and all it ever removes there).
RUN_ENTRIES = ("config.yaml", "metrics.jsonl", "summary.json", "tb", "checkpoints",
               "normalization.json",  # mean/std: auto (figkd.data.normalization)
               "classes.json",  # the dataset's class names (RunDir.write_classes)
               "deploy",  # figkd export's and figkd bench's default output folder (figkd.deploy)
               "validation.json",  # val_fraction > 0: the held-out indices (figkd.data.split)
               "analysis",  # figkd analyze's default output folder (figkd.analysis.common.output_dir)
               "sweep.log",  # figkd sweep's log of the run's processes (figkd.experiments.sweep)
               "error.log",  # why the run stopped (RunDir.write_error_log)
               "run.lock")  # the writing process's lock (RunDir.lock)
#: Entries a clear keeps: the sweep's log is open while the run it launched prepares its directory, and the
#: lock file is held by the process clearing it (removing it would let a second process lock a new file).
KEPT_ON_CLEAR = ("sweep.log", "run.lock")
#: The file naming why a run stopped (RunDir.write_error_log).
ERROR_LOG = "error.log"
#: The lock file of the process writing a run directory (RunDir.lock).
LOCK_FILE = "run.lock"
#: The record of a run's validation split (`RunDir.write_validation`).
VALIDATION_FILE = "validation.json"
#: Fields that may differ between a run and its resumption without changing its results.
RUNTIME_FIELDS = ("device", "progress", "num_workers", "tensorboard", "out", "cache_dir", "eval_batch_size",
                  "cuda_graph")  # a captured step replays the eager step's kernels
#: Path fields recorded as absolute paths in config.yaml (so `figkd eval RUN_DIR` works from anywhere).
PATH_FIELDS = ("data_root", "teacher_ckpt", "init")
#: Model fields whose ``hf:<folder>`` values are recorded with the folder's absolute path.
MODEL_FIELDS = ("model", "teacher", "student")


# ------------------------------------------------------------------------------------------ names
def objective_name(spec: Any) -> str:
    """A preset's name; for a term list, its terms joined by ``+`` and a digest of the whole list
    (``ce+figkd-1a2b3c``): `figkd.losses.description.dirname`."""
    from ..losses.description import dirname
    return dirname(spec)


def _slug(name: Any) -> str:
    """A model name as a path component (``hf:<folder>`` -> ``hf-<folder name>``: `figkd.models.model_slug`)."""
    from ..models import model_slug
    try:
        return model_slug(str(name))
    except ValueError:  # an hf: folder that does not exist: reported where the model is built
        return str(name).replace("/", "-").replace(":", "-")


def member_name(cfg: RunConfig, command: str) -> str:
    """The name of one student of a run: the model (train), ``<student>-<objective>`` (distill), or
    ``peers-<arch>-<arch>-<objective>`` (a peers run: deep mutual learning); a Hugging Face model is named
    ``hf-<folder name>``."""
    if command == "train":
        return _slug(cfg.model)
    if cfg.peers:
        return f"peers-{'-'.join(_slug(p) for p in cfg.peers)}-{objective_name(cfg.objective)}"
    return f"{_slug(cfg.student)}-{objective_name(cfg.objective)}"


def peer_dirs(cfg: RunConfig, run_dir: Path) -> list[Path]:
    """The run directory of each peer of a peers run whose directory is ``run_dir``: ``peer<i>-<arch>``."""
    return [Path(run_dir) / f"peer{i}-{_slug(arch)}" for i, arch in enumerate(cfg.peers)]


def default_run_dir(cfg: RunConfig, command: str) -> Path:
    """``runs/train/<dataset>/<model>-s<seed>``, for distill
    ``runs/distill/<dataset>/<teacher>-<student>-<objective>-s<seed>`` (without a teacher, a peers run:
    ``runs/distill/<dataset>/peers-<arch>-<arch>-<objective>-s<seed>``)."""
    name = member_name(cfg, command)
    if command == "distill" and cfg.teacher:
        name = f"{_slug(cfg.teacher)}-{name}"
    return Path("runs") / command / cfg.dataset / f"{name}-s{cfg.seed}"


def run_dir_of(cfg: RunConfig, command: str) -> Path:
    """Where a run of ``cfg`` writes: its ``out``, else :func:`default_run_dir`."""
    return Path(cfg.out) if cfg.out else default_run_dir(cfg, command)


# ------------------------------------------------------------------------------------- the record
def _plain(value: Any) -> Any:
    """``value`` as YAML-safe plain data (tuples become lists)."""
    return json.loads(json.dumps(value, default=str))


def resolved_terms(spec: Any) -> list[dict[str, Any]]:
    """The objective ``spec`` (a preset name or a term list) as it resolves, as plain data: what
    ``Objective.spec`` holds (`figkd.losses.describe`), without building any module (the sweep's record of a
    run it has not started). ValueError for an unknown preset, term or option."""
    from ..losses import describe

    return _plain(describe(spec).resolved)


@functools.lru_cache(maxsize=1)
def _defaults() -> dict[str, Any]:
    """Every RunConfig field's default: what a record written before the field existed is read as."""
    return _plain(RunConfig().to_dict())


def normalized(cfg: Mapping[str, Any]) -> dict[str, Any]:
    """``cfg`` with relative paths made absolute, a null ``lr`` replaced by the paper's default, and every
    `RunConfig` field it lacks set to its default (what runs recorded before config.yaml held the values used,
    or before a field existed - a new field's default keeps the old behaviour, e.g. ``val_fraction`` 0;
    comparing them to a new run's stays fair)."""
    out = {**copy.deepcopy(_defaults()), **cfg}
    for key in PATH_FIELDS:
        if isinstance(out.get(key), str):
            out[key] = os.path.abspath(os.path.expanduser(out[key]))
    for key in MODEL_FIELDS:
        if key in out:
            out[key] = model_path(out[key])
    if isinstance(out.get("peers"), list):
        out["peers"] = [model_path(p) for p in out["peers"]]
    arch = out.get("student") or out.get("model")
    if "lr" in out and out["lr"] is None and arch:
        out["lr"] = default_lr(arch)
    return out


def model_path(name: Any) -> Any:
    """``hf:<folder>`` with the folder's absolute path (`figkd.models.canonical_name`); any other value as is."""
    from ..models.hf import canonical, is_hf
    if not is_hf(name):
        return name
    try:
        return canonical(name)
    except ValueError:  # a folder that does not exist: reported where the model is built
        return name


def record(cfg: RunConfig, command: str, *, architecture: str, objective: Sequence[Mapping[str, Any]],
           world_size: int = 1, peer: int | None = None, teacher_mode: str | None = None,
           models: Mapping[str, Mapping[str, Any] | None] | None = None) -> dict[str, Any]:
    """What ``config.yaml`` of one member of a run records: ``cfg`` with absolute ``data_root`` /
    ``teacher_ckpt`` and the learning rate the run uses (`figkd.engine.recipe.initial_lr`), and under
    ``resolved``: the objective as it resolved (``objective``: a term list as :func:`resolved_terms` gives),
    the ``architecture`` this directory trains, its ``peer`` index in a peers run, the ``world_size``
    (processes), the ``global_batch`` (``batch_size`` x world size), with a teacher the ``teacher_mode`` it
    ran in (`figkd.engine.teacher.resolve_teacher_mode`); and under ``resolved.models`` what ``models`` says
    of the directory's model (``architecture``) and of the ``teacher`` when they come from outside the zoo
    (`figkd.models.describe_model`: a Hugging Face model's source, input size and normalisation, the weights
    kept and re-initialised; a registered model's class and feature hooks)."""
    from .recipe import initial_lr

    out = normalized(cfg.to_dict())
    if not cfg.peers:  # peers of other architectures may have other default learning rates: kept as given
        out["lr"] = initial_lr(cfg, architecture)
    resolved = {"objective": _plain(list(objective)), "architecture": architecture, "world_size": int(world_size),
                "global_batch": int(cfg.batch_size) * int(world_size)}
    if peer is not None:
        resolved["peer"] = int(peer)
    if teacher_mode is not None:
        resolved["teacher_mode"] = teacher_mode
    details = {role: _plain(dict(d)) for role, d in (models or {}).items() if d}
    if details:
        resolved["models"] = details
    out["resolved"] = resolved
    return out


def _resolved(cfg: Mapping[str, Any]) -> Mapping[str, Any]:
    value = cfg.get("resolved")
    return value if isinstance(value, Mapping) else {}


def _world_size(cfg: Mapping[str, Any]) -> int:
    """The recorded world size; 1 for records written before figkd recorded it."""
    value = _resolved(cfg).get("world_size", 1)
    return value if isinstance(value, int) and value >= 1 else 1


def _comparable(cfg: Mapping[str, Any]) -> dict[str, Any]:
    """The fields that decide a run's results: every field but the runtime ones, ``resolved`` and
    ``teacher_mode`` (compared as it resolved: ``auto`` and ``eval`` are the same for a KD run), with
    ``batch_size`` read as the global batch (``batch_size`` x world size)."""
    out = {k: v for k, v in normalized(cfg).items()
           if k not in RUNTIME_FIELDS and k not in ("resolved", "teacher_mode")}
    if isinstance(out.get("batch_size"), int):
        out["batch_size"] = out["batch_size"] * _world_size(cfg)
    return out


def objective_differences(old: Sequence[Mapping[str, Any]], new: Sequence[Mapping[str, Any]]) -> list[str]:
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


def differences(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    """Why two records are not the same run, one phrase per difference (empty: the same run).

    Fields are compared as :func:`_comparable` reads them (runtime fields left out, relative paths made
    absolute, the global batch in place of the per-process batch); the objectives as they resolved when both
    records hold them (a preset and its term list written out are then the same objective), else as
    written (records made before figkd recorded the resolved objective).
    A field differing is phrased ``"<field>: old -> new"``; ``epochs`` alone is just ``"epochs: ..."``.
    """
    a, b = _comparable(old), _comparable(new)
    old_objective, new_objective = _resolved(old).get("objective"), _resolved(new).get("objective")
    both = old_objective is not None and new_objective is not None
    if both:  # compared as they resolved: "kd" and its term list written out are the same objective
        a.pop("objective", None), b.pop("objective", None)
    out = []
    for key in sorted(set(a) | set(b)):
        if a.get(key) == b.get(key):
            continue
        if key == "batch_size" and _world_size(old) != _world_size(new):
            out.append(f"global batch: {_batch_phrase(old)} -> {_batch_phrase(new)}")
        else:
            out.append(f"{key}: {old.get(key)!r} -> {new.get(key)!r}")
    if both:
        out += objective_differences(old_objective, new_objective)
    old_mode, new_mode = (_resolved(r).get("teacher_mode", "eval") for r in (old, new))
    if old_mode != new_mode:  # a run recorded before figkd recorded it ran its teacher in eval mode
        out.append(f"teacher mode: {old_mode} -> {new_mode}")
    return out


def _batch_phrase(cfg: Mapping[str, Any]) -> str:
    n = _world_size(cfg)
    return f"{n} process{'es' if n > 1 else ''} x {cfg.get('batch_size')}"


def _only_epochs(diffs: list[str]) -> bool:
    return len(diffs) == 1 and diffs[0].startswith("epochs: ")


# ---------------------------------------------------------------------------------- the directory
_TEMPORARY = re.compile(r"\.(config\.yaml|metrics\.jsonl|summary\.json|classes\.json)\.\w+\.tmp")
_PEER_DIR = re.compile(r"peer(\d+)-.+")


def _is_figkd_entry(name: str) -> bool:
    """One of RUN_ENTRIES, or an atomic write's temporary file of one (``.config.yaml.XXXX.tmp``)."""
    return name in RUN_ENTRIES or _TEMPORARY.fullmatch(name) is not None


class RunDir:
    """One run directory (see the module docstring): ``RunDir(path)``; nothing is read until asked.

    Reading: :meth:`config` (the record), :attr:`architecture`, :meth:`model_details` (a model from outside
    the zoo: its source, input size, normalisation, hooks), :attr:`dataset`, :attr:`input_size`,
    :attr:`world_size`, :meth:`summary`, :meth:`stopped`, :meth:`metrics`, :meth:`weights`,
    :meth:`weights_record`, :meth:`normalization`, :meth:`classes`, :meth:`validation`, :attr:`checkpoints`.
    Deciding: :meth:`state` (no side effects) and :meth:`prepare` (the engine's start: may clear).
    Writing: :meth:`write_config`, :meth:`append_metrics`, :meth:`truncate_metrics`, :meth:`write_summary`,
    :meth:`write_normalization`, :meth:`write_classes`, :meth:`write_validation`, :meth:`write_error_log`;
    :meth:`prepare` takes the directory's lock (`figkd.engine.runlock`), :meth:`unlock` releases it. A
    damaged file is a
    :class:`~figkd.errors.RunFileError` naming it.
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self._lock = RunLock(self.path / LOCK_FILE, self.path)
        self._parsed: tuple[tuple[int, int, int], dict[str, Any]] | None = None  # (file version, record)

    def __repr__(self) -> str:
        return f"RunDir({str(self.path)!r})"

    def __fspath__(self) -> str:
        return os.fspath(self.path)

    def __truediv__(self, name: str) -> Path:
        return self.path / name

    # -- what it holds ---------------------------------------------------------------------
    @property
    def config_path(self) -> Path:
        return self.path / "config.yaml"

    def has_config(self) -> bool:
        return self.config_path.is_file()

    def runs_below(self) -> list[Path]:
        """The run directories one or two levels below this folder (sorted): the members of a run of several
        students or of peers (``<out>/<student>-<objective>``, ``<out>/peer<i>-<arch>``), a sweep's tree."""
        if not self.path.is_dir():
            return []
        found = sorted(p.parent for pattern in ("*/config.yaml", "*/*/config.yaml") for p in self.path.glob(pattern))
        return [p for p in found if p != self.path]

    def missing_config(self, fix: str = "pass a figkd run directory") -> ConfigError:
        """The error for a folder that is not one run: naming the run directories below it where it holds
        some (the ``--out`` of several students), else saying it has no ``config.yaml``; ``fix``: what to pass."""
        inner = self.runs_below()
        if inner:
            shown = ", ".join(str(p) for p in inner[:4]) + (f" and {len(inner) - 4} more" if len(inner) > 4 else "")
            return ConfigError(f"{self.path} is not one run but holds {len(inner)} run directories (the --out of "
                               f"several students, peers or a sweep): pass one of them: {shown}")
        return ConfigError(f"{self.path} is not a figkd run directory (no config.yaml): {fix}")

    def is_run(self) -> bool:
        """Whether the folder holds a run figkd started: ``config.yaml`` and at least one of
        ``summary.json`` (finished), ``metrics.jsonl`` or ``checkpoints/`` (started)."""
        return self.has_config() and any((self.path / n).exists() for n in ("summary.json", "metrics.jsonl",
                                                                             "checkpoints"))

    def config(self) -> dict[str, Any]:
        """The record (``config.yaml``; a copy: parsed once per version of the file, which the properties
        below read again and again, e.g. ``figkd report``'s tables). ConfigError when the folder has none;
        RunFileError when it is not a YAML mapping."""
        path = self.config_path
        try:
            st = path.stat()
        except OSError:
            st = None
        if st is None or not path.is_file():
            raise self.missing_config()
        version = (st.st_ino, st.st_mtime_ns, st.st_size)
        if self._parsed is None or self._parsed[0] != version:
            try:
                data = yaml_load(path.read_text())  # a key twice (a hand edit) is named
            except (yaml.YAMLError, UnicodeDecodeError) as error:
                raise RunFileError(path, f"is not valid YAML ({' '.join(str(error).split())})") from None
            if not isinstance(data, dict):
                raise RunFileError(path, f"does not hold a mapping of config fields (found {type(data).__name__})")
            self._parsed = (version, data)
        return copy.deepcopy(self._parsed[1])

    @property
    def peer(self) -> int | None:
        """This directory's index among the peers of a deep-mutual-learning run (``resolved.peer``; for
        runs recorded before that, the ``peer<i>-<arch>`` folder name), else None."""
        cfg = self.config()
        peers = cfg.get("peers")
        if not peers:
            return None
        index = _resolved(cfg).get("peer")
        if not isinstance(index, int):
            match = _PEER_DIR.fullmatch(self.path.name)
            index = int(match.group(1)) if match else None
        return index if index is not None and 0 <= index < len(peers) else None

    @property
    def architecture(self) -> str | None:
        """The architecture this directory trained: ``resolved.architecture``; for runs recorded before
        figkd recorded it, the ``student`` of a distill run, the ``model`` of a train run or this peer's
        entry of ``peers``; None when the record names none."""
        cfg = self.config()
        arch = _resolved(cfg).get("architecture")
        if isinstance(arch, str) and arch:
            return arch
        if cfg.get("peers"):
            index = self.peer
            return str(cfg["peers"][index]) if index is not None else None
        arch = cfg.get("student") or cfg.get("model")
        return str(arch) if arch else None

    def model_details(self, role: str = "architecture") -> dict[str, Any] | None:
        """What the record says of a model from outside the zoo (``resolved.models``): this directory's
        (``role="architecture"``) or its ``teacher``'s; None for a zoo model or a run recorded without it."""
        value = _resolved(self.config()).get("models")
        entry = value.get(role) if isinstance(value, Mapping) else None
        return dict(entry) if isinstance(entry, Mapping) else None

    def require_architecture(self) -> str:
        """The architecture this directory trained, to be built again. ConfigError when the record names none,
        or when it is a model a plugin registered (``register_model``) and no plugin loaded now registers it:
        the message names the plugin file's name, read from the recorded class (`figkd.plugins`)."""
        arch = self.architecture
        if not arch:
            raise ConfigError(f"{self.config_path} names no model, student or peer: not a run figkd can load")
        details = self.model_details() or {}
        module = str(details.get("class", "")).rpartition(".")[0]
        if module.startswith("figkd_plugin_"):
            from ..models import canonical_name
            try:
                canonical_name(arch)
            except ValueError:
                stem = module[len("figkd_plugin_"):].rpartition("_")[0]
                raise ConfigError(f"{self.path} trained {arch}, a model registered by a plugin ({details['class']}, "
                                  f"from a file {stem}.py) that is not loaded now: set FIGKD_PLUGINS=path/to/{stem}.py "
                                  "as when it was trained") from None
        return arch

    @property
    def command(self) -> str:
        """``distill`` for a run with a student or peers, else ``train``."""
        cfg = self.config()
        return "distill" if (cfg.get("student") or cfg.get("peers")) else "train"

    @property
    def dataset(self) -> str | None:
        value = self.config().get("dataset")
        return str(value) if value is not None else None

    @property
    def data_root(self) -> str | None:
        return self.config().get("data_root")

    @property
    def input_size(self) -> tuple[int, int]:
        """``(height, width)`` of the images the run's model was trained on: its dataset recipe's size
        (`figkd.data.recipe_for`), what the engine builds the run's objectives with. ConfigError when the
        record names no dataset or an unknown one."""
        from ..data import recipe_for

        dataset = self.dataset
        try:
            size = recipe_for(dataset).size if dataset else None
        except ValueError as exc:
            raise ConfigError(f"{self.config_path}: {exc}") from None
        if size is None:
            raise ConfigError(f"{self.config_path} names no dataset: not a run figkd can load")
        return (int(size), int(size))

    @property
    def world_size(self) -> int:
        """Processes the run was trained with (1 for runs recorded before figkd recorded it)."""
        return _world_size(self.config())

    @property
    def resolved_objective(self) -> list[dict[str, Any]] | None:
        value = _resolved(self.config()).get("objective")
        return list(value) if isinstance(value, list) else None

    @property
    def finished(self) -> bool:
        return (self.path / "summary.json").is_file()

    def summary(self) -> dict[str, Any] | None:
        """``summary.json`` (None while the run is unfinished); RunFileError when damaged."""
        path = self.path / "summary.json"
        if not path.is_file():
            return None
        summary = read_json(path)
        if not isinstance(summary, dict):
            raise RunFileError(path, "is not a JSON object")
        return summary

    def stopped(self) -> dict[str, Any] | None:
        """``{"epoch": E, "reason": ...}`` when the run was stopped after epoch E by its caller (the
        ``on_epoch_end`` callback of `figkd.engine.run.run`: a trial pruned by ``figkd tune``), else None
        (unfinished, or trained to its last epoch). The run directory of a stopped run is not a failed one:
        its summary holds the epochs it trained."""
        summary = self.summary()
        stopped = summary.get("stopped") if summary else None
        return dict(stopped) if isinstance(stopped, Mapping) else None

    def metrics(self) -> list[dict[str, Any]]:
        """The records of ``metrics.jsonl``, one per epoch (a torn last line is dropped)."""
        path = self.path / "metrics.jsonl"
        if not path.is_file():
            return []
        return [rec for _, rec in _metric_lines(path)]

    @property
    def checkpoints(self) -> CheckpointManager:
        return CheckpointManager(self.path)

    def last_epoch(self) -> int | None:
        """The epoch ``--resume`` continues from, or None when no epoch has finished."""
        return self.checkpoints.last_epoch()

    def weights(self, which: str = "best") -> Path:
        """The ``best`` or ``last`` weights (the student's, safetensors). ConfigError when absent."""
        try:
            return self.checkpoints.weights_path(which)
        except FileNotFoundError as exc:
            raise ConfigError(f"{self.path}: {exc} (has the run finished an epoch?)") from None

    @property
    def eval_split(self) -> str:
        """The split the run evaluated on after each epoch: ``"val"`` (a validation split held out of the
        training split, ``val_fraction`` > 0: the test split is not read, unless ``test_at_end``) or
        ``"test"``. The summary's ``eval_split`` once finished, else the recorded configuration's."""
        summary = self.summary()
        if summary is not None and summary.get("eval_split") in ("val", "test"):
            return summary["eval_split"]
        fraction = self.config().get("val_fraction")
        return "val" if isinstance(fraction, int | float) and fraction > 0 else "test"

    def weights_record(self, which: str = "best") -> dict[str, Any]:
        """What is known of the ``best`` or ``last`` weights: ``{"which", "path", "epoch", "top1", "split"}`` -
        the file (:meth:`weights`), the epoch that wrote it, the top-1 (percent) recorded for it (None when the
        run files do not say) and the split that top-1 was measured on (:attr:`eval_split`: ``"val"`` for a run
        with a validation split, whose best weights are the best on validation; ``"test"`` otherwise, and for
        the last weights of a validation run evaluated on the test split by ``test_at_end``). ConfigError when
        the weights are absent."""
        path = self.weights(which)
        split = self.eval_split
        if which == "best":
            pointer = self.checkpoints.dir / "best.json"
            rec = read_json(pointer) if pointer.is_file() else {}
            rec = rec if isinstance(rec, dict) else {}
            epoch, top1 = rec.get("epoch"), rec.get("top1")
        else:
            epoch = self.last_epoch()
            top1 = next((m.get(f"{split}/top1") for m in self.metrics() if m.get("epoch") == epoch), None)
            summary = self.summary() or {}
            if split == "val" and summary.get("last_top1") is not None and summary.get("epochs_trained") == epoch:
                split, top1 = "test", summary["last_top1"]  # test_at_end: the final weights on the test split
        return {"which": which, "path": path, "epoch": epoch if isinstance(epoch, int) else None,
                "top1": float(top1) if isinstance(top1, int | float) else None, "split": split}

    def normalization(self):
        """The normalisation the run was trained with (`figkd.data.normalization.Normalization`), None when
        it used its dataset recipe's; ConfigError when its record says ``auto`` but ``normalization.json``
        is missing or unreadable."""
        from ..data import normalization

        try:
            return normalization.for_evaluation(self.config(), self.stored_normalization())
        except ValueError as exc:
            raise ConfigError(f"{self.path}: {exc}") from None

    def stored_normalization(self):
        """The ``normalization.json`` of this directory (`figkd.data.normalization.Normalization`), or None
        when it is absent or unreadable."""
        from ..data import normalization

        try:
            return normalization.Normalization.from_dict(json.loads((self.path / normalization.FILE).read_text()))
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def classes(self) -> list[str] | None:
        """The dataset's class names in label order (``classes.json``), or None for a run recorded before
        figkd kept them; RunFileError when the file is damaged."""
        path = self.path / "classes.json"
        if not path.is_file():
            return None
        names = read_json(path)
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise RunFileError(path, "is not a JSON list of class names")
        return names

    def validation(self):
        """The validation split recorded here (`figkd.data.split.ValidationSplit`), None when there is
        none; RunFileError when ``validation.json`` is damaged."""
        from ..data.split import ValidationSplit

        path = self.path / VALIDATION_FILE
        if not path.is_file():
            return None
        try:
            return ValidationSplit.from_dict(read_json(path))
        except (KeyError, TypeError, ValueError) as error:
            raise RunFileError(path, f"is not a validation split figkd wrote ({error})") from None

    def foreign_entries(self) -> list[str]:
        """Entries of the folder that figkd does not write (sorted)."""
        return sorted(p.name for p in self.path.iterdir() if not _is_figkd_entry(p.name))

    # -- deciding --------------------------------------------------------------------------
    def state(self, new: Mapping[str, Any]) -> str:
        """What starting the run recorded as ``new`` (:func:`record`) here would do, without doing it:
        ``"fresh"`` (nothing to keep), ``"done"`` (the same finished run: skipped), ``"resume"`` (the same
        run, unfinished or to be extended) or ``"different"`` (another run: refused without
        ``--overwrite``). The one rule behind the engine's :meth:`prepare` and ``figkd sweep``.
        RunFileError for a damaged run file."""
        if not self.path.is_dir() or not any(p.name != LOCK_FILE for p in self.path.iterdir()):
            return "fresh"
        if self.foreign_entries():
            return "different"
        finished = self.finished
        last = self.last_epoch()
        if last is None and not finished:
            return "fresh"
        if not self.has_config():
            raise RunFileError(self.config_path, "is missing but the run has checkpoints")
        diffs = differences(self.config(), new)
        if not diffs:
            if finished:  # a damaged summary is named now, not after the decision
                return "resume" if self.stopped() else "done"
            return "resume"
        return "resume" if _only_epochs(diffs) else "different"

    def prepare(self, new: Mapping[str, Any], *, resume: bool, overwrite: bool) -> str:
        """Decide what to do with the directory for the run recorded as ``new`` and make it ready:
        ``"fresh"``, ``"resume"`` or ``"done"`` (skip: finished).

        See the module docstring for the rules. Raises ConfigError for a folder that is not a figkd run
        directory, one that cannot be written, a different run without ``overwrite``, an unfinished run
        without ``resume``, and RunFileError for a damaged run file. A directory without a finished epoch
        and (with ``overwrite``) a replaced run are cleared here; an extended run loses its summary.

        The directory's lock is taken first (`figkd.engine.runlock`: a ConfigError naming the process that
        holds it) and held until :meth:`unlock` or the end of the process; it is released when ``prepare``
        raises. A resumed run's ``error.log`` is removed.
        """
        self.check_writable()
        if self.path.exists():
            foreign = self.foreign_entries()
            if foreign:
                raise self._not_a_run_dir(foreign)
        self._lock.acquire()  # before anything is decided: another process may be writing here
        try:
            status = self._prepare(new, resume=resume, overwrite=overwrite)
        except BaseException:
            self.unlock()
            raise
        if status == "resume":
            (self.path / ERROR_LOG).unlink(missing_ok=True)  # the run starts again: why it stopped is history
        return status

    def _prepare(self, new: Mapping[str, Any], *, resume: bool, overwrite: bool) -> str:
        if not any(p.name != LOCK_FILE for p in self.path.iterdir()):
            return "fresh"
        if overwrite:
            why = self._protected()
            if why:
                raise ConfigError(f"--overwrite refuses to clear {self.path}: {why}; choose another --out")
            self.clear()
            return "fresh"
        state = self.state(new)
        if state == "fresh":
            self.clear()  # no epoch finished: nothing to lose (a failed or stopped start)
            return "fresh"
        old = self.config()
        diffs = differences(old, new)
        if state == "different":
            raise self._different(old, new, diffs)
        if diffs:  # only epochs differ
            if not resume:
                raise ConfigError(f"{self.path} holds a run with a different configuration ({diffs[0]}); add --resume "
                                  "to extend or shorten it, use --overwrite to replace it or --out to choose another "
                                  "directory")
            return self._extend(new)
        if state == "done":
            return "done"
        stopped = self.stopped()
        if not resume:
            what = (f"a run of this configuration stopped after epoch {stopped['epoch']} ({stopped['reason']})"
                    if stopped else "an unfinished run of this configuration")
            raise ConfigError(f"{self.path} holds {what} (last checkpoint: epoch {self.last_epoch()}): add --resume "
                              "to continue it or --overwrite to start it again")
        if stopped:
            (self.path / "summary.json").unlink()  # trained on to its last epoch: unfinished until then
        return "resume"

    def world_size_note(self, new: Mapping[str, Any]) -> str | None:
        """A line for the log when the run recorded here is continued at another world size with the
        same global batch (the same run), else None."""
        if not self.has_config():
            return None
        old_n, new_n = _world_size(self.config()), _world_size(new)
        if old_n == new_n:
            return None
        return (f"{self.path} was trained by {_batch_phrase(self.config())} and continues with {_batch_phrase(new)}: "
                f"the same global batch of {int(new.get('batch_size', 0)) * new_n}")

    def _different(self, old: Mapping[str, Any], new: Mapping[str, Any], diffs: list[str]) -> ConfigError:
        if _world_size(old) != _world_size(new) and any(d.startswith("global batch:") for d in diffs):
            global_batch = int(old.get("batch_size", 0)) * _world_size(old)
            per = global_batch // _world_size(new) if global_batch % _world_size(new) == 0 else None
            fix = (f"run it with {_world_size(old)} processes (torchrun --nproc_per_node {_world_size(old)})"
                   + (f", or with --batch-size {per} in {_world_size(new)} process"
                      f"{'es' if _world_size(new) > 1 else ''} (the same global batch)" if per else ""))
            return ConfigError(f"{self.path} was trained by {_batch_phrase(old)} (global batch {global_batch}) and "
                               f"this is {_batch_phrase(new)}: {fix}; or --overwrite / --out for a new run")
        shown = ", ".join(diffs[:5])
        return ConfigError(f"{self.path} holds a run with a different configuration ({shown}); use --overwrite to "
                           "replace it or --out to choose another directory")

    def _extend(self, new: Mapping[str, Any]) -> str:
        """A run resumed with another number of epochs (docs/engine.md: extending a run)."""
        last = self.last_epoch()
        if last is None:
            raise RunFileError(self.path / "checkpoints" / "last.json", "is missing but the run has finished")
        if new.get("epochs", 0) < last:
            raise ConfigError(f"{self.path} has already trained {last} epochs: --epochs {new.get('epochs')} cannot "
                              "shorten it; use --overwrite to start again or --out to choose another directory")
        if self.finished:
            (self.path / "summary.json").unlink()  # the longer run is not finished (config.yaml follows)
        return "resume"

    def _not_a_run_dir(self, foreign: list[str]) -> ConfigError:
        shown = ", ".join(foreign[:5]) + (f" and {len(foreign) - 5} more" if len(foreign) > 5 else "")
        return ConfigError(f"{os.path.abspath(self.path)} is not a figkd run directory (it holds {shown}); figkd "
                           "writes a run only into a new or empty folder or one of its own run directories, and "
                           "never deletes other files: choose another --out")

    def _protected(self) -> str | None:
        """Why the folder may never be removed (the current directory, above it, home, root), else None."""
        target = self.path.resolve()
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

    def check_writable(self) -> None:
        """Refuse (ConfigError) a run directory that cannot be created or written, before anything is."""
        existing = self.path
        while not existing.exists() and existing != existing.parent:
            existing = existing.parent
        if not existing.is_dir():
            if existing == self.path:
                raise ConfigError(f"{self.path} is a file, not a run directory; choose another --out")
            raise ConfigError(f"cannot create run directory {self.path}: {existing} is a file, not a folder; "
                              "choose another --out")
        if not os.access(existing, os.W_OK | os.X_OK):
            try:
                read_only = bool(os.statvfs(existing).f_flag & os.ST_RDONLY)
            except (OSError, AttributeError):
                read_only = False
            why = "is on a read-only file system" if read_only else "is not writable (permission denied)"
            action = "create" if existing != self.path else "write to"
            raise ConfigError(f"cannot {action} run directory {self.path}: {existing} {why}; choose another --out")

    # -- writing ---------------------------------------------------------------------------
    def unlock(self) -> None:
        """Release the lock :meth:`prepare` took (a no-op when this object does not hold it)."""
        self._lock.release()

    @property
    def error_log_path(self) -> Path:
        return self.path / ERROR_LOG

    def write_error_log(self, text: str) -> Path:
        """Write ``error.log``: why the run stopped (its first line the message the user saw, then any
        traceback). Returns its path."""
        self.path.mkdir(parents=True, exist_ok=True)
        atomic_write_text(self.error_log_path, text if text.endswith("\n") else text + "\n")
        return self.error_log_path

    def error_log(self) -> str | None:
        """The first line of ``error.log`` (why the run stopped), or None when there is none."""
        try:
            lines = self.error_log_path.read_text(errors="replace").splitlines()
        except OSError:
            return None
        return lines[0] if lines else None

    def clear(self) -> None:
        """Remove what figkd wrote here (RUN_ENTRIES and temporary files); the folder stays."""
        for entry in self.path.iterdir():
            if not _is_figkd_entry(entry.name) or entry.name in KEPT_ON_CLEAR:
                continue
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            else:
                entry.unlink()

    def write_config(self, cfg: Mapping[str, Any]) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        atomic_write_text(self.config_path, yaml.safe_dump(dict(cfg), sort_keys=False))

    def write_normalization(self, norm) -> None:
        """Write ``normalization.json`` (atomic) when the run's normalisation is not its recipe's (``norm``
        a `figkd.data.normalization.Normalization`, or None: nothing to write)."""
        from ..data import normalization

        if norm is not None:
            atomic_write_text(self.path / normalization.FILE, json.dumps(norm.to_dict(), indent=1) + "\n")

    def write_classes(self, names: Sequence[str]) -> None:
        """Write ``classes.json`` (atomic): the dataset's class names, index = label."""
        self.path.mkdir(parents=True, exist_ok=True)
        atomic_write_text(self.path / "classes.json", json.dumps([str(n) for n in names]) + "\n")

    def write_validation(self, split) -> None:
        """Write ``validation.json`` (atomic): the validation split of the run (`figkd.data.split.ValidationSplit`;
        None: nothing to write)."""
        if split is not None:
            atomic_write_text(self.path / VALIDATION_FILE, json.dumps(split.to_dict()) + "\n")

    def append_metrics(self, rec: Mapping[str, Any]) -> None:
        path = self.path / "metrics.jsonl"
        try:
            with open(path, "a") as fh:
                fh.write(json.dumps(dict(rec)) + "\n")
                fh.flush()
        except OSError as error:
            raise write_error(path, error) from error

    def truncate_metrics(self, last_epoch: int) -> None:
        """Drop metric lines of epochs after ``last_epoch`` (written by a run killed before its checkpoint)."""
        path = self.path / "metrics.jsonl"
        if not path.is_file():
            return
        keep = [line for line, rec in _metric_lines(path) if rec.get("epoch", 0) <= last_epoch]
        atomic_write_text(path, "".join(line + "\n" for line in keep))

    def write_summary(self, summary: Mapping[str, Any]) -> None:
        atomic_write_text(self.path / "summary.json", json.dumps(dict(summary), indent=2))


def _metric_lines(path: Path) -> list[tuple[str, dict[str, Any]]]:
    """``(line, record)`` of each line; a torn last line (a process killed while appending) is dropped,
    a malformed line before it is a RunFileError."""
    lines = [line for line in path.read_text().splitlines() if line.strip()]
    out = []
    for i, line in enumerate(lines):
        try:
            rec = json.loads(line)
        except ValueError:
            if i == len(lines) - 1:
                break
            raise RunFileError(path, f"line {i + 1} is not valid JSON") from None
        if not isinstance(rec, dict):
            raise RunFileError(path, f"line {i + 1} is not a JSON object")
        out.append((line, rec))
    return out


def find_run_dirs(root: str | os.PathLike) -> list[RunDir]:
    """Every run directory (:meth:`RunDir.is_run`) at or under ``root``, sorted by path. ConfigError when
    ``root`` is not a folder."""
    root = Path(root)
    if not root.is_dir():
        raise ConfigError(f"{root} is not a folder")
    dirs = sorted({p.parent for p in root.rglob("config.yaml")} | {root})
    return [RunDir(d) for d in dirs if RunDir(d).is_run()]
