"""CIFAR-100 from the official python version: the ``cifar-100-python`` folder (pickled ``train``,
``test``, ``meta``) or the ``cifar-100-python.tar.gz`` archive itself, read without extracting.

The pickles are read with a restricted unpickler that accepts only numpy arrays and plain Python
containers, never arbitrary objects (figkd never unpickles arbitrary objects). Labels are the 100
fine labels; class names come from ``meta['fine_label_names']``.
"""

from __future__ import annotations

import io
import os
import pickle
import tarfile

import numpy as np

from .base import ArrayDataset, DatasetNotFoundError, SplitFileError, require_root

__all__ = ["load_cifar100"]

PUBLISHED = "https://www.cs.toronto.edu/~kriz/cifar.html (CIFAR-100 python version)"
ARCHIVE = "cifar-100-python.tar.gz"
FOLDER = "cifar-100-python"
LAYOUT = (
    f"the folder {FOLDER}/ with the pickled files train, test and meta, or the archive {ARCHIVE} "
    "(root may be the folder, its parent, the archive or the archive's folder)"
)

# Everything an official CIFAR pickle (written by Python 2's cPickle with numpy) or a Python 3
# re-pickle of the same dict may reference. Anything else is refused.
_ALLOWED = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"),
    ("_codecs", "encode"),
    ("copy_reg", "_reconstructor"),
    ("copyreg", "_reconstructor"),
    ("__builtin__", "object"),
    ("builtins", "object"),
}


class _RestrictedUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        if (module, name) not in _ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name} from a CIFAR pickle")
        if module == "numpy.core.multiarray":  # numpy >= 2 moved it; avoid the deprecation shim
            module = "numpy._core.multiarray" if hasattr(np, "_core") else module
        elif module == "__builtin__":
            module = "builtins"
        elif module == "copy_reg":
            module = "copyreg"
        return super().find_class(module, name)


def _load_pickle(data: bytes, where: str) -> dict:
    try:
        obj = _RestrictedUnpickler(io.BytesIO(data), encoding="latin1").load()
    except Exception as e:  # noqa: BLE001 - any failure means the file is not a CIFAR pickle
        raise SplitFileError(f"cifar100: {where} is not a readable CIFAR-100 pickle: {e}") from e
    if not isinstance(obj, dict):
        raise SplitFileError(f"cifar100: {where} holds a {type(obj).__name__}, expected a dict")
    return {(k.decode("latin1") if isinstance(k, bytes) else k): v for k, v in obj.items()}


def _find_source(root: str) -> tuple[str, str]:
    """``("dir", folder)`` or ``("tar", archive)``."""
    root = os.path.expanduser(os.fspath(root))
    if os.path.isfile(root):
        if tarfile.is_tarfile(root):
            return "tar", root
        raise SplitFileError(f"cifar100: {root} is a file but not a tar archive; expected {LAYOUT}")
    if not os.path.isdir(root):
        raise DatasetNotFoundError("cifar100", root, LAYOUT, PUBLISHED)
    files = ("train", "test", "meta")
    for folder in (root, os.path.join(root, FOLDER)):
        if all(os.path.isfile(os.path.join(folder, f)) for f in files):
            return "dir", folder
    if os.path.isfile(os.path.join(root, ARCHIVE)):
        return "tar", os.path.join(root, ARCHIVE)
    for folder in (os.path.join(root, FOLDER), root):
        present = [f for f in files if os.path.isfile(os.path.join(folder, f))]
        if present or folder != root and os.path.isdir(folder):
            missing = next(f for f in files if f not in present)
            raise DatasetNotFoundError("cifar100", os.path.join(folder, missing), LAYOUT, PUBLISHED)
    raise DatasetNotFoundError("cifar100", os.path.join(root, FOLDER), LAYOUT, PUBLISHED)


def _read_members(kind: str, path: str, names: list[str]) -> dict[str, bytes]:
    if kind == "dir":
        out = {}
        for n in names:
            with open(os.path.join(path, n), "rb") as f:
                out[n] = f.read()
        return out
    out = {}
    with tarfile.open(path, "r:*") as tar:
        members = {m.name.lstrip("./"): m for m in tar.getmembers() if m.isfile()}
        for n in names:
            m = members.get(f"{FOLDER}/{n}")
            if m is None:
                raise DatasetNotFoundError("cifar100", f"{path}:{FOLDER}/{n}", LAYOUT, PUBLISHED)
            f = tar.extractfile(m)
            assert f is not None
            out[n] = f.read()
    return out


def load_cifar100(root: str | None, train: bool = True, **_: object) -> ArrayDataset:
    root = require_root("cifar100", root, LAYOUT, PUBLISHED)
    kind, path = _find_source(root)
    split = "train" if train else "test"
    raw = _read_members(kind, path, [split, "meta"])
    where = f"{path}:{split}" if kind == "tar" else os.path.join(path, split)
    d = _load_pickle(raw[split], where)
    meta = _load_pickle(raw["meta"], where.replace(split, "meta"))
    for key in ("data", "fine_labels"):
        if key not in d:
            raise SplitFileError(f"cifar100: {where} has no '{key}' entry (keys: {sorted(d)})")
    if "fine_label_names" not in meta:
        raise SplitFileError(f"cifar100: meta has no 'fine_label_names' entry (keys: {sorted(meta)})")
    data = np.asarray(d["data"], dtype=np.uint8)
    if data.ndim != 2 or data.shape[1] != 3 * 32 * 32:
        raise SplitFileError(f"cifar100: {where}: data has shape {data.shape}, expected (N, 3072)")
    images = data.reshape(-1, 3, 32, 32)  # each row: the red, green and blue 32x32 planes
    classes = [c.decode() if isinstance(c, bytes) else str(c) for c in meta["fine_label_names"]]
    return ArrayDataset("cifar100", os.fspath(root), train, images, list(d["fine_labels"]), classes)
