"""A validation split carved out of a training split: stratified, seeded, recorded.

Model selection (``figkd tune``, docs/tuning.md) must not look at the test split. A run with
``val_fraction > 0`` holds out that fraction of its *training* split as a validation split, trains on the
rest and evaluates on the held-out part:

- :func:`validation_indices` chooses the held-out samples: ``sklearn.model_selection.train_test_split``
  of ``range(N)`` with ``test_size=fraction``, ``stratify=targets`` and ``random_state=seed``: ceil(fraction
  x N) samples, every class keeping its share to within one sample, sorted - the same call that makes the
  ``digits`` splits (`figkd.data.digits`);
- :func:`split_dataset` returns the two parts as views of the dataset (:meth:`ArrayDataset.subset`,
  :meth:`FileDataset.subset`: the same class, accepted by every loader), the training part holding the
  complement of the validation indices, in order;
- :class:`ValidationSplit` is what a run directory records (``validation.json``, written by
  `figkd.engine.rundir.RunDir`): the fraction, the seed, the size of the training split it was taken from,
  the held-out indices and their SHA-256, so that a resumed run keeps its split even if the library that
  drew it changed.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import DataError

__all__ = ["ValidationSplit", "indices_digest", "split_dataset", "validation_indices"]


def indices_digest(indices: Sequence[int]) -> str:
    """SHA-256 (hex) of the indices as little-endian int64: a short name for a split."""
    return hashlib.sha256(np.asarray(indices, dtype="<i8").tobytes()).hexdigest()


def validation_indices(targets: Sequence[int], fraction: float, seed: int, *, name: str = "dataset") -> list[int]:
    """The sorted indices of a stratified validation split of ``fraction`` of ``targets`` (see the module
    docstring). DataError when a class has a single sample or the split would hold fewer samples than
    there are classes (a stratified split needs both)."""
    from sklearn.model_selection import train_test_split

    if not 0.0 < fraction < 1.0:
        raise ValueError(f"fraction must be in (0, 1), got {fraction!r}")
    y = np.asarray(targets, dtype=np.int64)
    try:
        _, held_out = train_test_split(np.arange(len(y)), test_size=fraction, random_state=seed, stratify=y)
    except ValueError as error:  # sklearn: a class of one sample, or fewer held-out samples than classes
        raise DataError(f"{name}: cannot hold out a stratified validation split of val_fraction {fraction:g} "
                        f"from {len(y)} training images ({error}); choose another val_fraction") from None
    return sorted(int(i) for i in held_out)


@dataclass(frozen=True)
class ValidationSplit:
    """The held-out part of a training split of ``train_count`` samples (see the module docstring)."""

    fraction: float
    seed: int
    train_count: int
    indices: tuple[int, ...]

    @classmethod
    def draw(cls, targets: Sequence[int], fraction: float, seed: int, *, name: str = "dataset") -> ValidationSplit:
        return cls(float(fraction), int(seed), len(targets), tuple(validation_indices(targets, fraction, seed,
                                                                                     name=name)))

    @property
    def sha256(self) -> str:
        return indices_digest(self.indices)

    def fits(self, fraction: float, seed: int, train_count: int) -> bool:
        """Whether this split is the one a run of ``fraction``/``seed`` on ``train_count`` samples uses."""
        return (self.fraction, self.seed, self.train_count) == (float(fraction), int(seed), int(train_count))

    def to_dict(self) -> dict[str, Any]:
        return {"val_fraction": self.fraction, "val_seed": self.seed, "train_count": self.train_count,
                "val_count": len(self.indices), "sha256": self.sha256, "indices": list(self.indices)}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ValidationSplit:
        """The inverse of :meth:`to_dict`; ValueError when the indices do not match their digest or lie
        outside the training split (KeyError/TypeError for a malformed mapping)."""
        split = cls(float(d["val_fraction"]), int(d["val_seed"]), int(d["train_count"]),
                    tuple(int(i) for i in d["indices"]))
        if split.sha256 != d["sha256"]:
            raise ValueError("the indices do not match their sha256")
        if split.indices and not (0 <= min(split.indices) and max(split.indices) < split.train_count):
            raise ValueError(f"indices outside [0, {split.train_count})")
        return split


def split_dataset(dataset, split: ValidationSplit):
    """``(training part, validation part)`` of ``dataset`` (its training split) as views of the same class
    (``.subset``); ValueError when ``split`` was drawn from a split of another size."""
    if split.train_count != len(dataset):
        raise ValueError(f"the validation split was drawn from {split.train_count} training images, the "
                         f"dataset has {len(dataset)}")
    held = np.zeros(len(dataset), dtype=bool)
    held[list(split.indices)] = True
    return dataset.subset(np.flatnonzero(~held).tolist()), dataset.subset(list(split.indices))
