"""The training step never waits for the host: it runs whole on meta tensors, where .item() fails.

Meta tensors have shapes and dtypes but no data, so any host synchronisation inside the step
(``.item()``, ``.tolist()``, Python control flow on a tensor value) raises. This is the property that
lets the step be captured in a CUDA graph (issue #6). The optimizer here takes a float learning rate
(meta tensors have no fused SGD kernel); the engine's tensor learning rate goes to the fused kernel
without a host read. ``tests/test_engine_graph.py`` checks the rest of what a capture freezes.
"""

import pytest
import torch

from figkd.config import RunConfig
from figkd.engine.learner import build_learner
from figkd.engine.step import TrainStep
from figkd.engine.teacher import TeacherForward
from figkd.losses import Needs
from figkd.models import build_model
from fixtures_engine import meta_member

META = torch.device("meta")


@pytest.mark.parametrize("objectives", [["vanilla"], ["kd"], ["figkd"], ["dkd"], ["mlkd"], ["dist"],
                                        ["mlkd+figkd"], ["kd", "figkd", "mlkd"], ["fitnet", "at"],
                                        ["dml", "dml"]])  # DML: two peers, the two-phase step
def test_step_has_no_host_synchronisation(objectives):
    cfg = RunConfig(device="cpu", tensorboard=False, progress="off")
    with META:
        teacher = build_model("resnet8", 10).eval()
    members = []
    for name in objectives:
        with META:
            learner = build_learner(build_model("resnet8", 10), name, teacher=teacher, num_classes=10,
                                    input_size=(32, 32))
        members.append(meta_member(name, learner, cfg, META))
    needs = Needs.of(*(m.learner.needs.inputs for m in members))
    step = TrainStep(members, None if objectives == ["vanilla"] else TeacherForward(teacher, needs), device=META,
                     amp_dtype=None, channels_last=False)
    images = torch.empty(4, 3, 32, 32, device=META)
    target = torch.zeros(4, dtype=torch.long, device=META)
    step.begin_epoch(1, steps=8)
    step(images, target, strong=images if step.needs.strong() else None, index=torch.arange(4, device=META))
    for acc in step.accs:
        assert acc.names[-1] == "total" and acc.loss_sum.shape == (len(acc.names),)
