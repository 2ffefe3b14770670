"""The ``figkd`` command line: train, distill, eval, demo, models, sweep, report, analyze, export, bench,
tune.

Exit statuses and what is printed (docs/engine.md, "Errors and their fixes"):

- 2: anything the user can fix - a bad flag or config value, an unknown model, dataset, objective or
  key, a missing or malformed dataset, checkpoint or run file, a run directory that may not be used, a
  file-system error (read-only, full disk): one line ``figkd: error: ...`` on stderr, no traceback,
  found before any run directory is written where it can be;
- 1: a loss that became NaN or infinite (the student's last good checkpoint is kept; in a side-by-side run
  the other students finish first, and their summaries are printed);
- 3: an unexpected error while training (a bug, or the device out of memory): one line naming the epoch,
  step, student and loss term where known; the full traceback is in the run directory's ``error.log``;
- 130: Ctrl-C: one line saying which epoch was interrupted and which checkpoint ``--resume`` continues;
- 143: SIGTERM (``kill``, a batch scheduler's pre-emption): the same line as for Ctrl-C, after the
  same clean stop;
- 141: the reader of stdout went away (``figkd eval RUN | head``): nothing more is printed.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import warnings
from typing import Any

from .checks import Device, Int
from .config import RunConfig, apply_overrides, is_objective_file, load_objective, load_yaml, parse_set
from .errors import ConfigError, UserError

#: Exit statuses (see the module docstring).
EXIT_USER_ERROR = 2
EXIT_NONFINITE = 1
EXIT_TRAINING_ERROR = 3
EXIT_INTERRUPTED = 130  # 128 + SIGINT, what a shell reports for a program stopped by Ctrl-C
EXIT_TERMINATED = 143  # 128 + SIGTERM, what a shell reports for a program stopped by kill
EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE, what a shell reports for a writer whose reader went away


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors (argparse prints its usage first, several lines)."""

    def error(self, message: str):  # type: ignore[override]
        self.exit(EXIT_USER_ERROR, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def arg_type(check, name: str):
    """An argparse ``type`` that parses a flag with a config check (figkd.checks), e.g. a positive int."""
    def parse(text: str):
        value: Any = text
        if isinstance(check, Int):
            try:
                value = int(text)
            except ValueError:
                raise argparse.ArgumentTypeError(f"must be {check.describe()}, got {text!r}") from None
        try:
            return check.check(name, value)
        except ValueError as error:  # argparse prefixes "argument NAME: "
            raise argparse.ArgumentTypeError(str(error).removeprefix(f"{name} ")) from None
    parse.__name__ = name
    return parse


POSITIVE_INT = Int(min=1)

#: Dedicated flags of train/distill and the config field each one sets.
_RUN_FLAGS: list[tuple[str, str, dict[str, Any]]] = [
    ("--dataset", "dataset", {}),
    ("--data-root", "data_root", {}),
    ("--model", "model", {}),
    ("--teacher", "teacher", {}),
    ("--teacher-ckpt", "teacher_ckpt", {}),
    ("--init", "init", {}),
    ("--epochs", "epochs", {"type": int}),  # values are checked with the config (RunConfig)
    ("--batch-size", "batch_size", {"type": int}),
    ("--lr", "lr", {"type": float}),
    ("--seed", "seed", {"type": int}),
    ("--device", "device", {}),
    ("--out", "out", {}),
]


#: Flags whose help says more than the field they set.
_FLAG_HELP = {
    "init": "initial weights (safetensors or PyTorch state dict; prefixes module./_orig_mod./model. stripped); a "
            "classifier of another class count is re-initialised, and what was loaded is printed",
    "model": "model: a zoo name (figkd models), your own (register_model in a FIGKD_PLUGINS module or file) or "
             "hf:<folder or hub id> (a Hugging Face image classifier; pip install 'figkd[hf]')",
    "teacher": "teacher: a zoo name (figkd models), your own (register_model in a FIGKD_PLUGINS module or file) or "
               "hf:<folder or hub id>; default: the architecture of a --teacher-ckpt run directory",
}


def _add_run_flags(p: argparse.ArgumentParser, command: str) -> None:
    p.add_argument("--config", help="YAML file of config fields (see below)")
    for flag, key, kw in _RUN_FLAGS:
        if command == "train" and key in ("teacher", "teacher_ckpt"):
            continue
        if command == "distill" and key == "model":
            continue
        p.add_argument(flag, dest=key, default=None, help=_FLAG_HELP.get(key, f"sets {key}"), **kw)
    from .losses import list_presets
    presets = ", ".join(list_presets())
    if command == "distill":
        p.add_argument("--student", nargs="+", default=None,
                       help="student architecture(s), named as the teacher; several train side by side on one "
                            "teacher forward")
        p.add_argument("--peers", nargs="+", default=None, metavar="ARCH",
                       help="train these architectures together from scratch by deep mutual learning (objective "
                            "default dml; no teacher needed), one run directory each: <out>/peer<i>-<arch>")
        p.add_argument("--objective", nargs="+", default=None,
                       help=f"objective preset(s) ({presets}; default figkd) or YAML file(s) of a term list (see "
                            "'loss terms' below); several train side by side, one run directory each")
    else:
        p.add_argument("--objective", default=None, help="objective preset or YAML file of a term list "
                       "(default vanilla)")
    p.add_argument("--set", dest="set_items", action="append", default=[], metavar="KEY=VALUE",
                   help="set any config field (value parsed as YAML); repeatable")
    p.add_argument("--resume", action="store_true", help="continue the unfinished run in the run directory")
    p.add_argument("--overwrite", action="store_true",
                   help="replace a different or unfinished run found in the run directory")


def build_configs(args: argparse.Namespace, command: str) -> list[RunConfig]:
    """Defaults < --config file < dedicated flags < --set, expanded over several students/objectives. The
    rule holds for every field: ``--set student=``, ``--set objective=``, ``--set peers=`` replace
    ``--student``, ``--objective``, ``--peers`` (docs/engine.md, "Configuration")."""
    values: dict[str, Any] = {}
    if args.config:
        values.update(load_yaml(args.config))
    for _, key, _ in _RUN_FLAGS:
        v = getattr(args, key, None)
        if v is not None:
            values[key] = v
    sets = parse_set(args.set_items)
    values.update(sets)
    students = None if "student" in sets else getattr(args, "student", None)
    objectives = None if "objective" in sets else args.objective
    if isinstance(objectives, str):
        objectives = load_objective(objectives) if is_objective_file(objectives) else objectives
    elif objectives is not None:
        objectives = [load_objective(o) if is_objective_file(o) else o for o in objectives]
    if command == "train":
        if objectives is not None:
            values["objective"] = objectives
        return [apply_overrides(RunConfig(), values)]
    if getattr(args, "peers", None) and "peers" not in sets:
        if students:
            raise ConfigError("figkd distill takes --student or --peers, not both")
        values["peers"] = args.peers
    if values.get("peers"):  # one configuration: the peers train together
        if objectives and len(objectives) > 1:
            raise ConfigError("a peers run has one objective (each peer's); run other objectives separately")
        return [apply_overrides(RunConfig(), {**values, **({"objective": objectives[0]} if objectives else {})})]
    students = students or [values.get("student")]
    objectives = objectives or [values.get("objective")]
    configs = []
    for s in students:
        for o in objectives:
            configs.append(apply_overrides(RunConfig(), {**values, "student": s, "objective": o}))
    if len(configs) > 1 and values.get("out"):
        from .engine.rundir import member_name
        configs = [c.replace(out=f"{values['out']}/{member_name(c, command)}") for c in configs]
    return configs


def _cmd_run(args: argparse.Namespace, command: str) -> int:
    import json

    from .engine.run import run
    configs = build_configs(args, command)
    from .atomic import WriteError
    from .engine.distributed import from_environment
    from .engine.nonfinite import NonFiniteLossError
    from .engine.run import interrupted_message, resume_note
    try:
        summaries = run(configs, command, resume=args.resume, overwrite=args.overwrite)
    except NonFiniteLossError as error:  # the students that finished beside the one that diverged
        if error.summaries and from_environment().is_main:
            print(json.dumps(error.summaries, indent=2))
        raise
    except KeyboardInterrupt as exc:
        if isinstance(exc, Terminated):
            raise Terminated(interrupted_message(configs, command).replace("interrupted", "terminated (SIGTERM)", 1)) \
                from None
        raise Interrupted(interrupted_message(configs, command)) from None
    except WriteError as error:  # a full disk: say where the run stands and how to continue it
        raise WriteError(error.errno, f"{error}; the run stopped {resume_note(configs, command)}") from None
    if from_environment().is_main:
        print(json.dumps(summaries, indent=2))
    return 0


def _cmd_eval(args: argparse.Namespace) -> int:
    from .deploy.cli import is_onnx_file
    if is_onnx_file(args.ckpt):  # an exported model: onnxruntime (figkd.deploy)
        from .deploy.cli import run_eval_onnx
        return run_eval_onnx(args)
    from .engine.evaluate_cli import run_eval
    return run_eval(args)


def _cmd_demo(args: argparse.Namespace) -> int:
    from .demo import run_demo
    return run_demo(out=args.out, device=args.device, epochs=args.epochs, overwrite=args.overwrite)


def objective_help() -> str:
    """The presets and registered loss terms (from the registry), for ``--help``."""
    from .losses import list_presets, list_terms, preset_spec, term_spec

    lines = ["objective presets (--objective NAME):"]
    for name in list_presets():
        terms = " + ".join(f"{t['term']} {t.get('weight', 1.0):g}" for t in preset_spec(name))
        lines.append(f"  {name:<16} {terms}")
    lines.append("loss terms (objective: [{term: NAME, weight: W, warmup: EPOCHS, OPTION: VALUE, ...}, ...]; "
                 "your own: FIGKD_PLUGINS=module_or_file.py, docs/method.md):")
    for name in list_terms():
        spec = term_spec(name)
        lines += [f"  {spec.summary}"] + ([f"      {spec.help}"] if spec.help else [])
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="figkd", description="Frequency-aware knowledge distillation.")
    from . import __version__
    parser.add_argument("--version", action="version", version=f"figkd {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    fields = ("config fields (YAML file, --set KEY=VALUE) with their defaults:\n" + RunConfig.help_table()
              + "\n\n" + objective_help())
    fmt = argparse.RawDescriptionHelpFormatter

    p = sub.add_parser("train", help="train a model alone with cross-entropy (teachers, student baselines)",
                       epilog=fields, formatter_class=fmt)
    _add_run_flags(p, "train")
    p.set_defaults(func=lambda a: _cmd_run(a, "train"))

    p = sub.add_parser("distill", help="distil a student from a teacher checkpoint with an objective",
                       epilog=fields, formatter_class=fmt)
    _add_run_flags(p, "distill")
    p.set_defaults(func=lambda a: _cmd_run(a, "distill"))

    p = sub.add_parser("eval", help="top-1/top-5 of a checkpoint or an exported .onnx model on a dataset split")
    p.add_argument("ckpt", help="a figkd run directory, a .safetensors file, an mdistiller/RepDistiller .pth, or an "
                                ".onnx file from figkd export (run with onnxruntime; dataset from its metadata)")
    p.add_argument("--model", help="architecture (default: the run directory's)")
    p.add_argument("--dataset", help="dataset (default: the run directory's)")
    p.add_argument("--data-root", dest="data_root", help="dataset folder (default: the run directory's)")
    p.add_argument("--split", choices=("test", "train"), default="test")
    p.add_argument("--which", choices=("best", "last"), default="best", help="which weights of a run directory")
    p.add_argument("--batch-size", dest="batch_size", type=arg_type(POSITIVE_INT, "--batch-size"), default=512)
    p.add_argument("--device", type=arg_type(Device(), "--device"), default="auto")
    p.set_defaults(func=_cmd_eval)

    p = sub.add_parser("demo", help="teacher, student, KD and FiGKD on the bundled digits data (CPU, about a minute)")
    p.add_argument("--out", default="runs/demo", help="folder of the demo's runs (default runs/demo)")
    p.add_argument("--epochs", type=arg_type(POSITIVE_INT, "--epochs"), default=None,
                   help="epochs of every run (default: the demo's)")
    p.add_argument("--device", type=arg_type(Device(), "--device"), default="auto")
    p.add_argument("--overwrite", action="store_true", help="start again instead of reusing finished runs")
    p.set_defaults(func=_cmd_demo)

    from .models.cli import add_parser as add_models_parser
    add_models_parser(sub)
    from .experiments.cli import add_parsers as add_experiment_parsers
    add_experiment_parsers(sub)
    from .analysis.cli import add_parser as add_analysis_parser
    add_analysis_parser(sub)
    from .deploy.cli import add_parsers as add_deploy_parsers
    add_deploy_parsers(sub)
    from .tune.cli import add_parser as add_tune_parser
    add_tune_parser(sub)
    return parser


