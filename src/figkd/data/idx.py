"""The MNIST family in its published IDX format: ``mnist``, ``fashion_mnist`` and ``kmnist``.

Each is 60,000 training and 10,000 test images of 28x28 grey pixels in 10 classes, published as four
IDX files (Y. LeCun's MNIST page describes the format), plain or gzipped:
``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``, ``t10k-images-idx3-ubyte``,
``t10k-labels-idx1-ubyte`` (each optionally ending in ``.gz``).

``root`` may be the folder holding the four files (e.g. ``/usr/share/datasets/fashion-mnist``, where
Debian's ``dataset-fashion-mnist`` package installs them), or a folder holding torchvision's layout
``<root>/<MNIST|FashionMNIST|KMNIST>/raw/``, or ``<root>/raw/``. Where a file exists both plain and
gzipped, the plain one is read.

The grey plane is copied to the three RGB channels (the CIFAR-style models take 3 channels), giving
uint8 ``(N, 3, 28, 28)`` arrays. The ``_32`` loader names zero-pad them by 2 pixels on each side to
32x32 (exact: the digits of MNIST are already centred in a 28x28 field with a black border; LeCun et
al. 1998 fed LeNet-5 the same padding to 32x32); see ``figkd.data.cache.resident_arrays``.
"""

from __future__ import annotations

import gzip
import os
from collections.abc import Sequence

import numpy as np

from .base import ArrayDataset, DatasetNotFoundError, SplitFileError

__all__ = ["FAMILIES", "IdxFamily", "idx_files", "load_fashion_mnist", "load_kmnist", "load_mnist", "read_idx"]

SIZE = 28
#: IDX type codes (LeCun's MNIST page, "THE IDX FILE FORMAT"); the MNIST family uses 0x08 only.
_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: np.dtype(">i2"), 0x0C: np.dtype(">i4"),
           0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8")}
_FILES = {
    True: ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    False: ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


class IdxFamily:
    """One member of the MNIST family: its name, class names, torchvision folder and where it is published."""

    def __init__(self, name: str, classes: Sequence[str], torchvision_folder: str, published: str):
        self.name = name
        self.classes = list(classes)
        self.torchvision_folder = torchvision_folder
        self.published = published


FAMILIES = {
    "mnist": IdxFamily(
        "mnist", [str(i) for i in range(10)], "MNIST",
        "http://yann.lecun.com/exdb/mnist/ (the four *-idx?-ubyte.gz files)",
    ),
    "fashion_mnist": IdxFamily(
        "fashion_mnist",
        # zalandoresearch/fashion-mnist README.md, "Labels"
        ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
         "Ankle boot"],
        "FashionMNIST",
        "https://github.com/zalandoresearch/fashion-mnist (data/fashion/*.gz); on Debian and Ubuntu "
        "`apt-get install dataset-fashion-mnist` installs them in /usr/share/datasets/fashion-mnist",
    ),
    "kmnist": IdxFamily(
        "kmnist",
        # rois-codh/kmnist kmnist_classmap.csv (romanised): お き す つ な は ま や れ を
        ["o", "ki", "su", "tsu", "na", "ha", "ma", "ya", "re", "wo"],
        "KMNIST",
        "https://github.com/rois-codh/kmnist (Kuzushiji-MNIST, the MNIST-format .gz files)",
    ),
}

LAYOUT = (
    "the IDX files train-images-idx3-ubyte, train-labels-idx1-ubyte, t10k-images-idx3-ubyte and "
    "t10k-labels-idx1-ubyte (each plain or .gz) in root, in root/raw or in root/{folder}/raw"
)


def read_idx(path: str) -> np.ndarray:
    """The array stored in an IDX file (gzipped when its first bytes say so), in its stored dtype.

    Raises SplitFileError naming the file when the header is not IDX or the size does not match it.
    """
    with open(path, "rb") as f:
        head = f.read(2)
    opener = gzip.open if head == b"\x1f\x8b" else open
    try:
        with opener(path, "rb") as f:
            data = f.read()
    except (OSError, EOFError) as e:  # a damaged gzip stream
        raise SplitFileError(f"{path}: cannot read the gzip stream ({e})") from e
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in _DTYPES or data[3] == 0:
        raise SplitFileError(f"{path}: not an IDX file (its header is {data[:4].hex()}, expected 0000 "
                             "<type code> <number of dimensions>)")
    dtype, ndim = np.dtype(_DTYPES[data[2]]), data[3]
    start = 4 + 4 * ndim
    if len(data) < start:
        raise SplitFileError(f"{path}: IDX header cut short ({len(data)} bytes)")
    shape = tuple(int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    expected = int(np.prod(shape)) * dtype.itemsize
    if len(data) - start != expected:
        raise SplitFileError(f"{path}: the header says shape {shape} ({expected} bytes of data) but the file "
                             f"holds {len(data) - start}: truncated or not this file")
    return np.frombuffer(data, dtype=dtype, offset=start).reshape(shape)


def idx_files(family: IdxFamily, root: str, train: bool) -> tuple[str, str]:
    """Paths of the (images, labels) files of a split under ``root`` (see the module docstring)."""
    layout = LAYOUT.format(folder=family.torchvision_folder)
    if not os.path.isdir(root):
        raise DatasetNotFoundError(family.name, root, layout, family.published)
    folders = [root, os.path.join(root, "raw"), os.path.join(root, family.torchvision_folder, "raw")]
    out = []
    for stem in _FILES[train]:
        found = next((os.path.join(d, stem + ext) for d in folders for ext in ("", ".gz")
                      if os.path.isfile(os.path.join(d, stem + ext))), None)
        if found is None:
            raise DatasetNotFoundError(family.name, os.path.join(root, stem + "[.gz]"), layout, family.published)
        out.append(found)
    return out[0], out[1]


def _load(name: str, root: str | None, train: bool) -> ArrayDataset:
    family = FAMILIES[name]
    if root is None:
        raise DatasetNotFoundError(name, None, LAYOUT.format(folder=family.torchvision_folder),
                                   family.published)
    root = os.path.expanduser(os.fspath(root))
    images_path, labels_path = idx_files(family, root, train)
    images = read_idx(images_path)
    labels = read_idx(labels_path)
    if images.dtype != np.uint8 or images.ndim != 3 or images.shape[1:] != (SIZE, SIZE):
        raise SplitFileError(f"{name}: {images_path} holds {images.dtype} {images.shape}, expected uint8 "
                             f"(N, {SIZE}, {SIZE}) images")
    if labels.dtype != np.uint8 or labels.ndim != 1:
        raise SplitFileError(f"{name}: {labels_path} holds {labels.dtype} {labels.shape}, expected uint8 (N,)")
    if len(labels) != len(images):
        raise SplitFileError(f"{name}: {images_path} has {len(images)} images but {labels_path} "
                             f"{len(labels)} labels")
    rgb = np.ascontiguousarray(np.broadcast_to(images[:, None], (len(images), 3, SIZE, SIZE)))
    return ArrayDataset(name, root, train, rgb, labels.astype(np.int64).tolist(), family.classes)


def load_mnist(root: str | None, train: bool = True, **_: object) -> ArrayDataset:
    return _load("mnist", root, train)


def load_fashion_mnist(root: str | None, train: bool = True, **_: object) -> ArrayDataset:
    return _load("fashion_mnist", root, train)


def load_kmnist(root: str | None, train: bool = True, **_: object) -> ArrayDataset:
    return _load("kmnist", root, train)
