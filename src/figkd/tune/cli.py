"""``figkd tune``: the command line of `figkd.tune` (registered by the top-level CLI with :func:`add_parser`).

Nothing here imports Optuna until the command runs: without the ``tune`` extra, ``figkd tune`` is a
one-line error naming the pip command, and every other command works.
"""

from __future__ import annotations

import argparse
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

from ..errors import ConfigError
from ..experiments.lifeline import stop_processes

EPILOG = """\
--param KEY=SPEC (repeatable), KEY a config field or objective.TERM.OPTION (TERM: the term's name in the
objective - ce, kd, figkd, ...; OPTION: weight, warmup or any option of the term):
  float:LOW:HIGH[:log|:step=S]   e.g. objective.figkd.weight=float:0.5:8:log
  int:LOW:HIGH[:log|:step=S]     e.g. objective.dkd.warmup=int:1:20
  categorical:A,B,...            e.g. objective.kd.temperature=categorical:1,2,4,8

The configuration must hold out a validation split (val_fraction > 0): trials are selected on it and never
read the test split; --final N retrains the best configuration on the full training split with N seeds and
is the only step that reads the test split. Running the same command again continues the study; a trial
whose worker died is failed and queued again (it continues from its last checkpoint). docs/tuning.md.
Exit status: 0, 1 when a worker process failed, 2 for bad input, 130 when interrupted.
"""

INSTALL = "pip install 'figkd[tune]'"


def require_optuna() -> None:
    """ConfigError naming the pip command when Optuna (the ``tune`` extra) is not installed."""
    try:
        import optuna  # noqa: F401
    except ImportError:
        raise ConfigError(f"figkd tune needs Optuna, which is not installed: {INSTALL}") from None


