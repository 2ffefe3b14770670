"""Latency and size of students as deployed on the CPU (issue 24): PyTorch eager, onnxruntime fp32 and int8.

For each architecture (default resnet8x4, mobilenetv2, shufflenetv2) at CIFAR-100 shape (3x32x32, 100
classes) with random weights (seed 0; latency does not depend on the weights' values): the fp32 ONNX export
(`figkd.deploy.export_onnx`), the int8 model (`figkd.deploy.quantize_int8`: static QDQ, per-channel weights)
calibrated on ``--calibration`` random normal images (synthetic: these weights are untrained, so there is no
accuracy to keep; a trained run is measured with ``figkd bench RUN_DIR``, which calibrates on its training
images), then `figkd.deploy.run_bench` - the harness of ``figkd bench``: warm-up calls, then the median and
90th percentile of timed calls per batch size, with the machine's load average per row. Prints a table and
writes JSON (default ``benchmarks/results/deploy_latency.json``).

    python benchmarks/deploy_latency.py --threads 1 --batch 1 64 --repeats 7 --inner-repeats 50

``--repeats`` runs the whole measurement that many times and reports, per row, the median of the repeats'
medians (and their spread), so that one busy moment of a shared machine does not decide a figure.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys

import numpy as np
import torch

from benchutil import machine_info, write_json
from figkd.deploy import export_onnx, quantize_int8, session
from figkd.deploy.bench import eager_runtime, onnx_runtime, run_bench
from figkd.models import build_model, complexity


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", nargs="+", default=["resnet8x4", "mobilenetv2", "shufflenetv2"])
    p.add_argument("--size", type=int, default=32)
    p.add_argument("--classes", type=int, default=100)
    p.add_argument("--batch", nargs="+", type=int, default=[1, 64])
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--warmup", type=int, default=10)
    p.add_argument("--inner-repeats", dest="inner", type=int, default=50, help="timed calls per measurement")
    p.add_argument("--repeats", type=int, default=5, help="whole measurements per row (median of their medians)")
    p.add_argument("--calibration", type=int, default=256, help="random calibration images of the int8 model")
    p.add_argument("--out", default=None)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    load_before = os.getloadavg()[0]
    results = []
    for name in args.models:
        torch.manual_seed(0)
        model = build_model(name, args.classes).eval()
        proto = export_onnx(model, (args.size, args.size))
        rng = np.random.default_rng(0)
        calibration = (rng.standard_normal((64, 3, args.size, args.size), dtype=np.float32)
                       for _ in range(max(1, args.calibration // 64)))
        q_proto, _ = quantize_int8(proto, calibration)
        fp32, int8 = proto.SerializeToString(), q_proto.SerializeToString()
        counted = complexity(model, args.size)
        runtimes = [eager_runtime(model, torch.device("cpu"), sum(t.numel() * t.element_size()
                                                                  for t in model.state_dict().values())),
                    onnx_runtime(session(fp32, threads=args.threads), "fp32", len(fp32)),
                    onnx_runtime(session(int8, threads=args.threads), "int8", len(int8))]
        print(f"{name}: {counted.params / 1e6:.3f} M parameters, {counted.macs / 1e6:.1f} M MACs", flush=True)
        rounds = [run_bench(runtimes, (3, args.size, args.size), args.batch, warmup=args.warmup, repeats=args.inner,
                            threads=args.threads, log=lambda *a: None) for _ in range(args.repeats)]
        for i, row in enumerate(rounds[0]):
            medians = [r[i]["median_ms"] for r in rounds]
            p90s = [r[i]["p90_ms"] for r in rounds]
            median = statistics.median(medians)
            results.append({"model": name, "params": counted.params, "macs": counted.macs, "runtime": row["runtime"],
                            "batch": row["batch"], "median_ms": median, "p90_ms": statistics.median(p90s),
                            "median_ms_min": min(medians), "median_ms_max": max(medians),
                            "images_per_s": row["batch"] / (median / 1e3), "file_bytes": row["file_bytes"],
                            "load_1min": [r[i]["load_1min"] for r in rounds]})
            r = results[-1]
            print(f"  {r['runtime']:<18} batch {r['batch']:>3}: median {median:8.3f} ms "
                  f"(repeats {min(medians):.3f}-{max(medians):.3f}), p90 {r['p90_ms']:8.3f} ms, "
                  f"{r['images_per_s']:8.1f} images/s, file {r['file_bytes'] / 2**20:.2f} MiB, "
                  f"load {r['load_1min'][0]}-{r['load_1min'][-1]}", flush=True)
    machine = {**machine_info("cpu", args), "load_1min_before": load_before, "load_1min_after": os.getloadavg()[0]}
    path = write_json({"machine": machine, "rows": results}, args.out, "deploy_latency.json")
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
