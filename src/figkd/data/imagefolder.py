"""``imagefolder``: any user dataset laid out as ``root/train/<class>/*`` and ``root/val/<class>/*``.

Classes are the sorted folder names under ``root/train`` (torchvision's ``ImageFolder`` order); ``val``
must use the same folder names (a subset is fine). Files are collected recursively below each class
folder, sorted, keeping those whose extension is an image extension Pillow reads. A class folder of
``train`` without images is an error (the class could never be learned, and it would still count as
an output of the classifier); so are a split without images, a ``val`` class unknown to ``train`` and a
``train`` of one class (a classifier of one class is right on every image). Symbolic links to folders are
followed, except a link that loops back to a folder above it and a second link to one folder: these are
not followed, and a warning names them.
"""

from __future__ import annotations

import os
import warnings

from .base import FileDataset, SplitFileError, require_dir, require_root

__all__ = ["load_imagefolder", "IMAGE_EXTENSIONS"]

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp", ".gif")
LAYOUT = "root/train/<class>/<images> and root/val/<class>/<images>"
PUBLISHED = None  # the user's own data


def _class_dirs(split_dir: str) -> list[str]:
    return sorted(d for d in os.listdir(split_dir) if os.path.isdir(os.path.join(split_dir, d)))


def _walk(folder: str, skipped: list[str] | None = None):
    """``(dirpath, filenames)`` of ``os.walk(folder)`` in sorted order, following symbolic links to folders,
    except a link back to a folder above it (a loop, which ``os.walk`` follows ~40 levels deep, each level a
    copy of the images, some of other classes) and a second link to a folder already walked: these are not
    followed, and their paths are added to ``skipped``."""
    seen: set[tuple[int, int]] = set()
    for dirpath, dirnames, filenames in os.walk(folder, followlinks=True):
        st = os.stat(dirpath)
        seen.add((st.st_dev, st.st_ino))
        here = os.path.realpath(dirpath)
        keep = []
        for d in sorted(dirnames):
            path = os.path.join(dirpath, d)
            try:
                sd = os.stat(path)
            except OSError:
                continue  # a dangling link
            real = os.path.realpath(path)
            if (sd.st_dev, sd.st_ino) in seen or os.path.commonpath([real, here]) == real:
                if skipped is not None:
                    skipped.append(path)
                continue
            seen.add((sd.st_dev, sd.st_ino))
            keep.append(d)
        dirnames[:] = keep
        yield dirpath, filenames


def _has_images(folder: str) -> bool:
    return any(any(f.lower().endswith(IMAGE_EXTENSIONS) for f in filenames) for _, filenames in _walk(folder))


def _files(folder: str, skipped: list[str] | None = None) -> list[str]:
    out = []
    for dirpath, filenames in _walk(folder, skipped):
        out += [os.path.join(dirpath, f) for f in sorted(filenames) if f.lower().endswith(IMAGE_EXTENSIONS)]
    return out


def load_imagefolder(
    root: str | None, train: bool = True, *, skip_corrupt: bool = False, **_: object
) -> FileDataset:
    root = require_root("imagefolder", root, LAYOUT, PUBLISHED)
    req = dict(expected=LAYOUT, published=PUBLISHED)
    require_dir("imagefolder", root, **req)
    train_dir = require_dir("imagefolder", os.path.join(root, "train"), **req)
    classes = _class_dirs(train_dir)
    if not classes:
        raise SplitFileError(f"imagefolder: {train_dir} holds no class folders; expected {LAYOUT}")
    if len(classes) == 1:  # a classifier of one class is right on every image: a meaningless 100%
        raise SplitFileError(f"imagefolder: {train_dir} holds one class folder ({classes[0]}); a classifier needs "
                             f"two or more classes (one folder of images each); expected {LAYOUT}")
    # Every folder of train/ is a class (it sets the model's output count and FiGKD's grid): an empty one
    # would silently become a class no sample has.
    empty = [os.path.join(train_dir, c) for c in classes if not _has_images(os.path.join(train_dir, c))]
    if empty:
        raise SplitFileError(
            f"imagefolder: class folder {empty[0]} holds no image files ({', '.join(IMAGE_EXTENSIONS)})"
            + (f" (nor do {len(empty) - 1} other(s): {', '.join(empty[1:4])})" if len(empty) > 1 else "")
            + "; add images or remove the folder: every folder of train/ is a class"
        )
    split_dir = train_dir if train else require_dir("imagefolder", os.path.join(root, "val"), **req)
    index = {c: i for i, c in enumerate(classes)}
    unknown = [c for c in _class_dirs(split_dir) if c not in index]
    if unknown:
        raise SplitFileError(
            f"imagefolder: {split_dir} has class folder(s) absent from {train_dir}: "
            f"{', '.join(unknown[:5])}; every class of val/ needs a folder of training images in train/"
        )
    paths, targets, skipped = [], [], []
    for c in _class_dirs(split_dir):
        files = _files(os.path.join(split_dir, c), skipped)
        if train and not files:
            raise SplitFileError(
                f"imagefolder: class folder {os.path.join(split_dir, c)} holds no image files "
                f"({', '.join(IMAGE_EXTENSIONS)}); add its images or remove the folder"
            )
        paths += files
        targets += [index[c]] * len(files)
    if not paths:
        raise SplitFileError(f"imagefolder: no image files ({', '.join(IMAGE_EXTENSIONS)}) under {split_dir}")
    if skipped:
        warnings.warn(f"imagefolder: {len(skipped)} symbolic link(s) under {split_dir} lead back to a folder above "
                      f"them (a loop) or to a folder already read, and were not followed, e.g. {skipped[0]} -> "
                      f"{os.path.realpath(skipped[0])}", stacklevel=2)
    return FileDataset("imagefolder", root, train, paths, targets, classes, skip_corrupt=skip_corrupt)
