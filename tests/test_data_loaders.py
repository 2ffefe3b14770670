"""figkd.data loaders: the contract the training engine relies on — exact resume, DDP shards, evaluation
order, recipes as specified — for the device-resident loader and the JPEG worker loader."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch
from PIL import Image

import figkd.data.cache as cache_mod
from figkd.data import (
    ArrayDataset,
    Batch,
    CorruptImageError,
    ResidentLoader,
    WorkerLoader,
    build_dataset,
    build_loader,
    prepare_cache,
    recipe_for,
)
from figkd.data.augment import draw_pad_crop, make_generator, normalize, pad_crop_flip
from fixtures_data import corrupt, make_cifar100, make_idx, make_imagefolder, make_mit67, make_tiny_imagenet


def _clone(b: Batch) -> Batch:
    return Batch(*(None if t is None else t.clone() for t in (b.images, b.target, b.strong, b.index)))


def _all(it):
    return [_clone(b) for b in it]


def _same(a, b):
    assert len(a) == len(b)
    for x, y in zip(a, b, strict=True):
        assert [f is None for f in (x.strong, x.index)] == [f is None for f in (y.strong, y.index)]
        for s, t in zip(x.tensors(), y.tensors(), strict=True):
            assert s.dtype == t.dtype and torch.equal(s, t)


def _cat_ranks(parts):
    """Concatenate per-rank batches of one step along the batch dimension."""
    fields = [[getattr(p, f) for p in parts] for f in ("images", "target", "strong", "index")]
    return Batch(*(None if v[0] is None else torch.cat(v) for v in fields))


def _mean_std(name):
    r = recipe_for(name)
    return torch.tensor(r.mean).view(1, 3, 1, 1), torch.tensor(r.std).view(1, 3, 1, 1)


# --------------------------------------------------------------------------------- resident loader
@pytest.fixture(scope="module")
def digits_train():
    return build_dataset("digits", None, train=True)


def test_resident_batches(digits_train):
    ld = build_loader("digits", None, True, 64, seed=0, dataset=digits_train)
    assert isinstance(ld, ResidentLoader)
    assert len(ld) == 1437 // 64 and ld.num_classes == 10 and ld.num_samples == 22 * 64
    ld.set_epoch(3)
    seen = []
    for k, b in enumerate(ld):
        x, y = b.images, b.target
        assert b.index.tolist() == ld.schedule.global_rows(3, k).tolist()  # each sample's row in the split
        assert x.shape == (64, 3, 32, 32) and x.dtype == torch.float32 and y.dtype == torch.int64
        rows = ld.schedule.global_rows(3, k)
        assert y.tolist() == [digits_train.targets[i] for i in rows]
        seen += rows.tolist()
    assert len(seen) == len(set(seen)) == 22 * 64  # an epoch visits each sample at most once
    mean, std = _mean_std("digits")
    assert x.min() >= ((0 - mean) / std).min() - 1e-5 and x.max() <= ((1 - mean) / std).max() + 1e-5


def test_resident_iter_from_is_exact_resume(digits_train):
    for strong in (False, True):
        ld = build_loader("digits", None, True, 50, seed=7, strong_view=strong, dataset=digits_train)
        ld.set_epoch(2)
        full = _all(ld)
        assert len(full) == 28 and (full[0].strong is not None) == strong
        _same(_all(ld.iter_from(21)), full[21:])
        # a new loader (a restarted process) resumes identically
        ld2 = build_loader("digits", None, True, 50, seed=7, strong_view=strong, dataset=digits_train)
        ld2.set_epoch(2)
        _same(_all(ld2.iter_from(25)), full[25:])
        assert list(ld2.iter_from(len(ld2))) == []
    with pytest.raises(ValueError, match="outside"):
        ld.iter_from(len(ld) + 1)


def test_resident_epochs_and_seeds_differ(digits_train):
    def first(seed, epoch, strong=False):
        ld = build_loader("digits", None, True, 32, seed=seed, strong_view=strong, dataset=digits_train)
        ld.set_epoch(epoch)
        return next(iter(ld))

    a = first(0, 0)
    assert torch.equal(a.images, first(0, 0).images)
    assert not torch.equal(a.target, first(0, 1).target) and not torch.equal(a.target, first(1, 0).target)
    # the weak view does not change when the strong view is requested (drawn first)
    assert torch.equal(first(0, 0, strong=True).images, a.images)


def test_resident_augmentation_varies_per_sample(digits_train):
    images = np.repeat(digits_train.images[:1], 64, axis=0)  # 64 copies of one image
    from figkd.data import ArrayDataset

    same = ArrayDataset("digits", None, True, images, [0] * 64, digits_train.classes)
    ld = build_loader("digits", None, True, 64, seed=0, strong_view=True, dataset=same)
    b = next(iter(ld))
    x, xs = b.images, b.strong
    assert len({x[i].numpy().tobytes() for i in range(64)}) > 20  # crops and flips differ
    assert len({xs[i].numpy().tobytes() for i in range(64)}) == 64


@pytest.mark.parametrize("world", [2, 3])
def test_resident_ddp_union_equals_single_process(digits_train, world):
    b = 16
    single = build_loader("digits", None, True, world * b, seed=5, strong_view=True, dataset=digits_train)
    ranks = [
        build_loader(
            "digits", None, True, b, seed=5, strong_view=True, rank=r, world_size=world, dataset=digits_train
        )
        for r in range(world)
    ]
    for ld in [single, *ranks]:
        ld.set_epoch(4)
    assert all(len(r) == len(single) for r in ranks)
    ref = _all(single.iter_from(len(single) - 3))
    got = [_all(r.iter_from(len(r) - 3)) for r in ranks]
    for k in range(3):
        _same([_cat_ranks([g[k] for g in got])], [ref[k]])


def test_resident_eval_order_and_shards():
    te = build_dataset("digits", None, train=False)
    ld = build_loader("digits", None, False, 64, dataset=te)
    assert len(ld) == 6 and ld.num_samples == 360
    batches = _all(ld)
    assert [len(b) for b in batches] == [64] * 5 + [40]  # nothing dropped
    x = torch.cat([b.images for b in batches])
    y = torch.cat([b.target for b in batches])
    assert torch.cat([b.index for b in batches]).tolist() == list(range(360))
    assert y.tolist() == te.targets
    mean, std = _mean_std("digits")
    assert torch.allclose(x, (torch.from_numpy(te.images).float() / 255 - mean) / std, atol=1e-6)
    shards = [
        _all(build_loader("digits", None, False, 50, rank=r, world_size=3, dataset=te)) for r in range(3)
    ]
    assert [sum(len(b) for b in s) for s in shards] == [120, 120, 120]
    assert torch.equal(torch.cat([b.images for s in shards for b in s]), x)
    assert torch.equal(torch.cat([b.target for s in shards for b in s]), y)
    # contiguous shards of ceil(N / W): with many ranks the last ones may be short or empty
    assert (
        build_loader("digits", None, False, 64, rank=6, world_size=7, dataset=te).num_samples == 360 - 6 * 52
    )
    assert len(build_loader("digits", None, False, 64, rank=199, world_size=200, dataset=te)) == 0


def test_loader_argument_errors(digits_train):
    with pytest.raises(ValueError, match="strong_view"):
        build_loader("digits", None, False, 8, strong_view=True)
    with pytest.raises(ValueError, match="drop_last"):
        build_loader("digits", None, False, 8, drop_last=True)
    with pytest.raises(ValueError, match="drop_last=True"):
        build_loader("digits", None, True, 8, drop_last=False, world_size=2, dataset=digits_train)
    with pytest.raises(ValueError, match="rank"):
        build_loader("digits", None, True, 8, rank=2, world_size=2, dataset=digits_train)
    with pytest.raises(ValueError, match="global batch"):
        build_loader("digits", None, True, 1000, world_size=2, dataset=digits_train)
    with pytest.raises(ValueError, match="cub200_224"):
        build_loader("cub200", "/nowhere", True, 8)
    with pytest.raises(ValueError, match="not the train split"):
        build_loader("digits", None, True, 8, dataset=build_dataset("digits", None, train=False))
    # Evaluation may visit the train split (figkd eval --split train): every sample once, in order.
    assert build_loader("digits", None, False, 512, dataset=digits_train).num_samples == len(digits_train)


def test_resident_no_drop_last_single_process(digits_train):
    ld = build_loader("digits", None, True, 100, drop_last=False, dataset=digits_train)
    batches = _all(ld)
    assert len(ld) == 15 and len(batches[-1]) == 37
    assert sorted(torch.cat([b.target for b in batches]).tolist()) == sorted(digits_train.targets)


def test_cifar100_loader(tmp_path):
    root, content = make_cifar100(str(tmp_path), n_train=40, n_test=10)
    ld = build_loader("cifar100", root, True, 8, seed=1)
    assert len(ld) == 5 and ld.num_classes == 100
    assert next(iter(ld)).images.shape == (8, 3, 32, 32)
    ev = build_loader("cifar100", root, False, 4)
    x, y = torch.cat([b.images for b in ev]), torch.cat([b.target for b in ev])
    data, labels = content["test"]
    mean, std = _mean_std("cifar100")
    ref = (torch.from_numpy(data.reshape(-1, 3, 32, 32)).float() / 255 - mean) / std
    assert y.tolist() == labels and torch.allclose(x, ref, atol=1e-6)


def test_tiny_imagenet_loader(tmp_path):
    root = make_tiny_imagenet(str(tmp_path), per_class=4)
    ld = build_loader("tiny_imagenet", root, True, 4, strong_view=True, num_workers=1)
    b = next(iter(ld))
    assert b.images.shape == b.strong.shape == (4, 3, 64, 64) and len(ld) == 3
    assert ld.recipe.pad == 8


@pytest.mark.parametrize("name", ["mnist", "fashion_mnist", "kmnist"])
def test_idx_loaders_native_and_padded_to_32(tmp_path, name):
    root, content = make_idx(str(tmp_path), n_train=40, n_test=10, gz=True)
    images, labels = content["test"]
    for variant, size in ((name, 28), (f"{name}_32", 32)):
        ev = build_loader(variant, root, False, 4)
        assert isinstance(ev, ResidentLoader) and ev.recipe.name == variant and ev.recipe.size == size
        x, y = torch.cat([b.images for b in ev]), torch.cat([b.target for b in ev])
        b = (size - 28) // 2  # the _32 variants: a zero border of 2 pixels, the image unchanged inside
        grey = torch.zeros(len(images), size, size)
        grey[:, b : b + 28, b : b + 28] = torch.from_numpy(images).float() / 255
        mean, std = _mean_std(variant)
        ref = (grey[:, None].expand(-1, 3, -1, -1) - mean) / std
        assert y.tolist() == labels.tolist() and torch.allclose(x, ref, atol=1e-6)
        tr = build_loader(variant, root, True, 8, seed=0)
        assert next(iter(tr)).images.shape == (8, 3, size, size)


def test_recipe_without_flip_never_flips(tmp_path):
    # MNIST and KMNIST are not mirror-symmetric: their recipes have flip=False, Fashion-MNIST's flips.
    assert not recipe_for("mnist").flip and not recipe_for("kmnist_32").flip and recipe_for("fashion_mnist").flip
    root, _ = make_idx(str(tmp_path), n_train=64)
    for name, flipped in (("mnist", False), ("fashion_mnist", True)):
        ds = build_dataset(name, root)
        one = ArrayDataset(name, root, True, np.repeat(ds.images[:1], 64, axis=0), [0] * 64, ds.classes)
        ld = build_loader(name, root, True, 64, seed=0, strong_view=True, dataset=one)
        batch = next(iter(ld))
        x = batch.images
        raw = torch.from_numpy(one.images[:1]).float()
        offsets, flips = draw_pad_crop(make_generator("batch", 0, 0, 0), 64, 4)
        assert bool(flips.any()) and not bool(flips.all())
        for i in range(64):
            ref = pad_crop_flip(raw, offsets[i : i + 1], flips[i : i + 1] & flipped, 4)
            assert torch.allclose(x[i : i + 1], normalize(ref, *_mean_std(name)), atol=1e-6)


# ------------------------------------------------------------------------------ _32 and caching
def test_32_variant_is_plain_resize_and_cached(tmp_path, monkeypatch):
    root = make_mit67(str(tmp_path), train_per_class=3)
    cache = str(tmp_path / "cache")
    prepare_cache("mit67_32", root, False, cache, num_workers=1)
    assert len(os.listdir(cache)) == 3
    ev = build_loader("mit67_32", root, False, 64, cache_dir=cache, num_workers=1)
    ds = ev.dataset
    x = next(iter(ev)).images
    mean, std = _mean_std("mit67_32")
    for i in (0, 3):
        with Image.open(ds.paths[i]) as im:
            ref = np.array(im.convert("RGB").resize((32, 32), Image.Resampling.BILINEAR))
        ref = (torch.from_numpy(ref).permute(2, 0, 1)[None].float() / 255 - mean) / std
        assert torch.allclose(x[i : i + 1], ref, atol=1e-6)
    files = sorted(os.listdir(cache))
    assert len(files) == 3 and not [f for f in files if ".tmp" in f]
    assert {f.split(".", 1)[1] for f in files} == {"json", "images.npy", "labels.npy"}

    def no_decode(*a, **k):
        raise AssertionError("decoded although cached")

    monkeypatch.setattr(cache_mod, "_decode_resized", no_decode)
    again = build_loader("mit67_32", root, False, 64, cache_dir=cache, num_workers=1)
    assert torch.equal(next(iter(again)).images, x)
    # a changed split (another file list) gets its own cache entry, never the stale one
    os.remove(os.path.join(root, "Images", "kitchen", "kitchen_test_1.jpg"))
    with open(os.path.join(root, "TestImages.txt"), "w") as f:
        f.write("kitchen/kitchen_test_0.jpg\n")
    with pytest.raises(AssertionError, match="decoded although cached"):
        build_loader("mit67_32", root, False, 64, cache_dir=cache, num_workers=1)


# ---------------------------------------------------------------------------------- worker loader
@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return make_imagefolder(
        str(tmp_path_factory.mktemp("folder")), train_per_class=4, val_per_class=2, size=(300, 260)
    )


def _eval_reference(path):
    """Resize the shorter side to 256 (torchvision's rule), centre crop 224, normalise — with Pillow."""
    with Image.open(path) as im:
        im = im.convert("RGB")
        w, h = im.size
        size = (256, int(256 * h / w)) if w <= h else (int(256 * w / h), 256)
        im = im.resize(size, Image.Resampling.BILINEAR)
        left, top = int(round((size[0] - 224) / 2)), int(round((size[1] - 224) / 2))
        arr = np.array(im.crop((left, top, left + 224, top + 224)))
    mean, std = _mean_std("fgvr_224")
    return (torch.from_numpy(arr).permute(2, 0, 1)[None].float() / 255 - mean) / std


def test_worker_eval_is_resize_256_center_224(folder):
    ev = build_loader("imagefolder", folder, False, 3, num_workers=0)
    assert isinstance(ev, WorkerLoader) and len(ev) == 2
    batches = _all(ev)
    x = torch.cat([b.images for b in batches])
    assert x.shape == (4, 3, 224, 224) and torch.cat([b.target for b in batches]).tolist() == [0, 0, 1, 1]
    assert torch.cat([b.index for b in batches]).tolist() == [0, 1, 2, 3]
    for i in range(4):
        assert torch.allclose(x[i : i + 1], _eval_reference(ev.dataset.paths[i]), atol=1e-6)


def test_worker_train_deterministic_resume_and_workers(folder):
    ld = build_loader("imagefolder", folder, True, 2, seed=3, num_workers=0, strong_view=True)
    ld.set_epoch(1)
    full = _all(ld)
    assert len(full) == 4 and full[0].images.shape == (2, 3, 224, 224) and full[0].strong.shape == (2, 3, 224, 224)
    assert full[0].index.tolist() == ld.schedule.global_rows(1, 0).tolist()
    _same(_all(ld.iter_from(2)), full[2:])
    par = build_loader("imagefolder", folder, True, 2, seed=3, num_workers=1, strong_view=True)
    par.set_epoch(1)
    _same(_all(par.iter_from(1)), full[1:])  # worker processes give the same bits
    par.set_epoch(2)
    assert not torch.equal(_all(par)[0].images, full[0].images)


def test_worker_ddp_union_equals_single_process(folder):
    single = build_loader("imagefolder", folder, True, 4, seed=2, num_workers=0, strong_view=True)
    ranks = [
        build_loader(
            "imagefolder", folder, True, 2, seed=2, num_workers=0, strong_view=True, rank=r, world_size=2
        )
        for r in range(2)
    ]
    ref = _all(single)
    got = [_all(r) for r in ranks]
    assert len(ref) == 2
    for k in range(2):
        _same([_cat_ranks([g[k] for g in got])], [ref[k]])


def test_worker_random_resized_crop_varies(folder):
    ld = build_loader("imagefolder", folder, True, 8, seed=0, num_workers=0)
    x = next(iter(ld)).images
    assert x.shape == (8, 3, 224, 224)
    assert len({x[i].numpy().tobytes() for i in range(8)}) == 8


def test_worker_cache_matches_for_eval(folder, tmp_path):
    plain = torch.cat([b.images for b in build_loader("imagefolder", folder, False, 4, num_workers=0)])
    cache = str(tmp_path / "c")
    cached = torch.cat(
        [b.images for b in build_loader("imagefolder", folder, False, 4, num_workers=0, cache_dir=cache)]
    )
    assert torch.equal(plain, cached)  # the cache stores exactly the test recipe's first step
    files = os.listdir(cache)
    assert len(files) == 4 and any(f.endswith(".flat.npy") for f in files)
    tr = build_loader("imagefolder", folder, True, 4, seed=0, num_workers=1, cache_dir=cache)
    assert next(iter(tr)).images.shape == (4, 3, 224, 224)


def test_worker_corrupt_image_names_the_file(tmp_path):
    root = make_imagefolder(str(tmp_path), train_per_class=2, val_per_class=2, size=(60, 50))
    bad = os.path.join(root, "val", "dog", "dog_0.jpg")
    corrupt(bad)
    with pytest.raises(CorruptImageError, match="dog_0.jpg"):
        _all(build_loader("imagefolder", root, False, 2, num_workers=0))
    with pytest.raises(Exception, match="dog_0.jpg"):
        _all(build_loader("imagefolder", root, False, 2, num_workers=1))
    with pytest.warns(UserWarning, match="skipped 1 of 4"):
        ds = build_dataset("imagefolder", root, train=False, skip_corrupt=True)
    assert len(_all(build_loader("imagefolder", root, False, 2, num_workers=0, dataset=ds))) == 2
