"""A test hook: kill the process at a chosen step, to test that ``--resume`` continues exactly.

``FIGKD_FAULT_AT=E:S`` in the environment makes the trainer send itself SIGKILL just before step S
of epoch E (no cleanup runs, as in a power cut); tests/test_engine_resume.py uses it.
"""

from __future__ import annotations

import os
import signal

FAULT_ENV = "FIGKD_FAULT_AT"


def fault_point() -> tuple[int, int] | None:
    """The (epoch, step) of ``FIGKD_FAULT_AT``, or None."""
    spec = os.environ.get(FAULT_ENV)
    if not spec:
        return None
    epoch, step = spec.split(":")
    return int(epoch), int(step)


def kill_now() -> None:
    os.kill(os.getpid(), signal.SIGKILL)
