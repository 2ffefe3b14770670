"""Tiny fixtures of every official dataset layout figkd.data reads, written into a temporary folder.

Each ``make_*`` returns the root to pass to ``build_dataset`` plus what the test needs to check (file
names, labels). Images are random noise with a few coloured blocks, written with Pillow.
"""

from __future__ import annotations

import os
import pickle
import tarfile

import numpy as np
from PIL import Image


def write_image(
    path: str,
    rng: np.random.Generator,
    size: tuple[int, int] = (40, 30),
    fmt: str | None = None,
    mode: str = "RGB",
) -> None:
    """A random image of ``size`` (width, height) at ``path`` (format from the extension)."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    w, h = size
    arr = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    arr[: h // 2, : w // 2] = rng.integers(0, 256, 3, dtype=np.uint8)  # some structure
    img = Image.fromarray(arr)
    if mode != "RGB":
        img = img.convert(mode)
    img.save(path, format=fmt, quality=90) if (fmt or path.lower().endswith((".jpg", ".jpeg"))) else img.save(
        path
    )


def corrupt(path: str) -> None:
    """Overwrite ``path`` with bytes no decoder accepts (keeping the extension)."""
    with open(path, "wb") as f:
        f.write(b"\xff\xd8\xff\xe0 this is not really a JPEG")


def truncate(path: str) -> None:
    """Cut ``path`` to half its size: a truncated image."""
    size = os.path.getsize(path)
    with open(path, "r+b") as f:
        f.truncate(size // 2)


# ------------------------------------------------------------------------------------------ CIFAR
CIFAR_CLASSES = [f"class_{i:02d}" for i in range(100)]


def make_cifar100(
    tmp: str,
    n_train: int = 24,
    n_test: int = 10,
    *,
    archive: bool = False,
    bytes_keys: bool = False,
    seed: int = 0,
) -> tuple[str, dict]:
    """``tmp/cifar-100-python/{train,test,meta}`` (or the ``.tar.gz`` of it). Returns (root, content)."""
    rng = np.random.default_rng(seed)
    k = (lambda s: s.encode()) if bytes_keys else (lambda s: s)
    content = {}
    folder = os.path.join(tmp, "cifar-100-python")
    os.makedirs(folder, exist_ok=True)
    for split, n in (("train", n_train), ("test", n_test)):
        data = rng.integers(0, 256, (n, 3072), dtype=np.uint8)
        labels = [int(v) for v in rng.integers(0, 100, n)]
        content[split] = (data, labels)
        d = {
            k("data"): data,
            k("fine_labels"): labels,
            k("coarse_labels"): [v // 5 for v in labels],
            k("filenames"): [f"img_{i}.png" for i in range(n)],
            k("batch_label"): f"{split} batch",
        }
        with open(os.path.join(folder, split), "wb") as f:
            pickle.dump(d, f, protocol=2)
    meta = {k("fine_label_names"): CIFAR_CLASSES, k("coarse_label_names"): [f"super_{i}" for i in range(20)]}
    with open(os.path.join(folder, "meta"), "wb") as f:
        pickle.dump(meta, f, protocol=2)
    if not archive:
        return tmp, content
    out = os.path.join(tmp, "archive")
    os.makedirs(out)
    with tarfile.open(os.path.join(out, "cifar-100-python.tar.gz"), "w:gz") as tar:
        tar.add(folder, arcname="cifar-100-python")
    return out, content


# ----------------------------------------------------------------------------------- TinyImageNet
TINY_WNIDS = ["n02124075", "n01443537", "n01629819"]  # deliberately not sorted in wnids.txt
TINY_WORDS = {
    "n01443537": "goldfish, Carassius auratus",
    "n01629819": "European fire salamander",
    "n02124075": "Egyptian cat",
    "n09999999": "not in the dataset",
}


def make_tiny_imagenet(tmp: str, per_class: int = 3, val_per_class: int = 2, seed: int = 0) -> str:
    rng = np.random.default_rng(seed)
    base = os.path.join(tmp, "tiny-imagenet-200")
    os.makedirs(base)
    with open(os.path.join(base, "wnids.txt"), "w") as f:
        f.write("\n".join(TINY_WNIDS) + "\n")
    with open(os.path.join(base, "words.txt"), "w") as f:
        f.writelines(f"{w}\t{n}\n" for w, n in TINY_WORDS.items())
    for w in TINY_WNIDS:
        for i in range(per_class):
            write_image(os.path.join(base, "train", w, "images", f"{w}_{i}.JPEG"), rng, (64, 64), fmt="JPEG")
        with open(os.path.join(base, "train", w, f"{w}_boxes.txt"), "w") as f:
            f.writelines(f"{w}_{i}.JPEG\t0\t0\t10\t10\n" for i in range(per_class))
    lines = []
    n = 0
    for w in TINY_WNIDS:
        for _ in range(val_per_class):
            name = f"val_{n}.JPEG"
            write_image(os.path.join(base, "val", "images", name), rng, (64, 64), fmt="JPEG")
            lines.append(f"{name}\t{w}\t1\t2\t30\t40\n")
            n += 1
    with open(os.path.join(base, "val", "val_annotations.txt"), "w") as f:
        f.writelines(lines)
    return tmp


# -------------------------------------------------------------------------------------------- CUB
CUB_CLASSES = ["001.Black_footed_Albatross", "002.Laysan_Albatross", "003.Sooty_Albatross"]


def make_cub200(
    tmp: str, per_class: int = 4, seed: int = 0, size=(48, 36)
) -> tuple[str, list[tuple[str, int, bool]]]:
    """Returns (root, [(relative path, label, is_train)] in images.txt order)."""
    rng = np.random.default_rng(seed)
    base = os.path.join(tmp, "CUB_200_2011")
    os.makedirs(base)
    entries = []
    for c, cname in enumerate(CUB_CLASSES):
        for i in range(per_class):
            rel = f"{cname}/{cname.split('.')[1]}_{i:04d}_{c}.jpg"
            write_image(os.path.join(base, "images", rel), rng, size)
            entries.append((rel, c, i % 2 == 0))
    with open(os.path.join(base, "images.txt"), "w") as f:
        f.writelines(f"{n} {rel}\n" for n, (rel, _, _) in enumerate(entries, 1))
    with open(os.path.join(base, "image_class_labels.txt"), "w") as f:
        f.writelines(f"{n} {c + 1}\n" for n, (_, c, _) in enumerate(entries, 1))
    with open(os.path.join(base, "train_test_split.txt"), "w") as f:
        f.writelines(f"{n} {int(t)}\n" for n, (_, _, t) in enumerate(entries, 1))
    with open(os.path.join(base, "classes.txt"), "w") as f:
        f.writelines(f"{n} {c}\n" for n, c in enumerate(CUB_CLASSES, 1))
    return tmp, entries


# ------------------------------------------------------------------------------------------- Dogs
DOG_FOLDERS = ["n02085620-Chihuahua", "n02085782-Japanese_spaniel", "n02086240-Shih-Tzu"]


def _cell(strings: list[str]) -> np.ndarray:
    out = np.empty((len(strings), 1), dtype=object)
    for i, s in enumerate(strings):
        out[i, 0] = np.array([s])
    return out


def make_stanford_dogs(tmp: str, train_per_class: int = 3, test_per_class: int = 2, seed: int = 0) -> str:
    import scipy.io

    rng = np.random.default_rng(seed)
    root = os.path.join(tmp, "dogs")
    for split, per in (("train", train_per_class), ("test", test_per_class)):
        files, labels = [], []
        for c, folder in enumerate(DOG_FOLDERS):
            syn = folder.split("-")[0]
            for i in range(per):
                rel = f"{folder}/{syn}_{split}{i}.jpg"
                write_image(os.path.join(root, "Images", rel), rng, (50, 40))
                files.append(rel)
                labels.append(c + 1)
        scipy.io.savemat(
            os.path.join(root, f"{split}_list.mat"),
            {
                "file_list": _cell(files),
                "annotation_list": _cell([f.rsplit(".", 1)[0] for f in files]),
                "labels": np.array(labels, dtype=np.float64)[:, None],
            },
        )
    return root


# ------------------------------------------------------------------------------------------ MIT67
MIT_SCENES = ["airport_inside", "bakery", "kitchen"]


def make_mit67(tmp: str, train_per_class: int = 3, test_per_class: int = 2, seed: int = 0) -> str:
    rng = np.random.default_rng(seed)
    root = os.path.join(tmp, "mit67")
    lines = {"train": [], "test": []}
    for s in MIT_SCENES:
        for split, per in (("train", train_per_class), ("test", test_per_class)):
            for i in range(per):
                rel = f"{s}/{s}_{split}_{i}.jpg"
                # MIT67 has greyscale and palette images among its JPEGs
                write_image(os.path.join(root, "Images", rel), rng, (44, 33), mode="L" if i == 1 else "RGB")
                lines[split].append(rel)
    write_image(os.path.join(root, "Images", MIT_SCENES[0], "unlisted.jpg"), rng)  # in no split
    for split, name in (("train", "TrainImages.txt"), ("test", "TestImages.txt")):
        with open(os.path.join(root, name), "w", newline="") as f:
            f.writelines(f"{rel}\r\n" for rel in lines[split])  # the official lists use CRLF
    return root


# ------------------------------------------------------------------------------------- Stanford40
S40_ACTIONS = ["applauding", "blowing_bubbles", "brushing_teeth"]


def make_stanford40(tmp: str, train_per_class: int = 3, test_per_class: int = 2, seed: int = 0) -> str:
    rng = np.random.default_rng(seed)
    root = os.path.join(tmp, "stanford40")
    os.makedirs(os.path.join(root, "ImageSplits"))
    with open(os.path.join(root, "ImageSplits", "actions.txt"), "w") as f:
        f.write("action_name\tnumber_of_images\n")
        f.writelines(f"{a}\t{train_per_class + test_per_class}\n" for a in S40_ACTIONS)
    for a in S40_ACTIONS:
        n = 1
        for split, per in (("train", train_per_class), ("test", test_per_class)):
            names = []
            for _ in range(per):
                name = f"{a}_{n:03d}.jpg"
                write_image(os.path.join(root, "JPEGImages", name), rng, (36, 52))
                names.append(name)
                n += 1
            with open(os.path.join(root, "ImageSplits", f"{a}_{split}.txt"), "w") as f:
                f.write("\n".join(names) + "\n")
    return root


# ------------------------------------------------------------------------------------ ImageFolder
def make_imagefolder(
    tmp: str,
    classes=("cat", "dog"),
    train_per_class: int = 4,
    val_per_class: int = 2,
    size=(300, 260),
    seed: int = 0,
) -> str:
    rng = np.random.default_rng(seed)
    root = os.path.join(tmp, "folder")
    for split, per in (("train", train_per_class), ("val", val_per_class)):
        for c in classes:
            for i in range(per):
                ext = ".png" if i % 3 == 2 else ".jpg"
                w, h = size
                write_image(os.path.join(root, split, c, f"{c}_{i}{ext}"), rng, (w + 7 * i, h - 5 * i))
    with open(os.path.join(root, "train", classes[0], "notes.txt"), "w") as f:
        f.write("not an image\n")
    return root


# ------------------------------------------------------------------------------ MNIST family (IDX)
IDX_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


def write_idx(path: str, arr: np.ndarray, *, gz: bool = False) -> str:
    """``arr`` (uint8) as an IDX file (LeCun's format: 0, 0, type 0x08, ndim, big-endian dims, data)."""
    import gzip

    assert arr.dtype == np.uint8
    data = bytes([0, 0, 0x08, arr.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in arr.shape) + arr.tobytes()
    path = path + ".gz" if gz else path
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with (gzip.open if gz else open)(path, "wb") as f:
        f.write(data)
    return path


def make_idx(
    tmp: str, n_train: int = 20, n_test: int = 10, *, gz: bool = False, sub: str = "", seed: int = 0
) -> tuple[str, dict]:
    """The four IDX files of an MNIST-family set in ``tmp/<sub>``. Returns (root, {split: (images, labels)})
    with images uint8 (N, 28, 28) and labels uint8 (N,)."""
    rng = np.random.default_rng(seed)
    folder = os.path.join(tmp, sub) if sub else tmp
    content = {}
    for split, n in (("train", n_train), ("test", n_test)):
        images = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        images[:, :2] = 0  # a black border, as in the real sets
        labels = (np.arange(n) % 10).astype(np.uint8)
        rng.shuffle(labels)
        write_idx(os.path.join(folder, IDX_FILES[split][0]), images, gz=gz)
        write_idx(os.path.join(folder, IDX_FILES[split][1]), labels, gz=gz)
        content[split] = (images, labels)
    return tmp, content
