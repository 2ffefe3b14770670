"""`figkd distill --objective X` on the bundled digits data for OFD, ReviewKD, CAT-KD and DiffKD: one short
run (one epoch, four students sharing the teacher), whose trainable modules train and are saved with the
student's training state. Their exact resume is the SIGKILL test of test_engine_resume.py (ReviewKD)."""

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from figkd.engine.learner import build_learner
from figkd.engine.rundir import objective_name
from figkd.models import build_model, load_teacher, save_weights

SRC = str(Path(__file__).resolve().parents[1] / "src")
OBJECTIVES = ("ofd", "reviewkd", "cat_kd", "diffkd")
#: The objective each run trains: the preset, but DiffKD with its autoencoder at half the teacher's width
#: (``ae_channels: null``): its default 1024 channels (the official wrapper's) made this test 2.4x slower.
SPECS = {name: name for name in OBJECTIVES} | {
    "diffkd": [{"term": "ce", "weight": 1.0}, {"term": "diffkd", "weight": 1.0, "ae_channels": None}]}
#: The loss parts each run reports (besides ce and total).
PARTS = {"ofd": ["ofd"], "reviewkd": ["reviewkd"], "cat_kd": ["cat_kd"],
         "diffkd": ["diffkd", "diffkd/feat", "diffkd/feat_ddim", "diffkd/feat_ae", "diffkd/logits",
                    "diffkd/logits_ddim"]}


@pytest.mark.slow  # one epoch of digits for four students: about a minute of CPU
def test_distill_runs_each_feature_method_on_digits_and_trains_its_modules(tmp_path):
    torch.manual_seed(0)
    save_weights(build_model("resnet8", 10), tmp_path / "teacher.safetensors")
    (tmp_path / "diffkd.yaml").write_text(yaml.safe_dump(SPECS["diffkd"]))
    objectives = [str(tmp_path / "diffkd.yaml") if name == "diffkd" else name for name in OBJECTIVES]
    env = {**os.environ, "PYTHONPATH": SRC + os.pathsep + os.environ.get("PYTHONPATH", "")}
    result = subprocess.run(
        [sys.executable, "-m", "figkd", "distill", "--dataset", "digits_16", "--teacher", "resnet8", "--teacher-ckpt",
         str(tmp_path / "teacher.safetensors"), "--student", "resnet8", "--objective", *objectives, "--epochs", "1",
         "--device", "cpu", "--set", "batch_size=128", "--set", "progress=off", "--set", "tensorboard=false",
         "--out", str(tmp_path / "runs")], capture_output=True, text=True, env=env, timeout=1200)
    assert result.returncode == 0, result.stderr
    teacher = load_teacher("resnet8", str(tmp_path / "teacher.safetensors"), 10)
    for name in OBJECTIVES:
        run_dir = tmp_path / "runs" / f"resnet8-{objective_name(SPECS[name])}"
        [record] = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()]
        for part in ["ce", "total", *PARTS[name]]:
            assert math.isfinite(record[f"train/loss/{part}"]), (name, part)
        saved = torch.load(run_dir / "checkpoints" / "epoch_0001.state.pt", weights_only=True)["objective"]
        torch.manual_seed(0)  # the run's initialisation of this student and its objective's modules
        initial = build_learner(build_model("resnet8", 10), SPECS[name], teacher=teacher, num_classes=10,
                                input_size=(16, 16), train_size=1437).objective
        assert saved.keys() == initial.state_dict().keys()
        trained = dict(initial.named_parameters())
        assert bool(trained) == (name != "cat_kd")  # CAT-KD trains nothing but the student
        for key, before in trained.items():
            assert not torch.equal(saved[key], before.detach()), (name, key)
