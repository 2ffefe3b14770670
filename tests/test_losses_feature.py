"""Feature-based terms (FitNet, AT), their connector, and the build context they are sized from.

Pinned numbers: mdistiller's functions (megvii-research/mdistiller, `mdistiller/distillers/AT.py`
``at_loss`` and `FitNet.py`'s ``F.mse_loss`` after the connector) run in float64 on the inputs below,
with the outer weights of `mdistiller/engine/cfg.py` (AT 1000, FitNet 100) and FitNet's connector
replaced by the identity (values given in the issue, reproduced here before being pinned).
"""

import math

import pytest
import torch

from figkd.engine.learner import build_learner
from figkd.losses import AT, BuildContext, FitNet, at_loss, build_objective, fitnet_loss, probe_features
from figkd.losses.connectors import ConvReg
from figkd.models import build_model


def _features():
    torch.manual_seed(1)
    fs = torch.randn(64, 64, 8, 8, dtype=torch.float64)
    ft = torch.randn(64, 64, 8, 8, dtype=torch.float64)
    return fs, ft


def test_at_loss_equals_mdistiller_pinned_value():
    fs, ft = _features()
    fs.requires_grad_()
    value = 1000.0 * at_loss([fs], [ft], p=2)
    assert math.isclose(value.detach().item(), 0.9126376751198969, rel_tol=1e-9)
    torch.autograd.gradcheck(lambda a: at_loss([a], [ft[:4, :8]], p=2), (fs[:4, :8].detach().clone().requires_grad_(),))
    value.backward()
    assert fs.grad is not None and torch.isfinite(fs.grad).all()


def test_fitnet_loss_equals_mdistiller_pinned_value():
    fs, ft = _features()
    fs.requires_grad_()
    value = 100.0 * fitnet_loss(fs, ft)
    assert math.isclose(value.detach().item(), 199.3313026010233, rel_tol=1e-9)
    value.backward()
    torch.testing.assert_close(fs.grad, 100.0 * 2.0 * (fs - ft).detach() / fs.numel())  # d/ds of 100 * mean((s-t)^2)


def test_at_pools_the_larger_map_and_sums_stages():
    torch.manual_seed(0)
    s = [torch.randn(2, 4, 8, 8), torch.randn(2, 8, 4, 4)]
    t = [torch.randn(2, 6, 16, 16), torch.randn(2, 3, 4, 4)]
    pooled = torch.nn.functional.adaptive_avg_pool2d(t[0], (8, 8))
    expected = at_loss([s[0]], [pooled]) + at_loss([s[1]], [t[1]])
    assert torch.allclose(at_loss(s, t), expected)
    with pytest.raises(ValueError, match="equally long, non-empty lists"):
        at_loss(s, t[:1])


# The connector's parameter count, from the definition of mdistiller's ConvReg
# (mdistiller/distillers/_common.py): for equal spatial sizes Conv2d(C_s, C_t, 1x1) with bias and
# BatchNorm2d(C_t). Hint layer 2 is a 128-channel 16x16 map for resnet32x4 and resnet8x4 and a
# 64-channel 16x16 map for wrn_40_2 and wrn_16_2. Counted with mdistiller's own ConvReg and models
# (get_feat_shapes at 32x32) as well: 16768 and 4288.
@pytest.mark.parametrize("teacher, student, channels, count", [("resnet32x4", "resnet8x4", 128, 16768),
                                                               ("wrn_40_2", "wrn_16_2", 64, 4288)])
def test_fitnet_connector_has_mdistillers_parameter_count(teacher, student, channels, count):
    assert count == channels * channels + channels + 2 * channels  # conv weight + bias, BN weight + bias
    with torch.device("meta"):
        t, s = build_model(teacher, 100), build_model(student, 100)
    objective = build_objective("fitnet", context=BuildContext.from_models(s, t, input_size=(32, 32)))
    [_, fitnet] = objective.terms
    assert isinstance(fitnet, FitNet) and fitnet.hint_layer == 2
    assert sum(p.numel() for p in fitnet.connector.parameters()) == count
    assert sum(p.numel() for p in objective.parameters()) == count


def test_conv_reg_layer_follows_the_spatial_sizes():
    assert isinstance(ConvReg((16, 32, 32), (32, 16, 16)).conv, torch.nn.Conv2d)  # stride-2 3x3
    assert ConvReg((16, 32, 32), (32, 16, 16)).conv.stride == (2, 2)
    assert isinstance(ConvReg((16, 8, 8), (32, 16, 16)).conv, torch.nn.ConvTranspose2d)
    assert ConvReg((16, 10, 10), (32, 8, 8)).conv.kernel_size == (3, 3)
    x = torch.randn(2, 16, 10, 10)
    assert ConvReg((16, 10, 10), (32, 8, 8))(x).shape == (2, 32, 8, 8)
    with pytest.raises(ValueError, match="no connector maps a student feature of shape"):
        ConvReg((16, 4, 4), (32, 16, 16))


def test_probe_features_on_meta_leaves_the_model_alone():
    model = build_model("resnet8x4", 100)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    shapes = probe_features(model, (32, 32))
    assert shapes.feats == ((32, 32, 32), (64, 32, 32), (128, 16, 16), (256, 8, 8))
    assert shapes.preact_feats == shapes.feats and shapes.pooled == 256 and shapes.logits == 100
    assert shapes.channels == tuple(model.get_stage_channels())
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())  # BN statistics untouched
    assert probe_features(build_model("resnet8x4", 200), (64, 64)).feats[-1] == (256, 16, 16)


