"""End-to-end runs on the bundled digits data: train, distill, resume, refusals, errors, NaN."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from figkd.config import ConfigError, RunConfig
from figkd.engine import NonFiniteLossError, run

SRC = str(Path(__file__).resolve().parents[1] / "src")
BASE = RunConfig(dataset="digits", epochs=2, batch_size=64, lr_milestones=[1], device="cpu", progress="off",
                 tensorboard=False, eval_batch_size=512)


def _cli(*args, env=None, cwd=None):
    full_env = {**os.environ, "PYTHONPATH": SRC + os.pathsep + os.environ.get("PYTHONPATH", ""), **(env or {})}
    return subprocess.run([sys.executable, "-m", "figkd", *args], capture_output=True, text=True, env=full_env,
                          cwd=cwd, timeout=600)


@pytest.fixture(scope="module")
def teacher_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("teacher") / "run"
    [summary] = run(BASE.replace(model="resnet8", out=str(out), tensorboard=True), "train")
    assert summary["best_top1"] > 20.0  # 10 classes: chance is 10%
    return out


def test_train_writes_a_complete_run_directory(teacher_dir):
    cfg = json.loads(json.dumps(__import__("yaml").safe_load((teacher_dir / "config.yaml").read_text())))
    assert cfg["model"] == "resnet8" and cfg["objective"] == "vanilla"
    lines = [json.loads(x) for x in (teacher_dir / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in lines] == [1, 2]
    for key in ("train/loss/total", "train/top1", "test/top1", "test/top5", "lr", "images_per_s", "train_time_s"):
        assert key in lines[-1]
    assert lines[0]["lr"] == pytest.approx(0.05) and lines[1]["lr"] == pytest.approx(0.005)
    ckpts = sorted(p.name for p in (teacher_dir / "checkpoints").iterdir())
    assert ckpts == ["best.json", "best.safetensors", "epoch_0002.safetensors", "epoch_0002.state.pt", "last.json"]
    assert list((teacher_dir / "tb").iterdir())
    summary = json.loads((teacher_dir / "summary.json").read_text())
    assert summary["last_top1"] == lines[-1]["test/top1"]


def test_finished_run_is_skipped_and_different_run_refused(teacher_dir):
    [again] = run(BASE.replace(model="resnet8", out=str(teacher_dir), tensorboard=True), "train")
    assert again == json.loads((teacher_dir / "summary.json").read_text())
    with pytest.raises(ConfigError, match="different configuration"):
        run(BASE.replace(model="resnet8", out=str(teacher_dir), epochs=3), "train")


def test_distill_several_objectives_share_the_teacher(teacher_dir, tmp_path):
    configs = [BASE.replace(teacher="resnet8", teacher_ckpt=str(teacher_dir), student="resnet8", objective=o,
                            out=str(tmp_path / o), epochs=1) for o in ("kd", "figkd", "dkd", "at")]
    summaries = run(configs, "distill")
    assert [s["objective"] for s in summaries] == ["kd", "figkd", "dkd", "at"]  # AT: features on demand
    for o in ("kd", "figkd", "dkd", "at"):
        record = json.loads((tmp_path / o / "metrics.jsonl").read_text().splitlines()[0])
        assert record["train/loss/total"] > 0 and 0.0 <= record["test/top1"] <= 100.0
    # Same initialisation and batches: the runs differ only through their objectives.
    kd = load_file(str(tmp_path / "kd" / "checkpoints" / "epoch_0001.safetensors"))
    fig = load_file(str(tmp_path / "figkd" / "checkpoints" / "epoch_0001.safetensors"))
    assert kd.keys() == fig.keys() and not torch.equal(kd["fc.weight"], fig["fc.weight"])


def test_config_records_the_resolved_objective_and_resume_refuses_a_change(teacher_dir, tmp_path):
    import yaml

    from figkd.config import load_yaml
    from figkd.losses import term_defaults

    out = tmp_path / "fig"
    cfg = BASE.replace(teacher="resnet8", teacher_ckpt=str(teacher_dir), student="resnet8", objective="figkd",
                       out=str(out), epochs=1)
    run(cfg, "distill")
    saved = yaml.safe_load((out / "config.yaml").read_text())
    assert saved["objective"] == "figkd"
    terms = saved["resolved"]["objective"]
    assert terms[0] == {"term": "ce", "name": "ce", "weight": 1.0, "warmup": 0}
    assert terms[1] == {"term": "figkd", "name": "figkd", "weight": 2.0, "warmup": 0, **term_defaults("figkd")}
    terms[1]["weight"] = 3.0  # as if the preset had changed since the run was made
    (out / "config.yaml").write_text(yaml.safe_dump(saved, sort_keys=False))
    with pytest.raises(ConfigError, match=r"different configuration \(objective term 'figkd' weight: 3.0 -> 2.0\)"):
        run(cfg, "distill", resume=True)
    assert "resolved" not in load_yaml(out / "config.yaml")  # a run's config.yaml is a valid --config


def test_mlkd_gets_a_strong_view(teacher_dir, tmp_path):
    [s] = run(BASE.replace(teacher="resnet8", teacher_ckpt=str(teacher_dir), student="resnet8", objective="mlkd",
                           out=str(tmp_path / "mlkd"), epochs=1), "distill")
    assert 0.0 <= s["last_top1"] <= 100.0


def test_a_run_follows_its_learning_rate_warm_up(tmp_path):
    from figkd.engine.recipe import scheduled_lr

    cfg = BASE.replace(dataset="digits_16", model="resnet8", epochs=3, lr=0.06, batch_size=256, eval_every=3,
                       lr_milestones=[], lr_warmup_epochs=3, lr_warmup_hold=True, out=str(tmp_path / "run"))
    run(cfg, "train")
    lines = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    expected = [scheduled_lr(cfg, 0.06, e) for e in (1, 2, 3)]
    assert expected == pytest.approx([0.02, 0.04, 0.04])  # 1/3, 2/3 of lr, then held (no milestone passed)
    assert [r["lr"] for r in lines] == expected


def test_nonfinite_loss_stops_with_epoch_step_and_term(tmp_path):
    with pytest.raises(NonFiniteLossError, match=r"'(ce|total)' is not finite at epoch 1, step \d+"):
        run(BASE.replace(model="resnet8", out=str(tmp_path / "nan"), lr=1e12, epochs=1), "train")
    assert not (tmp_path / "nan" / "checkpoints" / "last.json").exists()


@pytest.mark.parametrize("args,message", [
    (["train", "--model", "resnet9000"], "resnet9000"),
    (["train", "--model", "resnet8", "--dataset", "cifar10"], "unknown dataset 'cifar10'"),
    (["train", "--model", "resnet8", "--objective", "fancy"], "fancy"),
    (["train", "--model", "resnet8", "--set", "epoch=3"], "did you mean 'epochs'"),
    (["train"], "needs --model"),
    (["distill", "--student", "resnet8"], "needs --teacher, --teacher-ckpt"),
    (["train", "--model", "resnet8", "--dataset", "cifar100", "--data-root", "/nonexistent"], "/nonexistent"),
])
def test_cli_errors_are_one_line_with_exit_code_2(args, message, tmp_path):
    result = _cli(*args, "--out", str(tmp_path / "x"), "--device", "cpu")
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("figkd: error:") and message in lines[0], result.stderr


def test_teacher_with_another_class_count_is_refused(tmp_path):
    from figkd.models import build_model, save_weights
    path = tmp_path / "t100.safetensors"
    save_weights(build_model("resnet8", 100), path)
    result = _cli("distill", "--teacher", "resnet8", "--teacher-ckpt", str(path), "--student", "resnet8",
                  "--out", str(tmp_path / "x"), "--device", "cpu")
    assert result.returncode == 2 and "fc" in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_eval_command_reads_a_run_directory(teacher_dir):
    result = _cli("eval", str(teacher_dir), "--device", "cpu")
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    summary = json.loads((teacher_dir / "summary.json").read_text())
    # digits: scikit-learn's 1,797 images, figkd's stratified 80/20 split -> 1,437 train / 360 test.
    assert out["top1"] == pytest.approx(summary["best_top1"]) and out["count"] == 360
    train = _cli("eval", str(teacher_dir), "--device", "cpu", "--split", "train", "--which", "last")
    assert train.returncode == 0, train.stderr
    assert json.loads(train.stdout)["count"] == 1437 and json.loads(train.stdout)["split"] == "train"


def test_help_documents_every_field():
    result = _cli("distill", "--help")
    assert result.returncode == 0
    for name in RunConfig.field_names():
        assert name in result.stdout


def test_demo_runs_end_to_end_and_reuses_finished_runs(tmp_path):
    result = _cli("demo", "--out", str(tmp_path / "demo"), "--epochs", "2", "--device", "cpu")
    assert result.returncode == 0, result.stderr
    for row in ("teacher (alone)", "student (alone)", "KD", "FiGKD"):
        assert row in result.stdout
    # at 10 classes the paper's FiGKD defaults fail (issue 27): the warning, and the demo's last line says so
    assert "figkd: warning: FiGKD with 10 classes" in result.stderr and "criterion: kl" in result.stdout
    for run_dir in ("teacher", "student", "kd", "figkd"):
        assert (tmp_path / "demo" / run_dir / "summary.json").is_file()
    again = _cli("demo", "--out", str(tmp_path / "demo"), "--epochs", "2", "--device", "cpu")
    assert again.returncode == 0 and again.stdout.count("already holds this finished run") == 4
