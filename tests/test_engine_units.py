"""Engine parts that need no model or data: schedule, checkpoints, run directories, metrics."""

import json
import os

import pytest
import torch
import torch.nn as nn

from figkd.atomic import atomic_write_text
from figkd.engine.checkpoint import CheckpointManager
from figkd.engine.metrics import EpochAccumulator, topk_correct
from figkd.engine.recipe import lr_at_epoch, set_lr
from figkd.engine.rundir import RunDir


def test_lr_schedule_matches_mdistiller():
    # mdistiller adjust_learning_rate: lr * 0.1 ** sum(epoch > milestones), epochs 1-based.
    ms = [150, 180, 210]
    assert lr_at_epoch(0.05, 1, ms, 0.1) == 0.05
    assert lr_at_epoch(0.05, 150, ms, 0.1) == 0.05
    assert lr_at_epoch(0.05, 151, ms, 0.1) == pytest.approx(0.005)
    assert lr_at_epoch(0.05, 211, ms, 0.1) == pytest.approx(0.00005)


def test_lr_warmup_is_linear_and_a_passed_milestone_ends_it():
    ms = [150, 180, 210]
    rates = [lr_at_epoch(0.1, e, ms, 0.1, 5) for e in (1, 2, 4, 5, 6, 150)]
    assert rates == pytest.approx([0.02, 0.04, 0.08, 0.1, 0.1, 0.1], rel=1e-15)
    # with hold: the last warm-up rate (4/5 of lr) until the first milestone, then the decayed rates
    held = [lr_at_epoch(0.1, e, ms, 0.1, 5, True) for e in (4, 5, 150, 151)]
    assert held == pytest.approx([0.08, 0.08, 0.08, 0.01], rel=1e-15)
    # a milestone inside the warm-up ends it (LDRLD's rule: the decayed rate once steps > 0)
    assert lr_at_epoch(0.1, 3, [2], 0.1, 5) == 0.1 * 0.1
    assert [lr_at_epoch(0.1, e, ms, 0.1, None, True) for e in (1, 151)] == [0.1, 0.1 * 0.1]  # no warm-up


def test_lr_warmup_config_checks():
    from figkd.config import ConfigError, RunConfig

    assert RunConfig(lr_warmup_epochs=20, lr_warmup_hold=True).lr_warmup_epochs == 20
    with pytest.raises(ConfigError, match="lr_warmup_epochs must be an integer >= 2, got 1"):
        RunConfig(lr_warmup_epochs=1)
    with pytest.raises(ConfigError, match="lr_warmup_hold keeps the last rate of a warm-up, and lr_warmup_epochs "
                                          "is null"):
        RunConfig(lr_warmup_hold=True)


def test_lr_tensor_is_updated_in_place():
    lr = torch.tensor(0.1)
    opt = torch.optim.SGD(nn.Linear(2, 2).parameters(), lr=lr)
    set_lr(opt, 0.01)
    assert opt.param_groups[0]["lr"] is lr and float(lr) == pytest.approx(0.01)


def test_topk_correct():
    logits = torch.tensor([[0.0, 1.0, 2.0], [3.0, 2.0, 1.0]])
    assert topk_correct(logits, torch.tensor([2, 1])).tolist() == [1, 2]


def test_accumulator_reports_first_nonfinite_step():
    acc = EpochAccumulator(torch.device("cpu"))
    logits, target = torch.randn(4, 3), torch.tensor([0, 1, 2, 0])
    for step, value in enumerate([1.0, 2.0, float("nan"), float("inf")]):
        terms = {"ce": torch.tensor(1.0), "kd": torch.tensor(value), "total": torch.tensor(value + 1)}
        acc.add(terms, logits, target, torch.tensor(step))
    assert acc.first_nonfinite() == ("kd", 2)
    assert acc.result()["loss/ce"] == pytest.approx(1.0)


def test_checkpoints_are_atomic_and_pruned(tmp_path):
    model = nn.Linear(3, 2)
    ckpt = CheckpointManager(tmp_path)
    for epoch in (1, 2, 3):
        ckpt.save(epoch, model, {"optimizer": {}, "value": torch.tensor(float(epoch))})
    names = sorted(p.name for p in (tmp_path / "checkpoints").iterdir())
    assert names == ["epoch_0003.safetensors", "epoch_0003.state.pt", "last.json"]
    weights, state = ckpt.load_last()
    assert state["epoch"] == 3 and torch.equal(weights["weight"], model.weight.detach())
    assert ckpt.weights_path("last").name == "epoch_0003.safetensors"
    assert not list((tmp_path / "checkpoints").glob(".*tmp"))


def test_failed_write_keeps_the_old_file(tmp_path):
    path = tmp_path / "x.txt"
    atomic_write_text(path, "old")

    class Boom(Exception):
        pass

    from figkd.atomic import atomic_write

    def write(f):
        f.write(b"partial")
        raise Boom

    with pytest.raises(Boom):
        atomic_write(path, write)
    assert path.read_text() == "old" and os.listdir(tmp_path) == ["x.txt"]


def test_state_file_loads_without_unpickling_objects(tmp_path):
    model = nn.Linear(2, 2)
    opt = torch.optim.SGD(model.parameters(), lr=torch.tensor(0.1), momentum=0.9)
    model(torch.randn(1, 2)).sum().backward()
    opt.step()
    ckpt = CheckpointManager(tmp_path)
    ckpt.save(1, model, {"optimizer": opt.state_dict(), "rng": {"torch": torch.get_rng_state()}})
    _, state = ckpt.load_last()  # torch.load(weights_only=True) inside
    assert "momentum_buffer" in state["optimizer"]["state"][0]


def test_metrics_truncation(tmp_path):
    run_dir = RunDir(tmp_path)  # the run directory's owner writes metrics.jsonl
    for e in (1, 2, 3):
        run_dir.append_metrics({"epoch": e})
    run_dir.truncate_metrics(2)
    assert [json.loads(x)["epoch"] for x in (tmp_path / "metrics.jsonl").read_text().splitlines()] == [1, 2]
