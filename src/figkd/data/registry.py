"""The dataset registry: names, the family each loads, its recipe and its loader kind.

``list_datasets()`` lists the names a loader can be built for. ``build_dataset`` also accepts the bare
family names of the fine-grained sets (``cub200``, ...): the ``_224`` / ``_32`` suffix selects only the
recipe and loader, never a different dataset object.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ..checks import did_you_mean
from ..errors import ConfigError
from .augment import RECIPES, STRONG, Recipe, StrongRecipe
from .base import ArrayDataset, FileDataset
from .cifar import load_cifar100
from .digits import load_digits16_dataset, load_digits_dataset
from .fgvr import load_cub200, load_mit67, load_stanford40, load_stanford_dogs
from .idx import load_fashion_mnist, load_kmnist, load_mnist
from .imagefolder import load_imagefolder
from .tiny_imagenet import load_tiny_imagenet

__all__ = ["DatasetSpec", "build_dataset", "check_dataset_name", "dataset_spec", "list_datasets", "recipe_for"]

Dataset = ArrayDataset | FileDataset


@dataclass(frozen=True)
class DatasetSpec:
    name: str
    family: str
    recipe: str
    loader: str  # "resident" (whole split on the device) or "workers" (JPEG decoding processes)
    size: int | None  # resident image side (None: the arrays as loaded), or the output crop side
    description: str
    fit: str = "resize"  # how resident images reach `size`: "resize" (image files) or "pad" (zero border)


_FAMILIES: dict[str, Callable[..., Dataset]] = {
    "cifar100": load_cifar100,
    "tiny_imagenet": load_tiny_imagenet,
    "digits": load_digits_dataset,
    "digits_16": load_digits16_dataset,
    "cub200": load_cub200,
    "stanford_dogs": load_stanford_dogs,
    "mit67": load_mit67,
    "stanford40": load_stanford40,
    "imagefolder": load_imagefolder,
    "mnist": load_mnist,
    "fashion_mnist": load_fashion_mnist,
    "kmnist": load_kmnist,
}

_FGVR = {
    "cub200": "CUB-200-2011",
    "stanford_dogs": "Stanford Dogs",
    "mit67": "MIT Indoor 67",
    "stanford40": "Stanford 40 Actions",
}

_SPECS: dict[str, DatasetSpec] = {
    "cifar100": DatasetSpec(
        "cifar100", "cifar100", "cifar", "resident", None, "CIFAR-100, 32x32 (Tables 1-2)"
    ),
    "tiny_imagenet": DatasetSpec(
        "tiny_imagenet", "tiny_imagenet", "tiny_imagenet", "resident", 64, "TinyImageNet, 64x64 (Tables 3-4)"
    ),
    "digits": DatasetSpec(
        "digits",
        "digits",
        "digits",
        "resident",
        None,
        "scikit-learn digits upscaled to 32x32 RGB (embedded, no download)",
    ),
    "digits_16": DatasetSpec(
        "digits_16", "digits_16", "digits_16", "resident", None,
        "scikit-learn digits upscaled to 16x16 RGB (embedded; the demo's data)",
    ),
    "imagefolder": DatasetSpec(
        "imagefolder",
        "imagefolder",
        "fgvr_224",
        "workers",
        224,
        "any root/train/<class>, root/val/<class> folder at 224x224",
    ),
    "imagefolder_32": DatasetSpec(
        "imagefolder_32", "imagefolder", "cifar", "resident", 32, "any image folder resized to 32x32"
    ),
}
_IDX = {"mnist": "MNIST", "fashion_mnist": "Fashion-MNIST", "kmnist": "Kuzushiji-MNIST"}
for _fam, _title in _IDX.items():
    _SPECS[_fam] = DatasetSpec(_fam, _fam, _fam, "resident", None, f"{_title}, 28x28 grey (IDX files)")
    _SPECS[f"{_fam}_32"] = DatasetSpec(
        f"{_fam}_32", _fam, f"{_fam}_32", "resident", 32, f"{_title} zero-padded to 32x32", fit="pad"
    )
for _fam, _title in _FGVR.items():
    _SPECS[f"{_fam}_224"] = DatasetSpec(
        f"{_fam}_224", _fam, "fgvr_224", "workers", 224, f"{_title} at 224x224 (Table 5)"
    )
    _SPECS[f"{_fam}_32"] = DatasetSpec(
        f"{_fam}_32", _fam, "cifar", "resident", 32, f"{_title} resized to 32x32 (Tables 6-9)"
    )


def list_datasets() -> list[str]:
    """The names :func:`~figkd.data.build_loader` accepts, sorted."""
    return sorted(_SPECS)


def check_dataset_name(name: str, *, families: bool = False) -> None:
    """ConfigError for a name that is no dataset (``families``: the fine-grained family names that
    `build_dataset` also takes count as datasets), with the closest name and the valid ones."""
    names = list_datasets() + (sorted(_FGVR) if families else [])
    if name in names:
        return
    extra = f" (and the families {', '.join(sorted(_FGVR))} for build_dataset)" if families else ""
    raise ConfigError(f"unknown dataset {name!r}{did_you_mean(name, names)}; valid: {', '.join(list_datasets())}"
                      f"{extra}")


def _family_of(name: str) -> str:
    if name in _SPECS:
        return _SPECS[name].family
    if name not in _FAMILIES:
        check_dataset_name(name, families=True)  # raises: neither a dataset nor a family
    return name


def dataset_spec(name: str) -> DatasetSpec:
    """The spec of a loader name. A bare fine-grained family name is an error that names its variants."""
    if name in _SPECS:
        return _SPECS[name]
    if name in _FGVR:
        raise ValueError(
            f"{name!r} needs a recipe: use {name}_224 (224x224, Table 5) or {name}_32 (32x32, Tables 6-9)"
        )
    _family_of(name)
    raise AssertionError  # pragma: no cover


def build_dataset(
    name: str, root: str | None = None, train: bool = True, skip_corrupt: bool = False
) -> Dataset:
    """Load the ``train`` (else test) split of dataset ``name`` from ``root``, as published.

    ``ds.num_classes``, ``ds.classes`` (names), ``ds.targets`` (``list[int]``), ``len(ds)`` and
    ``ds[i] -> (uint8 tensor (3, H, W), int)``. ``root=None`` is fine for ``digits`` (embedded).
    A missing root or file raises :class:`~figkd.data.base.DatasetNotFoundError` (a
    ``FileNotFoundError``) naming the path, the expected archive and layout, and where to download it.
    """
    return _FAMILIES[_family_of(name)](root, train, skip_corrupt=skip_corrupt)


def recipe_for(name: str) -> Recipe | StrongRecipe:
    """The recipe of a dataset name (``cifar100``, ``cub200_224``, ...) or a recipe name (``cifar``,
    ``tiny_imagenet``, ``digits``, ``fgvr_224``, ``strong``). ``.to_dict()`` gives its parameters."""
    if name == "strong":
        return STRONG
    if name in RECIPES:
        return RECIPES[name]
    return RECIPES[dataset_spec(name).recipe]