class Interrupted(KeyboardInterrupt):
    """Ctrl-C during a run; the message says which epoch was interrupted and what ``--resume`` continues."""


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised in the main thread of the process that ran `main` (so a run stops as cleanly as
    on Ctrl-C: the checkpoints stay whole and ``--resume`` continues)."""


def _terminate_like_ctrl_c():
    """The first SIGTERM raises `Terminated` in this process, and later ones are ignored while it stops
    (they would cut short the stop: the line saying where the run stands); a process forked from it later
    (a data worker) keeps the default action. Returns the previous handler (None where it cannot be set)."""
    pid, stopping = os.getpid(), []

    def handler(signum, frame):
        if os.getpid() != pid:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            os.kill(os.getpid(), signal.SIGTERM)
            return
        if stopping:  # a second SIGTERM (a scheduler signals the sweep and each run, the sweep its runs again):
            return  # the clean stop under way finishes (checkpoint whole, the line saying how to resume)
        stopping.append(signum)
        raise Terminated()

    try:
        return signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread (main() called from a thread): leave SIGTERM alone
        return None


_SHOWN: set[str] = set()


def _show_warning(message, category, filename, lineno, file=None, line=None):
    """figkd's own warnings as ``figkd: warning: ...`` on one line of stderr, each text once per command
    (the same warning about the train and the test split is said once); other libraries' unchanged."""
    package = os.path.dirname(os.path.abspath(__file__))
    if not os.path.abspath(filename).startswith(package + os.sep):
        return _show_warning.default(message, category, filename, lineno, file, line)
    text = one_line(str(message))
    if text not in _SHOWN:
        _SHOWN.add(text)
        print(f"figkd: warning: {text}", file=sys.stderr if file is None else file)


