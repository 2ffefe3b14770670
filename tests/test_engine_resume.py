"""Kill a run with SIGKILL in the middle of an epoch, resume it, and get the uninterrupted run's weights, objective
state and optimizer momentum bit for bit: students with trained objective modules, memory banks, warm-ups and
per-step random draws, and two DML peers (the engine's FIGKD_FAULT_AT test hook, docs/engine.md)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import torch
from safetensors.torch import load_file

from figkd.engine.faults import FAULT_ENV

SRC = str(Path(__file__).resolve().parents[1] / "src")


def _cli(*args, env=None, cwd=None):
    full_env = {**os.environ, "PYTHONPATH": SRC + os.pathsep + os.environ.get("PYTHONPATH", ""), **(env or {})}
    return subprocess.run([sys.executable, "-m", "figkd", *args], capture_output=True, text=True, env=full_env,
                          cwd=cwd, timeout=600)


#: The students of the resume test: FitNet (a trained connector in the objective's state; issue 10), CRD
#: (trained heads, memory banks updated in place at every step, normalisation constants set at the first step,
#: negatives drawn from (seed, epoch, sample)), ReviewKD (trained fusion modules with BatchNorm statistics, and
#: a warm-up read from the epoch) and TeKAP (noise drawn at every step from the seeded per-sample stream).
RESUMED = ("fitnet", "crd", "reviewkd", "tekap")
#: Parameter tensors of each objective (trained, checkpointed with their momentum): FitNet's connector (conv
#: weight and bias, BatchNorm weight and bias); CRD's two linear heads (weight and bias each); ReviewKD's four
#: ABFs for resnet8 -> resnet8 (each conv1 and conv2 weight with their BatchNorms' weight and bias, and
#: att_conv's weight and bias but on the deepest); TeKAP none.
OBJECTIVE_TENSORS = {"fitnet": 4, "crd": 4, "reviewkd": 4 * 6 + 3 * 2, "tekap": 0}


def test_resume_after_a_kill_is_bit_identical(tmp_path):
    from figkd.models import build_model, save_weights

    torch.manual_seed(0)
    save_weights(build_model("resnet8", 10), tmp_path / "teacher.safetensors")
    # digits at 16x16: a quarter of the convolution work of 32x32, the same 1,437 training samples
    args = ["distill", "--dataset", "digits_16", "--teacher", "resnet8", "--teacher-ckpt",
            str(tmp_path / "teacher.safetensors"), "--student", "resnet8", "--objective", *RESUMED, "--epochs", "3",
            "--device", "cpu", "--set", "lr_milestones=[2]", "--set", "progress=off", "--set", "tensorboard=false",
            "--set", "steps_per_epoch=8"]  # the first 8 of 23 steps of each epoch: the same stream, a third of the work
    full = _cli(*args, "--out", str(tmp_path / "full"))
    assert full.returncode == 0, full.stderr
    killed = _cli(*args, "--out", str(tmp_path / "resumed"), env={FAULT_ENV: "2:7"})
    assert killed.returncode != 0  # SIGKILL in the middle of epoch 2
    for name in RESUMED:
        ckpt_dir = tmp_path / "resumed" / f"resnet8-{name}" / "checkpoints"
        assert json.loads((ckpt_dir / "last.json").read_text())["epoch"] == 1
    # (without --resume the unfinished run is refused: tests/test_rundir.py)
    resumed = _cli(*args, "--out", str(tmp_path / "resumed"), "--resume")
    assert resumed.returncode == 0, resumed.stderr
    for name in RESUMED:
        full_dir = tmp_path / "full" / f"resnet8-{name}" / "checkpoints"
        ckpt_dir = tmp_path / "resumed" / f"resnet8-{name}" / "checkpoints"
        a = load_file(str(full_dir / "epoch_0003.safetensors"))
        b = load_file(str(ckpt_dir / "epoch_0003.safetensors"))
        assert a.keys() == b.keys()
        for k in a:
            assert torch.equal(a[k], b[k]), (name, k)
        # the objective's state (FitNet's connector; CRD's heads, memory banks and normalisers) and the
        # optimizer's (momentum of the student and of the objective's parameters)
        sa = torch.load(full_dir / "epoch_0003.state.pt", weights_only=True)
        sb = torch.load(ckpt_dir / "epoch_0003.state.pt", weights_only=True)
        assert sa["objective"].keys() == sb["objective"].keys()
        assert bool(sa["objective"]) == (OBJECTIVE_TENSORS[name] > 0)
        if name == "crd":
            banks = {k for k in sa["objective"] if "memory_" in k or "normalizers" in k}
            assert banks == {"terms.1.memory_student", "terms.1.memory_teacher", "terms.1.normalizers"}
            assert sa["objective"]["terms.1.memory_student"].shape == (1437, 128)  # digits' training split
            assert (sa["objective"]["terms.1.normalizers"] > 0).all()  # set at the first step
        for k in sa["objective"]:
            assert torch.equal(sa["objective"][k], sb["objective"][k]), (name, k)
        momentum_a = [s["momentum_buffer"] for s in sa["optimizer"]["state"].values()]
        momentum_b = [s["momentum_buffer"] for s in sb["optimizer"]["state"].values()]
        student_tensors = len(list(build_model("resnet8", 10).parameters()))
        assert len(momentum_a) == len(momentum_b) == student_tensors + OBJECTIVE_TENSORS[name]
        assert all(torch.equal(x, y) for x, y in zip(momentum_a, momentum_b, strict=True))
        lines = [json.loads(x)["epoch"] for x in
                 (tmp_path / "resumed" / f"resnet8-{name}" / "metrics.jsonl").read_text().splitlines()]
        assert lines == [1, 2, 3]


def test_dml_peers_train_together_and_resume_after_a_kill_bit_identically(tmp_path):
    """figkd distill --peers: two peers from scratch (no teacher), one run directory each; killed in the
    middle of its last epoch (2) and resumed, both end bit-identical to an uninterrupted run."""
    args = ["distill", "--dataset", "digits_16", "--peers", "resnet8", "resnet8", "--epochs", "2", "--device", "cpu",
            "--set", "lr_milestones=[1]", "--set", "progress=off", "--set", "tensorboard=false",
            "--set", "steps_per_epoch=8"]
    peers = ("peer0-resnet8", "peer1-resnet8")
    full = _cli(*args, "--out", str(tmp_path / "full"))
    assert full.returncode == 0, full.stderr
    summaries = json.loads(full.stdout[full.stdout.index("[\n"):])  # after the epoch lines
    assert [s["name"] for s in summaries] == list(peers)
    killed = _cli(*args, "--out", str(tmp_path / "resumed"), env={FAULT_ENV: "2:7"})
    assert killed.returncode != 0
    for name in peers:
        assert json.loads((tmp_path / "resumed" / name / "checkpoints" / "last.json").read_text())["epoch"] == 1
    resumed = _cli(*args, "--out", str(tmp_path / "resumed"), "--resume")
    assert resumed.returncode == 0, resumed.stderr
    for name in peers:
        a_dir, b_dir = (tmp_path / run / name / "checkpoints" for run in ("full", "resumed"))
        a = load_file(str(a_dir / "epoch_0002.safetensors"))
        b = load_file(str(b_dir / "epoch_0002.safetensors"))
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), name
        sa = torch.load(a_dir / "epoch_0002.state.pt", weights_only=True)["optimizer"]["state"]
        sb = torch.load(b_dir / "epoch_0002.state.pt", weights_only=True)["optimizer"]["state"]
        assert all(torch.equal(sa[i]["momentum_buffer"], sb[i]["momentum_buffer"]) for i in sa), name
        metrics = [json.loads(x) for x in (tmp_path / "resumed" / name / "metrics.jsonl").read_text().splitlines()]
        assert [r["epoch"] for r in metrics] == [1, 2] and "train/loss/dml" in metrics[0]
    # two peers of one architecture start apart (one stream for both), so they teach each other something
    p0, p1 = (load_file(str(tmp_path / "full" / n / "checkpoints" / "epoch_0002.safetensors")) for n in peers)
    assert not torch.equal(p0["fc.weight"], p1["fc.weight"])
    # a peer's config.yaml names the whole peer set: as --config it finds the finished run
    again = _cli("distill", "--config", str(tmp_path / "full" / peers[0] / "config.yaml"))
    assert again.returncode == 0, again.stderr
    assert again.stdout.count("already holds this finished run") == 2
