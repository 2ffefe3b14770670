"""The captured training step (issue #6), checked on the CPU.

A CUDA graph replays the kernels of one recorded step: every Python value the step used is frozen
and every tensor must stay where it was. ``RecordingBackend`` stands in for the GPU: it records the
ATen operations of the captured step with their shapes, strides and non-tensor arguments and checks
every replay against them, refuses host reads, and checks that no persistent tensor moved. These
tests run the engine's real step through it across an epoch boundary (learning-rate milestone, DKD
warm-up, new metric sums), compare with the eager engine bit for bit, and show that each kind of
mistake a capture would silently freeze is caught.
"""

from pathlib import Path

import numpy as np
import pytest
import torch

from figkd.config import ConfigError, RunConfig
from figkd.data import build_loader
from figkd.data.base import ArrayDataset
from figkd.engine import run
from figkd.engine.device import resolve_cuda_graph
from figkd.engine.distributed import DistInfo
from figkd.engine.graph import CudaGraphBackend, GraphCaptureError, RecordingBackend, StepGraph, StorageGuard
from figkd.engine.learner import Learner, build_learner
from figkd.engine.member import build_member
from figkd.engine.metrics import EpochAccumulator
from figkd.engine.recipe import build_optimizer, load_optimizer_state
from figkd.engine.trainer import Trainer
from figkd.losses import build_objective
from figkd.models import build_model

CPU = torch.device("cpu")
BATCH, STEPS, CLASSES = 8, 5, 10


def _split(n, train):
    rng = np.random.default_rng(int(train))
    images = rng.integers(0, 256, size=(n, 3, 32, 32), dtype=np.uint8)
    return ArrayDataset("digits", None, train, images, rng.integers(0, CLASSES, n).tolist(),
                        [str(i) for i in range(CLASSES)])


def _trainer(tmp_path: Path, objectives, *, backend=None, cuda_graph="auto", objective_modules=None,
             log=None, device=CPU, **cfg_changes) -> Trainer:
    cfg = RunConfig(**{"dataset": "digits", "batch_size": BATCH, "device": str(device), "epochs": 2,
                       "lr_milestones": [1], "tensorboard": False, "progress": "off", "cuda_graph": cuda_graph,
                       **cfg_changes})
    torch.manual_seed(0)
    teacher = build_model("resnet8", CLASSES)
    learners = []
    for i, spec in enumerate(objectives):
        torch.manual_seed(1)
        model = build_model("resnet8", CLASSES)
        if objective_modules:
            learners.append(Learner(model, objective_modules[i]))
        else:
            learners.append(build_learner(model, spec, teacher=teacher, num_classes=CLASSES, input_size=(32, 32)))
    names = [o if isinstance(o, str) else "custom" for o in objectives]
    strong = any(learner.needs.strong() for learner in learners)
    train = build_loader("digits", None, True, BATCH, device=device, strong_view=strong,
                         dataset=_split(BATCH * STEPS, True))
    test = build_loader("digits", None, False, 16, device=device, dataset=_split(16, False))
    members = [build_member(name, "resnet8", name, learner, tmp_path / name, cfg, device=device, info=DistInfo(),
                            teacher=teacher) for name, learner in zip(names, learners, strict=True)]
    trainer = Trainer(cfg, members, train, test, teacher=teacher, device=device, info=DistInfo(),
                      log=log or (lambda *a, **k: None), graph_backend=backend, record_step_losses=True)
    trainer.teacher = teacher  # for the tests below
    return trainer


def _train(trainer: Trainer, epochs=(1, 2)):
    return [trainer.train_epoch(e) for e in epochs]


FIGKD_DB2 = [{"term": "ce"}, {"term": "figkd", "wavelet": "db2", "dims": 1, "weight": 2.0}]  # cached filters
DML_T2 = [{"term": "ce"}, {"term": "dml", "temperature": 2.0}]  # a second peer with another objective


