"""Where a study lives: Optuna's journal file in the study folder, or a database URL; and how a dead worker's
trial is found.

- The default storage is Optuna's journal storage on a file of the study folder (``journal.log``;
  ``optuna.storages.journal.JournalFileBackend`` with its symlink lock): safe for several processes on one
  machine and on a shared file system (NFS), nothing to set up.
- ``--storage URL`` is any database URL Optuna's ``RDBStorage`` opens (``sqlite:///study.db``,
  ``postgresql://user@host/db``, ``mysql://...``): for workers on many machines.

A worker killed without a chance to say so (SIGKILL, a node lost, a pre-empted job) leaves its trial
RUNNING. Optuna's answer is the *heartbeat*: a running trial records a heartbeat every ``heartbeat``
seconds, and a trial whose last one is older than ``grace`` seconds is *stale*; ``optuna.storages.
fail_stale_trials`` (which every worker calls before it takes a trial) marks it FAIL and runs
``RetryHeartbeatStaleTrialCallback``, which queues a copy of it (same parameters, state WAITING, the
original's number in ``system_attrs["failed_trial"]``) - so a killed worker's trial is *re-queued*, up to
:data:`MAX_RETRY` times, and its copy continues the killed trial's run directory from its last checkpoint.
``RDBStorage`` has the heartbeat built in; Optuna's journal storage has not, so :class:`HeartbeatJournalStorage`
adds it (Optuna's ``BaseHeartbeat`` interface: the heartbeat is a system attribute of the trial, one journal
line per beat).
"""

from __future__ import annotations

import os
import time
import warnings
from pathlib import Path

import optuna
from optuna.exceptions import ExperimentalWarning
from optuna.storages import RDBStorage, RetryHeartbeatStaleTrialCallback
from optuna.storages._heartbeat import BaseHeartbeat  # Optuna's heartbeat interface (RDBStorage implements it)
from optuna.storages.journal import JournalFileBackend, JournalFileSymlinkLock, JournalStorage
from optuna.trial import TrialState

from ..errors import ConfigError

__all__ = ["HEARTBEAT_ATTR", "HeartbeatJournalStorage", "JOURNAL", "MAX_RETRY", "StudyLock", "fail_stale_trials",
           "open_storage", "quiet"]

#: The journal file of the default storage, in the study folder.
JOURNAL = "journal.log"
#: System attribute holding a trial's last heartbeat (seconds since the epoch) in the journal storage.
HEARTBEAT_ATTR = "figkd:heartbeat"
#: How many times a trial whose worker died is queued again.
MAX_RETRY = 3


class HeartbeatJournalStorage(JournalStorage, BaseHeartbeat):
    """Optuna's journal storage with the heartbeat of ``RDBStorage`` (see the module docstring)."""

    def __init__(self, backend, *, heartbeat: int, grace: int, stale_callback=None):
        super().__init__(backend)
        self._heartbeat, self._grace, self._stale_callback = int(heartbeat), int(grace), stale_callback

    def record_heartbeat(self, trial_id: int) -> None:
        self.set_trial_system_attr(trial_id, HEARTBEAT_ATTR, time.time())

    def _get_stale_trial_ids(self, study_id: int) -> list[int]:
        now = time.time()
        stale = []
        for t in self.get_all_trials(study_id, deepcopy=False, states=(TrialState.RUNNING,)):
            # A queued copy inherits its original's heartbeat: the start of this run counts too.
            started = t.datetime_start.timestamp() if t.datetime_start else now
            if now - max(float(t.system_attrs.get(HEARTBEAT_ATTR, 0.0)), started) > self._grace:
                stale.append(t._trial_id)
        return stale

    def get_heartbeat_interval(self) -> int:
        return self._heartbeat

    def get_heartbeat_stale_trial_callback(self):
        return self._stale_callback

    def get_failed_trial_callback(self):  # the name of Optuna < 4.9 (deprecated there)
        return self._stale_callback


def open_storage(folder: Path, url: str | None, *, heartbeat: int, grace: int | None = None):
    """The storage of a study: the journal file ``folder/journal.log`` (``url`` None) or the database ``url``,
    each with the heartbeat (every ``heartbeat`` s; stale after ``grace`` s, default 4 heartbeats) and the
    re-queueing of stale trials. ConfigError (one line) when Optuna cannot open the URL."""
    grace = grace or 4 * heartbeat
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ExperimentalWarning)
        retry = RetryHeartbeatStaleTrialCallback(max_retry=MAX_RETRY)
    if url is None:
        folder.mkdir(parents=True, exist_ok=True)
        path = str(folder / JOURNAL)
        return HeartbeatJournalStorage(JournalFileBackend(path, lock_obj=JournalFileSymlinkLock(path)),
                                       heartbeat=heartbeat, grace=grace, stale_callback=retry)
    try:
        return RDBStorage(url, heartbeat_interval=heartbeat, grace_period=grace,
                          heartbeat_stale_trial_callback=retry)
    except Exception as error:  # SQLAlchemy's and the drivers' errors have no common base  # noqa: BLE001
        text = " ".join(str(error).split()) or type(error).__name__
        raise ConfigError(f"--storage {url}: Optuna cannot open it ({type(error).__name__}: {text[:300]}); give a "
                          "database URL (sqlite:///FILE.db, postgresql://USER@HOST/DB, ...) or leave --storage out "
                          "for the journal file in the study folder") from None


class StudyLock:
    """A lock of the study folder (Optuna's ``JournalFileSymlinkLock`` on ``folder/claim``): a worker holds it
    while it counts the trials and takes the next one, so that N workers start N trials, not more. Safe on a
    shared file system; a lock left by a killed process is broken after 30 s (Optuna's grace period)."""

    def __init__(self, folder: Path):
        folder.mkdir(parents=True, exist_ok=True)
        self._lock = JournalFileSymlinkLock(os.fspath(folder / "claim"))
        self.held = False

    def acquire(self) -> None:
        self._lock.acquire()  # blocks until it holds the lock
        self.held = True

    def release(self) -> None:
        if self.held:
            self.held = False
            self._lock.release()


def quiet() -> None:
    """Optuna's own log lines off: figkd prints one line per trial (and keeps a failed trial's error in its
    ``error`` user attribute), where Optuna would print the traceback."""
    optuna.logging.set_verbosity(optuna.logging.ERROR)


def fail_stale_trials(study) -> None:
    """``optuna.storages.fail_stale_trials`` (experimental in Optuna: its warning is not shown)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ExperimentalWarning)
        optuna.storages.fail_stale_trials(study)
