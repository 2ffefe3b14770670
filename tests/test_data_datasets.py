"""figkd.data datasets: each official layout, class names, labels, counts, and bad input."""

from __future__ import annotations

import os
import pickle
import re
import tarfile
import warnings

import numpy as np
import pytest
import torch
from PIL import Image

from figkd.data import (
    CorruptImageError,
    DatasetNotFoundError,
    SplitFileError,
    build_dataset,
    list_datasets,
    recipe_for,
)
from figkd.errors import DataError
from fixtures_data import (
    CIFAR_CLASSES,
    CUB_CLASSES,
    DOG_FOLDERS,
    MIT_SCENES,
    S40_ACTIONS,
    TINY_WNIDS,
    TINY_WORDS,
    corrupt,
    make_cifar100,
    make_cub200,
    make_idx,
    make_imagefolder,
    make_mit67,
    make_stanford40,
    make_stanford_dogs,
    make_tiny_imagenet,
    truncate,
    write_idx,
)


def _check_item(ds, i, size=None):
    img, label = ds[i]
    assert img.dtype == torch.uint8 and img.ndim == 3 and img.shape[0] == 3
    if size:
        assert tuple(img.shape[1:]) == size
    assert label == ds.targets[i] and 0 <= label < ds.num_classes
    return img


# ------------------------------------------------------------------------------------------ CIFAR
@pytest.mark.parametrize("archive", [False, True])
@pytest.mark.parametrize("bytes_keys", [False, True])
def test_cifar100_folder_and_archive(tmp_path, archive, bytes_keys):
    root, content = make_cifar100(str(tmp_path), archive=archive, bytes_keys=bytes_keys)
    for train, split in ((True, "train"), (False, "test")):
        ds = build_dataset("cifar100", root, train=train)
        data, labels = content[split]
        assert len(ds) == len(labels) and ds.targets == labels
        assert ds.num_classes == 100 and ds.classes == CIFAR_CLASSES
        img = _check_item(ds, 3, (32, 32))
        # rows are the R, G, B planes of 32x32
        assert torch.equal(img, torch.from_numpy(data[3].reshape(3, 32, 32)))


def test_cifar100_root_variants(tmp_path):
    root, _ = make_cifar100(str(tmp_path))
    a = build_dataset("cifar100", os.path.join(root, "cifar-100-python"))
    b = build_dataset("cifar100", root)
    assert a.targets == b.targets
    out, _ = make_cifar100(str(tmp_path / "t"), archive=True)
    c = build_dataset("cifar100", os.path.join(out, "cifar-100-python.tar.gz"))
    assert len(c) == 24


def test_cifar100_missing(tmp_path):
    with pytest.raises(FileNotFoundError) as e:
        build_dataset("cifar100", str(tmp_path / "nowhere"))
    msg = str(e.value)
    assert "nowhere" in msg and "cifar-100-python.tar.gz" in msg and "cs.toronto.edu" in msg
    root, _ = make_cifar100(str(tmp_path))
    os.remove(os.path.join(root, "cifar-100-python", "meta"))
    with pytest.raises(DatasetNotFoundError, match=r"cifar-100-python/meta not found"):
        build_dataset("cifar100", root)


def test_cifar100_refuses_arbitrary_pickles(tmp_path):
    root, _ = make_cifar100(str(tmp_path))
    with open(os.path.join(root, "cifar-100-python", "train"), "wb") as f:
        pickle.dump({"data": os.system}, f)  # would call a function if unpickled freely
    with pytest.raises(SplitFileError, match="refusing to load"):
        build_dataset("cifar100", root)


# ----------------------------------------------------------------------------------- TinyImageNet
def test_tiny_imagenet(tmp_path):
    root = make_tiny_imagenet(str(tmp_path), per_class=3, val_per_class=2)
    tr = build_dataset("tiny_imagenet", root, train=True)
    te = build_dataset("tiny_imagenet", os.path.join(root, "tiny-imagenet-200"), train=False)
    wnids = sorted(TINY_WNIDS)  # labels follow the sorted wnids (ImageFolder order over train/)
    assert tr.wnids == wnids and tr.classes == [TINY_WORDS[w] for w in wnids]
    assert len(tr) == 9 and len(te) == 6 and tr.num_classes == 3
    for p, t in zip(tr.paths, tr.targets, strict=True):
        assert os.path.basename(p).startswith(wnids[t])
    # val/val_annotations.txt assigns val_0, val_1 to TINY_WNIDS[0] ...
    assert te.targets == [wnids.index(w) for w in TINY_WNIDS for _ in range(2)]
    _check_item(te, 0, (64, 64))


