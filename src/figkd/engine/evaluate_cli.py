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
    from ..models import load_teacher

    ckpt = Path(args.ckpt)
    model, dataset, data_root = args.model, args.dataset, args.data_root
    norm = None
    if not ckpt.exists():
        raise ConfigError(f"{ckpt} does not exist: pass a figkd run directory (runs/...) or a checkpoint file "
                          "(.safetensors, or an mdistiller/RepDistiller .pth)")
    if ckpt.is_dir():
        run_dir = RunDir(ckpt)
        if not run_dir.has_config():
            raise ConfigError(f"{ckpt} is a folder without config.yaml: pass a figkd run directory or a file")
        model = model or run_dir.require_architecture()
        dataset = dataset or run_dir.dataset
        data_root = data_root or run_dir.data_root
        norm = run_dir.normalization()  # the normalisation the run was trained with (its mean/std fields)
        ckpt = run_dir.weights(args.which)
    if not model or not dataset:
        raise ConfigError("figkd eval needs --model and --dataset unless CKPT is a figkd run directory")
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
    net.to(device)
    result = evaluate(net, loader, device)
    result.update({"model": model, "checkpoint": str(ckpt), "dataset": dataset, "split": args.split})
    print(json.dumps(result, indent=2))
    return 0