def test_feature_terms_need_the_models_in_their_context():
    with pytest.raises(ValueError, match="'fitnet' is built from the student and teacher"):
        build_objective([{"term": "fitnet"}], num_classes=10)
    teacher, student = build_model("resnet20", 10), build_model("resnet8", 10)
    with pytest.raises(ValueError, match="hint_layer must be an index into the stage features, 0..3"):
        build_objective([{"term": "fitnet", "hint_layer": 7}],
                        context=BuildContext.from_models(student, teacher, input_size=(32, 32)))
    # AT pairs stages one to one: resnet50 (CIFAR) has 4 stages after its stem, resnet8 3
    deep = build_model("resnet50", 10)
    context = BuildContext.from_models(student, deep, input_size=(32, 32))
    with pytest.raises(ValueError, match="the student has 3 stages after its stem and the teacher 4"):
        build_objective("at", context=context)
    x = torch.randn(2, 3, 32, 32)
    fs, ft = student(x, return_features=True)[1]["feats"], deep(x, return_features=True)[1]["feats"]
    first = build_objective([{"term": "at", "stages": "first"}], context=context).terms[0]
    last = build_objective([{"term": "at", "stages": "last"}], context=context).terms[0]
    assert torch.equal(first(fs, ft), at_loss(fs[1:], ft[1:4]))  # mdistiller's zip: from the first stage
    assert torch.equal(last(fs, ft), at_loss(fs[1:], ft[2:]))  # the deepest stages
    with pytest.raises(ValueError, match="stages must be one of same, first, last"):
        build_objective([{"term": "at", "stages": "middle"}])
    assert isinstance(build_objective("at").terms[1], AT)  # AT has nothing to size: no context needed


def test_learner_trains_the_connector_and_exports_the_student_only():
    torch.manual_seed(0)
    teacher = build_model("resnet20", 10).eval()
    learner = build_learner(build_model("resnet8", 10), "fitnet", teacher=teacher, num_classes=10, input_size=(32, 32))
    connector = learner.objective.terms[1].connector
    assert {id(p) for p in connector.parameters()} <= {id(p) for p in learner.parameters()}
    assert set(learner.model.state_dict()) == set(build_model("resnet8", 10).state_dict())  # exported weights
    assert all(k.startswith("terms.1.connector.") for k in learner.objective_state())
    from figkd.data.batch import Batch
    from figkd.engine.teacher import TeacherForward

    x, y = torch.randn(4, 3, 32, 32), torch.randint(0, 10, (4,))
    batch = Batch(x, y)
    outputs = TeacherForward(teacher, learner.needs)(batch, torch.autocast("cpu", enabled=False))
    assert set(outputs) == {"teacher_logits", "teacher_feats", "teacher_preact_feats", "teacher_pooled",
                            "teacher_prepool"}
    assert not outputs["teacher_feats"][2].requires_grad
    terms, logits = learner(batch, outputs, torch.tensor(1.0))
    assert set(terms) == {"ce", "fitnet", "total"} and logits.shape == (4, 10)
    terms["total"].backward()
    assert connector.conv.weight.grad is not None and connector.conv.weight.grad.abs().sum() > 0


class _KeepsTheTeacher(torch.nn.Module):
    """A term written wrongly: it keeps the teacher module instead of copying what it reads."""

    def __init__(self, teacher):
        super().__init__()
        self.teacher = teacher


def test_an_objective_holding_the_teachers_tensors_is_refused():
    from figkd.config import ConfigError
    from figkd.engine.learner import Learner

    teacher = build_model("resnet8", 10)
    objective = build_objective("kd", num_classes=10)
    objective.terms.append(_KeepsTheTeacher(teacher))
    with pytest.raises(ConfigError, match="holds the teacher's tensors .*must copy what it reads"):
        Learner(build_model("resnet8", 10), objective).check_not_sharing(teacher)
    Learner(build_model("resnet8", 10), build_objective("kd", num_classes=10)).check_not_sharing(teacher)


def test_objective_state_is_required_to_resume_an_objective_with_state():
    from figkd.config import ConfigError

    torch.manual_seed(0)
    teacher = build_model("resnet20", 10)
    learner = build_learner(build_model("resnet8", 10), "fitnet", teacher=teacher, num_classes=10, input_size=(32, 32))
    with pytest.raises(ConfigError, match="holds no state of the objective.*cannot be resumed exactly"):
        learner.load_objective_state(None, "the checkpoint of runs/x")
    state = {k: v.clone() for k, v in learner.objective_state().items()}
    with pytest.raises(ConfigError, match="does not fit this objective"):
        learner.load_objective_state({k: v for k, v in list(state.items())[1:]}, "the checkpoint of runs/x")
    state["terms.1.connector.conv.weight"].add_(1.0)
    learner.load_objective_state(state, "the checkpoint of runs/x")
    assert torch.equal(learner.objective.terms[1].connector.conv.weight, state["terms.1.connector.conv.weight"])
    kd = build_learner(build_model("resnet8", 10), "kd", teacher=teacher, num_classes=10, input_size=(32, 32))
    kd.load_objective_state(None, "an old checkpoint")  # no state to restore: runs saved before #10 resume