def test_tiny_imagenet_missing_annotations(tmp_path):
    root = make_tiny_imagenet(str(tmp_path))
    os.remove(os.path.join(root, "tiny-imagenet-200", "val", "val_annotations.txt"))
    with pytest.raises(FileNotFoundError) as e:
        build_dataset("tiny_imagenet", root, train=False)
    assert "val_annotations.txt" in str(e.value) and "tiny-imagenet-200.zip" in str(e.value)


def test_tiny_imagenet_annotations_name_absent_images(tmp_path):
    root = make_tiny_imagenet(str(tmp_path))
    for i in (0, 3, 5):
        os.remove(os.path.join(root, "tiny-imagenet-200", "val", "images", f"val_{i}.JPEG"))
    with pytest.raises(SplitFileError, match=r"names 3 image\(s\) that are absent: .*val_0\.JPEG"):
        build_dataset("tiny_imagenet", root, train=False)


# -------------------------------------------------------------------------------------------- CUB
def test_cub200(tmp_path):
    root, entries = make_cub200(str(tmp_path), per_class=4)
    tr = build_dataset("cub200", root, train=True)
    te = build_dataset("cub200_224", os.path.join(root, "CUB_200_2011"), train=False)
    assert tr.classes == [c.split(".", 1)[1] for c in CUB_CLASSES] and tr.num_classes == 3
    assert len(tr) == 6 and len(te) == 6
    assert tr.targets == [c for _, c, t in entries if t]
    assert te.targets == [c for _, c, t in entries if not t]
    assert [os.path.relpath(p, os.path.join(root, "CUB_200_2011", "images")) for p in te.paths] == [
        rel for rel, _, t in entries if not t
    ]
    _check_item(tr, 0, (36, 48))


def test_cub200_missing_file_names_path_and_source(tmp_path):
    root, _ = make_cub200(str(tmp_path))
    os.remove(os.path.join(root, "CUB_200_2011", "train_test_split.txt"))
    with pytest.raises(FileNotFoundError) as e:
        build_dataset("cub200", root)
    msg = str(e.value)
    assert "train_test_split.txt" in msg and "CUB_200_2011.tgz" in msg and "caltech.edu" in msg


def test_cub200_split_names_absent_images(tmp_path):
    root, entries = make_cub200(str(tmp_path), per_class=4)
    img_dir = os.path.join(root, "CUB_200_2011", "images")
    gone = [rel for rel, _, t in entries if t]
    for rel in gone:
        os.remove(os.path.join(img_dir, rel))
    with pytest.raises(SplitFileError) as e:
        build_dataset("cub200", root, train=True)
    msg = str(e.value)
    assert "names 6 image(s) that are absent" in msg and "(and 1 more)" in msg
    assert os.path.join(img_dir, gone[0]) in msg


# ------------------------------------------------------------------------------------------- Dogs
def test_stanford_dogs(tmp_path):
    root = make_stanford_dogs(str(tmp_path), train_per_class=3, test_per_class=2)
    tr = build_dataset("stanford_dogs", root, train=True)
    te = build_dataset("stanford_dogs_32", root, train=False)
    assert tr.classes == ["Chihuahua", "Japanese_spaniel", "Shih-Tzu"]
    assert len(tr) == 9 and len(te) == 6
    assert tr.targets == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    for p, t in zip(te.paths, te.targets, strict=True):
        assert os.path.basename(os.path.dirname(p)) == DOG_FOLDERS[t]
    _check_item(te, 5, (40, 50))


def test_stanford_dogs_inconsistent_labels(tmp_path):
    import scipy.io

    root = make_stanford_dogs(str(tmp_path))
    m = scipy.io.loadmat(os.path.join(root, "train_list.mat"))
    m["labels"][0, 0] = 3  # a Chihuahua labelled as Shih-Tzu
    scipy.io.savemat(
        os.path.join(root, "train_list.mat"), {k: v for k, v in m.items() if not k.startswith("__")}
    )
    with pytest.raises(SplitFileError, match="has label 3, but label 3 is folder n02086240-Shih-Tzu"):
        build_dataset("stanford_dogs", root)


