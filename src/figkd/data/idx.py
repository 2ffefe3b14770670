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

The three sets share the format and the sizes, so the files of one read fine as another; figkd therefore
recognises the published files by their MD5 (:data:`KNOWN_MD5`) and raises :class:`DataError` when the
files under ``root`` are another known set's (``--dataset mnist`` on Fashion-MNIST's files would train
and export under the wrong class names). Files matching no known checksum (your own IDX files, a
re-compressed copy of MNIST) are read as before, without a message.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import zlib
from collections.abc import Sequence

import numpy as np

from ..errors import DataError
from .base import ArrayDataset, DatasetNotFoundError, SplitFileError

__all__ = ["FAMILIES", "KNOWN_MD5", "IdxFamily", "idx_files", "known_file", "load_fashion_mnist", "load_kmnist",
           "load_mnist", "read_idx"]

SIZE = 28
#: IDX type codes (LeCun's MNIST page, "THE IDX FILE FORMAT"); the MNIST family uses 0x08 only.
_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: np.dtype(">i2"), 0x0C: np.dtype(">i4"),
           0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8")}
_FILES = {
    True: ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    False: ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


class IdxFamily:
    """One member of the MNIST family: its name, class names, torchvision folder, where it is published and
    its title (``Fashion-MNIST``, for messages)."""

    def __init__(self, name: str, classes: Sequence[str], torchvision_folder: str, published: str, title: str):
        self.name = name
        self.classes = list(classes)
        self.torchvision_folder = torchvision_folder
        self.published = published
        self.title = title


FAMILIES = {
    "mnist": IdxFamily(
        "mnist", [str(i) for i in range(10)], "MNIST",
        "http://yann.lecun.com/exdb/mnist/ (the four *-idx?-ubyte.gz files)", "MNIST",
    ),
    "fashion_mnist": IdxFamily(
        "fashion_mnist",
        # zalandoresearch/fashion-mnist README.md, "Labels"
        ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
         "Ankle boot"],
        "FashionMNIST",
        "https://github.com/zalandoresearch/fashion-mnist (data/fashion/*.gz); on Debian and Ubuntu "
        "`apt-get install dataset-fashion-mnist` installs them in /usr/share/datasets/fashion-mnist",
        "Fashion-MNIST",
    ),
    "kmnist": IdxFamily(
        "kmnist",
        # rois-codh/kmnist kmnist_classmap.csv (romanised): お き す つ な は ま や れ を
        ["o", "ki", "su", "tsu", "na", "ha", "ma", "ya", "re", "wo"],
        "KMNIST",
        "https://github.com/rois-codh/kmnist (Kuzushiji-MNIST, the MNIST-format .gz files)", "KMNIST",
    ),
}

#: MD5 (hex) of the published files of each set, by file name. The ``.gz`` values are the ``resources``
#: lists of torchvision (pytorch/vision ``torchvision/datasets/mnist.py``, classes ``MNIST``,
#: ``FashionMNIST`` and ``KMNIST``): the files as their authors publish them. The names without ``.gz``
#: are the MD5 of the decompressed content, known for Fashion-MNIST only: ``md5sum`` of the gunzipped
#: files of Debian's ``dataset-fashion-mnist`` 0.0~git20200523.55506a9-1 (Debian re-compresses them, so
#: their ``.gz`` MD5 differ from the published ones; tests/test_data_idx_real.py checks their images).
#: No authoritative source gives the decompressed MD5 of MNIST or KMNIST, and their files were not at
#: hand: decompressed or re-compressed copies of those two are not recognised.
KNOWN_MD5: dict[str, dict[str, str]] = {
    "mnist": {
        "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
        "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
        "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
        "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
    },
    "fashion_mnist": {
        "train-images-idx3-ubyte.gz": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
        "train-labels-idx1-ubyte.gz": "25c81989df183df01b3e8a0aad5dffbe",
        "t10k-images-idx3-ubyte.gz": "bef4ecab320f06d8554ea6380940ec79",
        "t10k-labels-idx1-ubyte.gz": "bb300cfdad3c16e7a12a480ee83cd310",
        "train-images-idx3-ubyte": "f4a8712d7a061bf5bd6d2ca38dc4d50a",
        "train-labels-idx1-ubyte": "9018921c3c673c538a1fc5bad174d6f9",
        "t10k-images-idx3-ubyte": "8181f5470baa50b63fa0f6fddb340f0a",
        "t10k-labels-idx1-ubyte": "15d484375f8d13e6eb1aabb0c3f46965",
    },
    "kmnist": {
        "train-images-idx3-ubyte.gz": "bdb82020997e1d708af4cf47b453dcf7",
        "train-labels-idx1-ubyte.gz": "e144d726b3acfaa3e44228e80efcd344",
        "t10k-images-idx3-ubyte.gz": "5c965bf0a639b31b8f53240b1b52f4d7",
        "t10k-labels-idx1-ubyte.gz": "7320c461ea6c1c855c0b718fb2a4b134",
    },
}