@pytest.mark.parametrize("objectives", [
    ["kd", "dkd", "figkd", "mlkd"],  # DKD: warm-up on the epoch; MLKD: the strong view
    ["vanilla", "dist", "mlkd+figkd", FIGKD_DB2],
    ["fitnet", "at"],  # stage features; FitNet's connector is trained in the captured step
    ["dml", DML_T2, "tekap"],  # DML: every forward, then each peer's update (two-phase); TeKAP: per-sample draws
], ids=["kd-dkd-figkd-mlkd", "vanilla-dist-mlkd+figkd-db2", "fitnet-at", "dml-peers-tekap"])
def test_captured_step_matches_the_eager_step_bit_for_bit(tmp_path, objectives):
    backend = RecordingBackend()
    graphed = _trainer(tmp_path / "g", objectives, backend=backend)
    backend.guard_tensors = lambda: graphed.persistent
    eager = _trainer(tmp_path / "e", objectives, cuda_graph="off")
    assert eager.graph is None and graphed.graph is not None
    got, want = _train(graphed), _train(eager)
    assert graphed.graph.captured and backend.warmups == 3 and backend.replays == 2 * STEPS - 3
    assert [r["cuda_graph"] for r in got[1]] == [1] * len(objectives)
    for g_epoch, e_epoch in zip(got, want, strict=True):
        for g, e in zip(g_epoch, e_epoch, strict=True):
            for key in e:
                if key.startswith("train/"):
                    assert g[key] == e[key], key
    assert graphed.step.step_losses() == eager.step.step_losses()
    assert all(not np.isnan(v).any() for v in graphed.step.step_losses())
    for gm, em in zip(graphed.members, eager.members, strict=True):
        for (name, a), b in zip(gm.learner.state_dict().items(), em.learner.state_dict().values(), strict=True):
            assert torch.equal(a, b), (gm.name, name)
    if "fitnet" in objectives:  # the connector trained (it is part of the learner the optimizer sees)
        [fitnet] = [m for m in graphed.members if m.name == "fitnet"]
        torch.manual_seed(1)
        fresh = build_learner(build_model("resnet8", CLASSES), "fitnet", teacher=graphed.teacher,
                              num_classes=CLASSES, input_size=(32, 32))
        before = fresh.objective.terms[1].connector.conv.weight
        assert not torch.equal(fitnet.learner.objective.terms[1].connector.conv.weight, before)
    # the epoch-2 learning rate reached the captured step through the tensor set_lr fills
    assert float(graphed.members[0].optimizer.param_groups[0]["lr"]) == pytest.approx(0.005)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("amp", ["none", "bf16"])
def test_cuda_graph_matches_the_eager_step_on_a_gpu(tmp_path, amp):
    """The real capture (run on the GPU machine): same losses as eager steps, to kernel rounding."""
    objectives = ["kd", "dkd", "figkd", "mlkd"]
    cuda = torch.device("cuda")
    lines = []
    graphed = _trainer(tmp_path / "g", objectives, device=cuda, cuda_graph="on", amp=amp, channels_last="on",
                       log=lines.append)
    eager = _trainer(tmp_path / "e", objectives, device=cuda, cuda_graph="off", amp=amp, channels_last="on")
    got, want = _train(graphed), _train(eager)
    assert graphed.graph.captured and isinstance(graphed.graph.backend, CudaGraphBackend)
    assert any("training step captured" in line for line in lines)
    assert [r["cuda_graph"] for r in got[1]] == [1] * len(objectives)
    # Not bit for bit on a GPU: cuDNN may pick other algorithms during capture, and some backward
    # kernels accumulate with atomics. fp32: rounding-level differences over 10 steps; bf16 keeps
    # 8 significant bits (2^-8 = 0.4% per value), 3e-2 allows that drift over 10 steps.
    tol = 1e-3 if amp == "none" else 3e-2
    for g_epoch, e_epoch in zip(got, want, strict=True):
        for g, e in zip(g_epoch, e_epoch, strict=True):
            assert g["train/loss/total"] == pytest.approx(e["train/loss/total"], rel=tol)
    for g, e in zip(graphed.step.step_losses(), eager.step.step_losses(), strict=True):
        np.testing.assert_allclose(g, e, rtol=tol)
    graphed.graph.check()