def test_stanford_dogs_missing_lists(tmp_path):
    root = make_stanford_dogs(str(tmp_path))
    os.remove(os.path.join(root, "test_list.mat"))
    with pytest.raises(FileNotFoundError, match=r"test_list\.mat not found.*lists\.tar.*ImageNetDogs"):
        build_dataset("stanford_dogs", root, train=False)


# ------------------------------------------------------------------------------------------ MIT67
def test_mit67(tmp_path):
    root = make_mit67(str(tmp_path), train_per_class=3, test_per_class=2)
    tr = build_dataset("mit67", root, train=True)
    te = build_dataset("mit67_224", root, train=False)
    assert tr.classes == MIT_SCENES and len(tr) == 9 and len(te) == 6
    assert te.targets == [0, 0, 1, 1, 2, 2]
    img = _check_item(tr, 1, (33, 44))  # written as greyscale: converted to RGB
    assert torch.equal(img[0], img[1]) and torch.equal(img[1], img[2])


def test_mit67_split_line_with_unknown_scene(tmp_path):
    root = make_mit67(str(tmp_path))
    with open(os.path.join(root, "TestImages.txt"), "a") as f:
        f.write("library/lib_1.jpg\n")
    with pytest.raises(SplitFileError, match="library/lib_1.jpg"):
        build_dataset("mit67", root, train=False)


# ------------------------------------------------------------------------------------- Stanford40
def test_stanford40(tmp_path):
    root = make_stanford40(str(tmp_path), train_per_class=3, test_per_class=2)
    tr = build_dataset("stanford40", root, train=True)
    te = build_dataset("stanford40_32", root, train=False)
    assert tr.classes == S40_ACTIONS and len(tr) == 9 and len(te) == 6
    assert tr.targets == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    assert os.path.basename(te.paths[0]) == "applauding_004.jpg"
    _check_item(te, 0, (52, 36))


def test_stanford40_missing_split_file(tmp_path):
    root = make_stanford40(str(tmp_path))
    os.remove(os.path.join(root, "ImageSplits", "brushing_teeth_test.txt"))
    with pytest.raises(FileNotFoundError, match=r"brushing_teeth_test\.txt not found.*40actions"):
        build_dataset("stanford40", root, train=False)


# ------------------------------------------------------------------------------------ ImageFolder
def test_imagefolder(tmp_path):
    root = make_imagefolder(str(tmp_path), train_per_class=4, val_per_class=2)
    tr = build_dataset("imagefolder", root, train=True)
    va = build_dataset("imagefolder_32", root, train=False)
    assert tr.classes == ["cat", "dog"] and len(tr) == 8 and len(va) == 4  # notes.txt ignored
    assert va.targets == [0, 0, 1, 1]
    _check_item(tr, 2)


def test_imagefolder_unknown_val_class(tmp_path):
    root = make_imagefolder(str(tmp_path))
    os.makedirs(os.path.join(root, "val", "bird"))
    with pytest.raises(SplitFileError, match="bird"):
        build_dataset("imagefolder", root, train=False)


# ------------------------------------------------------------------------------ MNIST family (IDX)
IDX_NAMES = ("mnist", "fashion_mnist", "kmnist")


@pytest.mark.parametrize("name", IDX_NAMES)
@pytest.mark.parametrize("gz", [False, True])
def test_idx_family_plain_and_gzipped(tmp_path, name, gz):
    root, content = make_idx(str(tmp_path), n_train=20, n_test=10, gz=gz)
    for train, split in ((True, "train"), (False, "test")):
        ds = build_dataset(name, root, train=train)
        images, labels = content[split]
        assert len(ds) == len(labels) and ds.targets == labels.tolist() and ds.num_classes == 10
        img = _check_item(ds, 3, (28, 28))
        for c in range(3):  # the grey plane on every channel
            assert torch.equal(img[c], torch.from_numpy(images[3]))
    assert build_dataset(f"{name}_32", root).targets == content["train"][1].tolist()


def test_idx_family_class_names():
    from figkd.data.idx import FAMILIES

    assert FAMILIES["mnist"].classes == [str(i) for i in range(10)]
    assert FAMILIES["fashion_mnist"].classes[0] == "T-shirt/top"
    assert FAMILIES["fashion_mnist"].classes[9] == "Ankle boot"
    assert FAMILIES["kmnist"].classes == ["o", "ki", "su", "tsu", "na", "ha", "ma", "ya", "re", "wo"]


