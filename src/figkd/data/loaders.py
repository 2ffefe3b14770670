"""Loaders: batches of normalised float32 images on the device, deterministic and resumable.

Two kinds behind one interface (:func:`build_loader`):

- :class:`ResidentLoader` (CIFAR-100, TinyImageNet, digits, the ``_32`` variants): the whole uint8
  split lives on ``device``; a batch is an index gather, crop and flip are one batched gather, and
  normalisation follows, all on the device, no worker processes.
- :class:`WorkerLoader` (the ``_224`` recipes, ``imagefolder``): a ``torch.utils.data.DataLoader`` whose
  worker processes decode with Pillow and crop-then-resize on the CPU (one ``Image.resize(box=...)``),
  flip, and return uint8 batches in pinned memory; normalisation (and the strong view's RandAugment and
  cutout) run batched on the device.

The contract the training engine relies on (tests check each point):

- Epoch ``e`` of training visits ``perm = randperm(N)`` drawn from a generator seeded by
  ``(seed, e)``. Global step ``k`` takes ``perm[k*G:(k+1)*G]`` with ``G = world_size * batch_size``;
  rank ``r`` keeps rows ``[r*b, (r+1)*b)``. The last incomplete global batch is dropped (static shapes).
  With ``max_steps`` an epoch ends after its first ``max_steps`` steps (the rest of its pass is unused).
- Every random parameter of step ``k`` comes from generators seeded by ``(seed, e, k)`` (and, in the
  workers, the sample's position in the global batch), drawn on the CPU for the whole global batch and
  then sliced. Hence ``iter_from(k)`` yields exactly the batches ``k, k+1, ...`` of a full pass, and the
  ranks' batches together are the single-process batch of size ``G``, bit for bit on the same device.
- Evaluation (``train=False``) visits every sample once, in dataset order, with no augmentation but
  normalisation and no dropped batch. With ``world_size`` W each rank takes the contiguous shard
  ``[r*s, min(N, (r+1)*s))``, ``s = ceil(N / W)`` (the last shard may be shorter or empty): sum correct
  counts and sample counts over ranks, not per-rank means.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterator, Sequence

import numpy as np
import torch
from PIL import Image

from ..errors import DataError
from .augment import (
    STRONG,
    Recipe,
    cutout,
    draw_pad_crop,
    draw_strong,
    make_generator,
    normalize,
    pad_crop_flip,
    rand_augment,
    sample_resized_crop,
)
from .base import FileDataset
from .batch import Batch
from .cache import ResizedCache, resident_arrays, resized_cache
from .images import (
    RESAMPLE,
    center_crop_box,
    default_threads,
    open_image,
    resize_shorter,
    to_rgb,
    warn_if_much_smaller,
)
from .registry import build_dataset, dataset_spec, list_datasets, recipe_for

__all__ = ["Batch", "ResidentLoader", "WorkerLoader", "build_loader", "prepare_cache"]


class _Schedule:
    """Which samples each step of this rank takes (indices into the dataset)."""

    def __init__(
        self,
        n: int,
        batch_size: int,
        train: bool,
        seed: int,
        rank: int,
        world_size: int,
        drop_last: bool,
        max_steps: int | None = None,
    ):
        self.n, self.b, self.train, self.seed = n, batch_size, train, seed
        self.rank, self.world = rank, world_size
        self.drop_last = drop_last
        self.global_batch = batch_size * world_size if train else batch_size
        if train:
            self.steps = n // self.global_batch if drop_last else math.ceil(n / self.global_batch)
            if self.steps == 0:
                raise DataError(
                    f"the training split has {n} images, fewer than one global batch of {self.global_batch} "
                    f"({world_size} process(es) x batch_size {batch_size}; the last partial batch is dropped): "
                    f"lower --batch-size to at most {n // world_size}"
                )
            self.full_steps = self.steps
            if max_steps is not None:  # the first max_steps batches of the epoch's pass (steps_per_epoch)
                self.steps = min(self.steps, max_steps)
        else:
            shard = math.ceil(n / world_size)
            self.lo, self.hi = min(n, rank * shard), min(n, (rank + 1) * shard)
            self.steps = math.ceil((self.hi - self.lo) / batch_size)
        self._perm_epoch: int | None = None
        self._perm: torch.Tensor | None = None

    def permutation(self, epoch: int) -> torch.Tensor:
        if self._perm_epoch != epoch:
            self._perm = torch.randperm(self.n, generator=make_generator("perm", self.seed, epoch))
            self._perm_epoch = epoch
        assert self._perm is not None
        return self._perm

    def global_rows(self, epoch: int, step: int) -> torch.Tensor:
        """Dataset indices of the whole global batch of a training step."""
        g = self.global_batch
        return self.permutation(epoch)[step * g : (step + 1) * g]

    def rank_slice(self, global_size: int) -> slice:
        """Rows of a global batch of ``global_size`` that belong to this rank."""
        if global_size == self.global_batch:
            return slice(self.rank * self.b, (self.rank + 1) * self.b)
        return slice(0, global_size)  # the incomplete last batch of a single-process run

    def eval_rows(self, step: int) -> torch.Tensor:
        lo = self.lo + step * self.b
        return torch.arange(lo, min(self.hi, lo + self.b))

    @property
    def num_samples(self) -> int:
        if self.train:
            return self.steps * self.b if self.drop_last else self.n
        return self.hi - self.lo


class _LoaderBase:
    def __init__(
        self,
        name: str,
        dataset,
        recipe: Recipe,
        train: bool,
        batch_size: int,
        *,
        device,
        seed: int,
        strong_view: bool,
        rank: int,
        world_size: int,
        drop_last: bool,
        max_steps: int | None = None,
    ):
        self.name = name
        self.dataset = dataset
        self.recipe = recipe
        self.strong = STRONG if strong_view else None
        self.train = train
        self.batch_size = batch_size
        self.device = torch.device(device)
        self.seed = seed
        self.rank, self.world_size = rank, world_size
        self.epoch = 0
        self.schedule = _Schedule(len(dataset), batch_size, train, seed, rank, world_size, drop_last, max_steps)
        self._mean = torch.tensor(recipe.mean, dtype=torch.float32, device=self.device).view(1, 3, 1, 1)
        self._std = torch.tensor(recipe.std, dtype=torch.float32, device=self.device).view(1, 3, 1, 1)

    # -- the interface ---------------------------------------------------------------------------
    @property
    def num_classes(self) -> int:
        return self.dataset.num_classes

    @property
    def classes(self) -> list[str]:
        return self.dataset.classes

    @property
    def global_batch_size(self) -> int:
        return self.schedule.global_batch

    @property
    def num_samples(self) -> int:
        """Samples this rank sees per epoch (training: ``len(self) * batch_size``; evaluation: its shard)."""
        return self.schedule.num_samples

    def __len__(self) -> int:
        return self.schedule.steps

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose permutation and augmentation the next iteration uses."""
        self.epoch = int(epoch)

    def __iter__(self) -> Iterator[Batch]:
        return self.iter_from(0)

    def iter_from(self, step: int = 0) -> Iterator[Batch]:
        """Batches ``step, step + 1, ..., len(self) - 1`` of the current epoch, each a
        :class:`~figkd.data.batch.Batch` (``strong`` set with ``strong_view``; ``index`` always)."""
        if not 0 <= step <= len(self):
            raise ValueError(f"step {step} outside [0, {len(self)}]")
        return self._iterate(self.epoch, step)

    def _iterate(self, epoch: int, step: int) -> Iterator[Batch]:  # pragma: no cover - abstract
        raise NotImplementedError

    def _strong_params(self, epoch: int, step: int, global_size: int, g: torch.Generator | None = None):
        g = g if g is not None else make_generator("strong", self.seed, epoch, step)
        p = draw_strong(g, global_size, STRONG.num_ops)
        sl = self.schedule.rank_slice(global_size)
        return {k: v[sl] for k, v in p.items()}

    def _strong_view(self, crops_u8: torch.Tensor, p: dict) -> torch.Tensor:
        x = rand_augment(
            crops_u8.float(),
            p["ops"],
            p["signs"],
            magnitude=STRONG.magnitude,
            num_bins=STRONG.num_magnitude_bins,
        )
        x = cutout(x, p["cutout"], max_fraction=STRONG.cutout_max_fraction, fill=STRONG.cutout_fill)
        return normalize(x, self._mean, self._std)

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}({self.name!r}, train={self.train}, batch_size={self.batch_size}, "
            f"steps={len(self)}, device={self.device}, rank={self.rank}/{self.world_size}, "
            f"strong_view={self.strong is not None})"
        )


