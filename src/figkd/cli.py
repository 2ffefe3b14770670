"""The ``figkd`` command line: train, distill, eval, demo, models.

Configuration errors (an unknown model, dataset, objective or key, a missing dataset or checkpoint,
a teacher with another class count) are printed as one line ``figkd: error: ...`` and exit with
status 2 before any training starts.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from .config import ConfigError, RunConfig, apply_overrides, load_yaml, parse_set

#: Dedicated flags of train/distill and the config field each one sets.
_RUN_FLAGS: list[tuple[str, str, dict[str, Any]]] = [
    ("--dataset", "dataset", {}),
    ("--data-root", "data_root", {}),
    ("--model", "model", {}),
    ("--teacher", "teacher", {}),
    ("--teacher-ckpt", "teacher_ckpt", {}),
    ("--epochs", "epochs", {"type": int}),
    ("--batch-size", "batch_size", {"type": int}),
    ("--lr", "lr", {"type": float}),
    ("--seed", "seed", {"type": int}),
    ("--device", "device", {}),
    ("--out", "out", {}),
]


def _add_run_flags(p: argparse.ArgumentParser, command: str) -> None:
    p.add_argument("--config", help="YAML file of config fields (see below)")
    for flag, key, kw in _RUN_FLAGS:
        if command == "train" and key in ("teacher", "teacher_ckpt"):
            continue
        if command == "distill" and key == "model":
            continue
        p.add_argument(flag, dest=key, default=None, help=f"sets {key}", **kw)
    from .losses import list_presets
    presets = ", ".join(list_presets())
    if command == "distill":
        p.add_argument("--student", nargs="+", default=None,
                       help="student architecture(s); several train side by side on one teacher forward")
        p.add_argument("--peers", nargs="+", default=None, metavar="ARCH",
                       help="train these architectures together from scratch by deep mutual learning (objective "
                            "default dml; no teacher needed), one run directory each: <out>/peer<i>-<arch>")
        p.add_argument("--objective", nargs="+", default=None,
                       help=f"objective preset(s) ({presets}; default figkd) or, with --config/--set, a term list "
                            "(see 'loss terms' below); several train side by side, one run directory each")
    else:
        p.add_argument("--objective", default=None, help="objective preset (default vanilla)")
    p.add_argument("--set", dest="set_items", action="append", default=[], metavar="KEY=VALUE",
                   help="set any config field (value parsed as YAML); repeatable")
    p.add_argument("--resume", action="store_true", help="continue the unfinished run in the run directory")
    p.add_argument("--overwrite", action="store_true",
                   help="replace a different or unfinished run found in the run directory")


def build_configs(args: argparse.Namespace, command: str) -> list[RunConfig]:
    """Defaults < --config file < dedicated flags < --set, expanded over several students/objectives."""
    values: dict[str, Any] = {}
    if args.config:
        values.update(load_yaml(args.config))
    for _, key, _ in _RUN_FLAGS:
        v = getattr(args, key, None)
        if v is not None:
            values[key] = v
    values.update(parse_set(args.set_items))
    students = getattr(args, "student", None)
    objectives = args.objective
    if command == "train":
        if objectives is not None:
            values["objective"] = objectives
        return [apply_overrides(RunConfig(), values)]
    if getattr(args, "peers", None):
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
        from .engine.run import member_name
        configs = [c.replace(out=f"{values['out']}/{member_name(c, command)}") for c in configs]
    return configs


def _cmd_run(args: argparse.Namespace, command: str) -> int:
    from .engine.run import run
    from .engine.trainer import summary_json
    configs = build_configs(args, command)
    from .engine.distributed import from_environment
    summaries = run(configs, command, resume=args.resume, overwrite=args.overwrite)
    if from_environment().is_main:
        print(summary_json(summaries))
    return 0


def _cmd_eval(args: argparse.Namespace) -> int:
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
    lines.append("loss terms (objective: [{term: NAME, weight: W, warmup: EPOCHS, OPTION: VALUE, ...}, ...]):")
    lines += [f"  {term_spec(name).summary}" for name in list_terms()]
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="figkd", description="Frequency-aware knowledge distillation.")
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

    p = sub.add_parser("eval", help="top-1/top-5 of a checkpoint on a dataset split")
    p.add_argument("ckpt", help="a figkd run directory, a .safetensors file or an mdistiller/RepDistiller .pth")
    p.add_argument("--model", help="architecture (default: the run directory's)")
    p.add_argument("--dataset", help="dataset (default: the run directory's)")
    p.add_argument("--data-root", dest="data_root", help="dataset folder (default: the run directory's)")
    p.add_argument("--split", choices=("test", "train"), default="test")
    p.add_argument("--which", choices=("best", "last"), default="best", help="which weights of a run directory")
    p.add_argument("--batch-size", dest="batch_size", type=int, default=512)
    p.add_argument("--device", default="auto")
    p.set_defaults(func=_cmd_eval)

    p = sub.add_parser("demo", help="teacher, student, KD and FiGKD on the bundled digits data (CPU, minutes)")
    p.add_argument("--out", default="runs/demo", help="folder of the demo's runs (default runs/demo)")
    p.add_argument("--epochs", type=int, default=None, help="epochs of every run (default: the demo's)")
    p.add_argument("--device", default="auto")
    p.add_argument("--overwrite", action="store_true", help="start again instead of reusing finished runs")
    p.set_defaults(func=_cmd_demo)

    from .models.cli import add_parser as add_models_parser
    add_models_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    from .engine.trainer import NonFiniteLossError

    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (ConfigError, FileNotFoundError) as exc:
        _error(exc)
        return 2
    except NonFiniteLossError as exc:
        _error(exc)
        return 1


def _error(exc: BaseException) -> None:
    """Print an error on one line (multi-line messages are joined with '; ')."""
    text = "; ".join(line.strip() for line in str(exc).splitlines() if line.strip())
    print(f"figkd: error: {text}", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
