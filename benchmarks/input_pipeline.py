"""Images per second of each figkd.data loader kind.

- ``resident``: CIFAR-shaped synthetic uint8 data (N x 3 x 32 x 32) held on the device; pad-crop-flip and
  normalisation batched there (the CIFAR-100 / TinyImageNet / digits / ``_32`` path).
- ``resident+strong``: the same with MLKD's second view (RandAugment 2 x 10 + cutout) added.
- ``jpeg``: generated JPEGs (default 500x375, a typical fine-grained image) in an image folder, decoded
  and random-resized-cropped to 224 by worker processes (the ``_224`` path); ``jpeg+strong`` adds the second
  view; ``jpeg-eval`` is the test recipe (resize 256, centre crop 224); ``jpeg-cached`` reads the
  shorter-side-256 cache instead of the JPEGs.

Usage::

    python benchmarks/input_pipeline.py                       # CPU, and CUDA when present
    python benchmarks/input_pipeline.py --device cpu --n-small 4096 --n-jpeg 128 --steps 20

Prints a table and writes JSON (``--out``, default ``benchmarks/results/input_pipeline_<device>.json``).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

import numpy as np
import torch

from benchutil import machine_info, write_json
from figkd.data import ArrayDataset, build_dataset, build_loader


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def measure(loader, steps: int, warmup: int) -> dict:
    """Wall-clock images/s over ``steps`` batches after ``warmup`` batches (epochs restart as needed),
    and the main process's CPU time per batch (worker processes not included)."""
    device = loader.device
    done, epoch, t0, c0 = 0, 0, 0.0, 0.0
    images = 0
    while done < warmup + steps:
        loader.set_epoch(epoch)
        for batch in loader:
            if done == warmup:
                _sync(device)
                t0, c0 = time.perf_counter(), time.process_time()
            if done >= warmup:
                images += len(batch)
            done += 1
            if done == warmup + steps:
                break
        epoch += 1
    _sync(device)
    dt, dc = time.perf_counter() - t0, time.process_time() - c0
    return {
        "images_per_s": images / dt,
        "ms_per_batch": 1000 * dt / steps,
        "main_cpu_ms_per_batch": 1000 * dc / steps,
        "batches": steps,
        "images": images,
    }


def best_of(loader, steps: int, warmup: int, repeats: int) -> dict:
    """The fastest of ``repeats`` measurements (shared machines make single runs noisy), with the median."""
    runs = [measure(loader, steps, warmup if i == 0 else 0) for i in range(repeats)]
    best = max(runs, key=lambda r: r["images_per_s"])
    return {
        **best,
        "median_images_per_s": float(np.median([r["images_per_s"] for r in runs])),
        "repeats": repeats,
    }


def make_jpegs(root: str, n: int, size: tuple[int, int], classes: int = 4, seed: int = 0) -> str:
    from PIL import Image, ImageFilter

    rng = np.random.default_rng(seed)
    for split, count in (("train", n), ("val", max(classes, n // 4))):
        for i in range(count):
            c = i % classes
            d = os.path.join(root, split, f"class{c}")
            os.makedirs(d, exist_ok=True)
            w, h = size
            # smooth noise compresses like a photograph, unlike white noise
            small = rng.integers(0, 256, (h // 8, w // 8, 3), dtype=np.uint8)
            img = Image.fromarray(small).resize((w, h), Image.Resampling.BICUBIC).filter(ImageFilter.DETAIL)
            img.save(os.path.join(d, f"{i:05d}.jpg"), quality=90)
    return root


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default=None, help="cpu or cuda (default: cuda when present, and cpu)")
    p.add_argument("--batch-size", type=int, default=64, help="per-step batch (the paper trains with 64)")
    p.add_argument("--n-small", type=int, default=10000, help="images of the synthetic CIFAR-shaped set")
    p.add_argument("--n-jpeg", type=int, default=256, help="generated JPEGs")
    p.add_argument("--jpeg-size", type=int, nargs=2, default=(500, 375), metavar=("W", "H"))
    p.add_argument("--steps", type=int, default=50)
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--repeats", type=int, default=3, help="measurements per loader; the best is reported")
    p.add_argument("--workers", type=int, default=None, help="JPEG worker processes (default min(8, cpus))")
    p.add_argument("--out", default=None)
    a = p.parse_args(argv)

    devices = [a.device] if a.device else (["cuda", "cpu"] if torch.cuda.is_available() else ["cpu"])
    rng = np.random.default_rng(0)
    small = ArrayDataset(
        "cifar100",
        None,
        True,
        rng.integers(0, 256, (a.n_small, 3, 32, 32), dtype=np.uint8),
        rng.integers(0, 100, a.n_small).tolist(),
        [str(i) for i in range(100)],
    )
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        root = make_jpegs(os.path.join(tmp, "jpegs"), a.n_jpeg, tuple(a.jpeg_size))
        size = f"{a.jpeg_size[0]}x{a.jpeg_size[1]}"
        print(f"generated {a.n_jpeg} JPEGs of {size} in {time.perf_counter() - t:.1f}s")
        train_ds = build_dataset("imagefolder", root, train=True)
        val_ds = build_dataset("imagefolder", root, train=False)
        cache = os.path.join(tmp, "cache")
        w = a.workers
        cases = [  # (kind, dataset name, train, extra build_loader arguments)
            ("resident", "cifar100", True, {"dataset": small}),
            ("resident+strong", "cifar100", True, {"dataset": small, "strong_view": True}),
            ("jpeg", "imagefolder", True, {"dataset": train_ds, "num_workers": w}),
            (
                "jpeg+strong",
                "imagefolder",
                True,
                {"dataset": train_ds, "num_workers": w, "strong_view": True},
            ),
            ("jpeg-eval", "imagefolder", False, {"dataset": val_ds, "num_workers": w}),
            ("jpeg-cached", "imagefolder", True, {"dataset": train_ds, "num_workers": w, "cache_dir": cache}),
        ]
        for dev in devices:
            device = torch.device(dev)
            for kind, name, train, kw in cases:
                loader = build_loader(name, root, train, a.batch_size, device=device, **kw)
                resident = kind.startswith("resident")
                steps = a.steps if resident else min(a.steps, 4 * len(loader))
                r = best_of(loader, steps, a.warmup if resident else 1, a.repeats)
                nw = getattr(loader, "num_workers", 0)
                results.append(
                    {"device": str(device), "kind": kind, "batch_size": a.batch_size, "workers": nw, **r}
                )
                print(
                    f"{dev:5s} {kind:16s} {r['images_per_s']:10.0f} img/s  {r['ms_per_batch']:8.2f} ms/batch "
                    f"(median {r['median_images_per_s']:.0f} img/s)"
                )
                del loader

    name = "cpu"
    if "cuda" in devices:
        name = "cuda-" + torch.cuda.get_device_name(0).replace(" ", "_")
    info = machine_info(devices[0], a)
    out = write_json({"info": info, "results": results}, a.out, f"input_pipeline_{name}.json")
    print()
    print(
        "| device | loader | batch | workers | images/s (best) | images/s (median) | ms/batch "
        "| main CPU ms/batch |"
    )
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    for r in results:
        print(
            f"| {r['device']} | {r['kind']} | {r['batch_size']} | {r['workers']} | {r['images_per_s']:.0f} | "
            f"{r['median_images_per_s']:.0f} | {r['ms_per_batch']:.2f} | {r['main_cpu_ms_per_batch']:.2f} |"
        )
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()