class ResidentLoader(_LoaderBase):
    """The whole split as uint8 on ``device``; batches gathered, cropped and flipped there."""

    def __init__(
        self,
        name: str,
        dataset,
        images: np.ndarray,
        targets: np.ndarray,
        recipe: Recipe,
        train: bool,
        batch_size: int,
        **kw,
    ):
        super().__init__(name, dataset, recipe, train, batch_size, **kw)
        if images.shape[-2:] != (recipe.size, recipe.size):
            raise ValueError(
                f"{name}: images are {images.shape[-2:]}, recipe {recipe.name} needs {recipe.size}"
            )
        self.images = torch.from_numpy(np.ascontiguousarray(images)).to(self.device)
        self.labels = torch.from_numpy(np.asarray(targets, dtype=np.int64)).to(self.device)

    def _iterate(self, epoch: int, step: int) -> Iterator[Batch]:
        for k in range(step, len(self)):
            yield self.batch(epoch, k)

    def batch(self, epoch: int, step: int) -> Batch:
        """Step ``step`` of epoch ``epoch`` (random access; what iteration yields)."""
        s = self.schedule
        if not self.train:
            rows = s.eval_rows(step).to(self.device)
            return Batch(normalize(self.images.index_select(0, rows), self._mean, self._std), self.labels[rows],
                         index=rows)
        rows_global = s.global_rows(epoch, step)
        g = make_generator("batch", self.seed, epoch, step)
        gsize = len(rows_global)
        sl = s.rank_slice(gsize)
        pad = self.recipe.pad
        offsets, flips = draw_pad_crop(g, gsize, pad)
        if self.strong is not None:
            offsets2, flips2 = draw_pad_crop(g, gsize, pad)
            sp = self._strong_params(epoch, step, gsize, g)
        if not self.recipe.flip:  # drawn all the same: the other parameters do not depend on the recipe
            flips = torch.zeros_like(flips)
            if self.strong is not None:
                flips2 = torch.zeros_like(flips2)
        rows = rows_global[sl].to(self.device, non_blocking=True)
        raw = self.images.index_select(0, rows)
        labels = self.labels.index_select(0, rows)
        images = normalize(pad_crop_flip(raw, offsets[sl], flips[sl], pad), self._mean, self._std)
        if self.strong is None:
            return Batch(images, labels, index=rows)
        strong = self._strong_view(pad_crop_flip(raw, offsets2[sl], flips2[sl], pad), sp)
        return Batch(images, labels, strong=strong, index=rows)


