"""Cost of each feature method relative to KD: its objective alone, and a whole training step.

Usage:
    python benchmarks/feature_overhead.py                                   # CPU, and CUDA when present
    python benchmarks/feature_overhead.py --device cpu --threads 1 --what objective
    python benchmarks/feature_overhead.py --objectives kd fitnet crd --out results.json

For each objective preset (default: KD and every feature preset registered: FitNet, AT, PKT, RKD, SP,
VID, CRD, OFD, ReviewKD, CAT-KD, DiffKD, ...), on a teacher -> student pair (default resnet32x4 ->
resnet8x4, CIFAR-100: 100 classes, 32x32 inputs, batch 64, a training set of 50,000 samples, so that
CRD's memory banks and negatives have their CIFAR-100 size), built by the engine's own path
(`figkd.engine.learner.build_learner`):

- ``objective``: one call of the objective (CE + the method's term, with its connectors, heads,
  memory update) on fixed features of both models, then ``backward()``; the student's features are
  fresh leaves at every call. This is the method's own cost, without the networks.
- ``step``: a whole training step as the engine runs it, eagerly in fp32: the teacher's forward
  (no_grad, with the features the objective needs), the student's forward, the objective, backward
  and the SGD update (of the student and of the method's parameters).
- ``cost`` (also computed with ``objective``; ``--what cost`` computes only it, no timing): the
  objective's forward counted once, ``objective_mmac_per_sample`` (multiply-accumulates of its
  convolutions and matrix products per sample, `torch.utils.flop_counter`, flops / 2) and
  ``objective_saved_mb`` (the bytes of the distinct tensors autograd saves for its backward, for the
  whole batch), beside the same counts of the student's forward (``student_mmac_per_sample``,
  ``student_saved_mb``).

Timing: CUDA events around ``--inner`` calls with synchronisation on CUDA, ``time.perf_counter`` on
CPU; ``--warmup`` untimed calls first; the figure is the median over ``--repeats`` of the per-call time
(min beside it), and each row's ratio to KD's median. Writes JSON (one file per device by default:
benchmarks/results/feature_overhead_<device>.json) with the machine, the date and the command line.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

from benchutil import machine_info, time_calls, write_json
from figkd.data.batch import Batch
from figkd.engine.learner import build_learner
from figkd.engine.teacher import TeacherForward, forward_outputs
from figkd.losses import list_presets, preset_spec, term_spec
from figkd.models import build_model

#: A preset with a term that reads one of these is a feature method.
_FEATURE_INPUTS = ("student_feats", "student_preact_feats", "student_pooled", "student_prepool", "student_cams")


def feature_presets() -> list[str]:
    """Presets whose terms read the student's features (FitNet, AT, PKT, RKD, SP, VID, CRD, OFD, ReviewKD,
    CAT-KD, DiffKD, ...)."""
    out = []
    for name in list_presets():
        terms = [term_spec(t["term"]) for t in preset_spec(name)]
        if any(n in spec.inputs for spec in terms for n in _FEATURE_INPUTS):
            out.append(name)
    return out


def _measure(fn, device, repeats, inner, warmup):
    if warmup > 0:
        time_calls(fn, warmup, device)
    per_call = [time_calls(fn, inner, device) for _ in range(repeats)]
    return statistics.median(per_call) * 1e3, min(per_call) * 1e3


def _leaves(v):
    """Fresh leaf copies of a feature (or a list of them) that require grad."""
    if isinstance(v, list):
        return [x.detach().requires_grad_() for x in v]
    return v.detach().requires_grad_()


def _count(fn) -> tuple[float, float]:
    """(MMAC, MB saved for backward) of one call of ``fn`` (see the module docstring, ``cost``)."""
    saved = {}

    def pack(x):
        saved[(x.data_ptr(), x.dtype, tuple(x.shape), tuple(x.stride()))] = x.numel() * x.element_size()
        return x

    with FlopCounterMode(display=False) as counter, torch.autograd.graph.saved_tensors_hooks(pack, lambda x: x):
        fn()
    return counter.get_total_flops() / 2 / 1e6, sum(saved.values()) / 2**20


def _time_one(name: str, teacher, setup: dict, device: torch.device, args) -> dict:
    """One preset's row: its objective alone and a whole step (see the module docstring)."""
    batch, epoch, size = setup["batch"], setup["epoch"], setup["size"]
    no_autocast = torch.autocast(device.type, enabled=False)
    torch.manual_seed(0)
    learner = build_learner(build_model(args.student, args.classes), name, teacher=teacher, num_classes=args.classes,
                            input_size=size, train_targets=setup["train_targets"]).to(device)
    learner.train()
    teacher_forward = TeacherForward(teacher, learner.needs)
    row = {"objective": name, "device": device.type, "batch": args.batch, "teacher": args.teacher,
           "student": args.student, "train_size": args.train_size,
           "objective_parameters": sum(p.numel() for p in learner.objective.parameters()),
           "objective_buffer_mb": sum(b.numel() * b.element_size() for b in learner.objective.buffers()) / 2**20}
    if args.what in ("objective", "both", "cost"):
        with torch.no_grad():
            t_out = teacher_forward(batch, no_autocast)
            s_out = forward_outputs(learner.model, batch.images, "student", learner.needs.features("student"),
                                    learner.needs.cams("student"))
        fixed = {**t_out, "target": batch.target, "index": batch.index, "epoch": epoch}

        def objective_forward():
            inputs = {**{k: _leaves(v) for k, v in s_out.items()}, **fixed}
            return learner.objective(**{k: v for k, v in inputs.items() if k in learner.needs.inputs})

        def objective_call():
            objective_forward()["total"].backward()

        mmac, row["objective_saved_mb"] = _count(objective_forward)
        row["objective_mmac_per_sample"] = mmac / args.batch
        mmac, row["student_saved_mb"] = _count(lambda: learner.model(batch.images))
        row["student_mmac_per_sample"] = mmac / args.batch
    if args.what in ("objective", "both"):
        row["objective_ms"], row["objective_min_ms"] = _measure(objective_call, device, args.repeats, args.inner,
                                                                args.warmup)
    if args.what in ("step", "both"):
        optimizer = torch.optim.SGD(learner.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4)

        def step():
            with torch.no_grad():
                outputs = teacher_forward(batch, no_autocast)
            terms, _ = learner(batch, outputs, epoch)
            optimizer.zero_grad(set_to_none=True)
            terms["total"].backward()
            optimizer.step()

        row["step_ms"], row["step_min_ms"] = _measure(step, device, args.repeats, args.step_inner, args.warmup)
    return row


