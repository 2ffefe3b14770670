"""``figkd eval``: top-1/top-5 of a checkpoint on a dataset split."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ..errors import ConfigError
from .checkpoint import CheckpointManager
from .device import resolve_device
from .distributed import DistInfo
from .evaluate import evaluate


def run_eval(args: argparse.Namespace) -> int:
    from ..data import build_dataset, build_loader, check_dataset_name
    from ..data.normalization import load_for_run
    from ..models import load_teacher
    from .rundir import read_config

    ckpt = Path(args.ckpt)
    model, dataset, data_root = args.model, args.dataset, args.data_root
    norm = None
    if not ckpt.exists():
        raise ConfigError(f"{ckpt} does not exist: pass a figkd run directory (runs/...) or a checkpoint file "
                          "(.safetensors, or an mdistiller/RepDistiller .pth)")
    if ckpt.is_dir():
        cfg_path = ckpt / "config.yaml"
        if not cfg_path.is_file():
            raise ConfigError(f"{ckpt} is a folder without config.yaml: pass a figkd run directory or a file")
        saved = read_config(ckpt)
        model = model or saved.get("model") or saved.get("student")
        dataset = dataset or saved.get("dataset")
        data_root = data_root or saved.get("data_root")
        try:  # the normalisation the run was trained with (its mean/std fields)
            norm = load_for_run(ckpt, saved)
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
        ckpt = CheckpointManager(ckpt).weights_path(args.which)
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
