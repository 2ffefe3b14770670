"""``figkd sweep --slurm FILE``: the runs of a sweep as a Slurm job-array script (and the job array of
``figkd tune --slurm FILE``: identical workers of one study, :func:`worker_array_script`).

One array task per run, grouped in *waves* by teacher dependencies: wave 0 holds the runs that load no
checkpoint of the sweep (teachers, students alone, distillations from existing checkpoints), wave k
the runs whose teacher run is in wave k-1. ``bash FILE`` submits every wave, each with
``--dependency=afterany:<previous wave>`` (a failed teacher does not cancel the later waves; its
students then fail with a message naming the missing checkpoint, as in a local sweep). With a single
wave ``sbatch FILE`` works as well. Each task runs the same command as a local sweep
(``python -m figkd train|distill --config ... --set seed=S --out RUN_DIR --resume``), so a finished run
is skipped and an interrupted one continues, and appends its output to ``RUN_DIR/sweep.log``. Runs
already finished when the script is written are left out. ``FIGKD_PYTHON`` (default ``python``) is the
interpreter the tasks call: activate the environment in ``--slurm-option`` lines or the job's shell.
"""

from __future__ import annotations

import os
import shlex
from datetime import datetime
from pathlib import Path

from ..atomic import atomic_write_text
from ..errors import ConfigError
from .sweep import LOG_NAME, Run


def waves(runs: list[Run]) -> list[list[int]]:
    """Indices of ``runs`` (in dependency order, as :func:`~figkd.experiments.sweep.plan` returns them)
    grouped by depth: a run's wave is one more than its deepest teacher run's (finished runs excluded)."""
    depth: dict[int, int] = {}
    for i, r in enumerate(runs):
        if r.state == "done":
            continue
        depth[i] = 1 + max((depth[d] for d in r.deps if d in depth), default=-1)
    grouped: list[list[int]] = [[] for _ in range(max(depth.values(), default=-1) + 1)]
    for i, d in depth.items():
        grouped[d].append(i)
    return grouped


def _sbatch_lines(job_name: str, array: str, log_dir: str, options: list[str] | None) -> list[str]:
    """The ``#SBATCH`` lines of a job array: its name, tasks (``0-N%throttle``), log files and ``options``."""
    return [f"#SBATCH --job-name={job_name}", f"#SBATCH --array={array}", f"#SBATCH --output={log_dir}/%x-%A_%a.out",
            *[f"#SBATCH {o}" for o in options or []]]


def worker_array_script(command: list[str], tasks: int, *, job_name: str, log_dir: str | Path,
                        options: list[str] | None = None, workdir: str | Path | None = None,
                        command_line: str = "") -> str:
    """A job array of ``tasks`` identical workers (``figkd tune``'s): each task runs
    ``$FIGKD_PYTHON -m figkd <command>`` with ``{task}`` in ``command`` replaced by its index
    (``SLURM_ARRAY_TASK_ID``); ``sbatch FILE`` submits it. Output: ``log_dir/<job>-<job id>_<task>.out``."""
    if tasks < 1:
        raise ValueError(f"a job array needs at least one task, got {tasks}")
    workdir = os.path.abspath(workdir or os.getcwd())
    line = shlex.join(["$PY", "-m", "figkd", *command]).replace("'$PY'", '"$PY"')
    line = line.replace("{task}", '"$SLURM_ARRAY_TASK_ID"')
    return "\n".join([
        "#!/bin/bash",
        f"# {job_name}: {tasks} worker(s) (written {datetime.now().isoformat(timespec='seconds')}); "
        "submit: sbatch FILE",
        f"# Written by: {command_line}" if command_line else f"# Written by figkd ({job_name}).",
        *_sbatch_lines(job_name, f"0-{tasks - 1}", os.path.abspath(log_dir), options),
        "set -euo pipefail",
        f"cd {shlex.quote(workdir)}",
        'PY="${FIGKD_PYTHON:-python}"',
        line,
    ]) + "\n"


def _bash_array(name: str, items: list[str]) -> str:
    body = "\n".join(f"  {shlex.quote(x)}" for x in items)
    return f"{name}=(\n{body}\n)"


