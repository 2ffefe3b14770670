"""``figkd export``, ``figkd bench`` and ``figkd eval FILE.onnx`` (docs/deploy.md).

The parsers are built without the deploy extra; each command checks for it (`figkd.deploy.extra`) before it
imports anything that needs onnx or onnxruntime, so a missing extra is one line naming
``pip install figkd[deploy]``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ..checks import Int
from ..errors import ConfigError
from .extra import require_extra

__all__ = ["add_parsers", "is_onnx_file", "run_eval_onnx"]


def _count(name: str, minimum: int = 1):
    check = Int(min=minimum)

    def parse(text: str) -> int:
        try:
            return check.check(name, int(text))
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be {check.describe()}, got {text!r}") from None

    parse.__name__ = name
    return parse


def add_parsers(subparsers) -> None:
    """Register ``export`` and ``bench`` on an ``argparse`` subparsers object."""
    p = subparsers.add_parser(
        "export", help="the student of a run as an ONNX model (fp32; --int8 adds a quantised one)",
        description="Export the student of RUN_DIR to ONNX with a dynamic batch axis and its preprocessing "
                    "(input size, mean/std, class names) in the model's metadata; check it against PyTorch on a "
                    "test batch; with --int8 also quantise it (static QDQ, per-channel weights) on training "
                    "images; print test top-1 of PyTorch, ONNX fp32 and int8 side by side. Needs the deploy "
                    "extra: pip install figkd[deploy].")
    p.add_argument("run_dir", metavar="RUN_DIR", help="a figkd run directory")
    p.add_argument("--format", choices=("onnx",), default="onnx", help="the model format (onnx)")
    p.add_argument("--which", choices=("best", "last"), default="best", help="which weights of the run (default best)")
    p.add_argument("--int8", action="store_true", help="also write the int8 model, FILE.int8.onnx beside FILE")
    p.add_argument("--calibration", type=_count("--calibration"), default=512, metavar="N",
                   help="training images the int8 model is calibrated on (default 512)")
    p.add_argument("--out", default=None, metavar="FILE",
                   help="the fp32 model's file (default RUN_DIR/deploy/<architecture>.onnx)")
    p.add_argument("--batch-size", dest="batch_size", type=_count("--batch-size"), default=256,
                   help="evaluation batch size (default 256)")
    p.add_argument("--threads", type=_count("--threads"), default=None,
                   help="onnxruntime intra-op threads (default: onnxruntime's, one per core)")
    p.set_defaults(func=_cmd_export)

    p = subparsers.add_parser(
        "bench", help="latency and size of a student: PyTorch eager, onnxruntime fp32 and int8",
        description="Latency (median and p90 over timed calls after warm-up), images/s, file size, parameters "
                    "and MACs of a run's student in PyTorch eager and onnxruntime fp32 and int8 (an export and "
                    "a quantisation made in memory), or of an exported .onnx file in onnxruntime, on the CPU "
                    "and CUDA where present. Prints a table and writes JSON. Needs the deploy extra.")
    p.add_argument("target", metavar="RUN_DIR|FILE.onnx", help="a figkd run directory or a figkd-exported .onnx")
    p.add_argument("--which", choices=("best", "last"), default="best", help="which weights of a run (default best)")
    p.add_argument("--batch", nargs="+", type=_count("--batch"), default=[1, 64], metavar="N",
                   help="batch sizes (default 1 64)")
    p.add_argument("--threads", type=_count("--threads"), default=None,
                   help="intra-op threads of PyTorch and onnxruntime alike (default: torch.get_num_threads())")
    p.add_argument("--warmup", type=_count("--warmup", 0), default=10, help="untimed calls first (default 10)")
    p.add_argument("--repeats", type=_count("--repeats"), default=50, help="timed calls per batch size (default 50)")
    p.add_argument("--calibration", type=_count("--calibration"), default=256, metavar="N",
                   help="training images the in-memory int8 model of a run is calibrated on (default 256)")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto",
                   help="cpu only, or also CUDA (auto: where present)")
    p.add_argument("--json", dest="out", default=None, metavar="FILE",
                   help="the JSON record (default RUN_DIR/deploy/bench.json, or FILE.bench.json beside the model)")
    p.set_defaults(func=_cmd_bench)


def _cmd_export(args: argparse.Namespace) -> int:
    require_extra("export")
    from .export_run import export_run

    export_run(args.run_dir, which=args.which, out=args.out, int8=args.int8, calibration=args.calibration,
               batch_size=args.batch_size, threads=args.threads)
    return 0


def _cmd_bench(args: argparse.Namespace) -> int:
    require_extra("bench")
    from .bench import bench

    target = Path(args.target)
    if not target.exists():
        raise ConfigError(f"{target} does not exist: pass a figkd run directory or a .onnx file from figkd export")
    bench(target, which=args.which, batches=args.batch, threads=args.threads, warmup=args.warmup,
          repeats=args.repeats, calibration=args.calibration, device=args.device, out=args.out)
    return 0


def is_onnx_file(path: str) -> bool:
    """Whether ``figkd eval`` is given an ONNX model (by its name: ``*.onnx``)."""
    return str(path).lower().endswith(".onnx")


def run_eval_onnx(args: argparse.Namespace) -> int:
    """``figkd eval FILE.onnx``: top-1/top-5 of the model with onnxruntime on ``--split`` of ``--dataset`` (default:
    the dataset in the model's metadata, read from ``--data-root`` or the folder recorded there); prints JSON
    like ``figkd eval RUN_DIR``."""
    require_extra("eval")
    from .metadata import ModelCard
    from .runtime import evaluate_onnx, model_metadata, session
    from .student import evaluation_loader

    path = Path(args.ckpt)
    if not path.is_file():
        raise ConfigError(f"{path} does not exist: pass an .onnx file written by figkd export")
    if args.model:
        raise ConfigError("--model applies to weight files; an .onnx file names its architecture in its metadata")
    sess = session(path, device=args.device)
    card = ModelCard.from_metadata(model_metadata(sess), where=str(path))
    loader = evaluation_loader(card, args.batch_size, split=args.split, dataset=args.dataset, data_root=args.data_root)
    result = evaluate_onnx(sess, loader)
    result.update({"model": card.architecture, "checkpoint": str(path), "precision": card.precision,
                   "runtime": f"onnxruntime {sess.get_providers()[0]}", "dataset": args.dataset or card.dataset,
                   "split": args.split})
    print(json.dumps(result, indent=2))
    return 0
