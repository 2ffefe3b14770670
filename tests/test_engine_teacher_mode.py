"""The teacher's mode (issue 22 items 1-2): eval by default; train where a term's official code runs its
teacher so (OFD: clovaai/overhaul-distillation train_with_distillation.py and mdistiller distillers/OFD.py)
or a cell asks for it (ReviewKD on CIFAR-100: dvlab-research/ReviewKD CIFAR-100/train.py); a run whose
students disagree is refused; a train-mode teacher's running statistics move, are checkpointed, and resume
exactly."""

import pytest
import torch
from safetensors.torch import load_file

from figkd.config import RunConfig
from figkd.engine import run
from figkd.engine.learner import build_learner
from figkd.engine.rundir import RunDir
from figkd.engine.teacher import resolve_teacher_mode
from figkd.errors import ConfigError
from figkd.losses import build_objective, list_terms, term_spec
from figkd.models import build_model

BASE = RunConfig(dataset="digits_16", epochs=2, batch_size=128, lr_milestones=[], device="cpu", progress="off",
                 tensorboard=False)


def test_the_terms_whose_official_code_trains_the_teacher_say_so():
    """OFD's official codes train their teacher on every dataset (clovaai/overhaul-distillation CIFAR-100 and
    ImageNet train_with_distillation.py: ``d_net.t_net.train()``); ReviewKD's only on CIFAR-100 (its ImageNet
    trainer calls ``teacher.eval()``), so its CIFAR-100 cells ask for it, not the term."""
    assert {name for name in list_terms() if term_spec(name).teacher_mode == "train"} == {"ofd"}


def test_auto_follows_the_objectives_and_refuses_students_that_disagree():
    with torch.device("meta"):
        teacher = build_model("resnet8", 10).eval()
        ofd = build_learner(build_model("resnet8", 10), "ofd", teacher=teacher, num_classes=10,
                            input_size=(32, 32)).objective
    kd = build_objective("kd", num_classes=10)
    assert resolve_teacher_mode("auto", [kd]) == "eval" and resolve_teacher_mode("auto", [ofd]) == "train"
    assert resolve_teacher_mode("eval", [ofd]) == "eval" and resolve_teacher_mode("train", [kd]) == "train"
    with pytest.raises(ConfigError, match=r"ofd in train mode \(the official code of ofd runs its teacher so\), kd "
                                          r"in eval mode; they share one teacher forward: run them separately, or "
                                          r"set teacher_mode: eval \(or train\) for all"):
        resolve_teacher_mode("auto", [ofd, kd])


@pytest.fixture(scope="module")
def teacher_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("teacher") / "run"
    run(BASE.replace(model="resnet8", epochs=1, out=str(out)), "train")
    return out


def test_a_train_mode_teacher_moves_its_statistics_and_resumes_exactly(teacher_run, tmp_path):
    cfg = BASE.replace(teacher="resnet8", teacher_ckpt=str(teacher_run), student="resnet8", objective="kd",
                       teacher_mode="train")
    run(cfg.replace(out=str(tmp_path / "full")), "distill")
    run(cfg.replace(out=str(tmp_path / "resumed"), epochs=1), "distill")
    run(cfg.replace(out=str(tmp_path / "resumed")), "distill", resume=True)
    assert RunDir(tmp_path / "full").config()["resolved"]["teacher_mode"] == "train"
    states = [torch.load(tmp_path / d / "checkpoints" / "epoch_0002.state.pt", weights_only=True)
              for d in ("full", "resumed")]
    buffers = [s["teacher_buffers"] for s in states]
    assert buffers[0].keys() == buffers[1].keys()
    assert all(torch.equal(buffers[0][k], buffers[1][k]) for k in buffers[0])
    trained = load_file(str(teacher_run / "checkpoints" / "best.safetensors"))
    assert not torch.equal(buffers[0]["bn1.running_mean"], trained["bn1.running_mean"])  # the statistics moved
    assert int(buffers[0]["bn1.num_batches_tracked"]) == int(trained["bn1.num_batches_tracked"]) + 2 * (1437 // 128)
    weights = [load_file(str(tmp_path / d / "checkpoints" / "epoch_0002.safetensors")) for d in ("full", "resumed")]
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])


def test_the_teacher_mode_is_part_of_what_makes_a_run_the_same(teacher_run, tmp_path):
    cfg = BASE.replace(teacher="resnet8", teacher_ckpt=str(teacher_run), student="resnet8", objective="kd", epochs=1,
                       out=str(tmp_path / "run"))
    [eval_mode] = run(cfg, "distill")
    assert RunDir(tmp_path / "run").config()["resolved"]["teacher_mode"] == "eval"
    assert "teacher_buffers" not in torch.load(tmp_path / "run" / "checkpoints" / "epoch_0001.state.pt",
                                               weights_only=True)
    with pytest.raises(ConfigError, match=r"teacher mode: eval -> train"):
        run(cfg.replace(teacher_mode="train"), "distill", resume=True)
    assert run(cfg.replace(teacher_mode="eval"), "distill") == [eval_mode]  # auto and eval: the same finished run
