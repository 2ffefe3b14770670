"""Throughput of figkd's training engine: ms per step and seconds per epoch, per mode and objective.

For a teacher/student pair, objectives and a dataset shape, it runs the engine's own training epoch
(``figkd.engine.trainer.Trainer``: augmentation on the device, teacher forward under inference
mode, student forward and backward, objective, SGD step, metrics on the device) on synthetic uint8
data of the dataset's real image shape and class count (``figkd.engine.timing``), and its own evaluation,
and reports:

- ms per training step (median over ``--repeats`` timed epochs of ``--steps`` steps, after one
  warm-up epoch, which also absorbs ``torch.compile``), and evaluation ms per image;
- the projected seconds of one real epoch (real training steps x ms/step + real test images x
  evaluation ms/image) and minutes for ``--epochs`` epochs (the paper: 240);
- with ``--shared``, the cost of N students trained in one run on one teacher forward per step
  against N separate runs (the sum of the single-student step times).

The JSON is rewritten after every measurement, so a run killed part-way keeps what finished. A
measurement that raises (a failed CUDA graph capture, say) is printed with its traceback and recorded
under ``errors``; the others still run, and the exit status is 1.

Modes (``--modes``): ``fp32`` (eager, float32), ``bf16_cl`` (bf16 autocast + channels_last),
``compile`` (``torch.compile`` of teacher and students, with bf16 + channels_last on CUDA),
``graph`` (bf16 + channels_last with the whole step captured in a CUDA graph: the engine's default
on CUDA; on CPU it runs the step through ``RecordingBackend``, which checks the capture rather than
speeding anything up). Timing is wall-clock around whole epochs, which end with a device
synchronisation, so on CUDA it measures the same as events around the epoch. It runs on CPU too
(use small ``--steps`` and models), so CI exercises it; the figures that matter are taken on a GPU
(docs/performance.md).

    python benchmarks/throughput.py --teacher resnet32x4 --student resnet8x4 --objectives kd figkd
    python benchmarks/throughput.py --device cpu --teacher resnet20 --student resnet8 --steps 10 \
        --objectives kd figkd dkd --shared
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import traceback
from pathlib import Path

import torch

from benchutil import machine_info, write_json
from figkd.engine.device import resolve_device
from figkd.engine.distributed import DistInfo
from figkd.engine.evaluate import evaluate
from figkd.engine.timing import MODES, SHAPES, build_trainer, time_steps, warm_up


def _trainer(args, device, mode: str, objectives: list[str], workdir: Path):
    return build_trainer(args.teacher, args.student, [(o, o) for o in objectives], dataset=args.dataset,
                         batch_size=args.batch_size, steps=args.steps, device=device, mode=mode, workdir=workdir,
                         eval_samples=args.eval_samples, eval_batch_size=args.eval_batch_size)


def measure(args, device, mode: str, objectives: list[str], workdir: Path) -> dict:
    """Median ms per training step and evaluation ms per image of one run training ``objectives``."""
    trainer = _trainer(args, device, mode, objectives, workdir)
    first = warm_up(trainer)
    step_ms = [1000.0 * s for s in time_steps(trainer, first, args.repeats)]
    eval_ms = []
    model = trainer.members[0].model
    evaluate(model, trainer.eval_loader, device, trainer.amp_dtype, trainer.channels_last)  # warm-up
    for _ in range(args.repeats):
        start = time.perf_counter()
        evaluate(model, trainer.eval_loader, device, trainer.amp_dtype, trainer.channels_last)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        eval_ms.append(1000.0 * (time.perf_counter() - start) / args.eval_samples)
    _, _, n_train, n_test = SHAPES[args.dataset]
    ms = statistics.median(step_ms)
    eval_per_image = statistics.median(eval_ms)
    train_s = ms * (n_train // args.batch_size) / 1000.0
    eval_s = eval_per_image * n_test / 1000.0
    captured = trainer.graph is not None and trainer.graph.captured
    return {"mode": mode, "objectives": objectives, "cuda_graph": captured, "ms_per_step": ms,
            "ms_per_step_all": step_ms,
            "eval_ms_per_image": eval_per_image, "epoch_train_s": train_s, "epoch_eval_s": eval_s,
            "epoch_s": train_s + eval_s, "projected_min": (train_s + eval_s) * args.epochs / 60.0}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--teacher", default="resnet32x4")
    p.add_argument("--student", default="resnet8x4")
    p.add_argument("--objectives", nargs="+", default=["kd", "figkd"])
    p.add_argument("--dataset", choices=sorted(SHAPES), default="cifar100", help="image shape and class count")
    p.add_argument("--modes", nargs="+", choices=MODES, default=None, help="default: all on CUDA, fp32 on CPU")
    p.add_argument("--device", default="auto")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--eval-batch-size", type=int, default=512)
    p.add_argument("--steps", type=int, default=100, help="training steps per timed epoch")
    p.add_argument("--eval-samples", type=int, default=2048)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--epochs", type=int, default=240, help="epochs of the projection (paper: 240)")
    p.add_argument("--shared", action="store_true",
                   help="also time all objectives as students of one run (one teacher forward per step)")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    p.add_argument("--out", default=None, help="JSON path (default benchmarks/results/throughput_<device>.json)")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device, DistInfo())
    modes = args.modes or (list(MODES) if device.type == "cuda" else ["fp32"])
    results, shared, errors = [], [], []
    payload = {"info": machine_info(device, args), "results": results, "shared": shared, "errors": errors}

    def save() -> Path:  # after every measurement, so that a run cut short keeps what finished
        return write_json(payload, args.out, f"throughput_{device.type}.json")

    def attempt(mode: str, objectives: list[str], workdir: Path) -> dict | None:
        try:
            return measure(args, device, mode, objectives, workdir)
        except Exception as exc:  # noqa: BLE001 - recorded in the JSON and the exit status; the next ones run
            traceback.print_exc()
            errors.append({"mode": mode, "objectives": objectives, "error": f"{type(exc).__name__}: {exc}"})
            print(f"{mode:<8} {'+'.join(objectives):<12} FAILED: {type(exc).__name__}: {exc}", flush=True)
            save()
            return None

    with tempfile.TemporaryDirectory() as tmp:
        for mode in modes:
            for objective in args.objectives:
                r = attempt(mode, [objective], Path(tmp))
                if r is None:
                    continue
                results.append(r)
                save()
                print(f"{mode:<8} {objective:<12} {r['ms_per_step']:8.2f} ms/step  epoch {r['epoch_s']:8.2f} s "
                      f"(train {r['epoch_train_s']:.2f} + eval {r['epoch_eval_s']:.2f})  "
                      f"{args.epochs} epochs {r['projected_min']:.1f} min", flush=True)
            if args.shared and len(args.objectives) > 1:
                r = attempt(mode, list(args.objectives), Path(tmp))
                if r is None:
                    continue
                alone = [x["ms_per_step"] for x in results if x["mode"] == mode]
                # the comparison needs every objective's own run; one that failed leaves it out
                separate = sum(alone) if len(alone) == len(args.objectives) else None
                r["separate_ms_per_step"] = separate
                r["speedup"] = None if separate is None else separate / r["ms_per_step"]
                shared.append(r)
                save()
                against = ("(an objective's own run failed: no comparison)" if separate is None else
                           f"vs {separate:.2f} ms/step as {len(args.objectives)} runs ({r['speedup']:.2f}x)")
                print(f"{mode:<8} {'+'.join(args.objectives):<12} {r['ms_per_step']:8.2f} ms/step in one run "
                      f"{against}", flush=True)
    print(f"wrote {save()}")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
