"""A figkd study: its folder, its definition, and the worker loop that runs its trials.

The study folder::

    STUDY/study.yaml        where the study lives: its storage (null: the journal file below) and its name
    STUDY/journal.log       Optuna's journal storage (the default storage, `figkd.tune.storage`)
    STUDY/trials/trial-NNNN the run directory of trial NNNN (an ordinary figkd run directory)
    STUDY/logs/             the output of each worker process (--workers, --slurm)
    STUDY/report/           the result (`figkd.tune.results`)
    STUDY/final/            the retrained best configuration (--final)

The *definition* of a study - the command, the base configuration, the search space, the metric, the
sampler and the pruner - is kept in the storage (the study's user attribute ``figkd``), where every worker
reads it; running the command again with another definition on the same study is a ConfigError naming the
difference (a study is one search: start another with another --study folder or --study-name).

A worker (:func:`work`) repeats, until the study holds ``trials`` trials and none runs any more: under the
folder's lock (`figkd.tune.storage.StudyLock`), count the trials and, if one is missing or queued, take it
(``study.optimize(..., n_trials=1)``: Optuna's heartbeat, stale-trial check and sampler, unchanged); then
train it outside the lock. Trials counted: every trial but one whose worker died or was stopped and whose
copy was queued (`figkd.tune.storage`): complete, pruned and failed (a loss that became NaN) ones. While
trials of other workers are still running, a worker waits for them: one of them may turn out stale and
come back to the queue.

A trial (:func:`run_trial`) is the base configuration with the trial's parameters
(`figkd.tune.space.apply_params`), its ``out`` the trial's run directory, trained by the engine
(`figkd.engine.run.run`) with ``resume``: the validation top-1 of every epoch is reported to Optuna and the
pruner asked after every epoch but the last (the engine's ``on_epoch_end``; a trial that has trained all its
epochs is complete: stopping it then would save nothing); a pruned trial's run directory says so
(``stopped`` in its summary) and the trial is PRUNED, not failed. A queued copy of a killed trial continues
the killed trial's run directory: the epochs it had checkpointed are reported again, then training resumes.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import yaml
from optuna.exceptions import ExperimentalWarning
from optuna.storages import RetryHeartbeatStaleTrialCallback
from optuna.trial import FrozenTrial, TrialState

from ..atomic import atomic_write_text
from ..config import RunConfig, apply_overrides
from ..engine import rundir
from ..engine.nonfinite import NonFiniteLossError
from ..engine.rundir import RunDir
from ..errors import ConfigError, UserError
from .space import Param, apply_params, parse_space
from .storage import MAX_RETRY, StudyLock, fail_stale_trials, open_storage, quiet

__all__ = ["Definition", "StudyFolder", "counted_trials", "open_study", "run_trial", "work"]

#: The study's user attribute holding its definition.
DEFINITION_ATTR = "figkd"
#: Seconds between two looks at the study while waiting for other workers' trials.
POLL_S = 2.0


@dataclass(frozen=True)
class Definition:
    """What a study searches (see the module docstring). ``config``: the base configuration as recorded
    (`figkd.engine.rundir.normalized`: absolute paths); ``params``: the ``--param`` texts in canonical form."""

    command: str
    config: dict[str, Any]
    params: tuple[str, ...]
    metric: str = "last"
    sampler: str = "tpe"
    seed: int = 0
    pruner: str = "median"
    pruner_startup: int = 5
    pruner_warmup: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "params": list(self.params)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Definition:
        return cls(**{**d, "params": tuple(d["params"])})

    def base(self) -> RunConfig:
        """The base configuration as a RunConfig."""
        return apply_overrides(RunConfig(), {k: v for k, v in self.config.items() if k != "resolved"})

    def space(self) -> list[Param]:
        return parse_space(self.params, self.base())

    def differences(self, new: Definition) -> list[str]:
        """Why ``new`` is another search than this one (empty: the same)."""
        out = [f"config {d}" for d in rundir.differences(self.config, new.config)]
        if set(self.params) != set(new.params):
            out.append(f"--param: {', '.join(sorted(self.params))} -> {', '.join(sorted(new.params))}")
        for name in ("command", "metric", "sampler", "seed", "pruner", "pruner_startup", "pruner_warmup"):
            if getattr(self, name) != getattr(new, name):
                out.append(f"{name}: {getattr(self, name)!r} -> {getattr(new, name)!r}")
        return out

    def sampler_for(self, worker: int, existing: int):
        """This study's sampler in worker ``worker`` starting on a study of ``existing`` trials: TPE and random
        seeded from ``(seed, worker, existing)`` - workers draw differently, and a study continued by running the
        command again does not draw the values of its first run again -, the grid's order from ``seed``."""
        if self.sampler == "grid":
            return optuna.samplers.GridSampler({p.key: p.grid() for p in self.space()}, seed=self.seed)
        seed = int(np.random.SeedSequence([self.seed, worker, existing]).generate_state(1)[0])
        if self.sampler == "random":
            return optuna.samplers.RandomSampler(seed=seed)
        return optuna.samplers.TPESampler(seed=seed)

    def pruner_obj(self):
        """This study's pruner: Optuna's MedianPruner (``pruner_startup`` trials before it prunes, none in the
        first ``pruner_warmup`` epochs), HyperbandPruner (resources: epochs, from 1 to the run's) or none."""
        if self.pruner == "median":
            return optuna.pruners.MedianPruner(n_startup_trials=self.pruner_startup, n_warmup_steps=self.pruner_warmup)
        if self.pruner == "hyperband":
            return optuna.pruners.HyperbandPruner(min_resource=max(1, self.pruner_warmup),
                                                  max_resource=int(self.config["epochs"]))
        return optuna.pruners.NopPruner()

    def grid_size(self) -> int | None:
        """The number of points of the grid (``sampler: grid``), else None."""
        if self.sampler != "grid":
            return None
        size = 1
        for p in self.space():
            size *= len(p.grid())
        return size


