"""``figkd bench``: latency and size of a student as it would be deployed, in the style of ``benchmarks/``.

Each runtime - PyTorch eager, onnxruntime fp32 and int8, on the CPU (and CUDA where present) - runs one batch
of the model's input shape ``warmup`` times untimed, then ``repeats`` times, each call timed alone with
``time.perf_counter`` (on CUDA, after a synchronisation): the median and 90th percentile of those times are
the latency, ``batch / median`` the throughput. The input is fixed random images (latency does not depend on
pixel values). PyTorch and onnxruntime get the same number of intra-op threads (``threads``); onnxruntime runs
operators one after another (`figkd.deploy.runtime.session`). The record names the machine, its load (the
1-minute load average before and after: other processes share the cores), the versions and the date; no
timing is ever asserted by a test.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

import numpy as np
import torch
from torch import nn

__all__ = ["Runtime", "eager_runtime", "format_table", "machine", "measure", "onnx_runtime", "run_bench"]


@dataclass
class Runtime:
    """One way of running the model: ``call(images)`` runs a float32 batch ``(N, C, H, W)`` (numpy) to logits
    and returns when they are computed. ``file_bytes``: the size of the model's file (weights for eager)."""

    name: str
    precision: str
    device: str
    call: Callable[[np.ndarray], Any]
    file_bytes: int | None = None


def eager_runtime(model: nn.Module, device: torch.device, file_bytes: int | None = None) -> Runtime:
    """PyTorch eager (eval mode, ``torch.inference_mode``) on ``device``; the batch is copied there first,
    outside the timed call only on the CPU (a CUDA call includes the host-to-device copy and synchronises)."""
    model = model.to(device).eval()
    cuda = device.type == "cuda"

    @torch.inference_mode()
    def call(images: np.ndarray):
        out = model(torch.from_numpy(images).to(device, non_blocking=False))
        if cuda:
            torch.cuda.synchronize(device)
        return out

    return Runtime("pytorch eager", "fp32", device.type, call, file_bytes)


def onnx_runtime(sess, precision: str, file_bytes: int | None) -> Runtime:
    """An onnxruntime session (`figkd.deploy.runtime.session`) fed host arrays."""
    name = sess.get_inputs()[0].name
    device = "cuda" if sess.get_providers()[0] == "CUDAExecutionProvider" else "cpu"

    def call(images: np.ndarray):
        return sess.run(None, {name: images})

    return Runtime(f"onnxruntime {precision}", precision, device, call, file_bytes)


def measure(call: Callable[[np.ndarray], Any], images: np.ndarray, warmup: int, repeats: int) -> dict[str, float]:
    """Median and 90th-percentile milliseconds of ``call(images)`` over ``repeats`` timed calls after ``warmup``
    untimed ones, and images per second at the median."""
    for _ in range(warmup):
        call(images)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        call(images)
        times.append(time.perf_counter() - start)
    median = statistics.median(times) * 1e3
    return {"median_ms": median, "p90_ms": float(np.percentile(times, 90)) * 1e3,
            "images_per_s": images.shape[0] / (median / 1e3), "repeats": repeats, "warmup": warmup}


def run_bench(runtimes: Sequence[Runtime], input_shape: tuple[int, int, int], batches: Sequence[int], *,
              warmup: int, repeats: int, threads: int, seed: int = 0, log: Callable[[str], object] = print
              ) -> list[dict[str, Any]]:
    """One row per runtime and batch size: the runtime, its precision and device, ``batch``, the
    :func:`measure` figures, ``file_bytes`` and the 1-minute load average when the row was measured."""
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    rows = []
    try:
        rng = np.random.default_rng(seed)
        for batch in batches:
            images = rng.standard_normal((batch, *input_shape), dtype=np.float32)
            for rt in runtimes:
                figures = measure(rt.call, images, warmup, repeats)
                row = {"runtime": rt.name, "precision": rt.precision, "device": rt.device, "batch": batch,
                       **figures, "file_bytes": rt.file_bytes, "load_1min": _load()}
                rows.append(row)
                log(f"  {rt.name:<18} {rt.device:<4} batch {batch:>4}: median {figures['median_ms']:8.3f} ms, "
                    f"p90 {figures['p90_ms']:8.3f} ms, {figures['images_per_s']:9.1f} images/s")
    finally:
        torch.set_num_threads(previous)
    return rows


def format_table(rows: Sequence[dict[str, Any]]) -> str:
    """The rows as a Markdown table."""
    lines = ["| runtime | device | batch | median ms | p90 ms | images/s | file MiB |",
             "|---|---|---:|---:|---:|---:|---:|"]
    for r in rows:
        size = f"{r['file_bytes'] / 2**20:.2f}" if r.get("file_bytes") else "-"
        lines.append(f"| {r['runtime']} | {r['device']} | {r['batch']} | {r['median_ms']:.3f} | {r['p90_ms']:.3f} | "
                     f"{r['images_per_s']:.1f} | {size} |")
    return "\n".join(lines)


def _load() -> float | None:
    try:
        return round(os.getloadavg()[0], 2)
    except (AttributeError, OSError):
        return None


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine(threads: int) -> dict[str, Any]:
    """The machine, versions, threads, date and load average of a measurement."""
    import onnxruntime as ort

    info = {"cpu": _cpu_name(), "cpus": os.cpu_count(), "threads": threads, "torch": torch.__version__,
            "onnxruntime": ort.__version__, "python": platform.python_version(), "platform": platform.platform(),
            "date": date.today().isoformat(), "load_1min_before": _load(),
            "onnxruntime_providers": ort.get_available_providers()}
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


