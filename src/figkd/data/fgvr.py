"""The four fine-grained sets of the paper (Section 4.1.2, Tables 5-9), read from their official layouts.

- ``cub200``: ``CUB_200_2011/`` (the extracted ``CUB_200_2011.tgz``) with ``images.txt``,
  ``image_class_labels.txt``, ``train_test_split.txt``, ``classes.txt`` and ``images/`` — 5,994 train /
  5,794 test images, 200 classes.
- ``stanford_dogs``: ``Images/<synset>-<breed>/*.jpg`` (``images.tar``) with ``train_list.mat`` /
  ``test_list.mat`` (``lists.tar``; MATLAB files with ``file_list`` and 1-based ``labels``) — 12,000 /
  8,580 images, 120 classes.
- ``mit67``: ``Images/<scene>/*.jpg`` (``indoorCVPR_09.tar``) with ``TrainImages.txt`` /
  ``TestImages.txt`` (lines ``<scene>/<file>``) — 5,360 / 1,340 images, 67 classes.
- ``stanford40``: ``JPEGImages/*.jpg`` (``Stanford40_JPEGImages.zip``) with ``ImageSplits/actions.txt``
  and ``ImageSplits/<action>_train.txt`` / ``<action>_test.txt`` (``Stanford40_ImageSplits.zip``) —
  4,000 / 5,532 images, 40 classes.

Each loader returns a :class:`~figkd.data.base.FileDataset`; the ``_224`` and ``_32`` names of the
registry select the recipe, not a different dataset.
"""

from __future__ import annotations

import os

import numpy as np

from .base import FileDataset, SplitFileError, check_files_exist, require_dir, require_file, require_root

__all__ = ["load_cub200", "load_mit67", "load_stanford40", "load_stanford_dogs"]

CUB_PUBLISHED = "https://www.vision.caltech.edu/datasets/cub_200_2011/ (CUB_200_2011.tgz)"
CUB_LAYOUT = (
    "the extracted CUB_200_2011.tgz: CUB_200_2011/ with images.txt, image_class_labels.txt, "
    "train_test_split.txt, classes.txt and images/<class>/*.jpg (root may be that folder or its parent)"
)
DOGS_PUBLISHED = "http://vision.stanford.edu/aditya86/ImageNetDogs/ (images.tar and lists.tar)"
DOGS_LAYOUT = (
    "images.tar and lists.tar extracted into one folder: Images/<synset>-<breed>/*.jpg, "
    "train_list.mat and test_list.mat"
)
MIT_PUBLISHED = (
    "https://web.mit.edu/torralba/www/indoor.html (indoorCVPR_09.tar, TrainImages.txt, TestImages.txt)"
)
MIT_LAYOUT = (
    "Images/<scene>/*.jpg (the extracted indoorCVPR_09.tar) with TrainImages.txt and TestImages.txt beside it"
)
S40_PUBLISHED = (
    "http://vision.stanford.edu/Datasets/40actions.html "
    "(Stanford40_JPEGImages.zip, Stanford40_ImageSplits.zip)"
)
S40_LAYOUT = (
    "JPEGImages/*.jpg and ImageSplits/ with actions.txt and <action>_train.txt / <action>_test.txt "
    "(the two zips extracted into one folder)"
)


def _lines(path: str) -> list[str]:
    with open(path, encoding="utf-8", errors="strict") as f:
        return [line.strip() for line in f if line.strip()]


def _int_pairs(dataset: str, path: str) -> dict[int, str]:
    out: dict[int, str] = {}
    for n, line in enumerate(_lines(path), 1):
        key, _, value = line.partition(" ")
        try:
            out[int(key)] = value.strip()
        except ValueError:
            raise SplitFileError(f"{dataset}: {path}:{n}: expected '<id> <value>', got {line!r}") from None
    return out