class StudyFolder:
    """The folder of a study (see the module docstring)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"StudyFolder({str(self.path)!r})"

    @property
    def yaml_path(self) -> Path:
        return self.path / "study.yaml"

    def location(self) -> dict[str, Any] | None:
        """``{"storage": URL or None, "study_name": NAME}`` from ``study.yaml``, None when there is none."""
        if not self.yaml_path.is_file():
            return None
        try:
            data = yaml.safe_load(self.yaml_path.read_text())
            return {"storage": data.get("storage"), "study_name": str(data["study_name"])}
        except (yaml.YAMLError, AttributeError, KeyError, TypeError):
            raise ConfigError(f"{self.yaml_path} is not the study file figkd tune wrote (storage, study_name)") \
                from None

    def write_location(self, storage: str | None, study_name: str) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        atomic_write_text(self.yaml_path, yaml.safe_dump({
            "storage": storage, "study_name": study_name, "created": datetime.now().isoformat(timespec="seconds"),
            "note": "storage null: Optuna's journal file journal.log in this folder"}, sort_keys=False))

    def trial_dir(self, number: int) -> Path:
        return self.path / "trials" / f"trial-{number:04d}"

    @property
    def logs(self) -> Path:
        return self.path / "logs"

    @property
    def report_dir(self) -> Path:
        return self.path / "report"

    @property
    def final_dir(self) -> Path:
        return self.path / "final"


def open_study(folder: StudyFolder, *, storage: str | None = None, study_name: str | None = None,
               definition: Definition | None = None, heartbeat: int = 30, worker: int = 0):
    """``(study, definition)``: the study of ``folder``, created with ``definition`` when it does not exist
    yet (``definition`` None: it must exist - a worker, a report), loaded with its sampler (for ``worker``) and
    pruner. ConfigError when the folder's study was made with another storage, by something else than
    figkd tune, or with another definition (naming the difference), or does not exist."""
    quiet()
    where = folder.location()
    if where is not None:
        if storage is not None and storage != where["storage"]:
            raise ConfigError(f"{folder.path} holds a study in {where['storage'] or 'its journal file'}, not in "
                              f"{storage}: leave --storage out, or choose another --study folder")
        storage, name = where["storage"], where["study_name"]
        if study_name is not None and study_name != name:
            raise ConfigError(f"{folder.path} holds the study {name!r}, not {study_name!r}: leave --study-name out, "
                              "or choose another --study folder")
    else:
        if definition is None:
            raise ConfigError(f"{folder.path} holds no figkd study (no study.yaml): run figkd tune CONFIG --study "
                              f"{folder.path} ... first")
        name = study_name or folder.path.resolve().name
    store = open_storage(folder.path, storage, heartbeat=heartbeat)
    where_text = storage or str(folder.path / "journal.log")
    try:
        found = optuna.load_study(study_name=name, storage=store)
    except KeyError:
        found = None
    if found is None:
        if definition is None:
            raise ConfigError(f"the study {name!r} is not in {where_text}")
        try:
            created = optuna.create_study(study_name=name, storage=store, direction="maximize")
            created.set_user_attr(DEFINITION_ATTR, definition.to_dict())
        except optuna.exceptions.DuplicatedStudyError:  # another worker created it first
            pass
    if where is None:
        folder.write_location(storage, name)
    loaded = optuna.load_study(study_name=name, storage=store)
    stored = loaded.user_attrs.get(DEFINITION_ATTR)
    if stored is None:
        raise ConfigError(f"the study {name!r} in {where_text} was not made by figkd tune (it has no figkd "
                          "definition): choose another --study-name")
    stored = Definition.from_dict(stored)
    if definition is not None:
        diffs = stored.differences(definition)
        if diffs:
            shown = "; ".join(diffs[:3])
            raise ConfigError(f"the study {name!r} in {where_text} was made with another search ({shown}): run the "
                              "command it was made with to continue it, or choose another --study folder")
    existing = len(loaded.get_trials(deepcopy=False))
    study = optuna.load_study(study_name=name, storage=store, sampler=stored.sampler_for(worker, existing),
                              pruner=stored.pruner_obj())
    return study, stored


# ------------------------------------------------------------------------------------------------ counting
def counted_trials(trials: Sequence[FrozenTrial]) -> list[FrozenTrial]:
    """The trials that count towards ``--trials``: all but those whose worker died or was stopped and whose
    copy was queued (listed in another trial's ``retry_history``)."""
    retried = {n for t in trials for n in RetryHeartbeatStaleTrialCallback.retry_history(t)}
    return [t for t in trials if t.number not in retried]


def _origin(trial) -> int:
    """The number of the trial whose run directory ``trial`` (running) uses: its own, or for a queued copy of
    a killed trial the first trial of the chain (``RetryHeartbeatStaleTrialCallback.retried_trial_number``)."""
    frozen = next(t for t in trial.study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
                  if t.number == trial.number)
    number = RetryHeartbeatStaleTrialCallback.retried_trial_number(frozen)
    return int(number) if number is not None else trial.number


# ------------------------------------------------------------------------------------------------ a trial
class _Stopped(Exception):
    """A KeyboardInterrupt (Ctrl-C, SIGTERM) inside a trial, carried through Optuna (which marks the trial FAIL)."""

    def __init__(self, interrupt: KeyboardInterrupt):
        super().__init__(str(interrupt) or type(interrupt).__name__)
        self.interrupt = interrupt


def run_trial(trial, folder: StudyFolder, definition: Definition, space: list[Param], *, threads: int | None = None,
              log: Callable[..., object] = print) -> float:
    """Train one trial (see the module docstring); returns its validation top-1 (the last epoch's or the best
    one's, by the study's metric). Raises ``optuna.TrialPruned`` for a pruned trial."""
    from ..engine.run import run

    number = _origin(trial)
    run_dir = folder.trial_dir(number)
    trial.set_user_attr("run_dir", str(run_dir.relative_to(folder.path)))
    params = {p.key: p.suggest(trial) for p in space}
    cfg = apply_params(definition.base(), params).replace(out=str(run_dir), test_at_end=False)
    if threads and cfg.num_workers is None:
        cfg = cfg.replace(num_workers=threads)
    done = RunDir(run_dir)
    last = done.last_epoch() if done.has_config() else None
    if last is not None:  # a queued copy of a killed trial: its checkpointed epochs, reported again
        for rec in done.metrics():
            if rec.get("epoch", 0) <= last and "val/top1" in rec:
                trial.report(float(rec["val/top1"]), int(rec["epoch"]))

    def on_epoch_end(member, epoch: int, record: dict[str, Any]) -> str | None:
        value = record.get("val/top1")
        if value is None:
            return None
        trial.report(float(value), epoch)
        if epoch < cfg.epochs and trial.should_prune():  # after the last epoch nothing is left to save
            return f"pruned by Optuna's {definition.pruner} pruner (val top-1 {value:.2f} at epoch {epoch})"
        return None

    prefix = f"[trial {trial.number}] "
    try:
        summary = run([cfg], definition.command, resume=True, on_epoch_end=on_epoch_end,
                      log=lambda *a, **k: log(prefix + " ".join(map(str, a))))[0]
    except (UserError, NonFiniteLossError) as error:
        trial.set_user_attr("error", " ".join(str(error).split()))
        raise
    trial.set_user_attr("epochs", summary.get("epochs_trained"))
    stopped = summary.get("stopped")
    if stopped:
        raise optuna.TrialPruned(stopped["reason"])
    value = summary["val_best_top1" if definition.metric == "best" else "val_last_top1"]
    if value is None:
        raise ConfigError(f"{run_dir} has no validation top-1 (is val_fraction set?)")
    return float(value)


def trial_line(t: FrozenTrial) -> str:
    """One line about a finished trial: its number, outcome, parameters and time."""
    params = ", ".join(f"{k}={_short(v)}" for k, v in t.params.items())
    seconds = (t.datetime_complete - t.datetime_start).total_seconds() if t.datetime_complete and t.datetime_start \
        else 0.0
    if t.state == TrialState.COMPLETE:
        what = f"val top-1 {t.value:.2f}"
    elif t.state == TrialState.PRUNED:
        last = max(t.intermediate_values) if t.intermediate_values else 0
        what = f"pruned after epoch {last}"
    else:
        what = "failed" + (f": {t.user_attrs['error']}" if "error" in t.user_attrs else "")
    return f"trial {t.number}: {what} ({params}) [{seconds:.0f} s]"


def _short(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


# ------------------------------------------------------------------------------------------------ a worker
def work(folder: StudyFolder, trials: int, *, worker: int = 0, threads: int | None = None, heartbeat: int = 30,
         log: Callable[..., object] = print, trial_log: Callable[..., object] | None = None) -> int:
    """Run trials of the study in ``folder`` until it holds ``trials`` counted trials and none is running or
    queued (see the module docstring); returns the number of trials this worker ran. ``trial_log`` receives
    the engine's lines of each trial (default: ``log``). A UserError in a trial (a missing teacher, a data
    problem) fails the trial and stops the worker; Ctrl-C or SIGTERM fails the trial, queues a copy of it (the
    next run continues its run directory) and stops the worker."""
    study, definition = open_study(folder, heartbeat=heartbeat, worker=worker)
    space = definition.space()
    lock = StudyLock(folder.path)
    ran = 0
    current: dict[str, Any] = {}

    def objective(trial):
        lock.release()  # the trial is taken: the next worker may count
        current["number"] = trial.number
        try:
            return run_trial(trial, folder, definition, space, threads=threads, log=trial_log or log)
        except KeyboardInterrupt as interrupt:  # through Optuna (which fails the trial) as an Exception
            raise _Stopped(interrupt) from None

    while True:
        current.clear()
        lock.acquire()
        try:
            fail_stale_trials(study)
            all_trials = study.get_trials(deepcopy=False)
            waiting = any(t.state == TrialState.WAITING for t in all_trials)
            if waiting or len(counted_trials(all_trials)) < trials:
                study.optimize(objective, n_trials=1, catch=(NonFiniteLossError,))
                ran += 1
            elif any(t.state == TrialState.RUNNING for t in all_trials):
                lock.release()
                time.sleep(POLL_S)  # other workers' trials: one may come back to the queue
                continue
            else:
                return ran
        except (_Stopped, KeyboardInterrupt) as stopped:
            _queue_again(study, current.get("number"))
            raise (stopped.interrupt if isinstance(stopped, _Stopped) else stopped) from None
        finally:
            lock.release()
        finished = next((t for t in study.get_trials(deepcopy=False) if t.number == current.get("number")), None)
        if finished is not None:
            log(trial_line(finished))


def _queue_again(study, number: int | None) -> None:
    """Queue a copy of the stopped trial ``number`` (as for a stale one), so that the next run continues it."""
    trial = next((t for t in study.get_trials(deepcopy=False) if t.number == number), None)
    if trial is not None and trial.state == TrialState.FAIL:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ExperimentalWarning)
            RetryHeartbeatStaleTrialCallback(max_retry=MAX_RETRY)(study, trial)


def pending(study, trials: int) -> bool:
    """Whether the study has work left for a worker: trials missing or queued, or running (one of which may turn
    out to belong to a dead worker)."""
    all_trials = study.get_trials(deepcopy=False)
    if any(t.state in (TrialState.WAITING, TrialState.RUNNING) for t in all_trials):
        return True
    return len(counted_trials(all_trials)) < trials
