"""The logit baselines of Tables 1-2 run through the command line on the bundled digits data (issue 12):
RLD, TeKAP, LDRLD and EKD side by side on one teacher, and TAKD's chain from two configs. DML's peers run
(and resume) in tests/test_engine_resume.py."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

SRC = str(Path(__file__).resolve().parents[1] / "src")
FAST = ["--device", "cpu", "--epochs", "1", "--set", "progress=off", "--set", "tensorboard=false"]


def _cli(*args):
    env = {**os.environ, "PYTHONPATH": SRC + os.pathsep + os.environ.get("PYTHONPATH", "")}
    return subprocess.run([sys.executable, "-m", "figkd", *args], capture_output=True, text=True, env=env, timeout=900)


def _summaries(stdout: str) -> list[dict]:
    return json.loads(stdout[stdout.index("[\n"):])  # the JSON after the epoch lines


@pytest.fixture(scope="module")
def teacher(tmp_path_factory):
    """A resnet8 teacher checkpoint (untrained: these tests are about the runs, not the accuracy)."""
    from figkd.models import build_model, save_weights

    path = tmp_path_factory.mktemp("teacher") / "resnet8.safetensors"
    torch.manual_seed(0)
    save_weights(build_model("resnet8", 10), path)
    return path


def test_rld_tekap_ldrld_ekd_train_side_by_side_on_one_teacher(teacher, tmp_path):
    objectives = ["rld", "tekap", "ldrld", "ekd"]
    result = _cli("distill", "--dataset", "digits", "--teacher", "resnet8", "--teacher-ckpt", str(teacher),
                  "--student", "resnet8", "--objective", *objectives, "--out", str(tmp_path), *FAST)
    assert result.returncode == 0, result.stderr
    assert [s["objective"] for s in _summaries(result.stdout)] == objectives
    parts = {"rld": ["ce", "rld"], "tekap": ["ce", "tekap"], "ldrld": ["ce", "ldrld"],
             "ekd": ["ekd/ce", "ekd/kd", "ekd/dirichlet", "ekd"]}
    for name in objectives:
        [record] = [json.loads(x) for x in (tmp_path / f"resnet8-{name}" / "metrics.jsonl").read_text().splitlines()]
        for part in parts[name]:
            assert record[f"train/loss/{part}"] > 0, (name, part)
        assert 0.0 <= record["test/top1"] <= 100.0
        resolved = yaml.safe_load((tmp_path / f"resnet8-{name}" / "config.yaml").read_text())["resolved"]
        assert resolved["objective"][-1]["term"] == name


def test_takd_chain_runs_from_two_configs(teacher, tmp_path):
    """TAKD: the assistant is distilled from the teacher, then the student from the assistant, whose run
    directory is the student config's teacher checkpoint; run first, the student config fails clearly."""
    common = {"dataset": "digits", "objective": "kd", "epochs": 1, "device": "cpu", "progress": "off",
              "tensorboard": False, "seed": 0}
    assistant_out, student_out = tmp_path / "runs" / "assistant", tmp_path / "runs" / "student"
    (tmp_path / "takd-assistant.yaml").write_text(yaml.safe_dump(
        {**common, "teacher": "resnet8", "teacher_ckpt": str(teacher), "student": "resnet14",
         "out": str(assistant_out)}))
    (tmp_path / "takd.yaml").write_text(yaml.safe_dump(
        {**common, "teacher": "resnet14", "teacher_ckpt": str(assistant_out), "student": "resnet8",
         "out": str(student_out)}))
    early = _cli("distill", "--config", str(tmp_path / "takd.yaml"))
    assert early.returncode == 2 and str(assistant_out) in early.stderr, early.stderr
    assert len(early.stderr.strip().splitlines()) == 1
    for config in ("takd-assistant.yaml", "takd.yaml"):
        result = _cli("distill", "--config", str(tmp_path / config))
        assert result.returncode == 0, result.stderr
    [summary] = _summaries(result.stdout)
    assert summary["model"] == "resnet8" and 0.0 <= summary["best_top1"] <= 100.0
    assert (student_out / "summary.json").is_file()
