"""A run started by ``figkd sweep`` dies with the sweep, however the sweep ends.

The sweep puts its PID in each run's environment (:data:`PARENT_ENV`); the run's command line calls
:func:`die_with_parent` first thing. On Linux that asks the kernel (``prctl(PR_SET_PDEATHSIG, SIGTERM)``)
to send the run SIGTERM when the sweep's process ends - also when the sweep is killed with SIGKILL, which
no handler of the sweep's own can see - and the run then stops as on ``kill``: its last checkpoint kept,
``--resume`` (which the sweep passes) continuing it next time. A sweep that ended before the run got this
far is noticed at once (the run's parent is no longer the sweep) and the run stops the same way.

Without ``prctl`` (macOS, Windows) a run may outlive its sweep; it then still holds its run directory's
lock (`figkd.engine.runlock`), so a sweep started again reports the run as failed, naming its PID, instead
of writing into the directory beside it.
"""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
from collections.abc import Sequence

#: The environment variable holding the PID of the sweep that started a run.
PARENT_ENV = "FIGKD_SWEEP_PID"
#: ``PR_SET_PDEATHSIG`` of ``<linux/prctl.h>``.
PR_SET_PDEATHSIG = 1


def die_with_parent() -> bool:
    """When this process was started by a sweep (:data:`PARENT_ENV` set), have it receive SIGTERM when the
    sweep ends (see the module docstring), and send it now if the sweep has ended already. Returns whether
    the kernel will signal this process (False where ``prctl`` is not available, or outside a sweep)."""
    parent = os.environ.pop(PARENT_ENV, "")
    if not parent.isdigit():
        return False
    armed = False
    if sys.platform.startswith("linux"):
        try:
            armed = ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0) == 0
        except (OSError, AttributeError):
            armed = False
    if os.getppid() != int(parent):  # the sweep died before the signal was asked for
        os.kill(os.getpid(), signal.SIGTERM)
    return armed


def stop_processes(procs: Sequence[subprocess.Popen], timeout_s: float) -> None:
    """Stop the child processes ``procs`` of a sweep or a study: SIGTERM to each (a figkd run or tuning worker
    then stops as on ``kill``: its checkpoint kept, its trial queued again), then wait for each, up to
    ``timeout_s`` seconds, and SIGKILL those still running."""
    for proc in procs:
        proc.terminate()
    for proc in procs:
        try:
            proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