# --------------------------------------------------------------------------------- figkd bench TARGET
def _cuda_wanted(device: str) -> tuple[bool, bool]:
    """``(torch on CUDA, onnxruntime on CUDA)`` for ``device``: ``cpu`` neither, ``auto`` each where present,
    ``cuda`` each where present and a ConfigError when torch has no CUDA."""
    import onnxruntime as ort

    from ..errors import ConfigError

    if device == "cpu":
        return False, False
    torch_cuda = torch.cuda.is_available()
    if device == "cuda" and not torch_cuda:
        raise ConfigError("--device cuda was asked for but torch.cuda.is_available() is False; use --device cpu")
    return torch_cuda, "CUDAExecutionProvider" in ort.get_available_providers()


def _file_runtimes(path, threads: int, ort_cuda: bool):
    """The runtimes of an ``.onnx`` file written by figkd export: onnxruntime at its precision (and on CUDA)."""
    from ..models import complexity
    from .metadata import ModelCard
    from .runtime import model_metadata, session

    sess = session(path, threads=threads)
    card = ModelCard.from_metadata(model_metadata(sess), where=str(path))
    size = path.stat().st_size
    runtimes = [onnx_runtime(sess, card.precision, size)]
    if ort_cuda:
        runtimes.append(onnx_runtime(session(path, device="cuda"), card.precision, size))
    try:
        counted = complexity(card.architecture, card.input_size, num_classes=card.num_classes,
                             in_channels=card.in_channels)
    except ValueError:  # an architecture figkd's registry does not know here: no count
        counted = None
    return card, counted, runtimes


def _run_runtimes(run_dir, which: str, calibration: int, threads: int, torch_cuda: bool, ort_cuda: bool, log):
    """The runtimes of a run's student: PyTorch eager, onnxruntime fp32 and int8 of an export made in memory
    (and CUDA where wanted)."""
    import copy
    from pathlib import Path

    from ..models import complexity
    from .onnx_export import export_onnx, set_metadata
    from .quantize import QUANTIZATION, quantize_int8
    from .runtime import session
    from .student import calibration_batches, load_student

    student = load_student(run_dir, which)
    card, model = student.card, student.model
    log(f"benchmarking {card.architecture} of {student.run_dir.path}: {student.describe_weights()}")
    proto = export_onnx(model, card.input_size, metadata=card.to_metadata(), name=card.architecture)
    q_proto, count = quantize_int8(proto, calibration_batches(card, calibration))
    set_metadata(q_proto, card.as_int8(dict(QUANTIZATION, calibration_images=count)).to_metadata())
    fp32, int8 = proto.SerializeToString(), q_proto.SerializeToString()
    weights_bytes = Path(student.weights["path"]).stat().st_size
    runtimes = [eager_runtime(model, torch.device("cpu"), weights_bytes),
                onnx_runtime(session(fp32, threads=threads), "fp32", len(fp32)),
                onnx_runtime(session(int8, threads=threads), "int8", len(int8))]
    if torch_cuda:
        runtimes.append(eager_runtime(copy.deepcopy(model), torch.device("cuda"), weights_bytes))
    if ort_cuda:
        runtimes.append(onnx_runtime(session(fp32, device="cuda"), "fp32", len(fp32)))
    return card, complexity(model, card.input_size, in_channels=card.in_channels), runtimes


def bench(target: str | os.PathLike, *, which: str = "best", batches: Sequence[int] = (1, 64),
          threads: int | None = None, warmup: int = 10, repeats: int = 50, calibration: int = 256,
          device: str = "auto", out: str | os.PathLike | None = None,
          log: Callable[[str], object] = print) -> dict[str, Any]:
    """Measure ``target`` (see the module docstring) and write the JSON record; returns it.

    ``target`` is a run directory (its student: PyTorch eager, and onnxruntime fp32 and int8 of an export made
    in memory, int8 calibrated on ``calibration`` training images) or an ``.onnx`` file written by
    ``figkd export`` (onnxruntime alone, at the file's precision). ``out``: the JSON file (default
    ``RUN_DIR/deploy/bench.json``, or ``FILE.bench.json`` beside the model).
    """
    from pathlib import Path

    from ..atomic import atomic_write_text

    threads = int(threads) if threads is not None else torch.get_num_threads()
    torch_cuda, ort_cuda = _cuda_wanted(device)
    target = Path(target)
    info = machine(threads)
    if target.is_file() and target.suffix == ".onnx":
        card, counted, runtimes = _file_runtimes(target, threads, ort_cuda)
        default_json = target.with_name(target.name[: -len(".onnx")] + ".bench.json")
    else:
        card, counted, runtimes = _run_runtimes(target, which, calibration, threads, torch_cuda, ort_cuda, log)
        default_json = target / "deploy" / "bench.json"
    log(f"{card.architecture}: input {card.in_channels}x{card.input_size[0]}x{card.input_size[1]}, "
        + (f"{counted.params / 1e6:.3f} M parameters, {counted.macs / 1e6:.2f} M MACs, " if counted else "")
        + f"{threads} thread(s), {warmup} warm-up + {repeats} timed calls per batch size; "
          f"load {info['load_1min_before']}")
    rows = run_bench(runtimes, (card.in_channels, *card.input_size), batches, warmup=warmup, repeats=repeats,
                     threads=threads, log=log)
    record = {"target": str(target), "model": {"architecture": card.architecture,
                                               "input": [card.in_channels, *card.input_size],
                                               "params": counted.params if counted else None,
                                               "macs": counted.macs if counted else None},
              "machine": {**info, "load_1min_after": _load()}, "rows": rows}
    path = Path(out) if out is not None else default_json
    atomic_write_text(path, json.dumps(record, indent=2) + "\n")
    log(format_table(rows))
    log(f"wrote {path}")
    return record
