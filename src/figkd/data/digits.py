"""``digits``: scikit-learn's bundled handwritten digits (UCI optdigits test set, 1,797 images of 8x8
pixels with 17 grey levels, 10 classes) as 32x32 RGB uint8 images — real data that needs no download.
``digits_16``: the same images at 16x16 (each pixel a 2x2 block), 4x cheaper for the CIFAR-style models
(``figkd demo`` uses it). Nearest upscaling repeats every pixel equally often, so both have the 8x8
images' mean and std.

Conversion, fixed so that the data (and the mean/std of its recipe) never change:

- grey level ``v`` in 0..16 -> ``round(v * 255 / 16)`` in 0..255 (uint8);
- 8x8 -> 32x32 (or 16x16) by nearest-neighbour upscaling (each pixel becomes a 4x4 (2x2) block; exact, no
  dependence on an interpolation library), the grey plane copied to the three RGB channels;
- a stratified 80/20 split: ``sklearn.model_selection.train_test_split(range(1797), test_size=0.2,
  random_state=0, stratify=target)``, each split's indices sorted -> 1,437 train / 360 test images.
"""

from __future__ import annotations

import functools

import numpy as np

from .base import ArrayDataset

__all__ = ["load_digits16_dataset", "load_digits_dataset", "digits_arrays"]

UPSCALE = 4  # 8 * 4 = 32


@functools.lru_cache(maxsize=1)
def _split() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    d = load_digits()
    y = d.target.astype(np.int64)
    idx_train, idx_test = train_test_split(np.arange(len(y)), test_size=0.2, random_state=0, stratify=y)
    return d.images, y, np.sort(idx_train), np.sort(idx_test)


def digits_arrays(train: bool, upscale: int = UPSCALE) -> tuple[np.ndarray, np.ndarray]:
    """``(images uint8 (N, 3, 8 * upscale, 8 * upscale), targets int64 (N,))`` of the chosen split."""
    images, y, idx_train, idx_test = _split()
    idx = idx_train if train else idx_test
    grey = np.rint(images[idx] * (255.0 / 16.0)).astype(np.uint8)  # (N, 8, 8)
    big = grey.repeat(upscale, axis=1).repeat(upscale, axis=2)  # (N, 8 * upscale, 8 * upscale)
    images = np.ascontiguousarray(np.repeat(big[:, None], 3, axis=1))
    return images, y[idx]


def load_digits_dataset(root: str | None = None, train: bool = True, **_: object) -> ArrayDataset:
    images, targets = digits_arrays(train)
    return ArrayDataset("digits", None, train, images, targets.tolist(), [str(i) for i in range(10)])


def load_digits16_dataset(root: str | None = None, train: bool = True, **_: object) -> ArrayDataset:
    images, targets = digits_arrays(train, upscale=2)
    return ArrayDataset("digits_16", None, train, images, targets.tolist(), [str(i) for i in range(10)])