# ---------------------------------------------------------------------------------------------- CUB
def load_cub200(
    root: str | None, train: bool = True, *, skip_corrupt: bool = False, **_: object
) -> FileDataset:
    root = require_root("cub200", root, CUB_LAYOUT, CUB_PUBLISHED)
    base = os.path.join(root, "CUB_200_2011") if os.path.isdir(os.path.join(root, "CUB_200_2011")) else root
    req = dict(expected=CUB_LAYOUT, published=CUB_PUBLISHED)
    require_dir("cub200", base, **req)
    f = {
        n: require_file("cub200", os.path.join(base, n), **req)
        for n in ("images.txt", "image_class_labels.txt", "train_test_split.txt", "classes.txt")
    }
    img_dir = require_dir("cub200", os.path.join(base, "images"), **req)
    images = _int_pairs("cub200", f["images.txt"])
    labels = _int_pairs("cub200", f["image_class_labels.txt"])
    is_train = _int_pairs("cub200", f["train_test_split.txt"])
    class_lines = _int_pairs("cub200", f["classes.txt"])
    ids = sorted(class_lines)
    if ids != list(range(1, len(ids) + 1)):
        raise SplitFileError(f"cub200: {f['classes.txt']}: class ids must be 1..{len(ids)}")
    # "001.Black_footed_Albatross" -> "Black_footed_Albatross"
    classes = [class_lines[i].split(".", 1)[-1] for i in ids]
    paths, targets = [], []
    for img_id in sorted(images):
        if img_id not in labels or img_id not in is_train:
            raise SplitFileError(
                f"cub200: image id {img_id} of images.txt is missing from "
                f"{'image_class_labels.txt' if img_id not in labels else 'train_test_split.txt'}"
            )
        if (is_train[img_id].strip() == "1") != train:
            continue
        paths.append(os.path.join(img_dir, images[img_id]))
        targets.append(int(labels[img_id]) - 1)
    check_files_exist("cub200", f["images.txt"], paths)
    return FileDataset("cub200", base, train, paths, targets, classes, skip_corrupt=skip_corrupt)


# --------------------------------------------------------------------------------------------- Dogs
def load_stanford_dogs(
    root: str | None, train: bool = True, *, skip_corrupt: bool = False, **_: object
) -> FileDataset:
    import scipy.io

    root = require_root("stanford_dogs", root, DOGS_LAYOUT, DOGS_PUBLISHED)
    req = dict(expected=DOGS_LAYOUT, published=DOGS_PUBLISHED)
    require_dir("stanford_dogs", root, **req)
    img_dir = require_dir("stanford_dogs", os.path.join(root, "Images"), **req)
    mat_path = require_file(
        "stanford_dogs", os.path.join(root, "train_list.mat" if train else "test_list.mat"), **req
    )
    try:
        mat = scipy.io.loadmat(mat_path)
    except Exception as e:  # noqa: BLE001 - any failure: not a readable .mat
        raise SplitFileError(f"stanford_dogs: cannot read {mat_path} as a MATLAB file: {e}") from e
    for key in ("file_list", "labels"):
        if key not in mat:
            raise SplitFileError(f"stanford_dogs: {mat_path} has no '{key}' variable")
    files = [_mat_str(x) for x in mat["file_list"].ravel()]
    labels = [int(x) for x in mat["labels"].ravel()]
    if len(files) != len(labels):
        raise SplitFileError(f"stanford_dogs: {mat_path}: {len(files)} files but {len(labels)} labels")
    folders = sorted(d for d in os.listdir(img_dir) if os.path.isdir(os.path.join(img_dir, d)))
    if not folders:
        raise SplitFileError(f"stanford_dogs: {img_dir} holds no class folders; {DOGS_LAYOUT}")
    # "n02085620-Chihuahua" -> "Chihuahua"; the 1-based labels follow the sorted synset folders.
    classes = [d.split("-", 1)[-1] for d in folders]
    for f, lab in zip(files, labels, strict=True):
        folder = f.replace("\\", "/").split("/", 1)[0]
        if not 1 <= lab <= len(folders) or folders[lab - 1] != folder:
            raise SplitFileError(
                f"stanford_dogs: {mat_path}: {f} has label {lab}, but label {lab} is folder "
                f"{folders[lab - 1] if 1 <= lab <= len(folders) else '<none>'} of the sorted Images/ folders"
            )
    paths = [os.path.join(img_dir, f) for f in files]
    check_files_exist("stanford_dogs", mat_path, paths)
    return FileDataset(
        "stanford_dogs", root, train, paths, [lab - 1 for lab in labels], classes, skip_corrupt=skip_corrupt
    )


