"""figkd.data: the paper's datasets read from their official formats, and fast deterministic loaders.

>>> from figkd.data import build_dataset, build_loader, list_datasets, recipe_for
>>> ds = build_dataset("digits", None, train=True)
>>> loader = build_loader("digits", None, True, 64, device="cpu", seed=0)
>>> loader.set_epoch(0)
>>> batch = next(iter(loader))            # a Batch: batch.images, batch.target, batch.index

See docs/data.md for the layouts, recipes, the determinism/DDP contract and caching.
"""

from .augment import RECIPES, STRONG, Recipe, StrongRecipe
from .base import ArrayDataset, DatasetNotFoundError, FileDataset, SplitFileError
from .batch import Batch
from .images import CorruptImageError
from .loaders import ResidentLoader, WorkerLoader, build_loader, prepare_cache
from .registry import build_dataset, check_dataset_name, dataset_spec, list_datasets, recipe_for


def __getattr__(name: str):
    # `stats` is imported on first use, not with the package: `python -m figkd.data.stats` then runs it
    # without runpy's "found in sys.modules ... prior to execution" RuntimeWarning.
    if name in ("compute_mean_std", "dataset_mean_std"):
        from . import stats

        return getattr(stats, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "ArrayDataset",
    "Batch",
    "CorruptImageError",
    "DatasetNotFoundError",
    "FileDataset",
    "RECIPES",
    "Recipe",
    "ResidentLoader",
    "STRONG",
    "SplitFileError",
    "StrongRecipe",
    "WorkerLoader",
    "build_dataset",
    "build_loader",
    "check_dataset_name",
    "compute_mean_std",
    "dataset_mean_std",
    "dataset_spec",
    "list_datasets",
    "prepare_cache",
    "recipe_for",
]
