"""``figkd analyze hf-accuracy | spectrum | tsne | predictions | overhead | sensitivity``.

The top-level CLI registers it with :func:`add_parser`. Each subcommand calls the function of the same name
in :mod:`figkd.analysis`, prints a short table of its numbers and the files it wrote.
"""

from __future__ import annotations

import argparse
from importlib import import_module

from ..errors import ConfigError, UserError

# The modules (the package's attributes of the same names are the functions).
hf_module = import_module("figkd.analysis.hf_accuracy")
overhead_module = import_module("figkd.analysis.overhead")
predictions_module = import_module("figkd.analysis.predictions")
sensitivity_module = import_module("figkd.analysis.sensitivity")
spectrum_module = import_module("figkd.analysis.spectrum")
tsne_module = import_module("figkd.analysis.tsne")

FMT = argparse.RawDescriptionHelpFormatter


def _runs(p: argparse.ArgumentParser, what: str) -> None:
    p.add_argument("run_dirs", nargs="+", metavar="RUN_DIR", help=what)
    p.add_argument("--labels", nargs="+", default=None, help="a name per run for the figure (default: from configs)")
    p.add_argument("--out", default=None, help="folder for the PNG and JSON (default: FIRST_RUN_DIR/analysis)")
    p.add_argument("--which", choices=("best", "last"), default="best", help="which weights of each run")
    p.add_argument("--device", default="auto", help="cpu, cuda, cuda:N or auto")


def _wavelet(p: argparse.ArgumentParser) -> None:
    p.add_argument("--wavelet", default="haar", help="wavelet of the 2D DWT (default haar, the paper's)")
    p.add_argument("--level", type=int, default=1, help="decomposition level J (default 1, the paper's)")


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Register ``analyze`` and its subcommands on an ``argparse`` subparsers object."""
    parser = subparsers.add_parser("analyze", help="the paper's analyses (Figs. 1, 2, 4, 5, 6; Table 14)",
                                   description="The paper's analyses, each writing a PNG and a JSON of its "
                                               "numbers into FIRST_RUN_DIR/analysis or --out (docs/analysis.md).")
    sub = parser.add_subparsers(dest="analysis", required=True, metavar="ANALYSIS")

    p = sub.add_parser("hf-accuracy", help="top-1 from the high-frequency logits only (Fig. 2)",
                       description=hf_module.__doc__, formatter_class=FMT)
    _runs(p, "run directories of the models (e.g. teacher and student)")
    _wavelet(p)
    p.set_defaults(func=lambda a: _done(hf_module, lambda: hf_module.hf_accuracy(
        a.run_dirs, labels=a.labels, out=a.out, which=a.which, device=a.device, wavelet=a.wavelet, level=a.level)))

    p = sub.add_parser("spectrum", help="logit grids and their low/high-frequency parts (Fig. 5)",
                       description=spectrum_module.__doc__, formatter_class=FMT)
    _runs(p, "run directories of the models (e.g. teacher, KD student, FiGKD student)")
    p.add_argument("--images", nargs="+", type=int, default=None, help="test-image indices to draw")
    _wavelet(p)
    p.set_defaults(func=lambda a: _done(spectrum_module, lambda: spectrum_module.spectrum(
        a.run_dirs, labels=a.labels, images=a.images, out=a.out, which=a.which, device=a.device,
        wavelet=a.wavelet, level=a.level)))

    p = sub.add_parser("tsne", help="t-SNE of the students' penultimate embeddings (Fig. 6)",
                       description=tsne_module.__doc__, formatter_class=FMT)
    _runs(p, "run directories of two or more models (e.g. KD and FiGKD students)")
    p.add_argument("--classes", nargs="+", type=int, default=None, help="class indices (default: the first ten)")
    p.add_argument("--max-per-class", type=int, default=None, help="at most this many test images per class")
    p.add_argument("--perplexity", type=float, default=30.0)
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=lambda a: _done(tsne_module, lambda: tsne_module.tsne(
        a.run_dirs, labels=a.labels, classes=a.classes, max_per_class=a.max_per_class, perplexity=a.perplexity,
        seed=a.seed, out=a.out, which=a.which, device=a.device)))

    p = sub.add_parser("predictions", help="images where teacher, KD and FiGKD students disagree (Fig. 1)",
                       description=predictions_module.__doc__, formatter_class=FMT)
    _runs(p, "run directories: the reference (teacher), the baseline (KD student), then others (FiGKD student)")
    p.add_argument("--max-images", type=int, default=8, help="disagreeing images drawn (default 8)")
    p.add_argument("--pairs", type=int, default=5, help="most confused class pairs (default 5)")
    p.set_defaults(func=lambda a: _done(predictions_module, lambda: predictions_module.predictions(
        a.run_dirs, labels=a.labels, max_images=a.max_images, pairs=a.pairs, out=a.out, which=a.which,
        device=a.device)))

    p = sub.add_parser("overhead", help="time per step of KD and FiGKD at J = 1, 2, 3 (Table 14)",
                       description=overhead_module.__doc__, formatter_class=FMT)
    p.add_argument("--run", default=None, metavar="RUN_DIR",
                   help="take teacher, student, dataset and batch size from this distill run")
    p.add_argument("--teacher", default="resnet32x4")
    p.add_argument("--student", default="resnet8x4")
    p.add_argument("--dataset", default="cifar100", help="image shape and class count (cifar100, tiny_imagenet, "
                                                         "digits)")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--levels", nargs="+", type=int, default=None,
                   help="FiGKD levels J (default: those of 1 2 3 that the dataset's class grid allows)")
    p.add_argument("--steps", type=int, default=20, help="steps per timed epoch (default 20)")
    p.add_argument("--repeats", type=int, default=5, help="timed epochs per objective (default 5; median)")
    p.add_argument("--mode", default=None, help="fp32, bf16_cl, compile or graph (default: graph on CUDA, fp32 "
                                                "on CPU: the engine's default)")
    p.add_argument("--device", default="auto")
    p.add_argument("--out", default=None, help="folder for the PNG and JSON (default: RUN_DIR/analysis)")
    p.set_defaults(func=lambda a: _done(overhead_module, lambda: overhead_module.overhead(
        teacher=a.teacher, student=a.student, dataset=a.dataset, batch_size=a.batch_size, levels=a.levels,
        steps=a.steps, repeats=a.repeats, device=a.device, mode=a.mode, run=a.run, out=a.out)))

    p = sub.add_parser("sensitivity", help="top-1 against the CE and detail weights of Eq. 7 (Fig. 4)",
                       description=sensitivity_module.__doc__, formatter_class=FMT)
    p.add_argument("runs_dir", metavar="RUNS_DIR", help="folder searched for run directories")
    p.add_argument("--teacher", default="resnet32x4")
    p.add_argument("--student", default="resnet8x4")
    p.add_argument("--metric", choices=("last", "best"), default="last")
    p.add_argument("--out", default=None, help="folder for the PNG and JSON (default: RUNS_DIR/analysis)")
    p.set_defaults(func=lambda a: _done(sensitivity_module, lambda: sensitivity_module.sensitivity(
        a.runs_dir, teacher=a.teacher, student=a.student, metric=a.metric, out=a.out)))
    return parser


def _done(module, analysis) -> int:
    """Run ``analysis()``; bad arguments (ValueError: a class, image or level out of range) become one-line
    errors (ConfigError, exit 2)."""
    try:
        result = analysis()
    except UserError:
        raise
    except ValueError as exc:
        raise ConfigError(str(exc)) from exc
    print(module.summary(result))
    print("wrote " + ", ".join(str(f) for f in result["files"]))
    return 0
