"""Export every model of the zoo to ONNX and check it against PyTorch (issue 24): the cost of an export and
the fp32 parity per architecture.

For each registered model (random weights, seed 0): `figkd.deploy.export_onnx` at the given input size and
class count, an onnxruntime session, and `figkd.deploy.max_logit_difference` on a batch of random images
(and on its first image alone: the dynamic batch axis at size 1). Prints a table (CPU seconds of the export,
max |logit difference|, largest |logit|, their ratio) and writes JSON (default
``benchmarks/results/export_zoo_<size>.json``).

    python benchmarks/export_zoo.py --size 32 --classes 100

The test (tests/test_deploy_zoo.py) exports one model per group of models built from the same modules; this
script exports all of them.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import torch

from benchutil import machine_info, write_json
from figkd.deploy import PARITY_TOLERANCE, export_onnx, max_logit_difference, session
from figkd.models import build_model, list_models


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--size", type=int, default=32, help="input height and width (default 32)")
    p.add_argument("--classes", type=int, default=100, help="class count (default 100)")
    p.add_argument("--images", type=int, default=8, help="images of the parity batch (default 8)")
    p.add_argument("--models", nargs="+", default=None, help="default: every registered model")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", default=None, help="JSON file (default benchmarks/results/export_zoo_<size>.json)")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    rows, failed = [], []
    load = os.getloadavg()[0]  # the machine may be shared: its load is part of the record
    print("| model | export CPU s | export wall s | max abs diff | max abs logit | ratio | within "
          f"{PARITY_TOLERANCE:g} |")
    print("|---|---:|---:|---:|---:|---:|---|")
    for name in args.models or list_models():
        torch.manual_seed(0)
        model = build_model(name, args.classes).eval()
        cpu, wall = time.process_time(), time.perf_counter()
        proto = export_onnx(model, (args.size, args.size))
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
        images = torch.randn(args.images, 3, args.size, args.size, generator=torch.Generator().manual_seed(1))
        diff, scale = max_logit_difference(model, session(proto.SerializeToString(), threads=args.threads), images)
        ratio = diff / scale if scale > 0 else float("inf")
        ok = ratio <= PARITY_TOLERANCE
        rows.append({"model": name, "export_cpu_s": cpu, "export_wall_s": wall, "max_abs_diff": diff,
                     "max_abs_logit": scale, "ratio": ratio, "within_tolerance": ok,
                     "onnx_bytes": proto.ByteSize()})
        failed += [] if ok else [name]
        print(f"| {name} | {cpu:.1f} | {wall:.1f} | {diff:.2e} | {scale:.2e} | {ratio:.1e} | {'yes' if ok else 'NO'} |",
              flush=True)
    total = sum(r["export_cpu_s"] for r in rows)
    print(f"{len(rows)} models, {total:.0f} s of export CPU time; largest ratio "
          f"{max(r['ratio'] for r in rows):.1e}; outside the tolerance: {', '.join(failed) or 'none'}")
    machine = {**machine_info("cpu", args), "load_1min_before": load, "load_1min_after": os.getloadavg()[0]}
    path = write_json({"machine": machine, "tolerance": PARITY_TOLERANCE, "rows": rows},
                      args.out, f"export_zoo_{args.size}.json")
    print(f"wrote {path}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