@pytest.mark.parametrize("sub", ["raw", "FashionMNIST/raw"])
def test_idx_torchvision_layouts(tmp_path, sub):
    root, content = make_idx(str(tmp_path), gz=True, sub=sub)
    assert build_dataset("fashion_mnist", root, train=False).targets == content["test"][1].tolist()


def test_idx_plain_file_preferred_over_gz(tmp_path):
    root, content = make_idx(str(tmp_path), seed=1)
    make_idx(str(tmp_path), gz=True, seed=2)  # different content under the .gz names
    ds = build_dataset("mnist", root)
    assert torch.equal(ds[0][0][0], torch.from_numpy(content["train"][0][0]))


def test_idx_missing_files_name_path_and_source(tmp_path):
    root, _ = make_idx(str(tmp_path), gz=True)
    os.remove(os.path.join(root, "t10k-labels-idx1-ubyte.gz"))
    with pytest.raises(DatasetNotFoundError) as e:
        build_dataset("fashion_mnist", root, train=False)
    msg = str(e.value)
    assert "t10k-labels-idx1-ubyte[.gz] not found" in msg and "zalandoresearch" in msg
    assert "apt-get install dataset-fashion-mnist" in msg and "never downloads" in msg
    build_dataset("fashion_mnist", root, train=True)  # the train split is complete
    with pytest.raises(DatasetNotFoundError, match="rois-codh/kmnist"):
        build_dataset("kmnist", str(tmp_path / "nowhere"))
    with pytest.raises(DatasetNotFoundError, match="mnist: no dataset folder was given: pass --data-root"):
        build_dataset("mnist", None)


def test_idx_malformed_files(tmp_path):
    root, content = make_idx(str(tmp_path))
    images_path = os.path.join(root, "train-images-idx3-ubyte")
    labels_path = os.path.join(root, "train-labels-idx1-ubyte")
    with open(images_path, "r+b") as f:  # truncated data
        f.truncate(os.path.getsize(images_path) - 5)
    with pytest.raises(SplitFileError, match="truncated or not this file"):
        build_dataset("mnist", root)
    with open(images_path, "wb") as f:
        f.write(b"\x89PNG not idx at all")
    with pytest.raises(SplitFileError, match="not an IDX file"):
        build_dataset("mnist", root)
    write_idx(images_path, content["train"][0][:-1])  # one image fewer than labels
    with pytest.raises(SplitFileError, match="19 images but .* 20 labels"):
        build_dataset("mnist", root)
    write_idx(images_path, np.zeros((20, 32, 32), np.uint8))
    with pytest.raises(SplitFileError, match=r"expected uint8 \(N, 28, 28\)"):
        build_dataset("mnist", root)
    write_idx(images_path, content["train"][0])
    write_idx(labels_path, np.full(20, 10, np.uint8))  # label 10 of 10 classes
    with pytest.raises(SplitFileError, match=r"labels must lie in \[0, 10\)"):
        build_dataset("mnist", root)
    with open(labels_path + ".gz", "wb") as f:  # a gzip stream cut short, read when the plain file is gone
        f.write(b"\x1f\x8b\x08\x00broken")
    os.remove(labels_path)
    with pytest.raises(SplitFileError, match="gzip"):
        build_dataset("mnist", root)


def _md5(path: str, *, content: bool = False) -> str:
    import gzip
    import hashlib

    with (gzip.open if content else open)(path, "rb") as f:
        return hashlib.md5(f.read()).hexdigest()


def test_idx_another_sets_published_files_are_refused(tmp_path, monkeypatch):
    # The fixture's files match no published MD5; list the .gz file's MD5 as Fashion-MNIST's.
    from figkd.data import idx

    root, _ = make_idx(str(tmp_path), gz=True)
    images = os.path.join(root, "train-images-idx3-ubyte.gz")
    monkeypatch.setattr(idx, "KNOWN_MD5", {"fashion_mnist": {"train-images-idx3-ubyte.gz": _md5(images)}})
    with pytest.raises(DataError) as err:
        build_dataset("mnist", root)
    assert str(err.value) == (
        f"mnist: the files in {root} are Fashion-MNIST's (train-images-idx3-ubyte.gz matches its published "
        "MD5): use --dataset fashion_mnist (or fashion_mnist_32), or point --data-root at MNIST's files"
    )
    assert len(build_dataset("fashion_mnist", root)) == 20  # the set the files are
    assert len(build_dataset("mnist", root, train=False)) == 10  # the test files match nothing listed


