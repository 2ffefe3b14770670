"""What every benchmark script records beside its figures, and where it writes them.

The scripts run as ``python benchmarks/<name>.py``, which puts this folder on ``sys.path``, so they
import this module as ``benchutil``; importing it also puts the checkout's ``src`` on ``sys.path``,
so the scripts run from a checkout without installing figkd (an editable install wins either way).
"""

from __future__ import annotations

import json
import os
import platform
import sys
import time
from datetime import date
from pathlib import Path
from typing import Any

import torch

RESULTS = Path(__file__).resolve().parent / "results"
_SRC = str(Path(__file__).resolve().parents[1] / "src")
if _SRC not in sys.path:
    sys.path.append(_SRC)


def time_calls(fn, n: int, device: torch.device) -> float:
    """Seconds per call of ``fn()``, averaged over ``n`` calls: CUDA events around the calls on a GPU (the
    device's time), wall clock on the CPU."""
    if device.type == "cuda":
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        torch.cuda.synchronize(device)
        start.record()
        for _ in range(n):
            fn()
        end.record()
        torch.cuda.synchronize(device)
        return start.elapsed_time(end) / 1e3 / n
    t0 = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - t0) / n


def machine_info(device: torch.device | str | None, args: Any = None) -> dict[str, Any]:
    """Versions, the machine, the device's name, threads, the date and the command line."""
    device = torch.device(device) if device is not None else None
    cuda = device is not None and device.type == "cuda"
    info = {"torch": torch.__version__, "python": platform.python_version(), "machine": platform.machine(),
            "processor": platform.processor(), "cpus": os.cpu_count(), "threads": torch.get_num_threads(),
            "device": str(device) if device is not None else None,
            "device_name": torch.cuda.get_device_name(device) if cuda else None,
            "date": date.today().isoformat(), "argv": sys.argv[1:]}
    if args is not None:
        info["args"] = {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()}
    return info


def write_json(payload: dict[str, Any], out: str | Path | None, default_name: str) -> Path:
    """Write ``payload`` to ``out``, or to ``benchmarks/results/<default_name>``; returns the path. The
    file is replaced whole (a temporary file renamed onto it), so a script killed while writing leaves
    the previous complete file."""
    path = Path(out) if out is not None else RESULTS / default_name
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(payload, indent=2) + "\n")
    os.replace(tmp, path)
    return path