# ------------------------------------------------------------------------------- worker loader
class _DecodeDataset(torch.utils.data.Dataset):
    """What the worker processes run: decode one image and crop/resize/flip it, deterministically.

    Keys are ``(index, epoch, step, position)`` in training (``position`` = row in the global batch,
    which seeds the sample's generator) and ``(index,)`` in evaluation.
    """

    def __init__(
        self,
        ds: FileDataset,
        recipe: Recipe,
        train: bool,
        strong: bool,
        seed: int,
        cache: ResizedCache | None,
    ):
        self.paths, self.targets = ds.paths, ds.targets
        self.recipe, self.train, self.strong, self.seed, self.cache = recipe, train, strong, seed, cache

    def __len__(self) -> int:
        return len(self.paths)

    def _image(self, i: int) -> Image.Image:
        if self.cache is not None:
            return Image.fromarray(self.cache.image(i))
        path = self.paths[i]
        with open_image(path) as img:
            return to_rgb(img, path)

    def _random_crop(self, img: Image.Image, g: torch.Generator) -> np.ndarray:
        r = self.recipe
        left, top, w, h = sample_resized_crop(img.width, img.height, g, r.scale, r.ratio)
        flip = bool(torch.rand(1, generator=g) < 0.5) and r.flip
        out = img.resize((r.size, r.size), RESAMPLE, box=(left, top, left + w, top + h))
        arr = np.asarray(out, dtype=np.uint8)
        return arr[:, ::-1] if flip else arr

    def __getitem__(self, key: tuple[int, ...]):
        i = key[0]
        img = self._image(i)
        r = self.recipe
        if not self.train:
            img = resize_shorter(img, r.test_resize)
            arr = np.asarray(img.crop(center_crop_box(img.width, img.height, r.size)), dtype=np.uint8)
            return _chw(arr), self.targets[i], i
        _, epoch, step, pos = key
        g = make_generator("sample", self.seed, epoch, step, pos)
        first = _chw(self._random_crop(img, g))
        if not self.strong:
            return first, self.targets[i], i
        return first, _chw(self._random_crop(img, g)), self.targets[i], i