def _mat_str(x) -> str:
    """A MATLAB cell entry as scipy reads it: (nested) 1-element arrays around one string."""
    while isinstance(x, np.ndarray):
        if x.size != 1:
            raise SplitFileError(f"stanford_dogs: file_list entry {x!r} is not a single string")
        x = x.ravel()[0]
    return str(x)


# -------------------------------------------------------------------------------------------- MIT67
def load_mit67(
    root: str | None, train: bool = True, *, skip_corrupt: bool = False, **_: object
) -> FileDataset:
    root = require_root("mit67", root, MIT_LAYOUT, MIT_PUBLISHED)
    req = dict(expected=MIT_LAYOUT, published=MIT_PUBLISHED)
    require_dir("mit67", root, **req)
    img_dir = require_dir("mit67", os.path.join(root, "Images"), **req)
    split = require_file("mit67", os.path.join(root, "TrainImages.txt" if train else "TestImages.txt"), **req)
    classes = sorted(d for d in os.listdir(img_dir) if os.path.isdir(os.path.join(img_dir, d)))
    index = {c: i for i, c in enumerate(classes)}
    paths, targets = [], []
    for n, line in enumerate(_lines(split), 1):
        rel = line.replace("\\", "/")
        scene = rel.split("/", 1)[0]
        if "/" not in rel or scene not in index:
            raise SplitFileError(
                f"mit67: {split}:{n}: {line!r} does not name an image as <scene>/<file> "
                f"with <scene> a folder of {img_dir}"
            )
        paths.append(os.path.join(img_dir, rel))
        targets.append(index[scene])
    check_files_exist("mit67", split, paths)
    return FileDataset("mit67", root, train, paths, targets, classes, skip_corrupt=skip_corrupt)


# --------------------------------------------------------------------------------------- Stanford40
def load_stanford40(
    root: str | None, train: bool = True, *, skip_corrupt: bool = False, **_: object
) -> FileDataset:
    root = require_root("stanford40", root, S40_LAYOUT, S40_PUBLISHED)
    req = dict(expected=S40_LAYOUT, published=S40_PUBLISHED)
    require_dir("stanford40", root, **req)
    img_dir = require_dir("stanford40", os.path.join(root, "JPEGImages"), **req)
    split_dir = require_dir("stanford40", os.path.join(root, "ImageSplits"), **req)
    actions_file = require_file("stanford40", os.path.join(split_dir, "actions.txt"), **req)
    lines = _lines(actions_file)
    if lines and lines[0].split()[0] == "action_name":  # header "action_name\tnumber_of_images"
        lines = lines[1:]
    classes = [line.split()[0] for line in lines]
    if not classes:
        raise SplitFileError(f"stanford40: {actions_file} lists no actions")
    paths, targets = [], []
    suffix = "_train.txt" if train else "_test.txt"
    for label, action in enumerate(classes):
        split = require_file("stanford40", os.path.join(split_dir, action + suffix), **req)
        names = _lines(split)
        files = [os.path.join(img_dir, name) for name in names]
        check_files_exist("stanford40", split, files)
        paths += files
        targets += [label] * len(files)
    return FileDataset("stanford40", root, train, paths, targets, classes, skip_corrupt=skip_corrupt)
