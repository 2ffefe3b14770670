"""Does the fast path learn what the plain fp32 path learns? Short distillation runs on digits.

Issue #6 asks that the fast path (on CUDA: bf16 autocast, channels_last and the whole step captured
in a CUDA graph) give the same results as fp32 eager. This script trains a teacher once (fp32),
then, for each seed, the same student with the same seed, data order and augmentation twice: once
in fp32 eager (``amp=none, channels_last=off, cuda_graph=off``) and once on the fast path
(``amp=bf16, channels_last=on, cuda_graph=auto``: captured on CUDA, eager on a CPU). It reports

- the test top-1 of each run, per seed, and the mean and seed-to-seed standard deviation per path
  (same results = the difference of the means within the seed-to-seed noise);
- the total loss of each of the first ``--compare-steps`` training steps in both paths and their
  relative difference (bf16 keeps 8 significant bits: a relative precision of 2^-8 = 0.39%; the
  paths start from the same weights, so the first steps agree to about that, and drift apart as
  rounding differences accumulate in the weights).

Data: figkd's bundled digits split (real images, no download), on the device like every resident
dataset. Prints tables and writes JSON (default ``benchmarks/results/equivalence_<device>.json``).

    python benchmarks/equivalence.py                    # on the GPU machine: 3 seeds, 15 epochs
    python benchmarks/equivalence.py --device cpu --epochs 2 --seeds 0 1 --teacher-epochs 2
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

from benchutil import machine_info, write_json
from figkd.config import RunConfig
from figkd.data import build_loader
from figkd.demo import scaled_milestones
from figkd.engine import run
from figkd.engine.device import resolve_channels_last, resolve_device
from figkd.engine.distributed import DistInfo
from figkd.engine.evaluate import evaluate
from figkd.engine.learner import build_learner
from figkd.engine.member import build_member
from figkd.engine.trainer import Trainer
from figkd.models import build_model, load_teacher

PATHS = {
    "fp32": {"amp": "none", "channels_last": "off", "cuda_graph": "off"},
    "fast": {"amp": "bf16", "channels_last": "on", "cuda_graph": "auto"},
}
CLASSES = 10  # digits
#: Image side of the bundled digits datasets (figkd.data: digits upscaled to 32x32, digits_16 at 16x16).
SIDE = {"digits": 32, "digits_16": 16}


def train_teacher(args, device: torch.device, workdir: Path) -> Path:
    cfg = RunConfig(dataset=args.dataset, model=args.teacher, epochs=args.teacher_epochs, device=str(device),
                    lr_milestones=scaled_milestones(args.teacher_epochs), progress="off", tensorboard=False,
                    out=str(workdir / "teacher"), **PATHS["fp32"])
    [summary] = run(cfg, "train", log=lambda *a, **k: None)
    print(f"teacher {args.teacher}: {args.teacher_epochs} epochs, test top-1 {summary['last_top1']:.2f}", flush=True)
    return Path(summary["run_dir"]) / "checkpoints" / "best.safetensors"


def student_run(args, device: torch.device, teacher_path: Path, seed: int, path: str, workdir: Path) -> dict:
    """One distillation run; its test top-1 and the total loss of every step of epoch 1."""
    cfg = RunConfig(dataset=args.dataset, teacher=args.teacher, student=args.student, objective=args.objective,
                    epochs=args.epochs, lr_milestones=scaled_milestones(args.epochs), seed=seed, device=str(device),
                    progress="off", tensorboard=False, **PATHS[path])
    teacher = load_teacher(args.teacher, teacher_path, CLASSES)
    torch.manual_seed(seed)
    learner = build_learner(build_model(args.student, CLASSES), args.objective, teacher=teacher, num_classes=CLASSES,
                            input_size=(SIDE[args.dataset],) * 2)
    train = build_loader(args.dataset, None, True, cfg.batch_size, device=device, seed=seed,
                         strong_view=learner.needs.strong())
    test = build_loader(args.dataset, None, False, cfg.eval_batch_size, device=device)
    member = build_member(f"{path}-s{seed}", args.student, args.objective, learner, workdir / f"{path}-s{seed}", cfg,
                          device=device, info=DistInfo(), channels_last=resolve_channels_last(cfg, device),
                          teacher=teacher)
    log: list[str] = []
    trainer = Trainer(cfg, [member], train, test, teacher=teacher, device=device, info=DistInfo(), log=log.append,
                      record_step_losses=True)
    start = time.perf_counter()
    for epoch in range(1, args.epochs + 1):
        trainer.train_epoch(epoch)
        if epoch == 1:
            [losses] = trainer.step.step_losses()
    ev = evaluate(member.model, test, device, trainer.amp_dtype, trainer.channels_last)
    return {"seed": seed, "path": path, "top1": ev["top1"], "step_losses": losses,
            "cuda_graph": trainer.graph is not None and trainer.graph.captured, "amp": str(trainer.amp_dtype),
            "channels_last": trainer.channels_last, "seconds": time.perf_counter() - start, "log": log}


def _mean_std(values: list[float]) -> tuple[float, float]:
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="auto")
    p.add_argument("--dataset", default="digits", choices=sorted(SIDE), help="digits (32x32) or digits_16")
    p.add_argument("--teacher", default="resnet20")
    p.add_argument("--student", default="resnet8")
    p.add_argument("--objective", default="figkd")
    p.add_argument("--teacher-epochs", type=int, default=12, help="as figkd demo")
    p.add_argument("--epochs", type=int, default=15, help="epochs of each student run")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--compare-steps", type=int, default=10, help="first steps whose losses are compared")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    p.add_argument("--out", default=None, help="JSON path (default benchmarks/results/equivalence_<device>.json)")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device, DistInfo())
    runs = []
    with tempfile.TemporaryDirectory() as tmp:
        teacher_path = train_teacher(args, device, Path(tmp))
        for seed in args.seeds:
            for path in PATHS:
                r = student_run(args, device, teacher_path, seed, path, Path(tmp))
                runs.append(r)
                print(f"seed {seed} {path:<5} test top-1 {r['top1']:6.2f}  ({r['seconds']:.1f}s, amp {r['amp']}, "
                      f"channels_last {r['channels_last']}, CUDA graph {r['cuda_graph']})", flush=True)
    summary = {}
    print(f"\n{'path':<6} " + " ".join(f"{'s' + str(s):>7}" for s in args.seeds) + f" {'mean':>7} {'std':>6}")
    for path in PATHS:
        top1 = [r["top1"] for r in runs if r["path"] == path]
        mean, std = _mean_std(top1)
        summary[path] = {"top1": top1, "mean": mean, "std": std}
        print(f"{path:<6} " + " ".join(f"{t:7.2f}" for t in top1) + f" {mean:7.2f} {std:6.2f}")
    diff = summary["fast"]["mean"] - summary["fp32"]["mean"]
    noise = max(summary["fp32"]["std"], summary["fast"]["std"])
    print(f"difference of the means (fast - fp32): {diff:+.2f} points; seed-to-seed std up to {noise:.2f}")
    k = args.compare_steps
    steps = []
    for seed in args.seeds:
        a = next(r for r in runs if r["seed"] == seed and r["path"] == "fp32")["step_losses"][:k]
        b = next(r for r in runs if r["seed"] == seed and r["path"] == "fast")["step_losses"][:k]
        rel = [abs(y - x) / max(abs(x), 1e-12) for x, y in zip(a, b, strict=True)]
        steps.append({"seed": seed, "fp32": a, "fast": b, "relative_difference": rel})
    print(f"\ntotal loss of the first {k} steps (seed {args.seeds[0]}) and relative difference "
          f"(bf16 precision: {2 ** -8:.4f})")
    first = steps[0]
    for i, (x, y, r) in enumerate(zip(first["fp32"], first["fast"], first["relative_difference"], strict=True)):
        print(f"  step {i:>3}: fp32 {x:.5f}  fast {y:.5f}  {r:.4f}")
    print("max relative difference over the first steps, per seed: "
          + ", ".join(f"s{s['seed']} {max(s['relative_difference']):.4f}" for s in steps))
    out = write_json({"info": machine_info(device, args), "runs": runs, "summary": summary, "difference": diff,
                      "steps": steps}, args.out, f"equivalence_{device.type}.json")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