@pytest.mark.parametrize("gz", [False, True])
def test_idx_another_sets_decompressed_content_is_refused(tmp_path, monkeypatch, gz):
    # A decompressed copy, or a re-compressed one (Debian's Fashion-MNIST), is known by its content's MD5.
    from figkd.data import idx

    root, _ = make_idx(str(tmp_path), gz=gz, sub="raw")
    labels = os.path.join(root, "raw", "t10k-labels-idx1-ubyte" + (".gz" if gz else ""))
    monkeypatch.setattr(idx, "KNOWN_MD5", {"kmnist": {"t10k-labels-idx1-ubyte": _md5(labels, content=gz)}})
    how = ("the content of t10k-labels-idx1-ubyte.gz has the MD5 of KMNIST's t10k-labels-idx1-ubyte" if gz
           else "t10k-labels-idx1-ubyte matches its published MD5")
    with pytest.raises(DataError, match=re.escape(f"fashion_mnist: the files in {os.path.dirname(labels)} are "
                                                  f"KMNIST's ({how}): use --dataset kmnist")):
        build_dataset("fashion_mnist", root, train=False)
    assert build_dataset("kmnist", root, train=False).classes[0] == "o"


def test_idx_unknown_files_match_no_published_md5(tmp_path):
    # Your own IDX files (here the fixture's, plain and gzipped) are read as any of the three sets.
    from figkd.data.idx import _file_bytes, known_file

    make_idx(str(tmp_path / "plain"))
    make_idx(str(tmp_path / "gz"), gz=True)
    for path in ("plain/train-images-idx3-ubyte", "gz/train-images-idx3-ubyte.gz", "gz/t10k-labels-idx1-ubyte.gz"):
        assert known_file(*_file_bytes(str(tmp_path / path))) is None
    for name in ("mnist", "fashion_mnist", "kmnist"):
        assert len(build_dataset(name, str(tmp_path / "gz"))) == 20


# ------------------------------------------------------------------------------------------ digits
def test_digits_embedded():
    tr = build_dataset("digits", None, train=True)
    te = build_dataset("digits", None, train=False)
    assert len(tr) == 1437 and len(te) == 360 and tr.num_classes == 10
    assert tr.classes == [str(i) for i in range(10)]
    assert np.bincount(te.targets).tolist() == [36, 36, 35, 37, 36, 37, 36, 36, 35, 36]  # stratified
    img = _check_item(tr, 0, (32, 32))
    # nearest upscaling: 4x4 blocks, identical channels
    assert torch.equal(img[:, ::4, ::4].repeat_interleave(4, 1).repeat_interleave(4, 2), img)
    assert torch.equal(img[0], img[2])
    assert int(img.max()) <= 255 and build_dataset("digits").targets == tr.targets  # deterministic


# ------------------------------------------------------------------------------------ corrupt images
def test_corrupt_image_error_names_file(tmp_path):
    root = make_mit67(str(tmp_path))
    bad = os.path.join(root, "Images", "bakery", "bakery_train_0.jpg")
    corrupt(bad)
    ds = build_dataset("mit67", root, train=True)
    i = ds.paths.index(bad)
    with pytest.raises(CorruptImageError) as e:
        ds[i]
    assert e.value.path == bad and bad in str(e.value) and "skip_corrupt=True" in str(e.value)
    again = pickle.loads(pickle.dumps(e.value))
    assert again.path == bad and str(again) == str(e.value)


def test_truncated_image_is_corrupt(tmp_path):
    root = make_mit67(str(tmp_path))
    bad = os.path.join(root, "Images", "kitchen", "kitchen_train_2.jpg")
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (200, 200, 3), dtype=np.uint8)).save(bad)
    truncate(bad)
    ds = build_dataset("mit67", root, train=True)
    with pytest.raises(CorruptImageError, match="kitchen_train_2.jpg"):
        ds[ds.paths.index(bad)]


def test_skip_corrupt_counts_and_reports(tmp_path):
    root = make_mit67(str(tmp_path), train_per_class=3)
    bad = [os.path.join(root, "Images", s, f"{s}_train_0.jpg") for s in MIT_SCENES[:2]]
    for p in bad:
        corrupt(p)
    with pytest.warns(UserWarning, match=r"skipped 2 of 9 image\(s\)"):
        ds = build_dataset("mit67", root, train=True, skip_corrupt=True)
    assert len(ds) == 7 and [p for p, _ in ds.skipped] == bad
    assert ds.targets == [0, 0, 1, 1, 2, 2, 2]
    for i in range(len(ds)):
        ds[i]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert build_dataset("stanford40", make_stanford40(str(tmp_path)), skip_corrupt=True).skipped == []