def _kd_with(edit):
    """The KD objective whose total goes through ``edit``: each edit below is a mistake a capture would
    freeze."""
    objective = build_objective("kd", num_classes=CLASSES)
    forward = objective.forward

    def edited(**inputs):
        terms = dict(forward(**inputs))
        terms["total"] = edit(terms["total"])
        return terms

    objective.forward = edited
    return objective


_PYTHON_SCALE = {"value": 1.0}  # a Python number the test changes between epochs
MISTAKES = {
    "python-value": (lambda t: t * _PYTHON_SCALE["value"], "differs from the capture.*frozen"),
    "host-read": (lambda t: t * 0 if t > 1e6 else t, "reads tensors on the host"),  # control flow on a value
    "host-data": (lambda t: t * torch.tensor(1.0), "from host data"),  # torch.tensor inside the step
}


@pytest.mark.parametrize("mistake", MISTAKES)
def test_each_mistake_a_capture_would_freeze_is_caught(tmp_path, mistake):
    edit, message = MISTAKES[mistake]
    trainer = _trainer(tmp_path, ["kd"], backend=RecordingBackend(), objective_modules=[_kd_with(edit)])
    with pytest.raises(GraphCaptureError, match=message):
        for epoch in (1, 2):
            _PYTHON_SCALE["value"] = float(epoch)
            trainer.train_epoch(epoch)
    # the Python value is only caught once it changes (epoch 2); the others at the first replay
    assert (trainer.graph.backend.replays > 0) == (mistake == "python-value")


def test_multi_tensor_sgd_would_read_its_tensor_lr_on_the_host(tmp_path):
    """Why the engine uses fused SGD: the default SGD turns a tensor lr into ``alpha=-lr`` (.item())."""
    trainer = _trainer(tmp_path, ["kd"], backend=RecordingBackend())
    m = trainer.members[0]
    m.optimizer = torch.optim.SGD(m.model.parameters(), lr=torch.tensor(0.05), momentum=0.9, foreach=True)
    with pytest.raises(GraphCaptureError, match="_local_scalar_dense"):
        trainer.train_epoch(1)


def test_replacing_a_tensor_the_captured_step_uses_is_caught(tmp_path):
    trainer = _trainer(tmp_path, ["kd"], backend=RecordingBackend())
    trainer.train_epoch(1)
    group = trainer.members[0].optimizer.param_groups[0]
    group["lr"] = torch.tensor(0.005)  # instead of fill_: a replay would keep reading the old tensor
    with pytest.raises(GraphCaptureError, match=r"replaced or added.*kd/optimizer/lr0"):
        trainer.train_epoch(2)


def test_new_metric_sums_each_epoch_would_be_caught(tmp_path):
    trainer = _trainer(tmp_path, ["kd"], backend=RecordingBackend())
    trainer.train_epoch(1)
    trainer.step.accs = None  # the engine before issue #6 made new sums every epoch
    with pytest.raises(GraphCaptureError, match="kd/metrics/hits"):
        trainer.train_epoch(2)


class _FailingBackend(RecordingBackend):
    name = "failing"

    def capture(self, fn):
        raise RuntimeError("operation not permitted when stream is capturing")


def test_a_failed_capture_falls_back_visibly_or_fails_when_required(tmp_path):
    lines = []
    trainer = _trainer(tmp_path / "auto", ["kd"], backend=_FailingBackend(), log=lines.append)
    eager = _trainer(tmp_path / "eager", ["kd"], cuda_graph="off")
    got, want = trainer.train_epoch(1), eager.train_epoch(1)
    assert any("capturing the training step failed" in line and "eager" in line for line in lines)
    assert got[0]["cuda_graph"] == 0 and got[0]["train/loss/total"] == want[0]["train/loss/total"]
    strict = _trainer(tmp_path / "on", ["kd"], backend=_FailingBackend(), cuda_graph="on")
    with pytest.raises(GraphCaptureError, match="capturing the training step in a CUDA graph failed"):
        strict.train_epoch(1)


