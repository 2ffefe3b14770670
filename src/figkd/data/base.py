"""Dataset base classes and the errors every dataset family raises.

Two kinds of dataset objects exist:

- :class:`ArrayDataset` holds the whole split as one uint8 array ``(N, 3, H, W)`` (CIFAR-100, digits).
- :class:`FileDataset` holds a list of image files and decodes one with Pillow on access (TinyImageNet,
  the fine-grained sets, image folders). ``ds[i]`` returns the image at its native size.

Both expose ``name``, ``root``, ``train``, ``classes`` (class names, index = label), ``num_classes``,
``targets`` (``list[int]``), ``len(ds)`` and ``ds[i] -> (uint8 tensor (3, H, W), int)``, and
``ds.subset(indices)``: some of the samples as a dataset of the same class (the training and validation
parts of a split, `figkd.data.split`; int8 calibration images, `figkd.deploy`), which every loader accepts.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence

import numpy as np
import torch

from ..errors import DataError, UserError
from .images import decode_image, scan_images

__all__ = [
    "ArrayDataset",
    "DataError",
    "DatasetNotFoundError",
    "FileDataset",
    "SplitFileError",
    "require_dir",
    "require_root",
    "require_file",
]

NOTHING_DOWNLOADED = "figkd never downloads data: download and extract it yourself."


class DatasetNotFoundError(UserError, FileNotFoundError):
    """A dataset root, folder or file is missing (a :class:`~figkd.errors.UserError` and a
    ``FileNotFoundError``). The message names the path, what was expected there (the official archive
    and its layout) and where the dataset is published (``published`` None: the user's own data).
    ``path`` None: no dataset folder was given at all."""

    def __init__(self, dataset: str, path: str | os.PathLike | None, expected: str, published: str | None):
        self.dataset = dataset
        self.path = None if path is None else os.fspath(path)
        self.expected = expected
        self.published = published
        where = (f"{self.path} not found" if path is not None else
                 "no dataset folder was given: pass --data-root DIR (Python: build_dataset(name, root=DIR))")
        source = (f"The dataset is published at {published}; {NOTHING_DOWNLOADED}" if published
                  else "figkd never downloads data.")
        super().__init__(f"{dataset}: {where}. Expected there: {expected}. {source}")

    def __str__(self) -> str:  # FileNotFoundError would otherwise print only errno/filename
        return self.args[0]


class SplitFileError(DataError):
    """A split or list file (or an image folder) is malformed, empty or names images that are absent."""


def require_root(dataset: str, root: str | os.PathLike | None, expected: str, published: str | None) -> str:
    """``root`` with ``~`` expanded; a DatasetNotFoundError saying to pass --data-root when it is None."""
    if root is None:
        raise DatasetNotFoundError(dataset, None, expected, published)
    return os.path.expanduser(os.fspath(root))


def require_dir(dataset: str, path: str | os.PathLike, expected: str, published: str) -> str:
    path = os.fspath(path)
    if not os.path.isdir(path):
        raise DatasetNotFoundError(dataset, path, expected, published)
    return path


def require_file(dataset: str, path: str | os.PathLike, expected: str, published: str) -> str:
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise DatasetNotFoundError(dataset, path, expected, published)
    return path


def check_files_exist(dataset: str, split_file: str, paths: Sequence[str], shown: int = 5) -> None:
    """Raise :class:`SplitFileError` naming the first few absent images and their count."""
    missing = [p for p in paths if not os.path.isfile(p)]
    if missing:
        head = ", ".join(missing[:shown])
        more = f" (and {len(missing) - shown} more)" if len(missing) > shown else ""
        raise SplitFileError(
            f"{dataset}: {split_file} names {len(missing)} image(s) that are absent: {head}{more}. "
            "Is the archive fully extracted next to the split file?"
        )


class _Base(torch.utils.data.Dataset):
    name: str
    root: str | None
    train: bool
    classes: list[str]
    targets: list[int]
    skipped: list[tuple[str, str]]
    #: For a view made by ``subset``: the dataset it was taken from and the positions it holds, else None.
    parent: _Base | None = None
    parent_indices: list[int] | None = None

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def _as_view_of(self, parent: _Base, indices: list[int]):
        self.parent, self.parent_indices = parent, indices
        self.skipped = []  # reported with the whole split
        return self

    @staticmethod
    def _positions(indices: Sequence[int], n: int) -> list[int]:
        out = [int(i) for i in indices]
        if out and not (0 <= min(out) and max(out) < n):
            raise IndexError(f"subset indices must lie in [0, {n}), got [{min(out)}, {max(out)}]")
        return out

    def __repr__(self) -> str:
        split = "train" if self.train else "test"
        return (
            f"{type(self).__name__}(name={self.name!r}, split={split}, n={len(self)}, "
            f"classes={self.num_classes}, root={self.root!r})"
        )


class ArrayDataset(_Base):
    """A split held in memory as ``images`` uint8 ``(N, 3, H, W)`` and ``targets``."""

    def __init__(
        self,
        name: str,
        root: str | None,
        train: bool,
        images: np.ndarray,
        targets: Sequence[int],
        classes: Sequence[str],
    ):
        images = np.ascontiguousarray(images)
        if images.dtype != np.uint8 or images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(f"{name}: images must be uint8 (N, 3, H, W), got {images.dtype} {images.shape}")
        if len(images) != len(targets):
            raise ValueError(f"{name}: {len(images)} images but {len(targets)} targets")
        self.name, self.root, self.train = name, root, train
        self.images = images
        self.targets = [int(t) for t in targets]
        self.classes = list(classes)
        self.skipped = []
        _check_targets(name, self.targets, len(self.classes))

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        return torch.from_numpy(self.images[i]), self.targets[i]

    def subset(self, indices: Sequence[int]) -> ArrayDataset:
        """The samples at ``indices`` (in that order) as an ArrayDataset of the same name, split and classes
        (a copy of their images), with ``parent`` and ``parent_indices`` naming where they came from;
        IndexError for an index outside the dataset. (A validation split: `figkd.data.split`.)"""
        idx = self._positions(indices, len(self))
        view = ArrayDataset(self.name, self.root, self.train, self.images[idx], [self.targets[i] for i in idx],
                            self.classes)
        return view._as_view_of(self, idx)


class FileDataset(_Base):
    """A split given as image files decoded with Pillow on access (RGB, native size).

    With ``skip_corrupt=True`` every file is decoded once at construction; files that cannot be
    decoded are dropped, listed in ``skipped`` as ``(path, reason)`` and reported with a warning.
    Without it, a corrupt file raises :class:`~figkd.data.images.CorruptImageError` naming it when it
    is read.
    """

    def __init__(
        self,
        name: str,
        root: str,
        train: bool,
        paths: Sequence[str],
        targets: Sequence[int],
        classes: Sequence[str],
        *,
        skip_corrupt: bool = False,
    ):
        if len(paths) != len(targets):
            raise ValueError(f"{name}: {len(paths)} paths but {len(targets)} targets")
        self.name, self.root, self.train = name, root, train
        self.paths = list(paths)
        self.targets = [int(t) for t in targets]
        self.classes = list(classes)
        self.skipped = []
        _check_targets(name, self.targets, len(self.classes))
        if not self.paths:
            raise SplitFileError(f"{name}: the {'train' if train else 'test'} split under {root} is empty")
        if skip_corrupt:
            bad = scan_images(self.paths, name=name)
            if bad:
                drop = {p for p, _ in bad}
                keep = [i for i, p in enumerate(self.paths) if p not in drop]
                self.paths = [self.paths[i] for i in keep]
                self.targets = [self.targets[i] for i in keep]
                self.skipped = bad

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        arr = decode_image(self.paths[i])
        return torch.from_numpy(arr).permute(2, 0, 1).contiguous(), self.targets[i]

    def subset(self, indices: Sequence[int]) -> FileDataset:
        """The samples at ``indices`` (in that order) as a FileDataset of the same name, root, split and
        classes, with ``parent`` and ``parent_indices`` naming where they came from (the resident loaders
        then decode the whole split once, through its cache, and take these rows); IndexError for an index
        outside the dataset. (A validation split: `figkd.data.split`.)"""
        idx = self._positions(indices, len(self))
        view = FileDataset(self.name, self.root, self.train, [self.paths[i] for i in idx],
                           [self.targets[i] for i in idx], self.classes)
        return view._as_view_of(self, idx)

    def fingerprint(self) -> str:
        """A digest of the file list (relative to root) and labels: the key of derived caches."""
        h = hashlib.sha1()
        for p, t in zip(self.paths, self.targets, strict=True):
            h.update(os.path.relpath(p, self.root).encode())
            h.update(b"\0%d\n" % t)
        return h.hexdigest()[:16]


def _check_targets(name: str, targets: Sequence[int], num_classes: int) -> None:
    if targets and (min(targets) < 0 or max(targets) >= num_classes):
        raise SplitFileError(
            f"{name}: labels must lie in [0, {num_classes}), found [{min(targets)}, {max(targets)}]"
        )