def add_parser(subparsers) -> None:
    from ..experiments.cli import _gpus
    from .space import METRICS, PRUNERS, SAMPLERS

    p = subparsers.add_parser("tune", help="search hyperparameters on a validation split (Optuna; docs/tuning.md)",
                              description="Search a configuration's hyperparameters with Optuna, selecting on a "
                                          "validation split held out of the training split.",
                              epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("config", nargs="?", metavar="CONFIG", help="YAML config of the runs (train or distill)")
    p.add_argument("--param", action="append", default=[], metavar="KEY=SPEC", help="a searched parameter (below)")
    p.add_argument("--set", dest="set_items", action="append", default=[], metavar="KEY=VALUE",
                   help="set a config field of every trial (value parsed as YAML); repeatable")
    p.add_argument("--trials", type=int, default=None, metavar="N",
                   help="trials the study holds when done (complete, pruned or failed; default for --sampler grid: "
                        "the grid's size)")
    p.add_argument("--study", default=None, metavar="DIR",
                   help="the study folder (default runs/tune/<dataset>/<config name>)")
    p.add_argument("--study-name", default=None, metavar="NAME", help="the study's name in the storage "
                   "(default: the folder's name)")
    p.add_argument("--storage", default=None, metavar="URL",
                   help="a database URL Optuna opens (sqlite:///x.db, postgresql://...) shared by workers on many "
                        "machines (default: Optuna's journal file in the study folder)")
    p.add_argument("--sampler", choices=SAMPLERS, default="tpe", help="Optuna sampler (default tpe)")
    p.add_argument("--seed", type=int, default=0, help="seed of the sampler (worker i: seed + i)")
    p.add_argument("--pruner", choices=PRUNERS, default="median", help="Optuna pruner (default median)")
    p.add_argument("--pruner-startup", type=int, default=5, metavar="N",
                   help="median pruner: complete trials before it prunes (default 5)")
    p.add_argument("--pruner-warmup", type=int, default=0, metavar="EPOCHS",
                   help="median: epochs of a trial before it may be pruned; hyperband: its minimum resource")
    p.add_argument("--metric", choices=METRICS, default="last",
                   help="validation top-1 of the last epoch (default) or of the best epoch")
    p.add_argument("--workers", type=int, default=1, metavar="K",
                   help="worker processes (default 1: trials run in this process, unless --gpus); with --slurm: "
                        "array tasks")
    p.add_argument("--gpus", type=_gpus, default=None, metavar="0,1,...",
                   help="GPUs to use; each worker sees one (CUDA_VISIBLE_DEVICES), as figkd sweep --gpus")
    p.add_argument("--threads", type=int, default=None, metavar="N",
                   help="CPU threads of each worker (default: the CPUs divided by --workers, at most OMP_NUM_THREADS)")
    p.add_argument("--heartbeat", type=int, default=30, metavar="SECONDS",
                   help="a running trial's heartbeat; after 4 missed beats it is failed and queued again (default 30)")
    p.add_argument("--slurm", metavar="FILE", help="write a Slurm job array of --workers tasks, each a worker of the "
                   "study, instead of running it")
    p.add_argument("--slurm-option", action="append", default=[], metavar="OPTION",
                   help="an #SBATCH line for --slurm, e.g. --slurm-option=--gres=gpu:1; repeatable")
    p.add_argument("--report", metavar="STUDY", default=None,
                   help="report the study in folder STUDY (table, best config, importances, figures) and stop")
    p.add_argument("--final", type=int, default=None, metavar="N",
                   help="retrain the best configuration on the full training split with N seeds; report test top-1")
    p.add_argument("--against", nargs="+", default=[], metavar="CONFIG",
                   help="with --final: also train these the same way: base (the config as given), an objective "
                        "preset (kd, figkd, ...) or an objective YAML file")
    p.add_argument("--worker", metavar="STUDY", default=None, help=argparse.SUPPRESS)  # what --workers starts
    p.add_argument("--index", type=int, default=0, help=argparse.SUPPRESS)
    p.set_defaults(func=run_tune)


def run_tune(args: argparse.Namespace) -> int:
    require_optuna()
    import warnings

    from optuna.exceptions import ExperimentalWarning

    warnings.filterwarnings("ignore", category=ExperimentalWarning)  # heartbeat, fail_stale_trials, plots
    for flag in ("workers", "heartbeat"):
        if getattr(args, flag) < 1:
            raise ConfigError(f"--{flag} must be >= 1, got {getattr(args, flag)}")
    if args.against and args.final is None:
        raise ConfigError("--against goes with --final N")
    if args.worker:
        return _worker(args)
    if args.report:
        if args.config or args.param:
            raise ConfigError("--report STUDY reports an existing study: give no CONFIG or --param")
        return _report(args, _folder(args.report))
    if not args.config:
        raise ConfigError("figkd tune needs CONFIG (a YAML config of the runs), or --report STUDY")
    folder, definition, trials = _prepare(args)
    from .study import open_study

    open_study(folder, storage=args.storage, study_name=args.study_name, definition=definition,
               heartbeat=args.heartbeat)  # created, or checked to be the same search, before any trial
    if args.slurm:
        return _slurm(args, folder, trials)
    status = _search(args, folder, trials)
    _report(args, folder)
    return status


def _folder(path: str):
    from .study import StudyFolder

    folder = StudyFolder(path)
    if not folder.path.is_dir():
        raise ConfigError(f"{path} is not a study folder (figkd tune CONFIG --study {path} ... makes one)")
    return folder


def _prepare(args: argparse.Namespace):
    """The study folder, the definition of the search and the number of trials, from the command line."""
    from ..config import RunConfig, apply_overrides, load_yaml, parse_set
    from ..engine import rundir
    from ..engine.run import resolve
    from ..experiments.sweep import command_of
    from .space import parse_space
    from .study import Definition, StudyFolder

    values = {**load_yaml(args.config), **parse_set(args.set_items)}
    base = apply_overrides(RunConfig(), values)
    command = command_of(base)
    base = resolve(base, command).replace(out=None, test_at_end=False)
    if not base.val_fraction:
        raise ConfigError("figkd tune selects on a validation split, and this configuration has none: set "
                          "val_fraction (e.g. --set val_fraction=0.1; selecting on the test split is what tuned "
                          "results are criticised for)")
    space = parse_space(args.param, base)
    for flag in ("pruner_startup", "pruner_warmup"):
        if getattr(args, flag) < 0:
            raise ConfigError(f"--{flag.replace('_', '-')} must be >= 0, got {getattr(args, flag)}")
    definition = Definition(command=command, config=rundir.normalized(base.to_dict()),
                            params=tuple(p.spec for p in space), metric=args.metric, sampler=args.sampler,
                            seed=args.seed, pruner=args.pruner, pruner_startup=args.pruner_startup,
                            pruner_warmup=args.pruner_warmup)
    trials = args.trials
    grid = definition.grid_size()
    if grid is not None:
        trials = grid if trials is None else trials
        if trials > grid:
            raise ConfigError(f"--trials {trials} is more than the grid's {grid} points (--sampler grid)")
    if trials is None or trials < 1:
        raise ConfigError(f"--trials must be >= 1, got {trials}")
    study = args.study or str(Path("runs") / "tune" / base.dataset / Path(args.config).stem)
    return StudyFolder(study), definition, trials


def _threads(args: argparse.Namespace) -> int:
    from ..experiments.sweep import threads_per_run
    try:
        return threads_per_run(args.workers, threads=args.threads)
    except ConfigError as error:
        raise ConfigError(str(error).replace("sweep: ", "tune: ")) from None


def _worker_command(folder, trials: int, index: str, threads: int, heartbeat: int) -> list[str]:
    return ["tune", "--worker", str(folder.path), "--trials", str(trials), "--index", index, "--threads",
            str(threads), "--heartbeat", str(heartbeat)]


def _worker(args: argparse.Namespace) -> int:
    from .study import StudyFolder, work

    if args.trials is None or args.trials < 1:
        raise ConfigError("--worker STUDY needs --trials N (N >= 1)")
    if args.index < 0:
        raise ConfigError(f"--index must be >= 0, got {args.index}")
    work(StudyFolder(args.worker), args.trials, worker=args.index, threads=args.threads, heartbeat=args.heartbeat,
         log=lambda line: print(line, flush=True))
    return 0


def _search(args: argparse.Namespace, folder, trials: int) -> int:
    """Run the study to ``trials`` trials: in this process (one worker) or in ``--workers`` processes."""
    from .study import open_study, pending, work

    study, _ = open_study(folder, heartbeat=args.heartbeat)
    if not pending(study, trials):
        print(f"figkd tune: study {folder.path} holds its {trials} trials: nothing to run", flush=True)
        return 0
    print(f"figkd tune: study {folder.path}: {trials} trials, {args.workers} worker(s)", flush=True)
    if args.workers == 1 and not args.gpus:  # in this process (a pinned GPU needs a process of its own)
        try:
            work(folder, trials, threads=args.threads, heartbeat=args.heartbeat, log=print,
                 trial_log=lambda line: print(line, flush=True))
        except KeyboardInterrupt as interrupt:
            raise type(interrupt)(f"{_stopped_how(interrupt)}; the running trial was queued again: run the same "
                                  "command to continue the study") from None
        return 0
    return _processes(args, folder, trials)


def _processes(args: argparse.Namespace, folder, trials: int) -> int:
    """``--workers K`` worker processes (`figkd.experiments.sweep.run_env`: GPUs pinned, CPU threads divided),
    each appending its output to ``STUDY/logs/worker-<i>.log``; a line per finished trial meanwhile."""
    from ..experiments.sweep import run_env
    from .study import open_study, trial_line

    folder.logs.mkdir(parents=True, exist_ok=True)
    threads = _threads(args)
    procs = []
    for i in range(args.workers):
        log = open(folder.logs / f"worker-{i}.log", "a")  # closed when the process ends
        env = run_env(i, args.workers, args.gpus, threads=args.threads)
        cmd = [sys.executable, "-m", "figkd", *_worker_command(folder, trials, str(i), threads, args.heartbeat)]
        log.write(f"# figkd tune worker {i}: {shlex.join(cmd)}\n")
        log.flush()
        procs.append((subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, stdin=subprocess.DEVNULL),
                      log))
    study, _ = open_study(folder, heartbeat=args.heartbeat)
    shown: set[int] = set()
    try:
        while True:
            running = [p.poll() is None for p, _ in procs]
            for t in study.get_trials(deepcopy=False):
                if t.state.is_finished() and t.number not in shown:
                    shown.add(t.number)
                    print(trial_line(t), flush=True)
            if not any(running):
                break
            time.sleep(1.0)
    except KeyboardInterrupt as interrupt:
        stop_processes([p for p, _ in procs], timeout_s=60)  # each worker fails its trial and queues it again
        for _, log in procs:
            log.close()
        raise type(interrupt)(f"{_stopped_how(interrupt)}; the workers stopped and queued their trials again: run "
                              "the same command to continue the study") from None
    status = 0
    for i, (p, log) in enumerate(procs):
        log.close()
        if p.returncode != 0:
            from ..experiments.sweep import _last_line
            path = folder.logs / f"worker-{i}.log"
            print(f"figkd tune: worker {i} exited with status {p.returncode}: {_last_line(path)} (log: {path})",
                  flush=True)
            status = max(status, 2 if p.returncode == 2 else 1)
    return status


