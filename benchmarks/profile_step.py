"""What limits a training step: the PyTorch profiler over one epoch of the engine's own step.

Builds the same trainer as ``throughput.py`` (``figkd.engine.timing``: a teacher/student pair,
objectives, a dataset shape with synthetic uint8 data, a mode), runs warm-up epochs until the step is
captured (``graph`` mode) or compiled, then profiles one epoch of ``--steps`` steps and reports per step:

- wall time, and on CUDA the time the GPU spent in kernels and the share of the wall time it was
  busy (``gpu_busy``): a step far from 100% is bound by the host (kernel launches, Python,
  synchronisation), one near 100% by the kernels themselves;
- the number of kernel launches (a captured step replays them all with one launch);
- the operators (CPU) and kernels (CUDA) with the largest self time.

Prints the tables and writes JSON (default ``benchmarks/results/profile_<device>_<mode>.json``) and,
with ``--trace``, a Chrome trace (chrome://tracing, Perfetto).

    python benchmarks/profile_step.py --mode graph --objectives figkd
    python benchmarks/profile_step.py --device cpu --teacher resnet8 --student resnet8 --dataset digits --steps 3
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile

from benchutil import machine_info, write_json
from figkd.engine.device import resolve_device
from figkd.engine.distributed import DistInfo
from figkd.engine.timing import MODES, SHAPES, build_trainer, warm_up


def _device_time(event) -> float:
    """Self time on the device (µs) of a profiler event (the attribute was renamed in PyTorch 2.4)."""
    for name in ("self_device_time_total", "self_cuda_time_total"):
        if hasattr(event, name):
            return float(getattr(event, name))
    return 0.0


def _is_kernel(event) -> bool:
    return str(getattr(event, "device_type", "")).endswith("CUDA")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--teacher", default="resnet32x4")
    p.add_argument("--student", default="resnet8x4")
    p.add_argument("--objectives", nargs="+", default=["figkd"])
    p.add_argument("--dataset", choices=sorted(SHAPES), default="cifar100")
    p.add_argument("--mode", choices=MODES, default=None, help="default: graph on CUDA, fp32 on CPU")
    p.add_argument("--device", default="auto")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--eval-batch-size", type=int, default=512)
    p.add_argument("--eval-samples", type=int, default=512)
    p.add_argument("--steps", type=int, default=50, help="steps of the profiled epoch")
    p.add_argument("--rows", type=int, default=15, help="rows of each table")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    p.add_argument("--trace", default=None, help="also write a Chrome trace here")
    p.add_argument("--out", default=None, help="JSON path (default benchmarks/results/profile_<device>_<mode>.json)")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device, DistInfo())
    cuda = device.type == "cuda"
    mode = args.mode or ("graph" if cuda else "fp32")
    with tempfile.TemporaryDirectory() as tmp:
        trainer = build_trainer(args.teacher, args.student, [(o, o) for o in args.objectives], dataset=args.dataset,
                                batch_size=args.batch_size, steps=args.steps, device=device, mode=mode,
                                workdir=Path(tmp), eval_samples=args.eval_samples,
                                eval_batch_size=args.eval_batch_size)
        epoch = warm_up(trainer)
        activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
        with profile(activities=activities) as prof:
            start = time.perf_counter()
            trainer.train_epoch(epoch)  # ends with a device synchronisation
            wall_s = time.perf_counter() - start
    events = prof.key_averages()
    kernels = [e for e in events if _is_kernel(e)]
    kernel_us = sum(_device_time(e) for e in kernels)
    launches = sum(e.count for e in kernels)
    step_ms = 1000.0 * wall_s / args.steps
    result = {
        "mode": mode, "objectives": args.objectives, "cuda_graph": bool(trainer.graph and trainer.graph.captured),
        "steps": args.steps, "wall_ms_per_step": step_ms,
        "kernel_ms_per_step": kernel_us / 1000.0 / args.steps if cuda else None,
        "gpu_busy": (kernel_us / 1e6) / wall_s if cuda else None,
        "kernels_per_step": launches / args.steps if cuda else None,
        "top_cpu": [{"name": e.key, "count": e.count, "self_cpu_us": e.self_cpu_time_total}
                    for e in sorted(events, key=lambda e: -e.self_cpu_time_total)[: args.rows]],
        "top_kernels": [{"name": e.key, "count": e.count, "self_device_us": _device_time(e)}
                        for e in sorted(kernels, key=lambda e: -_device_time(e))[: args.rows]],
    }
    print(f"{mode}, {'+'.join(args.objectives)}, {args.teacher} -> {args.student}, batch {args.batch_size}, "
          f"{device}: {step_ms:.2f} ms/step wall (profiler on)")
    if cuda:
        print(f"GPU kernels {result['kernel_ms_per_step']:.2f} ms/step, busy {100 * result['gpu_busy']:.0f}% "
              f"of the wall time, {result['kernels_per_step']:.0f} kernels per step "
              f"(CUDA graph: {result['cuda_graph']})")
    print(events.table(sort_by="self_cuda_time_total" if cuda else "self_cpu_time_total", row_limit=args.rows))
    if args.trace:
        prof.export_chrome_trace(args.trace)
        print(f"wrote {args.trace}")
    out = write_json({"info": machine_info(device, args), "result": result}, args.out,
                     f"profile_{device.type}_{mode}.json")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