def _chw(arr: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(arr.transpose(2, 0, 1)))


class _StepBatchSampler:
    """Yields, for each step from ``start``, this rank's list of keys for :class:`_DecodeDataset`.
    Iterated in the main process; ``epoch`` and ``start`` are read when an iteration begins. It holds
    the schedule, not the loader: a reference cycle through the DataLoader would leave its worker
    processes to the garbage collector, whose teardown order stalls their shutdown."""

    def __init__(self, schedule: _Schedule):
        self.schedule = schedule
        self.epoch = 0
        self.start = 0

    def __len__(self) -> int:
        return self.schedule.steps - self.start

    def __iter__(self):
        s, epoch, start = self.schedule, self.epoch, self.start
        for k in range(start, s.steps):
            if not s.train:
                yield [(int(i),) for i in s.eval_rows(k)]
                continue
            rows = s.global_rows(epoch, k)
            sl = s.rank_slice(len(rows))
            first = sl.start
            yield [(int(i), epoch, k, first + j) for j, i in enumerate(rows[sl].tolist())]


def _worker_init(_: int) -> None:
    torch.set_num_threads(1)


class WorkerLoader(_LoaderBase):
    """JPEG decoding in worker processes, the rest of the recipe on the device."""

    def __init__(
        self,
        name: str,
        dataset: FileDataset,
        recipe: Recipe,
        train: bool,
        batch_size: int,
        *,
        num_workers: int,
        cache: ResizedCache | None = None,
        **kw,
    ):
        super().__init__(name, dataset, recipe, train, batch_size, **kw)
        self.num_workers = num_workers
        self.cache = cache
        self._sampler = _StepBatchSampler(self.schedule)
        pin = self.device.type == "cuda"
        self._dl = torch.utils.data.DataLoader(
            _DecodeDataset(dataset, recipe, train, self.strong is not None, self.seed, cache),
            batch_sampler=self._sampler,
            num_workers=num_workers,
            pin_memory=pin,
            persistent_workers=num_workers > 0,
            prefetch_factor=4 if num_workers > 0 else None,
            worker_init_fn=_worker_init if num_workers > 0 else None,
        )

    def _iterate(self, epoch: int, step: int) -> Iterator[Batch]:
        self._sampler.epoch, self._sampler.start = epoch, step
        it = iter(self._dl)
        for k, batch in enumerate(it, start=step):
            *views, labels, index = (t.to(self.device, non_blocking=True) for t in batch)
            images = normalize(views[0], self._mean, self._std)
            if self.strong is None:
                yield Batch(images, labels, index=index)
                continue
            gsize = len(self.schedule.global_rows(epoch, k))
            yield Batch(images, labels, strong=self._strong_view(views[1], self._strong_params(epoch, k, gsize)),
                        index=index)