def _stopped_how(interrupt: KeyboardInterrupt) -> str:
    """How the command was stopped, as the command line says it (figkd.cli: Terminated is SIGTERM)."""
    return "terminated (SIGTERM)" if type(interrupt).__name__ == "Terminated" else "interrupted"


def _slurm(args: argparse.Namespace, folder, trials: int) -> int:
    from ..experiments.slurm import worker_array_script, write_script

    threads = args.threads or 1
    text = worker_array_script(_worker_command(folder, trials, "{task}", threads, args.heartbeat), args.workers,
                               job_name="figkd-tune", log_dir=os.path.abspath(folder.logs),
                               options=args.slurm_option, command_line=shlex.join(["figkd", *sys.argv[1:]]))
    folder.logs.mkdir(parents=True, exist_ok=True)
    path = write_script(args.slurm, text)
    print(f"wrote {path}: {args.workers} worker(s) of the study {folder.path}; submit with  sbatch {path}; then "
          f"figkd tune --report {folder.path}")
    return 0


def _report(args: argparse.Namespace, folder) -> int:
    from .results import final, write_report
    from .study import open_study

    study, definition = open_study(folder, heartbeat=args.heartbeat)
    print(write_report(folder, study, definition), end="", flush=True)
    if args.final is not None:
        jobs = args.workers
        print(final(folder, study, definition, args.final, args.against, jobs=jobs, gpus=args.gpus,
                    threads=args.threads, log=lambda line: print(line, flush=True)), end="")
    return 0