LAYOUT = (
    "the IDX files train-images-idx3-ubyte, train-labels-idx1-ubyte, t10k-images-idx3-ubyte and "
    "t10k-labels-idx1-ubyte (each plain or .gz) in root, in root/raw or in root/{folder}/raw"
)


def _file_bytes(path: str) -> tuple[bytes, bytes]:
    """(the file's bytes, its content): the content is the gunzipped bytes when the file starts with the
    gzip magic, else the bytes themselves."""
    with open(path, "rb") as f:
        raw = f.read()
    if raw[:2] != b"\x1f\x8b":
        return raw, raw
    try:
        return raw, gzip.decompress(raw)
    except (OSError, EOFError, zlib.error) as e:  # a damaged gzip stream
        raise SplitFileError(f"{path}: cannot read the gzip stream ({e})") from e


def _parse_idx(path: str, data: bytes) -> np.ndarray:
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


def read_idx(path: str) -> np.ndarray:
    """The array stored in an IDX file (gzipped when its first bytes say so), in its stored dtype.

    Raises SplitFileError naming the file when the header is not IDX or the size does not match it.
    """
    return _parse_idx(path, _file_bytes(path)[1])


def _published(data: bytes) -> tuple[str, str] | None:
    digest = hashlib.md5(data, usedforsecurity=False).hexdigest()
    return next(((name, published) for name, files in KNOWN_MD5.items()
                 for published, md5 in files.items() if md5 == digest), None)


def known_file(raw: bytes, content: bytes) -> tuple[str, str, bool] | None:
    """Which published file of :data:`KNOWN_MD5` a file is, from its bytes ``raw`` and its (decompressed)
    ``content``: ``(set name, published file name, matched on the content)``, or None for a file matching
    no known MD5. Costs one MD5 pass over ``raw`` and, for a gzipped file that matches none as it is, one
    over ``content`` (0.04 s and 0.08 s for Fashion-MNIST's 26 MB / 47 MB training images on one core)."""
    hit = _published(raw)
    if hit is not None:
        return hit[0], hit[1], False
    hit = _published(content) if content is not raw else None
    return None if hit is None else (hit[0], hit[1], True)


def _read_checked(name: str, path: str) -> np.ndarray:
    """The array of ``path`` for set ``name``; DataError when the file is another known set's."""
    raw, content = _file_bytes(path)
    match = known_file(raw, content)
    if match is not None and match[0] != name:
        other, published, inner = FAMILIES[match[0]], match[1], match[2]
        base = os.path.basename(path)
        how = (f"the content of {base} has the MD5 of {other.title}'s {published}" if inner
               else f"{base} matches its published MD5" if base == published
               else f"{base} has the MD5 of {other.title}'s {published}")
        raise DataError(f"{name}: the files in {os.path.dirname(path)} are {other.title}'s ({how}): use "
                        f"--dataset {other.name} (or {other.name}_32), or point --data-root at "
                        f"{FAMILIES[name].title}'s files")
    return _parse_idx(path, content)


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
    images = _read_checked(name, images_path)
    labels = _read_checked(name, labels_path)
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