def test_when_the_graph_is_used_and_why_not():
    cfg = RunConfig()
    assert resolve_cuda_graph(cfg, CPU, DistInfo()) == (False, "device cpu is not CUDA")
    assert resolve_cuda_graph(cfg, torch.device("cuda"), DistInfo())[0]
    assert not resolve_cuda_graph(cfg.replace(cuda_graph="off"), torch.device("cuda"), DistInfo())[0]
    use, why = resolve_cuda_graph(cfg.replace(compile=True), torch.device("cuda"), DistInfo())
    assert not use and "compile" in why
    use, why = resolve_cuda_graph(cfg, torch.device("cuda"), DistInfo(rank=0, world_size=2, local_rank=0))
    assert not use and "DDP" in why
    assert RunConfig().replace(cuda_graph=False).cuda_graph == "off"  # YAML reads `off` as false
    with pytest.raises(ConfigError, match="cuda_graph must be one of"):
        RunConfig().replace(cuda_graph="sometimes")


def test_cuda_graph_on_without_cuda_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="cuda_graph is on but .*device cpu is not CUDA"):
        _trainer(tmp_path, ["kd"], cuda_graph="on")
    out = tmp_path / "run"
    with pytest.raises(ConfigError, match="set cuda_graph to auto or off"):
        run(RunConfig(dataset="digits", model="resnet8", device="cpu", cuda_graph="on", out=str(out)), "train")
    assert not out.exists()  # refused before any run directory was touched


def test_step_graph_needs_static_shapes():
    calls = []
    graph = StepGraph(lambda x: calls.append(x.clone()), RecordingBackend(), persistent=dict, warmup_steps=1,
                      log=lambda s: None)
    graph(x=torch.ones(4))
    graph(x=torch.full((4,), 2.0))  # captured, then replayed with the new contents of the buffer
    assert graph.captured and [c.tolist() for c in calls] == [[1.0] * 4, [2.0] * 4]
    with pytest.raises(GraphCaptureError, match="changed shape"):
        graph(x=torch.ones(3))


def test_storage_guard_names_moved_tensors():
    a, b = torch.zeros(3), torch.zeros(3)
    guard = StorageGuard({"a": a, "b": b})
    guard.check({"a": a, "b": b})
    b.zero_()  # in place: fine
    guard.check({"a": a, "b": b})
    with pytest.raises(GraphCaptureError, match="1 tensor.*: b"):
        guard.check({"a": a, "b": torch.zeros(3)})


def test_resumed_optimizer_keeps_its_own_lr_tensor_and_kernel():
    cfg = RunConfig()
    model = build_model("resnet8", CLASSES)
    saved = torch.optim.SGD(model.parameters(), lr=torch.tensor(0.5), momentum=0.9, foreach=True)
    model(torch.randn(2, 3, 32, 32)).sum().backward()
    saved.step()
    opt = build_optimizer(model, cfg, 0.05, CPU)
    lr = opt.param_groups[0]["lr"]
    load_optimizer_state(opt, saved.state_dict())
    group = opt.param_groups[0]
    assert group["lr"] is lr and group["fused"] is True and float(lr) == pytest.approx(0.05)
    for p in model.parameters():
        assert torch.equal(opt.state[p]["momentum_buffer"], saved.state[p]["momentum_buffer"])


def test_accumulator_resets_in_place_and_records_step_losses():
    acc = EpochAccumulator(CPU, steps=2)
    logits, target = torch.randn(4, CLASSES), torch.zeros(4, dtype=torch.long)
    before = {k: v for k, v in acc.tensors().items()}
    for step, value in enumerate((1.0, 2.0, 3.0)):  # the third step is beyond the recorded ones
        acc.add({"kd": torch.tensor(value), "total": torch.tensor(value)}, logits, target, torch.tensor(step))
    assert acc.step_losses() == [1.0, 2.0] and acc.result()["loss/total"] == pytest.approx(2.0)
    tensors = acc.tensors()
    acc.reset()
    assert all(acc.tensors()[k] is v for k, v in tensors.items())
    assert all(before[k] is tensors[k] for k in before)
    assert acc.result()["top1"] == 0.0 and np.isnan(acc.step_losses()).all()
    assert int(acc.count) == 0 and acc.first_bad.tolist() == [-1, -1]