def _show_warnings_on_one_line():
    """Installs `_show_warning`; returns the previous ``warnings.showwarning``."""
    _SHOWN.clear()
    previous = warnings.showwarning
    if previous is not _show_warning:
        _show_warning.default = previous
        warnings.showwarning = _show_warning
    return previous


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit status (see the module docstring). The warning display
    and the SIGTERM handler it installs are put back on return (main may run inside another program)."""
    show, on_term = _show_warnings_on_one_line(), _terminate_like_ctrl_c()
    try:
        return _main(argv)
    finally:
        warnings.showwarning = show
        if on_term is not None:
            signal.signal(signal.SIGTERM, on_term)


def _main(argv: list[str] | None) -> int:
    if hasattr(sys.stdout, "reconfigure"):  # each line reaches a log file or a pipe when printed, not at exit
        sys.stdout.reconfigure(line_buffering=True)
    try:
        if os.environ.get("FIGKD_SWEEP_PID"):  # a run of figkd sweep: it stops when the sweep ends
            from .experiments.lifeline import die_with_parent
            die_with_parent()
        from .plugins import load_plugins
        load_plugins()  # FIGKD_PLUGINS: the user's own terms, known to --help and every config
        parser = build_parser()
        args = parser.parse_args(argv)
        status = int(args.func(args) or 0)
        sys.stdout.flush()  # a closed pipe shows here, not in the interpreter's exit
        return status
    except KeyboardInterrupt as exc:
        terminated = isinstance(exc, Terminated)
        print(f"figkd: {str(exc) or ('terminated (SIGTERM)' if terminated else 'interrupted')}", file=sys.stderr)
        return EXIT_TERMINATED if terminated else EXIT_INTERRUPTED
    except BrokenPipeError as exc:
        if not _stdout_closed():
            _error(exc)  # another pipe (e.g. to a worker process) broke: not the reader going away
            return EXIT_USER_ERROR
        # The reader of stdout is gone (figkd eval RUN | head): stop quietly. Pointing stdout at
        # /dev/null keeps the interpreter from reporting the same error again when it flushes at exit.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_BROKEN_PIPE
    except (UserError, OSError) as exc:
        _error(exc)
        return EXIT_USER_ERROR
    except Exception as exc:
        from .engine.failure import TrainingError
        from .engine.nonfinite import NonFiniteLossError
        if isinstance(exc, NonFiniteLossError | TrainingError):
            _error(exc)
            return EXIT_NONFINITE if isinstance(exc, NonFiniteLossError) else EXIT_TRAINING_ERROR
        raise


def _stdout_closed() -> bool:
    """Whether stdout is a pipe whose reader has gone (poll reports an error condition on it)."""
    try:
        import select
        poller = select.poll()
        poller.register(sys.stdout.fileno(), select.POLLOUT)
        return any(events & select.POLLERR for _, events in poller.poll(0))
    except (AttributeError, OSError, ValueError):  # no poll (Windows) or no real stdout: assume it is
        return True


def one_line(text: str) -> str:
    """A multi-line message on one line: lines joined with '; ', or with a space after a colon."""
    out = ""
    for line in (x.strip() for x in text.splitlines()):
        if line:
            out += (" " if out.endswith(":") else "; ") + line if out else line
    return out


def _error(exc: BaseException) -> None:
    """Print an error on one line. A bare OSError (no figkd message) gets its file name."""
    text = str(exc)
    if isinstance(exc, OSError) and not isinstance(exc, UserError) and exc.filename and exc.strerror:
        text = f"{exc.strerror}: {exc.filename}"
    print(f"figkd: error: {one_line(text)}", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
