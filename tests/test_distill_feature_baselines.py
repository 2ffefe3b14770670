"""`figkd distill --objective pkt rkd sp vid` on the bundled digits data, on the CPU: one epoch each, one
shared teacher, every term reported, VID's regressors and variances trained and saved in the training
state. (CRD runs on digits in tests/test_engine_resume.py's kill/resume test, which also checks that its
heads and memory banks are saved and resumed bit-exactly.)"""

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import torch

from figkd.data import build_dataset
from figkd.engine.learner import build_learner
from figkd.models import build_model, save_weights

SRC = str(Path(__file__).resolve().parents[1] / "src")
OBJECTIVES = ("pkt", "rkd", "sp", "vid")


def test_distill_runs_each_feature_baseline_on_digits(tmp_path):
    torch.manual_seed(0)
    save_weights(build_model("resnet8", 10), tmp_path / "teacher.safetensors")
    env = {**os.environ, "PYTHONPATH": SRC + os.pathsep + os.environ.get("PYTHONPATH", "")}
    result = subprocess.run(
        [sys.executable, "-m", "figkd", "distill", "--dataset", "digits_16", "--teacher", "resnet8", "--teacher-ckpt",
         str(tmp_path / "teacher.safetensors"), "--student", "resnet8", "--objective", *OBJECTIVES, "--epochs", "1",
         "--device", "cpu", "--out", str(tmp_path / "runs"), "--set", "progress=off", "--set", "tensorboard=false"],
        capture_output=True, text=True, env=env, timeout=900)
    assert result.returncode == 0, result.stderr
    for name in OBJECTIVES:
        run_dir = tmp_path / "runs" / f"resnet8-{name}"
        [record] = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
        assert math.isfinite(record[f"train/loss/{name}"]) and record[f"train/loss/{name}"] > 0, name
        assert 0.0 <= record["test/top1"] <= 100.0
    record = json.loads((tmp_path / "runs" / "resnet8-rkd" / "metrics.jsonl").read_text())
    assert math.isclose(record["train/loss/rkd"], record["train/loss/rkd/distance"] + record["train/loss/rkd/angle"],
                        rel_tol=1e-5)
    # VID's trainable modules: the state saved after epoch 1 differs from the initialisation the engine made
    # (the student is built after torch.manual_seed(seed) and the objective continues the stream).
    state = torch.load(tmp_path / "runs" / "resnet8-vid" / "checkpoints" / "epoch_0001.state.pt", weights_only=True)
    teacher, targets = build_model("resnet8", 10), build_dataset("digits", None, train=True).targets
    torch.manual_seed(0)
    initial = build_learner(build_model("resnet8", 10), "vid", teacher=teacher, num_classes=10, input_size=(16, 16),
                            train_targets=targets).objective_state()
    assert state["objective"].keys() == initial.keys()
    assert len([k for k in initial if k.endswith("log_scale")]) == 3  # one variance per stage after the stem
    for key, value in initial.items():
        assert not torch.equal(state["objective"][key], value), key
