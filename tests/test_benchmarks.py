"""The benchmark scripts run end to end at tiny sizes on CPU and write their JSON (timings unchecked)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _bench(script, *args, out):
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src") + os.pathsep + os.environ.get("PYTHONPATH", ""),
           "OMP_NUM_THREADS": "1"}
    result = subprocess.run([sys.executable, str(ROOT / "benchmarks" / script), *args, "--out", str(out)],
                            capture_output=True, text=True, env=env, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    return json.loads(out.read_text()), result.stdout


def test_throughput_benchmark_shared_teacher(tmp_path):
    data, stdout = _bench("throughput.py", "--device", "cpu", "--teacher", "resnet8", "--student", "resnet8",
                          "--dataset", "digits", "--steps", "2", "--eval-samples", "32", "--repeats", "1",
                          "--objectives", "kd", "figkd", "--shared", out=tmp_path / "t.json")
    assert [r["objectives"] for r in data["results"]] == [["kd"], ["figkd"]]
    [shared] = data["shared"]
    assert shared["objectives"] == ["kd", "figkd"] and shared["ms_per_step"] > 0
    assert shared["separate_ms_per_step"] == pytest.approx(sum(r["ms_per_step"] for r in data["results"]))
    assert "in one run vs" in stdout


def test_loss_overhead_benchmark(tmp_path):
    data, _ = _bench("loss_overhead.py", "--device", "cpu", "--classes", "100", "--repeats", "1", "--inner", "1",
                     "--warmup", "0", out=tmp_path / "l.json")
    methods = {r["method"] for r in data["results"]}
    assert {"kd", "dkd", "mlkd", "figkd_J1", "figkd_J2", "figkd_J3"} <= methods


def test_input_pipeline_benchmark(tmp_path):
    data, _ = _bench("input_pipeline.py", "--device", "cpu", "--n-small", "256", "--n-jpeg", "16",
                     "--jpeg-size", "64", "48", "--steps", "2", "--warmup", "1", "--repeats", "1", "--workers", "1",
                     "--batch-size", "8", out=tmp_path / "i.json")
    kinds = {r["kind"] for r in data["results"]}
    assert {"resident", "resident+strong", "jpeg"} <= kinds
