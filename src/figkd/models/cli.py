"""``figkd models``: the model zoo with parameters and MACs, teacher/student ratios, and Table 15.

    figkd models                                   # every model, at its native input size
    figkd models --input-size 32 --num-classes 100
    figkd models --pair resnet32x4 resnet8x4 --input-size 64 --num-classes 200
    figkd models --table15                         # ours beside the paper's Table 15

The top-level CLI registers this with :func:`add_parser`; ``python -m figkd.models.cli`` runs it alone.
"""

from __future__ import annotations

import argparse
import sys

from ..paper import TABLE15, TABLE15_INPUT_SIZE, TABLE15_NUM_CLASSES, TABLE15_PAIRS
from .complexity import Complexity, complexity
from .registry import get_model_info, list_models

DESCRIPTION = (
    "List the model zoo with parameter counts and MACs (multiply-accumulates of convolution and linear "
    "layers, one image), or compare a teacher with a student as in the paper's Table 15."
)


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text!r}")
    return value


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--input-size",
        type=_positive_int,
        default=None,
        metavar="PIXELS",
        help="input height and width (default: 32 for CIFAR-style models, 224 for ImageNet-style ones)",
    )
    parser.add_argument(
        "--num-classes",
        type=_positive_int,
        default=None,
        metavar="N",
        help="classifier outputs (default: 100 for CIFAR-style models, 1000 for ImageNet-style ones)",
    )
    parser.add_argument(
        "--style", choices=["cifar", "imagenet", "custom"],
        help="list only CIFAR- or ImageNet-style models, or those of register_model (FIGKD_PLUGINS)"
    )
    parser.add_argument(
        "--pair",
        nargs=2,
        metavar=("TEACHER", "STUDENT"),
        help="print the teacher/student parameter and MAC ratios (Table 15 of the paper)",
    )
    parser.add_argument(
        "--table15",
        action="store_true",
        help=f"compare every model and pair of the paper's Table 15 with ours "
        f"({TABLE15_INPUT_SIZE}x{TABLE15_INPUT_SIZE}, {TABLE15_NUM_CLASSES} classes)",
    )


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Register the ``models`` subcommand on an ``argparse`` subparsers object (``func=run``)."""
    parser = subparsers.add_parser(
        "models", help="list models with parameters and MACs", description=DESCRIPTION
    )
    _add_arguments(parser)
    parser.set_defaults(func=run)
    return parser


def _default_classes(info) -> int:
    """100 classes for a model of small inputs (CIFAR-style, a registered model below 224 pixels), else 1000."""
    return 100 if info.input_size < 224 else 1000


def _measure(name: str, input_size: int | None, num_classes: int | None) -> Complexity:
    info = get_model_info(name)
    default_classes = _default_classes(info)
    size = input_size if input_size is not None else info.input_size
    try:
        return complexity(info.name, size, num_classes=num_classes if num_classes is not None else default_classes)
    except RuntimeError as error:  # e.g. a pooling layer whose output would be empty
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise ValueError(f"{info.name} cannot take a {size}x{size} input ({reason}); use a larger --input-size "
                         f"(its native size is {info.input_size})") from None


def _print_zoo(args: argparse.Namespace) -> None:
    header = f"{'model':<22} {'style':<8} {'input':>7} {'classes':>7} {'params':>12} {'MACs (M)':>10}"
    print(header)
    print("-" * len(header))
    for name in list_models(style=args.style):
        info = get_model_info(name)
        classes = args.num_classes if args.num_classes is not None else _default_classes(info)
        c = _measure(name, args.input_size, classes)
        size = f"{c.input_size[0]}x{c.input_size[1]}"
        print(f"{name:<22} {info.style:<8} {size:>7} {classes:>7} {c.params:>12,} {c.macs_m:>10.2f}")
    print("\nMACs: convolution and linear layers, batch of one (FLOPs / 2 of torch.utils.flop_counter).")


def _is_table15_setting(args: argparse.Namespace) -> bool:
    return args.input_size == TABLE15_INPUT_SIZE and args.num_classes == TABLE15_NUM_CLASSES


def _print_pair(args: argparse.Namespace) -> None:
    teacher, student = (get_model_info(n).name for n in args.pair)
    t = _measure(teacher, args.input_size, args.num_classes)
    s = _measure(student, args.input_size, args.num_classes)
    paper = TABLE15_PAIRS.get((teacher, student)) if _is_table15_setting(args) else None
    width = max(len(teacher), len(student), 5)
    header = f"{'':<8} {'model':<{width}} {'params':>12} {'MACs (M)':>10}"
    if paper:
        header += f" {'paper params (M)':>17} {'paper MACs (M)':>15}"
    print(header)
    print("-" * len(header))
    for role, name, c in (("teacher", teacher, t), ("student", student, s)):
        line = f"{role:<8} {name:<{width}} {c.params:>12,} {c.macs_m:>10.2f}"
        if paper:
            line += f" {TABLE15[name][0]:>17.2f} {TABLE15[name][1]:>15.2f}"
        print(line)
    line = f"{'ratio':<8} {'':<{width}} {t.params / s.params:>11.2f}x {t.macs / s.macs:>9.2f}x"
    if paper:
        line += f" {paper[0]:>16.2f}x {paper[1]:>14.2f}x"
    print(line)
    size = f"{t.input_size[0]}x{t.input_size[1]}"
    note = f"\nInput {size}; MACs of convolution and linear layers only."
    if paper:
        note += " Paper: Table 15 (its counter also counts BatchNorm; see docs/models.md)."
    print(note)


def _print_table15() -> None:
    size, classes = TABLE15_INPUT_SIZE, TABLE15_NUM_CLASSES
    print(f"Table 15 of the paper vs figkd ({size}x{size} input, {classes} classes)")
    header = f"{'model':<14} {'params (M)':>10} {'paper':>7} {'MACs (M)':>10} {'paper':>9} {'diff':>8}"
    print(header)
    print("-" * len(header))
    ours = {name: complexity(name, size, num_classes=classes) for name in TABLE15}
    for name, (paper_params, paper_macs) in TABLE15.items():
        c = ours[name]
        diff = 100.0 * (c.macs_m / paper_macs - 1.0)
        print(
            f"{name:<14} {c.params_m:>10.2f} {paper_params:>7.2f} "
            f"{c.macs_m:>10.2f} {paper_macs:>9.2f} {diff:>+7.2f}%"
        )
    print()
    header = f"{'pair':<28} {'params ratio':>12} {'paper':>7} {'MACs ratio':>11} {'paper':>8}"
    print(header)
    print("-" * len(header))
    for (teacher, student), (paper_params, paper_macs) in TABLE15_PAIRS.items():
        t, s = ours[teacher], ours[student]
        print(
            f"{teacher + ' / ' + student:<28} {t.params / s.params:>11.2f}x {paper_params:>6.2f}x "
            f"{t.macs / s.macs:>10.2f}x {paper_macs:>7.2f}x"
        )
    print(
        "\nOurs: MACs of convolution and linear layers. The paper's counter (thop-style) also counts 4 "
        "operations per BatchNorm output element; see docs/models.md for the reconciliation and for "
        "ShuffleNetV1, whose paper figure is a 32x32 count."
    )


def run(args: argparse.Namespace) -> int:
    """Run ``figkd models``; returns the exit status."""
    try:
        if args.table15:
            _print_table15()
        elif args.pair:
            _print_pair(args)
        else:
            _print_zoo(args)
    except ValueError as error:
        print(f"figkd models: error: {error}", file=sys.stderr)
        return 2
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="figkd models", description=DESCRIPTION)
    _add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