# ------------------------------------------------------------------------------------------ registry
def test_registry_names_and_recipes():
    names = list_datasets()
    for fam in ("cub200", "stanford_dogs", "mit67", "stanford40"):
        assert f"{fam}_224" in names and f"{fam}_32" in names and fam not in names
        assert recipe_for(f"{fam}_224").name == "fgvr_224" and recipe_for(f"{fam}_32").name == "cifar"
    assert {"cifar100", "tiny_imagenet", "digits", "imagefolder"} <= set(names)
    cifar = recipe_for("cifar100")
    assert cifar.mean == (0.5071, 0.4867, 0.4408) and cifar.std == (0.2675, 0.2565, 0.2761) and cifar.pad == 4
    assert "mdistiller" in cifar.source
    t = recipe_for("tiny_imagenet").to_dict()
    assert t["size"] == 64 and t["pad"] == 8 and t["mean"] == (0.4802, 0.4481, 0.3975)
    f = recipe_for("fgvr_224").to_dict()
    assert f["scale"] == (0.08, 1.0) and f["test_resize"] == 256 and f["mean"] == (0.485, 0.456, 0.406)
    s = recipe_for("strong").to_dict()
    assert s["num_ops"] == 2 and s["magnitude"] == 10 and len(s["ops"]) == 14
    for fam in ("mnist", "fashion_mnist", "kmnist"):
        assert {fam, f"{fam}_32"} <= set(names)
        native, padded = recipe_for(fam), recipe_for(f"{fam}_32")
        assert (native.name, native.size, padded.name, padded.size) == (fam, 28, f"{fam}_32", 32)
        assert native.pad == padded.pad == 4 and len(set(native.mean)) == 1  # grey on 3 channels
        # the 32x32 statistics follow from the 28x28 ones for a 2-pixel zero border (to the 4 digits pinned)
        m, s = native.mean[0], native.std[0]
        m32 = m * 784 / 1024
        assert abs(padded.mean[0] - m32) < 1e-4
        assert abs(padded.std[0] - ((s * s + m * m) * 784 / 1024 - m32 * m32) ** 0.5) < 1e-4
    assert recipe_for("mnist").mean[0] == 0.1307 and "pytorch/examples" in recipe_for("mnist").source
    assert recipe_for("fashion_mnist").mean[0] == 0.2860 and recipe_for("fashion_mnist").std[0] == 0.3530
    assert "not KMNIST's own" in recipe_for("kmnist").source
    with pytest.raises(ValueError, match="cub200_224"):
        recipe_for("cub200")
    with pytest.raises(ValueError, match="unknown dataset 'cifar10'"):
        build_dataset("cifar10", "/tmp")


def test_nothing_is_downloaded(tmp_path, monkeypatch):
    import socket

    def no_network(*a, **k):
        raise AssertionError("figkd.data tried to open a network connection")

    monkeypatch.setattr(socket, "create_connection", no_network)
    monkeypatch.setattr(socket.socket, "connect", no_network)
    for name in (
        "cifar100",
        "tiny_imagenet",
        "cub200",
        "stanford_dogs",
        "mit67",
        "stanford40",
        "imagefolder",
        "mnist",
        "fashion_mnist",
        "kmnist",
    ):
        with pytest.raises(FileNotFoundError, match="figkd never downloads data"):
            build_dataset(name, str(tmp_path / "empty" / name))


def test_tar_is_read_not_extracted(tmp_path):
    out, _ = make_cifar100(str(tmp_path), archive=True)
    before = sorted(os.listdir(out))
    build_dataset("cifar100", out)
    assert sorted(os.listdir(out)) == before
    assert tarfile.is_tarfile(os.path.join(out, "cifar-100-python.tar.gz"))


def test_subset_keeps_the_dataset_and_takes_the_rows_in_order():
    from figkd.data import build_dataset

    ds = build_dataset("digits", None, train=True)
    sub = ds.subset([5, 0, 7])
    assert (sub.name, sub.train, sub.classes, len(sub)) == (ds.name, ds.train, ds.classes, 3)
    assert sub.targets == [ds.targets[5], ds.targets[0], ds.targets[7]]
    assert torch.equal(sub[0][0], ds[5][0])