def run(device: torch.device, args) -> list[dict]:
    gen = torch.Generator().manual_seed(0)
    torch.manual_seed(0)
    teacher = build_model(args.teacher, args.classes).to(device).eval()
    for p in teacher.parameters():
        p.requires_grad_(False)
    size = (args.input_size, args.input_size)
    images = torch.randn(args.batch, 3, *size, generator=gen).to(device)
    target = torch.randint(0, args.classes, (args.batch,), generator=gen).to(device)
    index = torch.randperm(args.train_size, generator=gen)[:args.batch].to(device)
    setup = {"batch": Batch(images, target, index=index), "epoch": torch.tensor(1.0, device=device), "size": size,
             "train_targets": torch.arange(args.train_size) % args.classes}
    results = []
    for name in args.objectives:
        row = _time_one(name, teacher, setup, device, args)
        results.append(row)
        print(f"  {name}: " + ", ".join(f"{k} {row[k]:.2f}" for k in ("objective_ms", "step_ms") if k in row),
              file=sys.stderr)
    for key in ("objective_ms", "step_ms"):
        kd = next((r[key] for r in results if r["objective"] == "kd" and key in r), None)
        for r in results:
            if kd is not None and key in r:
                r[key.replace("_ms", "_vs_kd")] = r[key] / kd
    return results