def slurm_script(runs: list[Run], path: str | Path, *, jobs: int | None = None, options: list[str] | None = None,
                 workdir: str | Path | None = None, command_line: str = "") -> str:
    """The text of the job-array script for ``runs`` (see the module docstring).

    ``jobs``: at most that many tasks of a wave at once (``--array=0-N%jobs``); ``options``: extra
    ``#SBATCH`` lines (``--gres=gpu:1``, ``--time=24:00:00``, ``--partition=...``); ``workdir``: where the
    tasks run (default: the current folder, which relative config and run paths refer to).
    """
    different = [r for r in runs if r.state == "different"]
    if different:
        raise ConfigError(f"sweep --slurm: {len(different)} of the runs cannot start, their directories hold "
                          f"other runs, e.g. {different[0].why}")
    groups = waves(runs)
    if not groups:
        raise ValueError("every run of the sweep has finished: nothing to submit")
    order = [i for g in groups for i in g]
    sizes = [len(g) for g in groups]
    starts = [sum(sizes[:k]) for k in range(len(sizes))]
    throttle = f"%{jobs}" if jobs else ""
    script = os.path.abspath(path)
    workdir = os.path.abspath(workdir or os.getcwd())
    log_dir = os.path.join(workdir, "slurm-logs")
    commands = [shlex.join(["$PY", "-m", "figkd", *runs[i].args]).replace("'$PY'", '"$PY"') for i in order]
    lines = [
        "#!/bin/bash",
        f"# figkd sweep: {len(order)} runs in {len(groups)} wave(s) of {', '.join(map(str, sizes))} "
        f"(written {datetime.now().isoformat(timespec='seconds')}).",
        f"# Written by: {command_line}" if command_line else "# Written by figkd sweep --slurm.",
        "# Submit every wave, each after the previous one:  bash " + shlex.quote(script),
        "# (sbatch on this file submits wave 0 only.) Each task appends its output to <run dir>/" + LOG_NAME + ".",
        *_sbatch_lines("figkd-sweep", f"0-{sizes[0] - 1}{throttle}", log_dir, options),
        "set -euo pipefail",
        f"cd {shlex.quote(workdir)}",
        f"SIZES=({' '.join(map(str, sizes))})",
        f"STARTS=({' '.join(map(str, starts))})",
        _bash_array("RUN_DIRS", [str(runs[i].run_dir) for i in order]),
        _bash_array("COMMANDS", commands),
        'if [ -z "${SLURM_ARRAY_TASK_ID:-}" ]; then',
        '  prev=""',
        '  for w in "${!SIZES[@]}"; do',
        '    dep=()',
        '    if [ -n "$prev" ]; then dep=(--dependency="afterany:$prev"); fi',
        f'    prev=$(sbatch --parsable --array="0-$((SIZES[w] - 1)){throttle}" ${{dep[@]+"${{dep[@]}}"}} '
        f'--export=ALL,FIGKD_WAVE="$w" {shlex.quote(script)})',
        '    prev=${prev%%;*}',
        '    echo "wave $w: ${SIZES[w]} run(s), job $prev"',
        "  done",
        "  exit 0",
        "fi",
        'PY="${FIGKD_PYTHON:-python}"',
        'i=$(( STARTS[${FIGKD_WAVE:-0}] + SLURM_ARRAY_TASK_ID ))',
        'mkdir -p "${RUN_DIRS[i]}"',
        f'echo "# figkd sweep (Slurm job ${{SLURM_ARRAY_JOB_ID:-?}}_${{SLURM_ARRAY_TASK_ID}}) $(date -Is): '
        f'${{COMMANDS[i]}}" >> "${{RUN_DIRS[i]}}/{LOG_NAME}"',
        f'eval "${{COMMANDS[i]}}" >> "${{RUN_DIRS[i]}}/{LOG_NAME}" 2>&1',
    ]
    return "\n".join(lines) + "\n"


def write_slurm_script(runs: list[Run], path: str | Path, **kwargs) -> Path:
    """Write :func:`slurm_script` to ``path`` (atomically, executable); returns the path."""
    path = Path(path)
    (Path(kwargs.get("workdir") or os.getcwd()) / "slurm-logs").mkdir(parents=True, exist_ok=True)
    return write_script(path, slurm_script(runs, path, **kwargs))


def write_script(path: str | Path, text: str) -> Path:
    """Write a job script (atomically, executable); returns its path."""
    path = Path(path)
    atomic_write_text(path, text)
    path.chmod(0o755)
    return path
