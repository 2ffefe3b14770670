"""Decoded-image arrays and their optional on-disk cache.

- :func:`resident_arrays` turns a split into one uint8 ``(N, 3, S, S)`` array for the device-resident
  loaders: CIFAR-100 and digits as they are; TinyImageNet at 64x64; the ``_32`` variants by a *plain*
  resize of each whole image to 32x32 (aspect ratio not kept: the paper's Tables 6-9 "resize images to
  32x32"; Pillow bilinear with its antialiasing when reducing, as torchvision's ``Resize((32, 32))`` on a
  PIL image).
- :func:`resized_cache` stores the images of a JPEG dataset once with the shorter side resized to 256
  (the test recipe's first step), for repeated runs of the ``_224`` recipes.

With ``cache_dir`` the arrays are saved with ``np.save`` next to a JSON manifest; every file is written
to a temporary name and renamed into place (atomic on POSIX), the manifest last, so an interrupted run
never leaves a cache that looks complete. The manifest records a fingerprint of the file list and labels;
a cache whose fingerprint differs from the dataset's is rebuilt, never used.
"""

from __future__ import annotations

import json
import logging
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from ..atomic import atomic_write
from .base import ArrayDataset, FileDataset
from .images import default_threads, open_image, resize_exact, resize_shorter, to_rgb

__all__ = ["ResizedCache", "resident_arrays", "resized_cache"]

log = logging.getLogger("figkd.data")
# 2: images of more than 8 bits per sample are scaled to 8 bits (format 1 clipped them): rebuilt.
FORMAT = 2


def _save_npy(path: str, arr: np.ndarray) -> None:
    atomic_write(path, lambda f: np.save(f, arr, allow_pickle=False))


def _save_manifest(path: str, manifest: dict) -> None:
    atomic_write(path, lambda f: f.write(json.dumps(manifest, indent=1, sort_keys=True).encode()))


def _read_manifest(path: str, expect: dict) -> dict | None:
    try:
        with open(path, encoding="utf-8") as f:
            m = json.load(f)
    except (OSError, ValueError):
        return None
    if any(m.get(k) != v for k, v in expect.items()):
        log.warning("cache %s does not match the dataset (%s); rebuilding it", path, expect)
        return None
    return m


def _key(ds: FileDataset, tag: str) -> str:
    return f"{ds.name}-{'train' if ds.train else 'test'}-{tag}-{ds.fingerprint()}"


def _decode_resized(path: str, size: int) -> np.ndarray:
    with open_image(path) as img:
        return np.asarray(resize_exact(to_rgb(img, path), size), dtype=np.uint8).transpose(2, 0, 1)


def resident_arrays(
    ds: ArrayDataset | FileDataset,
    size: int | None,
    *,
    cache_dir: str | None = None,
    threads: int | None = None,
    fit: str = "resize",
) -> tuple[np.ndarray, np.ndarray]:
    """``(images uint8 (N, 3, S, S), targets int64 (N,))`` of ``ds``; ``size`` None keeps an
    :class:`ArrayDataset` as it is, an int brings every image of a :class:`FileDataset` to ``size x size``
    (plain resize; a no-op for images already that size). ``fit="pad"`` instead zero-pads the square
    images of an :class:`ArrayDataset` equally on every side up to ``size`` (the MNIST family's 28x28 to
    32x32: exact, no interpolation)."""
    if fit not in ("resize", "pad"):
        raise ValueError(f"fit must be 'resize' or 'pad', got {fit!r}")
    if isinstance(ds, FileDataset) and ds.parent is not None:  # a view (subset): the whole split's arrays, once
        images, targets = resident_arrays(ds.parent, size, cache_dir=cache_dir, threads=threads, fit=fit)
        rows = np.asarray(ds.parent_indices, dtype=np.int64)
        return images[rows], targets[rows]
    targets = np.asarray(ds.targets, dtype=np.int64)
    if isinstance(ds, ArrayDataset):
        h, w = ds.images.shape[-2:]
        if size is None or (h, w) == (size, size):
            return ds.images, targets
        if fit == "pad" and h == w and h < size and (size - h) % 2 == 0:
            b = (size - h) // 2
            return np.pad(ds.images, ((0, 0), (0, 0), (b, b), (b, b))), targets
        raise ValueError(f"{ds.name}: images are {(h, w)}, the recipe needs {size}x{size}")
    if fit != "resize":
        raise ValueError(f"{ds.name}: fit={fit!r} applies to in-memory datasets; image files are resized")
    if size is None:
        raise ValueError(f"{ds.name}: a file dataset needs a size to be held on the device")
    expect = {
        "format": FORMAT,
        "dataset": ds.name,
        "train": ds.train,
        "size": size,
        "fingerprint": ds.fingerprint(),
        "count": len(ds),
    }
    base = os.path.join(cache_dir, _key(ds, f"{size}px")) if cache_dir else None
    if base and _read_manifest(base + ".json", expect) is not None:
        images = np.load(base + ".images.npy", allow_pickle=False)
        labels = np.load(base + ".labels.npy", allow_pickle=False)
        if images.shape == (len(ds), 3, size, size) and np.array_equal(labels, targets):
            return images, targets
        log.warning("cache %s is inconsistent; rebuilding it", base)
    log.info("decoding %d images of %s to %dx%d", len(ds), ds.name, size, size)
    images = np.empty((len(ds), 3, size, size), dtype=np.uint8)
    with ThreadPoolExecutor(threads or default_threads()) as pool:
        for i, arr in enumerate(pool.map(lambda p: _decode_resized(p, size), ds.paths, chunksize=32)):
            images[i] = arr
    if base:
        _save_npy(base + ".labels.npy", targets)
        _save_npy(base + ".images.npy", images)
        _save_manifest(base + ".json", expect)
        log.info("cached %s", base)
    return images, targets