def _table(results) -> str:
    lines = [f"{'objective':<10} {'device':<6} {'params':>9} {'buffers MB':>10} {'MMAC/sample':>11} {'saved MB':>8} "
             f"{'objective ms':>12} {'vs kd':>7} {'step ms':>9} {'vs kd':>7}"]
    for r in results:
        cost = (f"{r['objective_mmac_per_sample']:>11.1f} {r['objective_saved_mb']:>8.1f}"
                if "objective_mmac_per_sample" in r else f"{'-':>11} {'-':>8}")
        obj = (f"{r['objective_ms']:>12.2f} {r.get('objective_vs_kd', float('nan')):>6.2f}x" if "objective_ms" in r
               else f"{'-':>12} {'-':>7}")
        step = (f"{r['step_ms']:>9.1f} {r.get('step_vs_kd', float('nan')):>6.2f}x" if "step_ms" in r
                else f"{'-':>9} {'-':>7}")
        lines.append(f"{r['objective']:<10} {r['device']:<6} {r['objective_parameters']:>9,} "
                     f"{r['objective_buffer_mb']:>10.1f} {cost} {obj} {step}")
    return "\n".join(lines)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", choices=["all", "cpu", "cuda"], default="all",
                   help="'all' (default): CPU, and CUDA when present")
    p.add_argument("--objectives", nargs="+", default=None,
                   help="presets to time (default: kd and every feature preset); kd is the reference")
    p.add_argument("--teacher", default="resnet32x4")
    p.add_argument("--student", default="resnet8x4")
    p.add_argument("--classes", type=int, default=100)
    p.add_argument("--input-size", type=int, default=32)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--train-size", type=int, default=50000, help="training-set size (CRD's banks and negatives)")
    p.add_argument("--what", choices=["objective", "step", "both", "cost"], default="both",
                   help="what to time; 'cost' only counts MAC and saved memory (see the docstring)")
    p.add_argument("--repeats", type=int, default=5, help="timed repeats; the median is reported")
    p.add_argument("--inner", type=int, default=10, help="objective calls per timed repeat")
    p.add_argument("--step-inner", type=int, default=2, help="training steps per timed repeat")
    p.add_argument("--warmup", type=int, default=2, help="untimed calls before timing")
    p.add_argument("--threads", type=int, default=None,
                   help="torch CPU threads (default: torch's); 1 is stable on a shared machine")
    p.add_argument("--out", type=Path, default=None,
                   help="JSON path (default: benchmarks/results/feature_overhead_<device>.json per device)")
    args = p.parse_args(argv)
    if args.objectives is None:
        args.objectives = ["kd", *feature_presets()]
    unknown = [o for o in args.objectives if o not in list_presets()]
    if unknown:
        p.error(f"unknown presets {unknown}; valid: {', '.join(list_presets())}")
    if args.device == "cuda" and not torch.cuda.is_available():
        p.error("--device cuda: CUDA is not available")
    devices = ["cpu"] if args.device == "cpu" else ["cuda"] if args.device == "cuda" else (
        ["cpu", "cuda"] if torch.cuda.is_available() else ["cpu"])
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    all_results = []
    for name in devices:
        device = torch.device(name)
        results = run(device, args)
        all_results.extend(results)
        if args.out is None:
            record = {"info": machine_info(device, args), "results": results}
            print(f"wrote {write_json(record, None, f'feature_overhead_{name}.json')}", file=sys.stderr)
    if args.out is not None:
        record = {"info": machine_info(devices[-1], args), "results": all_results}
        print(f"wrote {write_json(record, args.out, '')}", file=sys.stderr)
    print(_table(all_results))


if __name__ == "__main__":
    main()