# -------------------------------------------------------------------------------------- builder
def build_loader(
    name: str,
    root: str | None,
    train: bool,
    batch_size: int,
    *,
    device: str | torch.device = "cpu",
    seed: int = 0,
    strong_view: bool = False,
    rank: int = 0,
    world_size: int = 1,
    num_workers: int | None = None,
    drop_last: bool | None = None,
    cache_dir: str | None = None,
    dataset=None,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    max_steps: int | None = None,
) -> ResidentLoader | WorkerLoader:
    """A loader for dataset ``name`` (one of :func:`~figkd.data.list_datasets`).

    ``dataset``: an already built dataset of the same family and split (``root`` is then unused).
    ``num_workers``: decoding processes of the JPEG loaders (None: ``min(8, os.cpu_count())``); for the
    resident loaders, the threads that decode/resize a file dataset once. ``drop_last``: None means
    True for training and False for evaluation; evaluation never drops. ``cache_dir``: where the
    decoded 32x32/64x64 arrays (resident loaders) or the shorter-side-256 images (JPEG loaders) are
    cached. ``strong_view`` adds MLKD's second view (training only). To skip corrupt images, build the
    dataset with ``build_dataset(..., skip_corrupt=True)`` and pass it as ``dataset``. ``mean`` / ``std``:
    three per-channel values ([0, 1] units) that replace the recipe's normalisation (``loader.recipe``
    then carries them; see :mod:`figkd.data.normalization` for ``auto``). ``max_steps`` (training only): each
    epoch is the first ``max_steps`` batches of its pass (a quick trial; ``steps_per_epoch`` in the config):
    the same batches, bit for bit, as the first steps of the full epoch.
    """
    spec = dataset_spec(name)
    recipe = recipe_for(spec.name)
    assert isinstance(recipe, Recipe)
    if mean is not None or std is not None:
        given = {k: tuple(float(x) for x in v) for k, v in (("mean", mean), ("std", std)) if v is not None}
        if any(len(v) != 3 for v in given.values()) or min(given.get("std", (1.0,))) <= 0:
            raise ValueError(f"mean and std must be 3 per-channel values (std > 0), got mean={mean!r}, std={std!r}")
        recipe = dataclasses.replace(recipe, **given, source=f"{recipe.source}; normalisation: {given} given")
    if batch_size < 1:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    if not (world_size >= 1 and 0 <= rank < world_size):
        raise ValueError(f"need 0 <= rank < world_size, got rank={rank}, world_size={world_size}")
    if strong_view and not train:
        raise ValueError("strong_view is a training-time view; evaluation loaders have none")
    if drop_last is None:
        drop_last = train
    if not train and drop_last:
        raise ValueError("evaluation visits every sample: drop_last must be False or None")
    if train and not drop_last and world_size > 1:
        raise ValueError("distributed training needs drop_last=True (equal, static batches on every rank)")
    if num_workers is None:
        num_workers = default_threads()
    if dataset is None:
        dataset = build_dataset(spec.family, root, train)
    elif dataset.name != spec.family or (train and not dataset.train):
        # Evaluation (train=False) may visit either split: `figkd eval --split train`.
        raise ValueError(
            f"dataset {dataset!r} is not {'the train split' if train else 'a split'} of {spec.family} "
            f"(needed by {name})"
        )
    kw = dict(
        device=device,
        seed=seed,
        strong_view=strong_view,
        rank=rank,
        world_size=world_size,
        drop_last=drop_last,
        max_steps=max_steps if train else None,
    )
    if spec.loader == "resident":
        images, targets = resident_arrays(
            dataset, spec.size, cache_dir=cache_dir, threads=num_workers or None, fit=spec.fit
        )
        return ResidentLoader(name, dataset, images, targets, recipe, train, batch_size, **kw)
    if not isinstance(dataset, FileDataset):
        raise ValueError(f"{name} needs image files, got {type(dataset).__name__}")
    small = f"{spec.family}_32"
    warn_if_much_smaller(name, dataset.paths, recipe.size, small if small in list_datasets() else "a _32 dataset")
    cache = (
        resized_cache(dataset, recipe.test_resize, cache_dir, threads=num_workers or None)
        if cache_dir
        else None
    )
    return WorkerLoader(name, dataset, recipe, train, batch_size, num_workers=num_workers, cache=cache, **kw)


def prepare_cache(
    name: str, root: str | None, train: bool, cache_dir: str, *, num_workers: int | None = None, dataset=None
) -> None:
    """Build the cache :func:`build_loader` uses with ``cache_dir`` (decoded 32x32/64x64 arrays, or the
    shorter-side-256 images of a ``_224`` dataset), if it is not there yet. Under DDP call it on rank 0
    before a barrier, so that the ranks do not all decode the dataset at once. A dataset held in memory
    (CIFAR-100, digits) needs no cache: nothing is written."""
    spec = dataset_spec(name)
    ds = dataset if dataset is not None else build_dataset(spec.family, root, train)
    threads = num_workers or None
    if not isinstance(ds, FileDataset):
        return
    if spec.loader == "resident":
        resident_arrays(ds, spec.size, cache_dir=cache_dir, threads=threads)
    else:
        resized_cache(ds, recipe_for(name).test_resize, cache_dir, threads=threads)
