"""Per-channel mean and standard deviation of a dataset, to check or derive a recipe's normalisation.

``python -m figkd.data.stats tiny_imagenet /data`` prints the statistics of the training split as the
resident loader holds it (for ``_32`` variants: after the resize to 32x32; for the ``_224`` names and
families: the images at their native size). Values are over all pixels of the split, in [0, 1], the
standard deviation the population one — the convention of the published CIFAR-100 values.
"""

from __future__ import annotations

import argparse
import json

import numpy as np
import torch

__all__ = ["compute_mean_std", "dataset_mean_std"]


def compute_mean_std(images) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Mean and std per channel of a uint8 ``(N, C, H, W)`` array/tensor or of any dataset whose items
    are ``(uint8 (C, H, W) tensor, label)`` (sizes may differ). Accumulated in float64."""
    total = 0
    s = s2 = None
    if isinstance(images, np.ndarray | torch.Tensor):
        arr = images.numpy() if isinstance(images, torch.Tensor) else images
        chunks = (arr[i : i + 1024] for i in range(0, len(arr), 1024))
    else:
        chunks = (np.asarray(images[i][0])[None] for i in range(len(images)))
    for chunk in chunks:
        x = chunk.astype(np.float64) / 255.0
        c = x.shape[1]
        x = x.transpose(1, 0, 2, 3).reshape(c, -1)
        s = x.sum(1) if s is None else s + x.sum(1)
        s2 = (x * x).sum(1) if s2 is None else s2 + (x * x).sum(1)
        total += x.shape[1]
    if not total:
        raise ValueError("no pixels")
    mean = s / total
    std = np.sqrt(np.maximum(s2 / total - mean**2, 0.0))
    return tuple(float(v) for v in mean), tuple(float(v) for v in std)


def dataset_mean_std(name: str, root: str | None = None, train: bool = True, cache_dir: str | None = None,
                     dataset=None):
    """:func:`compute_mean_std` of dataset ``name`` as its resident loader holds it (see module doc).

    ``dataset``: an already built split of ``name``'s family (``root`` and ``train`` are then unused).
    """
    from .cache import resident_arrays
    from .registry import _SPECS, build_dataset

    ds = dataset if dataset is not None else build_dataset(name, root, train)
    spec = _SPECS.get(name)
    if spec is not None and spec.loader == "resident":
        images, _ = resident_arrays(ds, spec.size, cache_dir=cache_dir, fit=spec.fit)
        return compute_mean_std(images)
    return compute_mean_std(ds)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m figkd.data.stats", description=__doc__.split("\n\n")[0])
    p.add_argument("name")
    p.add_argument("root", nargs="?", default=None)
    p.add_argument("--test", action="store_true", help="use the test split")
    p.add_argument("--cache-dir", default=None)
    a = p.parse_args(argv)
    mean, std = dataset_mean_std(a.name, a.root, not a.test, a.cache_dir)
    print(
        json.dumps(
            {
                "dataset": a.name,
                "split": "test" if a.test else "train",
                "mean": [round(v, 4) for v in mean],
                "std": [round(v, 4) for v in std],
            }
        )
    )


if __name__ == "__main__":
    main()
