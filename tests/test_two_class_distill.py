"""A binary task distils with FiGKD: 2 classes -> a 2 x 1 grid, where one Haar level is what pywt's dwt2
computes (issue 14, point 5: before, `figkd distill --objective figkd` on 2 classes exited with the level
error). The teacher is trained in-process; the distillation runs through the CLI as a user types it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from figkd.config import RunConfig
from figkd.engine import run
from figkd.losses import FiGKDLoss
from fixtures_data import make_imagefolder

SRC = str(Path(__file__).resolve().parents[1] / "src")


def test_figkd_distill_on_a_two_class_imagefolder(tmp_path):
    # 2 classes, 8 + 4 small images each, read at 32x32 (imagefolder_32: resident, no worker processes)
    root = make_imagefolder(str(tmp_path), classes=("cat", "dog"), train_per_class=8, val_per_class=4, size=(40, 36))
    teacher = tmp_path / "teacher"
    base = dict(dataset="imagefolder_32", data_root=root, epochs=1, batch_size=8, device="cpu", progress="off",
                tensorboard=False)
    run(RunConfig(model="resnet8", out=str(teacher), **base), "train")

    assert FiGKDLoss(2).grid_shape == (2, 1)
    student = tmp_path / "student"
    env = {**os.environ, "PYTHONPATH": SRC + os.pathsep + os.environ.get("PYTHONPATH", "")}
    proc = subprocess.run(
        [sys.executable, "-m", "figkd", "distill", "--dataset", "imagefolder_32", "--data-root", root,
         "--teacher", "resnet8", "--teacher-ckpt", str(teacher), "--student", "resnet8", "--objective", "figkd",
         "--epochs", "1", "--batch-size", "8", "--device", "cpu", "--set", "progress=off",
         "--set", "tensorboard=false", "--out", str(student)],
        capture_output=True, text=True, env=env, timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    [record] = [json.loads(line) for line in (student / "metrics.jsonl").read_text().splitlines()]
    assert record["train/loss/figkd"] > 0.0 and record["train/loss/ce"] > 0.0
    assert 0.0 <= record["test/top1"] <= 100.0
    assert json.loads((student / "summary.json").read_text())["best_epoch"] == 1