@dataclass
class ResizedCache:
    """Images of a split stored once with the shorter side resized to ``shorter``, as one flat uint8
    array (memory-mapped, shared by worker processes) with per-image ``offsets`` and ``shapes``
    ``(H, W)``; each image is ``flat[offsets[i]:offsets[i] + H * W * 3]`` in HWC order."""

    base: str
    shorter: int
    offsets: np.ndarray
    shapes: np.ndarray
    _flat: np.ndarray | None = None

    def image(self, i: int) -> np.ndarray:
        if self._flat is None:  # opened lazily, so that each worker process maps it itself
            self._flat = np.load(self.base + ".flat.npy", mmap_mode="r", allow_pickle=False)
        h, w = (int(v) for v in self.shapes[i])
        o = int(self.offsets[i])
        return np.asarray(self._flat[o : o + h * w * 3]).reshape(h, w, 3)

    def __getstate__(self):
        d = dict(self.__dict__)
        d["_flat"] = None
        return d


def _decode_shorter(path: str, shorter: int) -> np.ndarray:
    with open_image(path) as img:
        return np.asarray(resize_shorter(to_rgb(img, path), shorter), dtype=np.uint8)


def resized_cache(
    ds: FileDataset, shorter: int, cache_dir: str, *, threads: int | None = None
) -> ResizedCache:
    """Build (once) or open the shorter-side-``shorter`` cache of ``ds`` in ``cache_dir``."""
    expect = {
        "format": FORMAT,
        "dataset": ds.name,
        "train": ds.train,
        "shorter": shorter,
        "fingerprint": ds.fingerprint(),
        "count": len(ds),
    }
    base = os.path.join(cache_dir, _key(ds, f"short{shorter}"))
    if _read_manifest(base + ".json", expect) is None:
        log.info("building the shorter-side-%d cache of %d images of %s", shorter, len(ds), ds.name)
        shapes = np.empty((len(ds), 2), dtype=np.int64)
        offsets = np.empty(len(ds), dtype=np.int64)
        chunks: list[np.ndarray] = []
        pos = 0
        with ThreadPoolExecutor(threads or default_threads()) as pool:
            for i, arr in enumerate(pool.map(lambda p: _decode_shorter(p, shorter), ds.paths, chunksize=16)):
                shapes[i] = arr.shape[:2]
                offsets[i] = pos
                pos += arr.size
                chunks.append(arr.reshape(-1))
        flat = np.concatenate(chunks) if chunks else np.empty(0, np.uint8)
        del chunks
        _save_npy(base + ".shapes.npy", shapes)
        _save_npy(base + ".offsets.npy", offsets)
        _save_npy(base + ".flat.npy", flat)
        _save_manifest(base + ".json", expect)
        log.info("cached %s (%.1f MB)", base, flat.nbytes / 2**20)
    shapes = np.load(base + ".shapes.npy", allow_pickle=False)
    offsets = np.load(base + ".offsets.npy", allow_pickle=False)
    return ResizedCache(base, shorter, offsets, shapes)