# ---------------------------------------------------------------------------- the gradient guard
def _kd_with_nan_gradient_from(holder, first_bad_step):
    """KD whose ``kd`` term gains a part with a finite value (0) but a NaN gradient from step
    ``first_bad_step`` on: a ``where`` selects zeros, while its unselected branch is sqrt(-1 - |s|)
    (NaN) - the mechanism of the DKD report (inf x 0 in the backward pass of a masked entry)."""
    objective = build_objective("kd", num_classes=CLASSES)
    forward = objective.forward

    def edited(**inputs):
        terms = dict(forward(**inputs))
        s = inputs["student_logits"]
        sign = torch.where(holder["step"] >= first_bad_step, -1.0, 1.0)  # a tensor: no host read
        bad = torch.where(s > float("inf"), torch.sqrt(sign * (1 + s.abs())), torch.zeros_like(s)).sum()
        terms["kd"] = terms["kd"] + bad
        terms["total"] = terms["total"] + bad
        return terms

    objective.forward = edited
    return objective


@pytest.mark.parametrize("first_bad_step, graph", [(0, False), (4, True)], ids=["step0-eager", "step4-captured"])
def test_a_nonfinite_gradient_stops_before_any_update_and_names_its_term(tmp_path, first_bad_step, graph):
    from figkd.engine import NonFiniteLossError

    holder = {}
    trainer = _trainer(tmp_path, ["kd"], backend=RecordingBackend() if graph else None,
                       cuda_graph="auto" if graph else "off",
                       objective_modules=[_kd_with_nan_gradient_from(holder, first_bad_step)])
    holder["step"] = trainer.step.count
    model = trainer.members[0].model
    initial = {k: v.clone() for k, v in model.named_parameters()}
    with pytest.raises(NonFiniteLossError, match=rf"the gradient of loss term 'kd' is not finite at epoch 1, "
                                                 rf"step {first_bad_step} \(every loss value was finite\); no update"):
        trainer.train_epoch(1)
    assert (trainer.graph is not None and trainer.graph.captured) == graph
    params = dict(model.named_parameters())
    assert all(torch.isfinite(p).all() for p in params.values())  # the NaN never reached the weights
    moved = [k for k in params if not torch.equal(params[k], initial[k])]
    assert (moved == []) == (first_bad_step == 0)  # steps before the bad one were applied, none after
    if first_bad_step > 0:  # (at step 0 the skipped update is the one that would have made the buffers)
        momentum = [s["momentum_buffer"] for s in trainer.members[0].optimizer.state.values()]
        assert momentum and all(torch.isfinite(b).all() for b in momentum)


def test_a_train_mode_teacher_is_captured_with_its_moving_statistics(tmp_path):
    """OFD/ReviewKD's official teacher runs in train mode (issue 22): its BatchNorm updates its running
    statistics in place inside the step, which the capture must replay exactly as eager steps do."""
    backend = RecordingBackend()
    graphed = _trainer(tmp_path / "g", ["kd"], backend=backend, teacher_mode="train")
    backend.guard_tensors = lambda: graphed.persistent
    eager = _trainer(tmp_path / "e", ["kd"], cuda_graph="off", teacher_mode="train")
    before = {k: v.clone() for k, v in graphed.teacher.named_buffers()}
    assert graphed.teacher.training and graphed.teacher_mode == "train"
    _train(graphed), _train(eager)
    assert graphed.graph.captured and backend.replays == 2 * STEPS - 3
    for (name, a), b in zip(graphed.teacher.named_buffers(), eager.teacher.buffers(), strict=True):
        assert torch.equal(a, b), name
    assert not torch.equal(before["bn1.running_mean"], dict(graphed.teacher.named_buffers())["bn1.running_mean"])
    assert int(dict(graphed.teacher.named_buffers())["bn1.num_batches_tracked"]) == 2 * STEPS
    for (name, a), b in zip(graphed.members[0].learner.state_dict().items(),
                            eager.members[0].learner.state_dict().values(), strict=True):
        assert torch.equal(a, b), name
