"""TinyImageNet from the official ``tiny-imagenet-200`` folder (the extracted ``tiny-imagenet-200.zip``).

Layout read::

    tiny-imagenet-200/
      wnids.txt                       200 WordNet ids, one per line
      words.txt                       "<wnid>\\t<names>" for every WordNet id (a superset)
      train/<wnid>/images/*.JPEG      500 images per class
      val/images/*.JPEG               10,000 images
      val/val_annotations.txt         "<file>\\t<wnid>\\t<x0>\\t<y0>\\t<x1>\\t<y1>"

The validation split is the test split (``train=False``), as in the literature (the official test
images have no labels). Labels follow the *sorted* wnids — the order of torchvision's ``ImageFolder``
over ``train/``, which mdistiller and the codebases the paper follows use — so their teachers' output
units match. ``classes`` are the names from ``words.txt``; ``wnids`` the ids.
"""

from __future__ import annotations

import os

from .base import FileDataset, SplitFileError, check_files_exist, require_dir, require_file, require_root

__all__ = ["load_tiny_imagenet"]

PUBLISHED = "http://cs231n.stanford.edu/tiny-imagenet-200.zip (Stanford CS231n)"
FOLDER = "tiny-imagenet-200"
LAYOUT = (
    f"the extracted {FOLDER}.zip: {FOLDER}/ with wnids.txt, words.txt, train/<wnid>/images/*.JPEG, "
    "val/images/*.JPEG and val/val_annotations.txt (root may be that folder or its parent)"
)
IMAGE_EXTS = (".jpeg", ".jpg", ".png")


def _resolve_root(root: str) -> str:
    root = os.path.expanduser(os.fspath(root))
    if os.path.isfile(os.path.join(root, FOLDER, "wnids.txt")):
        return os.path.join(root, FOLDER)
    if os.path.isfile(os.path.join(root, "wnids.txt")) or os.path.basename(os.path.normpath(root)) == FOLDER:
        return root
    if os.path.isdir(os.path.join(root, FOLDER)):
        return os.path.join(root, FOLDER)
    require_dir("tiny_imagenet", root, LAYOUT, PUBLISHED)
    return os.path.join(root, FOLDER)


def _read_lines(path: str) -> list[str]:
    with open(path, encoding="utf-8") as f:
        return [line.rstrip("\r\n") for line in f if line.strip()]


def load_tiny_imagenet(
    root: str | None, train: bool = True, *, skip_corrupt: bool = False, **_: object
) -> FileDataset:
    base = _resolve_root(require_root("tiny_imagenet", root, LAYOUT, PUBLISHED))
    req = dict(expected=LAYOUT, published=PUBLISHED)
    require_dir("tiny_imagenet", base, **req)
    wnids = sorted(
        w.strip() for w in _read_lines(require_file("tiny_imagenet", os.path.join(base, "wnids.txt"), **req))
    )
    if len(set(wnids)) != len(wnids):
        raise SplitFileError(f"tiny_imagenet: {base}/wnids.txt lists a wnid twice")
    words: dict[str, str] = {}
    for line in _read_lines(require_file("tiny_imagenet", os.path.join(base, "words.txt"), **req)):
        wnid, _, names = line.partition("\t")
        words[wnid.strip()] = names.strip()
    classes = [words.get(w, w) for w in wnids]
    index = {w: i for i, w in enumerate(wnids)}

    paths: list[str] = []
    targets: list[int] = []
    if train:
        train_dir = require_dir("tiny_imagenet", os.path.join(base, "train"), **req)
        for w in wnids:
            img_dir = require_dir("tiny_imagenet", os.path.join(train_dir, w, "images"), **req)
            files = sorted(f for f in os.listdir(img_dir) if f.lower().endswith(IMAGE_EXTS))
            paths += [os.path.join(img_dir, f) for f in files]
            targets += [index[w]] * len(files)
    else:
        ann = require_file("tiny_imagenet", os.path.join(base, "val", "val_annotations.txt"), **req)
        img_dir = require_dir("tiny_imagenet", os.path.join(base, "val", "images"), **req)
        for n, line in enumerate(_read_lines(ann), 1):
            parts = line.split("\t")
            if len(parts) < 2:
                raise SplitFileError(f"tiny_imagenet: {ann}:{n}: expected '<file>\\t<wnid>...', got {line!r}")
            fname, wnid = parts[0].strip(), parts[1].strip()
            if wnid not in index:
                raise SplitFileError(f"tiny_imagenet: {ann}:{n}: wnid {wnid!r} is not in wnids.txt")
            paths.append(os.path.join(img_dir, fname))
            targets.append(index[wnid])
        check_files_exist("tiny_imagenet", ann, paths)
    ds = FileDataset("tiny_imagenet", base, train, paths, targets, classes, skip_corrupt=skip_corrupt)
    ds.wnids = wnids
    return ds
