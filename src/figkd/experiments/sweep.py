"""``figkd sweep``: run configs x seeds as separate processes, N at a time, teachers first.

    figkd sweep configs/paper/teachers/cifar100 configs/paper/table1 --seeds 0 1 2 --gpus 0,1,2,3
    figkd sweep configs/paper/table1 --dry-run            # the commands, in order, nothing started
    figkd sweep configs/paper/table1 --slurm sweep.sh     # a Slurm job-array script instead

Planning (:func:`plan`): every YAML file named (or found under a named folder) is one config; each
config is expanded over the seeds (default: the config's own ``seed``) into one run:
``python -m figkd train|distill --config FILE --set seed=S --out RUN_DIR --resume``. A config that
names a teacher (``teacher``, ``teacher_ckpt`` or ``student``) is a ``distill`` run, any other a
``train`` run. The run directory is the engine's (:func:`figkd.engine.run.default_run_dir`), or the
config's ``out``: unchanged for the config's own seed, its ``-s<seed>`` suffix replaced for another
seed (``runs/distill/cifar100/resnet32x4-resnet8x4/kd-s0`` -> ``...-s1``), or ``-s<seed>`` appended
when it has none.

Order: a run whose ``teacher_ckpt`` is (or lies inside) the run directory of another run of the sweep
starts only after that run has finished - teachers before their students, and TAKD-style chains (a
student distilled from a distilled assistant) in chain order. A run whose teacher run failed is not
started and is listed as failed.

Execution (:func:`execute`): N runs at a time (``--jobs``); with ``--gpus 0,1`` each process sees one
GPU (``CUDA_VISIBLE_DEVICES``, slot i on GPU i mod len(gpus)); every process gets ``cpus // N``
threads (``OMP_NUM_THREADS``, ``MKL_NUM_THREADS`` and, unless set, ``num_workers``), or fewer when
the sweep's own environment sets ``OMP_NUM_THREADS`` lower, or exactly ``--threads``.
A run whose directory already holds the same finished run is skipped without starting a process - the
same rule the engine applies (`figkd.engine.rundir.RunDir.state`: the configuration and the objective as
it resolves, so a preset whose defaults changed since the run was made is not "finished"); an
interrupted one is continued (``--resume``: the engine restores its last checkpoint); a directory that
holds a different run is listed as failed, naming the difference, without starting a process. A failed
run does not stop the others; failures are listed at the end and the exit status is 1. Each run's
output (stdout and stderr) is appended to ``RUN_DIR/sweep.log``; the sweep prints a line as each run
starts and ends, with the running count. The runs die with the sweep: each is told the sweep's PID and,
on Linux, asks the kernel for SIGTERM when the sweep's process ends, however it ends (SIGKILL included;
`figkd.experiments.lifeline`), and stops as on ``kill``, its last checkpoint kept. Elsewhere a run that
outlives its sweep holds its run directory's lock, so a sweep started again lists that run as failed
("being written by another figkd process (pid N ...)") instead of writing beside it.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from ..config import RunConfig, apply_overrides, load_yaml, parse_set
from ..engine import rundir
from ..engine.run import default_run_dir, resolve
from ..engine.rundir import RunDir
from ..errors import ConfigError
from .lifeline import PARENT_ENV, stop_processes

#: Name of the per-run log the sweep writes into each run directory.
LOG_NAME = "sweep.log"
#: Fields the sweep sets itself on every run (``--set`` of the sweep may not override them).
_OWN_FIELDS = ("seed", "out")
_SEED_SUFFIX = re.compile(r"-s\d+$")


@dataclass
class Run:
    """One run of a sweep: a config at a seed, where it writes, and what must finish before it."""

    config: Path
    command: str  # "train" or "distill"
    seed: int
    run_dir: Path
    cfg: dict[str, Any]  # the resolved configuration (RunConfig fields)
    args: list[str]  # arguments after ``python -m figkd``
    state: str = "fresh"  # "done" (finished: skipped), "resume", "fresh", "different" (another run is there)
    deps: list[int] = field(default_factory=list)  # indices (in the plan) of runs to finish first
    #: each directory the run writes (one; one per peer for deep mutual learning) and what the engine will
    #: record there (`figkd.engine.rundir.record`)
    records: list[tuple[Path, dict[str, Any]]] = field(default_factory=list, repr=False)
    why: str = ""  # for state "different": how the directory's run differs


def find_configs(paths: list[str | Path]) -> list[Path]:
    """YAML files named in ``paths`` (files) or found under them (folders, recursively, sorted)."""
    found: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            files = sorted(q for q in p.rglob("*") if q.suffix in (".yaml", ".yml") and q.is_file())
            if not files:
                raise ConfigError(f"sweep: folder {p} holds no .yaml config")
            found.extend(files)
        elif p.is_file():
            found.append(p)
        else:
            raise ConfigError(f"sweep: {p} is neither a config file nor a folder")
    seen: set[Path] = set()
    return [p for p in found if not (p.resolve() in seen or seen.add(p.resolve()))]


def command_of(cfg: RunConfig) -> str:
    """``distill`` for a config that names a teacher (teacher, teacher_ckpt or student) or peers (deep mutual
    learning), else ``train``."""
    return "distill" if (cfg.teacher or cfg.teacher_ckpt or cfg.student or cfg.peers) else "train"


def seeded_out(out: str, config_seed: int, seed: int) -> str:
    """The config's ``out`` for another seed: unchanged for its own seed, the ``-s<n>`` suffix replaced,
    or ``-s<seed>`` appended."""
    if seed == config_seed:
        return out
    stripped = out.rstrip("/")
    if _SEED_SUFFIX.search(stripped):
        return _SEED_SUFFIX.sub(f"-s{seed}", stripped)
    return f"{stripped}-s{seed}"


def _key(path: str | Path) -> str:
    return os.path.normpath(os.path.abspath(path))


def records_of(cfg: RunConfig, command: str, run_dir: Path) -> list[tuple[Path, dict[str, Any]]]:
    """Each directory a run of ``cfg`` writes (``run_dir``; for a peers run, each peer's) with the record the
    engine writes there for one process (`figkd.engine.rundir.record`)."""
    objective = rundir.resolved_terms(cfg.objective)
    if cfg.peers:
        return [(d, rundir.record(cfg, command, architecture=arch, objective=objective, peer=i))
                for i, (d, arch) in enumerate(zip(rundir.peer_dirs(cfg, run_dir), cfg.peers, strict=True))]
    arch = cfg.model if command == "train" else cfg.student
    return [(run_dir, rundir.record(cfg, command, architecture=arch, objective=objective))]


def run_state(run: Run) -> tuple[str, str]:
    """``(state, why)`` of a planned run, by the engine's own rule (`figkd.engine.rundir.RunDir.state`):
    ``done`` (every directory holds this finished run: skipped), ``different`` (a directory holds another run:
    ``why`` names the first difference), ``resume`` or ``fresh``. A peers run (DML) is ``done`` when every
    peer's directory is."""
    states = []
    for path, rec in run.records:
        rd = RunDir(path)
        state = rd.state(rec)
        if state == "different":
            foreign = rd.foreign_entries()
            why = (f"{path} is not a figkd run directory (it holds {', '.join(foreign[:3])})" if foreign else
                   f"{path} holds a different run ({', '.join(rundir.differences(rd.config(), rec)[:3])}); "
                   "use another out or remove it")
            return "different", why
        states.append(state)
    if set(states) == {"done"}:
        return "done", ""
    return ("resume" if "resume" in states else "fresh"), ""


def _expand(path: Path, seeds: list[int] | None, sets: dict[str, Any], set_args: list[str]) -> list[Run]:
    try:
        values = {**load_yaml(path), **sets}
        base = apply_overrides(RunConfig(), values)
    except ConfigError as exc:
        raise ConfigError(f"sweep: {path}: {exc}") from exc
    command = command_of(base)
    runs = []
    for seed in seeds if seeds is not None else [base.seed]:
        try:
            cfg = resolve(base.replace(seed=seed), command)
        except ConfigError as exc:
            raise ConfigError(f"sweep: {path}: {exc}") from exc
        if base.out:
            run_dir = Path(seeded_out(base.out, base.seed, seed))
        else:
            run_dir = default_run_dir(cfg, command)
        cfg = cfg.replace(out=str(run_dir))
        args = [command, "--config", str(path), "--set", f"seed={seed}", "--out", str(run_dir), "--resume",
                *set_args]
        try:
            records = records_of(cfg, command, run_dir)
        except ValueError as exc:  # an unknown preset or term: the engine would refuse it too
            raise ConfigError(f"sweep: {path}: {exc}") from exc
        runs.append(Run(path, command, seed, run_dir, cfg.to_dict(), args, records=records))
    return runs


def _dedupe(runs: list[Run]) -> list[Run]:
    """One run per run directory; two configs writing different runs into one directory is an error."""
    by_dir: dict[str, Run] = {}
    out = []
    for r in runs:
        k = _key(r.run_dir)
        if k in by_dir:
            first = by_dir[k]
            diffs = [d for (_, a), (_, b) in zip(first.records, r.records, strict=False)
                     for d in rundir.differences(a, b)] or ([] if len(first.records) == len(r.records) else ["peers"])
            if diffs:
                differ = ", ".join(diffs[:3])
                raise ConfigError(f"sweep: {first.config} and {r.config} both write {r.run_dir} (seed {r.seed}) "
                                  f"but differ in {differ}; give one of them its own out")
            continue  # the same experiment listed twice (e.g. a table's cell and an ablation's row)
        by_dir[k] = r
        out.append(r)
    return out


def _link(runs: list[Run]) -> None:
    """Fill ``deps``: a run depends on the run whose directory holds (or is) its ``teacher_ckpt``."""
    dirs = {_key(r.run_dir): i for i, r in enumerate(runs)}
    for r in runs:
        ckpt = r.cfg.get("teacher_ckpt")
        if not ckpt:
            continue
        path = _key(ckpt)
        while True:
            if path in dirs:
                if dirs[path] == runs.index(r):
                    raise ConfigError(f"sweep: {r.config} distils from its own run directory {r.run_dir}")
                r.deps.append(dirs[path])
                break
            parent = os.path.dirname(path)
            if parent == path:
                break
            path = parent


def _order(runs: list[Run]) -> list[Run]:
    """Runs in dependency order (teachers first), otherwise in the order given; deps re-indexed."""
    n = len(runs)
    placed: list[int] = []
    done = [False] * n
    while len(placed) < n:
        ready = [i for i in range(n) if not done[i] and all(done[d] for d in runs[i].deps)]
        if not ready:
            stuck = [str(runs[i].config) for i in range(n) if not done[i]]
            raise ConfigError(f"sweep: the teacher checkpoints of {', '.join(stuck[:3])} form a cycle")
        for i in ready:
            done[i] = True
            placed.append(i)
    new_index = {old: new for new, old in enumerate(placed)}
    ordered = [runs[i] for i in placed]
    for r in ordered:
        r.deps = sorted(new_index[d] for d in r.deps)
    return ordered


def plan(paths: list[str | Path], seeds: list[int] | None = None, set_items: list[str] | None = None) -> list[Run]:
    """The runs of a sweep, in the order they may start (see the module docstring), each with its state.

    ``set_items`` (``KEY=VALUE``) are applied to every config and passed to every run (``seed`` and
    ``out`` are the sweep's own). Raises :class:`ConfigError` for a bad config, two configs writing
    different runs into one directory, or a cycle of teacher checkpoints.
    """
    set_items = list(set_items or [])
    sets = parse_set(set_items)
    own = sorted(set(sets) & set(_OWN_FIELDS))
    if own:
        raise ConfigError(f"sweep: --set {', '.join(own)} is chosen by the sweep (use --seeds; a config's out)")
    set_args = [a for item in set_items for a in ("--set", item)]
    runs: list[Run] = []
    for path in find_configs(paths):
        runs.extend(_expand(path, seeds, sets, set_args))
    runs = _dedupe(runs)
    _link(runs)
    runs = _order(runs)
    for r in runs:
        r.state, r.why = run_state(r)
    return runs


# ------------------------------------------------------------------------------------------------ running
@dataclass
class Outcome:
    """What happened to one run: ``finished``, ``skipped`` (already finished), ``failed``, ``blocked``
    (its teacher run failed) or ``interrupted`` (the sweep was stopped)."""

    run: Run
    status: str
    returncode: int | None = None
    seconds: float = 0.0
    message: str = ""


def threads_per_run(jobs: int, cpus: int | None = None, threads: int | None = None,
                    env: dict[str, str] | None = None) -> int:
    """CPU threads of each of ``jobs`` concurrent runs: ``threads`` when given (``--threads``), else the
    machine's CPUs divided among the runs (>= 1), capped by ``OMP_NUM_THREADS`` of ``env`` (default:
    this process's environment) when that is set to a positive integer."""
    if threads is not None:
        if threads < 1:
            raise ConfigError(f"sweep: --threads must be >= 1, got {threads}")
        return threads
    share = max(1, (cpus or os.cpu_count() or 1) // max(1, jobs))
    given = (os.environ if env is None else env).get("OMP_NUM_THREADS", "").strip()
    return min(share, int(given)) if given.isdigit() and int(given) > 0 else share


def run_env(slot: int, jobs: int, gpus: list[str] | None, base: dict[str, str] | None = None,
            threads: int | None = None) -> dict[str, str]:
    """Environment of the process in ``slot``: its GPU pinned, its thread count divided."""
    env = dict(os.environ if base is None else base)
    count = str(threads_per_run(jobs, threads=threads, env=env))
    env["OMP_NUM_THREADS"] = count
    env["MKL_NUM_THREADS"] = count
    if gpus:
        env["CUDA_VISIBLE_DEVICES"] = gpus[slot % len(gpus)]
    return env


def _last_line(log: Path) -> str:
    try:
        lines = [x.strip() for x in log.read_text(errors="replace").splitlines() if x.strip()]
    except OSError:
        return ""
    errors = [x for x in lines if x.startswith("figkd: error:") or "Error" in x.split(":", 1)[0]]
    return (errors or lines or [""])[-1]


def launch_args(run: Run, jobs: int, threads: int | None = None) -> list[str]:
    """The run's arguments with its share of the CPUs as ``num_workers`` (unless its config sets it)."""
    if run.cfg.get("num_workers") is not None:
        return list(run.args)
    return [*run.args, "--set", f"num_workers={threads_per_run(jobs, threads=threads)}"]


def _start(run: Run, slot: int, jobs: int, gpus: list[str] | None,
           threads: int | None = None) -> tuple[subprocess.Popen, Any]:
    run.run_dir.mkdir(parents=True, exist_ok=True)
    log = open(run.run_dir / LOG_NAME, "a")  # closed when the process ends
    args = launch_args(run, jobs, threads)
    env = run_env(slot, jobs, gpus, threads=threads)
    pinned = f" CUDA_VISIBLE_DEVICES={env['CUDA_VISIBLE_DEVICES']}" if gpus else ""
    log.write(f"# figkd sweep {datetime.now().isoformat(timespec='seconds')}{pinned} "
              f"OMP_NUM_THREADS={env['OMP_NUM_THREADS']}: {shlex.join(['python', '-m', 'figkd', *args])}\n")
    log.flush()
    env[PARENT_ENV] = str(os.getpid())  # the run stops when the sweep dies (figkd.experiments.lifeline)
    proc = subprocess.Popen([sys.executable, "-m", "figkd", *args], stdout=log, stderr=subprocess.STDOUT,
                            env=env, stdin=subprocess.DEVNULL)
    return proc, log


def execute(runs: list[Run], jobs: int = 1, gpus: list[str] | None = None, *, threads: int | None = None,
            poll_s: float = 0.2, progress: bool | None = None, echo=print) -> list[Outcome]:
    """Run ``runs`` (from :func:`plan`) ``jobs`` at a time; returns one :class:`Outcome` per run, in order.

    ``threads``: CPU threads of each run (None: :func:`threads_per_run`'s share). ``progress``: a tqdm
    bar over runs (None: only on a terminal). ``echo`` receives one line per run started, finished, skipped
    or failed, each beginning with the running count (``sweep 3/10, 1 failed, 2 running: [finished] RUN``).
    Ctrl-C or SIGTERM (a ``KeyboardInterrupt``, the command line's ``Terminated`` for SIGTERM) stops the
    running processes (they resume next time) and is raised again, the same exception, with what happened
    so far as its ``outcomes`` (the runs it stopped or never started marked ``interrupted``), so the command
    line exits as for any stopped run (130 or 143).
    """
    from tqdm import tqdm

    if jobs < 1:
        raise ConfigError(f"sweep: --jobs must be >= 1, got {jobs}")
    outcomes: list[Outcome | None] = [None] * len(runs)
    bar = tqdm(total=len(runs), unit="run", desc="sweep", disable=None if progress is None else not progress,
               file=sys.stderr)

    def say(line: str) -> None:
        if bar.disable:
            echo(line)
        else:
            bar.write(line, file=sys.stdout)

    def count() -> str:
        done = sum(o is not None for o in outcomes)
        failed = sum(o is not None and o.status in ("failed", "blocked") for o in outcomes)
        return f"sweep {done}/{len(runs)}" + (f", {failed} failed" if failed else "") + f", {len(running)} running:"

    def settle(i: int, outcome: Outcome) -> None:
        outcomes[i] = outcome
        bar.update(1)
        bar.set_postfix(failed=sum(o is not None and o.status in ("failed", "blocked") for o in outcomes))
        extra = f" ({outcome.seconds:.0f} s)" if outcome.seconds else ""
        why = f": {outcome.message}" if outcome.message else ""
        say(f"{count()} [{outcome.status}] {outcome.run.run_dir}{extra}{why}")

    running: dict[int, tuple[subprocess.Popen, Any, int, float]] = {}  # run index -> (proc, log, slot, start)

    for i, r in enumerate(runs):
        if r.state == "done":
            settle(i, Outcome(r, "skipped", message="already finished"))
        elif r.state == "different":
            settle(i, Outcome(r, "failed", message=r.why))
    free = list(range(jobs))
    try:
        while any(o is None for o in outcomes):
            for i, r in enumerate(runs):
                if outcomes[i] is not None or i in running:
                    continue
                failed_deps = [d for d in r.deps if outcomes[d] is not None
                               and outcomes[d].status not in ("finished", "skipped")]
                if failed_deps:
                    settle(i, Outcome(r, "blocked", message=f"its teacher run {runs[failed_deps[0]].run_dir} "
                                                            f"did not finish"))
                    continue
                if not free or any(outcomes[d] is None for d in r.deps):
                    continue
                slot = free.pop(0)
                proc, log = _start(r, slot, jobs, gpus, threads)
                running[i] = (proc, log, slot, time.monotonic())
                say(f"{count()} [started] {r.run_dir} ({'resumes' if r.state == 'resume' else 'starts'}; log: "
                    f"{r.run_dir / LOG_NAME})")
            for i, (proc, log, slot, start) in list(running.items()):
                code = proc.poll()
                if code is None:
                    continue
                log.close()
                del running[i]
                free.append(slot)
                free.sort()
                seconds = time.monotonic() - start
                if code == 0:
                    settle(i, Outcome(runs[i], "finished", 0, seconds))
                else:
                    log_path = runs[i].run_dir / LOG_NAME
                    settle(i, Outcome(runs[i], "failed", code, seconds,
                                      f"exit {code}; {_last_line(log_path)} (log: {log_path})"))
            if running or any(o is None for o in outcomes):
                time.sleep(poll_s)
    except KeyboardInterrupt as stop:
        stop_processes([proc for proc, *_ in running.values()], timeout_s=30)
        for i, (proc, log, _slot, start) in running.items():
            log.close()
            outcomes[i] = Outcome(runs[i], "interrupted", proc.returncode, time.monotonic() - start,
                                  "stopped; it resumes from its last checkpoint next time")
        for i, r in enumerate(runs):
            if outcomes[i] is None:
                outcomes[i] = Outcome(r, "interrupted", message="not started")
        stop.outcomes = [o for o in outcomes if o is not None]
        raise
    finally:
        bar.close()
    return [o for o in outcomes if o is not None]


def summarize(outcomes: list[Outcome]) -> str:
    """Counts per status, then every run that did not finish with its reason."""
    counts: dict[str, int] = {}
    for o in outcomes:
        counts[o.status] = counts.get(o.status, 0) + 1
    order = ("finished", "skipped", "failed", "blocked", "interrupted")
    lines = [f"sweep: {len(outcomes)} runs: " + ", ".join(f"{counts[s]} {s}" for s in order if s in counts)]
    bad = [o for o in outcomes if o.status in ("failed", "blocked", "interrupted")]
    if bad:
        lines.append("not finished:")
        lines += [f"  {o.status:<11} {o.run.run_dir} ({o.run.config}, seed {o.run.seed}): {o.message}" for o in bad]
    return "\n".join(lines)


def describe(runs: list[Run], jobs: int, gpus: list[str] | None, threads: int | None = None) -> str:
    """The plan as ``--dry-run`` prints it: how runs are placed, then one command per run in start order."""
    where = (f"{jobs} at a time, each pinned to one of GPUs {','.join(gpus)} (CUDA_VISIBLE_DEVICES)" if gpus
             else f"{jobs} at a time")
    lines = [f"# figkd sweep: {len(runs)} runs, {where}, {threads_per_run(jobs, threads=threads)} CPU threads each"]
    for i, r in enumerate(runs):
        after = f" after #{', #'.join(map(str, r.deps))}" if r.deps else ""
        note = {"done": "skip (finished)", "resume": "resume", "fresh": "start",
                "different": f"fail: {r.why}"}[r.state]
        lines.append(f"# {i}: {note}{after}")
        lines.append(shlex.join(["python", "-m", "figkd", *launch_args(r, jobs, threads)]))
    return "\n".join(lines)
