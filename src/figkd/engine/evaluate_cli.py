"""``figkd eval``: top-1/top-5 of a checkpoint on a dataset split."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ..errors import ConfigError
from .device import resolve_device
from .distributed import DistInfo
from .evaluate import evaluate
from .rundir import RunDir


def run_eval(args: argparse.Namespace) -> int:
    from ..data import build_dataset, build_loader, check_dataset_name
    from ..models import load_teacher, set_input_normalization

    ckpt = Path(args.ckpt)
    model, dataset, data_root = args.model, args.dataset, args.data_root
    norm = None
    if not ckpt.exists():
        raise ConfigError(f"{ckpt} does not exist: pass a figkd run directory (runs/...) or a checkpoint file "
                          "(.safetensors, or an mdistiller/RepDistiller .pth)")
    if ckpt.is_dir():
        run_dir = RunDir(ckpt)
        if not run_dir.has_config():
            raise run_dir.missing_config("pass a figkd run directory or a checkpoint file")
        model = model or run_dir.require_architecture()
        _check_input_size(run_dir, dataset)
        dataset = dataset or run_dir.dataset
        data_root = data_root or run_dir.data_root
        norm = run_dir.normalization()  # the normalisation the run was trained with (its mean/std fields)
        ckpt = run_dir.weights(args.which)
    if not model or not dataset:
        missing = " and ".join(flag for flag, value in (("--model", model), ("--dataset", dataset)) if not value)
        raise ConfigError(f"figkd eval of the file {ckpt} needs {missing} (a run directory records them)")
    check_dataset_name(dataset)
    device = resolve_device(args.device, DistInfo())
    # Evaluation mode (no augmentation, every sample once) on the chosen split.
    split = build_dataset(dataset, data_root, train=args.split == "train")
    loader = build_loader(dataset, data_root, False, args.batch_size, device=device, dataset=split,
                          mean=norm.mean if norm else None, std=norm.std if norm else None)
    try:
        net = load_teacher(model, str(ckpt), loader.num_classes)
    except (ValueError, KeyError, RuntimeError) as exc:
        raise ConfigError(f"{model} from {ckpt}: {exc}") from exc
    set_input_normalization(net, loader.recipe.mean, loader.recipe.std)  # a Hugging Face model converts it
    net.to(device)
    result = evaluate(net, loader, device)
    result.update({"model": model, "checkpoint": str(ckpt), "dataset": dataset, "split": args.split})
    print(json.dumps(result, indent=2))
    return 0


def _check_input_size(run_dir: RunDir, dataset: str | None) -> None:
    """ConfigError when ``--dataset`` gives images of another size than the run trained on (a model evaluated
    at another size gives numbers, but not the run's: `figkd export`'s models refuse it the same way)."""
    from ..data import check_dataset_name, recipe_for

    if not dataset or dataset == run_dir.dataset or not run_dir.dataset:
        return
    check_dataset_name(dataset)
    trained, given = run_dir.input_size, recipe_for(dataset).size
    if given is not None and (given, given) != tuple(trained):
        raise ConfigError(f"{run_dir.path} was trained on {run_dir.dataset} ({trained[0]}x{trained[1]} images) and "
                          f"--dataset {dataset} gives {given}x{given}: evaluate on a dataset of the run's size (e.g. "
                          f"--dataset {run_dir.dataset} --data-root DIR for other images of it)")
