"""Forward + backward time of one loss call: KD, DKD, MLKD and FiGKD (J = 1, 2, 3) on logits.

Usage:
    python benchmarks/loss_overhead.py                      # CPU, and CUDA when present
    python benchmarks/loss_overhead.py --device cpu --repeats 5 --inner 20
    python benchmarks/loss_overhead.py --out results.json

For each device, batch 64 and C in {100, 200}: one timed call is the loss of fresh student logits
(requires_grad) against fixed teacher logits, then ``backward()``. Timing: CUDA events around
``--inner`` calls with ``torch.cuda.synchronize()`` on CUDA, ``time.perf_counter`` on CPU; ``--warmup``
untimed calls first; the reported figure is the median over ``--repeats`` of the per-call time
(min beside it). CE alone is the floor. The paper's Table 14 measures whole training steps
(ResNet32x4 -> ResNet8x4, RTX 3090); this measures the loss alone.

Writes JSON (one file per device by default: benchmarks/results/loss_overhead_<device>.json).
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

import torch

from benchutil import machine_info, time_calls, write_json
from figkd.losses import ce_loss, dkd_loss, figkd_loss, kd_loss, mlkd_loss


def _methods():
    """name -> f(s, t, s_strong, t_strong, y) returning a scalar loss."""

    def mlkd(s, t, s2, t2, y):
        d = mlkd_loss(s, t, s2, t2, y)
        return d["ce"] + d["kd"] + d["cc"] + d["bc"]

    return {
        "ce": lambda s, t, s2, t2, y: ce_loss(s, y),
        "kd": lambda s, t, s2, t2, y: kd_loss(s, t),
        "dkd": lambda s, t, s2, t2, y: dkd_loss(s, t, y),
        "mlkd": mlkd,
        "figkd_J1": lambda s, t, s2, t2, y: figkd_loss(s, t, level=1),
        "figkd_J2": lambda s, t, s2, t2, y: figkd_loss(s, t, level=2),
        "figkd_J3": lambda s, t, s2, t2, y: figkd_loss(s, t, level=3),
    }


def _time_calls(fn, inputs, device, inner):
    """Seconds per call of forward+backward, averaged over ``inner`` calls."""
    s, t, s2, t2, y = inputs

    def call():
        a = s.detach().requires_grad_()
        b = s2.detach().requires_grad_()
        fn(a, t, b, t2, y).backward()

    return time_calls(call, inner, device)


def run(device: torch.device, classes, batch, repeats, inner, warmup, dtype):
    results = []
    gen = torch.Generator().manual_seed(0)
    for c in classes:
        s, t, s2, t2 = (torch.randn(batch, c, generator=gen, dtype=dtype).mul_(k).to(device)
                        for k in (2, 4, 2, 4))
        y = torch.randint(0, c, (batch,), generator=gen).to(device)
        inputs = (s, t, s2, t2, y)
        for name, fn in _methods().items():
            if warmup > 0:
                _time_calls(fn, inputs, device, warmup)
            per_call = [_time_calls(fn, inputs, device, inner) for _ in range(repeats)]
            results.append({
                "method": name, "classes": c, "batch": batch, "device": device.type,
                "median_us": statistics.median(per_call) * 1e6, "min_us": min(per_call) * 1e6,
                "repeats": repeats, "inner": inner,
            })
    return results


def _table(results):
    lines = [f"{'method':<10} {'C':>4} {'device':<6} {'median us/call':>15} {'min us':>9} {'vs kd':>7}"]
    kd = {(r["classes"], r["device"]): r["median_us"] for r in results if r["method"] == "kd"}
    for r in results:
        ratio = r["median_us"] / kd[(r["classes"], r["device"])]
        lines.append(f"{r['method']:<10} {r['classes']:>4} {r['device']:<6} {r['median_us']:>15.1f} "
                     f"{r['min_us']:>9.1f} {ratio:>6.2f}x")
    return "\n".join(lines)




def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", choices=["all", "cpu", "cuda"], default="all",
                   help="'all' (default): CPU, and CUDA when present")
    p.add_argument("--classes", type=int, nargs="+", default=[100, 200])
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--repeats", type=int, default=20, help="timed repeats; the median is reported")
    p.add_argument("--inner", type=int, default=50, help="calls per timed repeat")
    p.add_argument("--warmup", type=int, default=10, help="untimed calls before timing")
    p.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    p.add_argument("--threads", type=int, default=None,
                   help="torch CPU threads (default: torch's); 1 is stable on a shared machine")
    p.add_argument("--out", type=Path, default=None,
                   help="JSON path (default: benchmarks/results/loss_overhead_<device>.json per device)")
    args = p.parse_args(argv)

    if args.device == "cuda" and not torch.cuda.is_available():
        p.error("--device cuda: CUDA is not available")
    devices = ["cpu"] if args.device == "cpu" else ["cuda"] if args.device == "cuda" else (
        ["cpu", "cuda"] if torch.cuda.is_available() else ["cpu"])
    dtype = getattr(torch, args.dtype)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    all_results = []
    for name in devices:
        device = torch.device(name)
        results = run(device, args.classes, args.batch, args.repeats, args.inner, args.warmup, dtype)
        all_results.extend(results)
        if args.out is None:  # one file per device
            record = {"info": machine_info(device, args), "results": results}
            print(f"wrote {write_json(record, None, f'loss_overhead_{name}.json')}", file=sys.stderr)
    if args.out is not None:
        record = {"info": machine_info(devices[-1], args), "results": all_results}
        print(f"wrote {write_json(record, args.out, '')}", file=sys.stderr)
    print(_table(all_results))


if __name__ == "__main__":
    main()
