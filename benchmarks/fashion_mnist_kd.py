"""Distillation methods on Fashion-MNIST (10 classes): vanilla, KD, DKD, DIST, FiGKD and three of FiGKD's
options, over several seeds, with the magnitude of every loss term (issue 17, part 4).

A teacher is trained once (seed 0); then, per seed, one distillation run trains every student on one
teacher forward per step (the engine's shared-teacher run): the same initialisation, data order and
augmentation for all objectives of a seed. The objectives are the presets of `figkd.losses` except:

- DKD's warm-up is scaled with the schedule: mdistiller ramps DKD over 20 of 240 epochs; a run of E
  epochs ramps over ``max(1, round(E * 20 / 240))`` epochs, else a short run would barely switch it on;
- three variants of the `figkd` preset (Eq. 7's weights kept), to see whether the raw-logit MSE is
  what limits FiGKD at 10 classes, none of which changes the paper's defaults:

  - ``figkd_kl``: ``criterion="kl", temperature=4`` (the detail term as a KL between softmaxes of
    each subband at T = 4, the kd preset's temperature);
  - ``figkd_ls``: the ``figkd+ls`` preset (each sample's logits z-scored before the transform, so
    the term compares logit relations, not magnitudes);
  - ``figkd_mean_all``: ``reduction="mean_all"`` (the mean over the stacked subbands; at C = 10 the
    4 x 3 grid gives three 2 x 2 detail subbands, so this is the default term divided by 3).

Prints a table of test top-1 (last epoch: mean and std over seeds) and of the loss terms' epoch means,
and writes JSON (default ``benchmarks/results/fashion_mnist_kd_<device>.json``).

    python benchmarks/fashion_mnist_kd.py --root /usr/share/datasets/fashion-mnist

The defaults (all 60,000 training images, a resnet20 teacher for 3 epochs, resnet8 students for 2,
seeds 0 1 2) are the run of docs/performance.md: on 2 CPU cores, 25 min for the teacher and about
68 min per seed with the three seeds in parallel processes.

Seeds in parallel processes (each run is deterministic for a given ``--threads``): train the teacher
with ``--teacher-only``, run ``--seeds 0``, ``--seeds 1``, ... as separate processes on the same
``--workdir`` (each with its own ``--out``), then run all the seeds once more: it reuses every finished
run and writes the combined table.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch

from benchutil import machine_info, write_json
from figkd.config import RunConfig
from figkd.demo import scaled_milestones
from figkd.engine import run
from figkd.losses import preset_spec

METHODS = ("vanilla", "kd", "dkd", "dist", "figkd", "figkd_kl", "figkd_ls", "figkd_mean_all")


def objective(method: str, epochs: int):
    """The objective of a method for a run of ``epochs`` epochs (see the module docstring)."""
    if method == "figkd_kl":
        spec = preset_spec("figkd")
        spec[1].update(criterion="kl", temperature=4.0)
        return spec
    if method == "figkd_ls":
        return preset_spec("figkd+ls")
    if method == "figkd_mean_all":
        spec = preset_spec("figkd")
        spec[1]["reduction"] = "mean_all"
        return spec
    if method == "dkd":
        spec = preset_spec("dkd")
        spec[1]["warmup"] = max(1, round(epochs * 20 / 240))
        return spec
    return method


def subset(root: str, n: int, folder: Path) -> str:
    """IDX files of the first ``n`` training images and labels of ``root`` and its whole test split, in ``folder``."""
    from figkd.data.idx import FAMILIES, idx_files, read_idx

    folder.mkdir(parents=True, exist_ok=True)
    for train in (True, False):
        for path in idx_files(FAMILIES["fashion_mnist"], root, train):
            arr = read_idx(path)[:n] if train else read_idx(path)
            name = Path(path).name.removesuffix(".gz")
            header = bytes([0, 0, 0x08, arr.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in arr.shape)
            (folder / name).write_bytes(header + arr.tobytes())
    return str(folder)


def _metrics(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines() if line.strip()]


def _mean_std(values: list[float]) -> tuple[float, float]:
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--root", default="/usr/share/datasets/fashion-mnist", help="folder of the IDX files")
    p.add_argument("--dataset", default="fashion_mnist", help="fashion_mnist (28x28) or fashion_mnist_32")
    p.add_argument("--teacher", default="resnet20")
    p.add_argument("--student", default="resnet8")
    p.add_argument("--teacher-epochs", type=int, default=3)
    p.add_argument("--epochs", type=int, default=2, help="epochs of each student")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--lr", type=float, default=0.1, help="initial learning rate (0.05 per 64 images, the paper's)")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    p.add_argument("--train-images", type=int, default=None,
                   help="train on the first N training images only (written as IDX files under --workdir); "
                   "the test split stays whole")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    p.add_argument("--data-only", action="store_true",
                   help="write the IDX files of --train-images under --workdir, print their folder and stop (the data "
                        "of docs/tuning.md's study)")
    p.add_argument("--teacher-only", action="store_true",
                   help="train (or reuse) the teacher and stop: then several processes can each run some --seeds "
                   "on the same --workdir, and a last run of all the seeds reuses their runs for the table")
    p.add_argument("--device", default="cpu")
    p.add_argument("--workdir", default="runs/fashion_mnist_kd", help="run directories (finished runs are reused)")
    p.add_argument("--out", default=None, help="JSON path (default benchmarks/results/fashion_mnist_kd_<device>.json)")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    work = Path(args.workdir)
    root = subset(args.root, args.train_images, work / f"data-{args.train_images}") if args.train_images else args.root
    if args.data_only:
        print(root)
        return 0
    # evaluated once, after the last epoch (the test split is 10,000 images per student)
    common = dict(dataset=args.dataset, data_root=root, batch_size=args.batch_size, lr=args.lr,
                  device=args.device, progress="off", tensorboard=False, eval_every=10**6)
    quiet = lambda *a, **k: None  # noqa: E731

    start = time.perf_counter()
    teacher_cfg = RunConfig(model=args.teacher, epochs=args.teacher_epochs, seed=0, out=str(work / "teacher"),
                            lr_milestones=scaled_milestones(args.teacher_epochs), **common)
    [teacher] = run(teacher_cfg, "train", log=quiet)
    teacher_s = time.perf_counter() - start
    print(f"teacher {args.teacher}: {args.teacher_epochs} epochs, test top-1 {teacher['last_top1']:.2f} "
          f"({teacher_s:.0f}s)", flush=True)
    if args.teacher_only:
        return 0

    runs = []
    for seed in args.seeds:
        t0 = time.perf_counter()
        configs = [RunConfig(teacher=args.teacher, teacher_ckpt=teacher["run_dir"], student=args.student,
                             objective=objective(m, args.epochs), epochs=args.epochs, seed=seed,
                             lr_milestones=scaled_milestones(args.epochs), out=str(work / f"{m}-s{seed}"), **common)
                   for m in args.methods]
        summaries = run(configs, "distill", log=quiet)
        seconds = time.perf_counter() - t0
        for method, s in zip(args.methods, summaries, strict=True):
            history = _metrics(Path(s["run_dir"]))
            losses = [{k[len("train/loss/"):]: v for k, v in r.items() if k.startswith("train/loss/")} for r in history]
            runs.append({"method": method, "seed": seed, "last_top1": s["last_top1"], "best_top1": s["best_top1"],
                         "losses_per_epoch": losses, "test_top1_per_epoch": [r.get("test/top1") for r in history]})
        write_json({"info": machine_info(args.device, args), "teacher": teacher, "runs": runs, "partial": True},
                   args.out, f"fashion_mnist_kd_{args.device}.json")
        print(f"seed {seed}: " + ", ".join(f"{m} {s['last_top1']:.2f}" for m, s in zip(args.methods, summaries,
                                                                                         strict=True))
              + f" ({seconds:.0f}s)", flush=True)

    print(f"\n{args.student} students from {args.teacher} ({teacher['last_top1']:.2f}), {args.dataset}, "
          f"{args.epochs} epochs, seeds {args.seeds}: test top-1 of the last epoch")
    print(f"{'method':<14} " + " ".join(f"{'s' + str(s):>6}" for s in args.seeds) + f" {'mean':>6} {'std':>5}"
          + "  loss terms, epoch means: first -> last")
    summary = {}
    for m in args.methods:
        rs = [r for r in runs if r["method"] == m]
        top1 = [r["last_top1"] for r in rs]
        mean, std = _mean_std(top1)
        first, last = rs[0]["losses_per_epoch"][0], rs[0]["losses_per_epoch"][-1]
        terms = {k: _mean_std([r["losses_per_epoch"][0][k] for r in rs])[0] for k in first}
        terms_last = {k: _mean_std([r["losses_per_epoch"][-1][k] for r in rs])[0] for k in last}
        summary[m] = {"top1": top1, "mean": mean, "std": std, "loss_first_epoch": terms, "loss_last_epoch": terms_last}
        shown = ", ".join(f"{k} {terms[k]:.3g} -> {terms_last[k]:.3g}" for k in terms if k != "total")
        print(f"{m:<14} " + " ".join(f"{t:6.2f}" for t in top1) + f" {mean:6.2f} {std:5.2f}  {shown}")
    total = time.perf_counter() - start
    print(f"\ntotal {total:.0f}s (teacher {teacher_s:.0f}s)")
    out = write_json({"info": machine_info(args.device, args), "teacher": teacher, "runs": runs, "summary": summary,
                      "seconds": total}, args.out, f"fashion_mnist_kd_{args.device}.json")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
