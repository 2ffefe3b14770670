"""``figkd sweep`` and ``figkd report``; the top-level CLI registers them with :func:`add_parsers`."""

from __future__ import annotations

import argparse
import shlex
import sys

from ..errors import ConfigError
from .report import __doc__ as REPORT_DOC
from .report import report
from .sweep import __doc__ as SWEEP_DOC

SWEEP_EPILOG = """\
Each run is `python -m figkd train|distill --config FILE --set seed=S --out RUN_DIR --resume`: a run
whose directory holds the same finished run is skipped, an interrupted one continues. Runs that load
another run's checkpoint (teacher_ckpt) start after it. Output of each run: RUN_DIR/sweep.log.
Exit status: 0 when every run finished, 1 when some failed (listed at the end), 2 for bad input.
"""

REPORT_EPILOG = """\
Tables: 1-9 (methods x teacher-student pairs), 10-13 and 16 (ablations: settings x pairs), 14 (from the
overhead.json of figkd analyze overhead), 15 (parameters and MACs, as figkd models --table15), other
(runs of no paper table), val (runs with a validation split, e.g. figkd tune's trials: their validation
top-1, kept apart from every test number). Default: every table with runs, then other, then val.
"""


def _gpus(text: str) -> list[str]:
    gpus = [g.strip() for g in text.split(",") if g.strip()]
    if not gpus:
        raise argparse.ArgumentTypeError("--gpus expects a comma-separated list such as 0,1,2,3")
    return gpus


def add_parsers(subparsers) -> None:
    """Register ``sweep`` and ``report`` on an ``argparse`` subparsers object."""
    fmt = argparse.RawDescriptionHelpFormatter
    p = subparsers.add_parser("sweep", help="run many configs x seeds, N at a time, teachers first",
                              description=SWEEP_DOC,
                              epilog=SWEEP_EPILOG, formatter_class=fmt)
    p.add_argument("configs", nargs="+", metavar="CONFIG_OR_DIR", help="config files, or folders searched for *.yaml")
    p.add_argument("--seeds", nargs="+", type=int, default=None, help="seeds of every config (default: its own seed)")
    p.add_argument("--jobs", type=int, default=None,
                   help="runs at a time (default: one per --gpus entry, else 1)")
    p.add_argument("--gpus", type=_gpus, default=None, metavar="0,1,...",
                   help="GPUs to use; each run sees one (CUDA_VISIBLE_DEVICES)")
    p.add_argument("--threads", type=int, default=None, metavar="N",
                   help="CPU threads of each run (default: the CPUs divided by --jobs, at most OMP_NUM_THREADS "
                        "when that is set)")
    p.add_argument("--set", dest="set_items", action="append", default=[], metavar="KEY=VALUE",
                   help="set a config field in every run (e.g. device=cuda, cache_dir=cache/); repeatable")
    p.add_argument("--dry-run", action="store_true", help="print the commands in start order; run nothing")
    p.add_argument("--slurm", metavar="FILE", help="write a Slurm job-array script (one task per run) instead")
    p.add_argument("--slurm-option", action="append", default=[], metavar="OPTION",
                   help="an #SBATCH line for --slurm, e.g. --slurm-option=--gres=gpu:1; repeatable")
    p.add_argument("--progress", choices=("auto", "on", "off"), default="auto",
                   help="progress bar over runs (auto: on a terminal)")
    p.set_defaults(func=run_sweep)

    p = subparsers.add_parser("report", help="collect run directories into the paper's tables",
                              description=REPORT_DOC,
                              epilog=REPORT_EPILOG, formatter_class=fmt)
    p.add_argument("runs_dir", metavar="RUNS_DIR", help="folder searched for run directories")
    p.add_argument("--table", nargs="+", default=None, metavar="N", help="1-16, other or val (default: all with runs)")
    p.add_argument("--format", dest="fmt", choices=("md", "csv", "latex"), default="md")
    p.add_argument("--metric", choices=("last", "best"), default="last",
                   help="top-1 of the last epoch (default) or of the best epoch")
    p.add_argument("--paper-dir", default=None,
                   help="folder with another copy of the paper's reported_top1.csv (Tables 1-9; default: the one "
                        "installed with figkd)")
    p.add_argument("--out", default=None, help="write the report to this file instead of printing it")
    p.set_defaults(func=run_report)


def run_sweep(args: argparse.Namespace) -> int:
    from .sweep import describe, execute, plan, summarize

    jobs = args.jobs if args.jobs is not None else (len(args.gpus) if args.gpus else 1)
    if jobs < 1:
        raise ConfigError(f"--jobs must be >= 1, got {jobs}")
    runs = plan(args.configs, args.seeds, args.set_items)
    if args.dry_run:
        print(describe(runs, jobs, args.gpus, args.threads))
        return 0
    if args.slurm:
        from .slurm import write_slurm_script
        try:
            path = write_slurm_script(runs, args.slurm, jobs=args.jobs, options=args.slurm_option,
                                      command_line=shlex.join(["figkd", *sys.argv[1:]]))
        except ValueError as exc:
            raise ConfigError(str(exc)) from exc
        print(f"wrote {path}: submit with  bash {path}")
        return 0
    progress = {"auto": None, "on": True, "off": False}[args.progress]
    try:
        outcomes = execute(runs, jobs, args.gpus, threads=args.threads, progress=progress)
    except KeyboardInterrupt as stop:  # its runs are stopped; the command line exits 130 (Ctrl-C) or 143 (SIGTERM)
        print(summarize(stop.outcomes))
        raise
    print(summarize(outcomes))
    return 1 if any(o.status in ("failed", "blocked") for o in outcomes) else 0


def run_report(args: argparse.Namespace) -> int:
    from ..atomic import atomic_write_text
    text = report(args.runs_dir, args.table, args.fmt, args.metric, args.paper_dir)
    if args.out:
        atomic_write_text(args.out, text)
        print(f"wrote {args.out}")
    else:
        print(text, end="")
    return 0
