"""OFD and ReviewKD: pinned to their official code, connectors sized and counted as the official ones.

How the pinned values were obtained: the official functions were run here in float64, from the
repositories at the commits stated (never copied into figkd): megvii-research/mdistiller a08d46f
(``mdistiller/distillers/OFD.py`` ``feat_loss``, ``ConnectorConvBN``; ``ReviewKD.py`` ``hcl_loss``,
``ABF`` and the part of ``ReviewKD.forward_train`` after the two forwards), clovaai/overhaul-distillation
76344a8 (``CIFAR-100/distiller.py`` ``get_margin_from_BN``, ``distillation_loss``) and
dvlab-research/ReviewKD cede6ea (``CIFAR-100/model/reviewkd.py``, the same ``hcl`` and ``ABF``).
"""

import math

import pytest
import torch

from figkd.config import ConfigError
from figkd.engine.learner import build_learner
from figkd.losses import OFD, BuildContext, FeatureShapes, ReviewKD, build_objective, hcl_loss, ofd_loss
from figkd.losses.ofd import ofd_margins
from figkd.models import build_model


def _fs_ft():
    torch.manual_seed(1)
    fs = torch.randn(64, 64, 8, 8, dtype=torch.float64)
    ft = torch.randn(64, 64, 8, 8, dtype=torch.float64)
    return fs, ft


def _margins():
    torch.manual_seed(4)
    return torch.randn(64).abs()  # float32, as the official code stores margins


def _context(teacher, student, size=32):
    with torch.device("meta"):
        t, s = build_model(teacher, 100), build_model(student, 100)
    return BuildContext.from_models(s, t, input_size=(size, size))


# ----------------------------------------------------------------------------------------------- OFD
def test_ofd_loss_equals_mdistillers_feat_loss_pinned_value():
    # mdistiller feat_loss(fs, ft, m[None, :, None, None]) * 0.001 (CFG.OFD.LOSS.FEAT_WEIGHT), one stage
    # (weight 1 / 2^0): the number, reproduced here. Positive margins exercise all three cases.
    fs, ft = _fs_ft()
    fs.requires_grad_()
    value = 0.001 * ofd_loss([fs], [ft], [_margins()])
    assert math.isclose(value.item(), 4.566266262905175, rel_tol=1e-9)
    value.backward()
    # d/ds of the three cases: 2 (s - m) where counted against m, 2 (s - t) where counted against t
    m = _margins().double()[None, :, None, None]
    s, t = fs.detach(), ft
    grad = 2 * (s - m) * ((s > m) & (t <= m)) + 2 * (s - t) * (((s > t) & (m < t) & (t <= 0)) | (t > 0))
    torch.testing.assert_close(fs.grad, 0.001 * grad / 64)
    small = fs[:2, :3, :4, :4].detach().clone().requires_grad_()
    torch.autograd.gradcheck(lambda a: ofd_loss([a], [ft[:2, :3, :4, :4]], [_margins()[:3]]), (small,))


def test_ofd_loss_with_bn_margins_equals_the_original_partial_l2():
    # Margins from a BatchNorm are negative; there mdistiller's three cases equal overhaul-distillation's
    # distillation_loss (sum over the batch), divided by the batch: 0.001 * distillation_loss / 64 run here.
    fs, ft = _fs_ft()
    value = 0.001 * ofd_loss([fs], [ft], [-_margins()])
    assert math.isclose(value.item(), 6.3152128458830665, rel_tol=1e-9)


def test_ofd_weights_stages_by_depth_and_pools_the_teacher():
    torch.manual_seed(0)
    s = [torch.randn(2, 4, 8, 8), torch.randn(2, 6, 4, 4), torch.randn(2, 8, 2, 2)]
    t = [torch.randn(2, 4, 16, 16), torch.randn(2, 6, 4, 4), torch.randn(2, 8, 2, 2)]
    m = [-torch.rand(4), -torch.rand(6), -torch.rand(8)]
    pooled = torch.nn.functional.adaptive_avg_pool2d(t[0], (8, 8))
    expected = (ofd_loss([s[0]], [pooled], [m[0]]) / 4 + ofd_loss([s[1]], [t[1]], [m[1]]) / 2
                + ofd_loss([s[2]], [t[2]], [m[2]]))
    torch.testing.assert_close(ofd_loss(s, t, m), expected)
    with pytest.raises(ValueError, match="same channels"):
        ofd_loss([s[0]], [t[1]], [m[0]])


def test_margins_equal_overhaul_distillations_get_margin_from_bn():
    # get_margin_from_BN of a BatchNorm2d(8) with these affine parameters, run here: channel 0 has
    # Phi(-4) <= 0.001 (margin -3 |gamma|), channel 1 a negative gamma (|gamma| is used).
    weight = torch.tensor([1.0, -0.5, -0.5580962300300598, 0.6675242781639099, -0.19741509854793549,
                           1.9427834749221802, -1.4017020463943481, -0.7625571489334106])
    bias = torch.tensor([4.0, -0.899135172367096, -0.5577934384346008, 0.6907187700271606, 0.2224585860967636,
                         -0.666225254535675, 0.6846421957015991, 0.5740016102790833])
    official = torch.tensor([-3.0, -0.9402149319648743, -0.7184140682220459, -0.3459693193435669,
                             -0.09886405616998672, -1.8185949325561523, -0.9029670357704163, -0.440870463848114])
    margins = ofd_margins(weight, bias)
    assert margins.dtype == torch.float32 and torch.equal(margins, official)
    assert torch.equal(ofd_margins(torch.zeros(2), torch.tensor([-0.5, 0.5])), torch.tensor([-0.5, 0.0]))


def test_ofd_connectors_have_mdistillers_parameter_count():
    # mdistiller OFD.init_ofd_modules: ConnectorConvBN(student.get_stage_channels()[1:], teacher's[1:],
    # kernel 1) = Conv2d(C_s, C_t, 1, bias=False) + BatchNorm2d(C_t) per stage, [64, 128, 256] on both
    # sides for resnet8x4 and resnet32x4: 64*64 + 128*128 + 256*256 + 2 * (64 + 128 + 256) = 86,912
    # (mdistiller's ConnectorConvBN built here counts the same; its get_extra_parameters reports it).
    objective = build_objective("ofd", context=_context("resnet32x4", "resnet8x4"))
    [_, ofd] = objective.terms
    assert isinstance(ofd, OFD) and ofd.num_stages == 3
    assert sum(p.numel() for p in objective.parameters()) == 86_912 == 64 * 64 + 128 * 128 + 256 * 256 + 2 * 448
    assert [b.shape for b in ofd.buffers() if b.dtype == torch.float32 and b.ndim == 1][:3] == [
        (64,), (128,), (256,)]


def test_ofd_copies_the_teachers_margins_and_trains_its_connectors():
    torch.manual_seed(0)
    teacher = build_model("resnet20", 10).eval()
    for bn in teacher.get_bn_before_relu():
        bn.weight.data.uniform_(0.5, 1.5)
        bn.bias.data.uniform_(-1, 1)
    learner = build_learner(build_model("resnet8", 10), "ofd", teacher=teacher, num_classes=10, input_size=(32, 32))
    ofd = learner.objective.terms[1]
    for i, bn in enumerate(teacher.get_bn_before_relu()):
        assert torch.equal(getattr(ofd, f"margin{i}"), ofd_margins(bn.weight, bn.bias))
    learner.check_not_sharing(teacher)  # copies, not the teacher's tensors
    x = torch.randn(4, 3, 32, 32)
    _, fs = learner.model(x, return_features=True)
    with torch.no_grad():
        _, ft = teacher(x, return_features=True)
    ofd(fs["preact_feats"], ft["preact_feats"]).backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in ofd.parameters())


def test_ofd_distils_resnet50_to_mobilenetv2_where_mdistiller_breaks():
    # mdistiller issue 68: its MobileNetV2 has no "preact_feats" and its ResNet50 lists stage channels without
    # the stem (so its margins and connectors misalign). figkd's models expose both: four stages pair.
    ofd = build_objective("ofd", context=_context("resnet50", "mobilenetv2")).terms[1]
    assert [(c[0].in_channels, c[0].out_channels) for c in ofd.connectors] == [(12, 256), (16, 512), (48, 1024),
                                                                             (160, 2048)]
    torch.manual_seed(0)
    teacher, student = build_model("resnet50", 10).eval(), build_model("mobilenetv2", 10)
    learner = build_learner(student, "ofd", teacher=teacher, num_classes=10, input_size=(32, 32))
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        _, ft = teacher(x, return_features=True)
    _, fs = student(x, return_features=True)
    assert torch.isfinite(learner.objective.terms[1](fs["preact_feats"], ft["preact_feats"]))


def test_ofd_refuses_a_teacher_without_bn_before_relu_naming_the_pair():
    teacher = build_model("shufflenetv2", 10)
    with pytest.raises(ConfigError, match=r"OFD cannot distil shufflenetv2 -> resnet8: .*no BatchNorm before"):
        build_learner(build_model("resnet8", 10), "ofd", teacher=teacher, num_classes=10, input_size=(32, 32))


# ------------------------------------------------------------------------------------------ ReviewKD
def test_hcl_loss_equals_the_official_pinned_value():
    # mdistiller hcl_loss (= dvlab-research/ReviewKD hcl) on the three-level lists, times 5
    # (configs/cifar100/reviewkd.yaml REVIEWKD_WEIGHT): the number, reproduced here.
    torch.manual_seed(3)
    shapes = ((16, 32), (32, 16), (64, 8))
    fs = [torch.randn(64, c, h, h, dtype=torch.float64) for c, h in shapes]
    ft = [torch.randn(64, c, h, h, dtype=torch.float64) for c, h in shapes]
    fs = [f.requires_grad_() for f in fs]
    value = 5 * hcl_loss(fs, ft)
    assert math.isclose(value.item(), 16.99118003671315, rel_tol=1e-9)
    value.backward()
    assert all(f.grad is not None and torch.isfinite(f.grad).all() for f in fs)
    small = [torch.randn(2, 2, h, h, dtype=torch.float64, requires_grad=True) for h in (8, 4, 2)]
    target = [torch.randn(2, 2, h, h, dtype=torch.float64) for h in (8, 4, 2)]
    torch.autograd.gradcheck(lambda a, b, c: hcl_loss([a, b, c], target), tuple(small))
    with pytest.raises(ValueError, match="differ"):
        hcl_loss(fs[:1], ft[1:2])


def _review_params(module):
    g = torch.Generator().manual_seed(7)
    for _, p in sorted(module.named_parameters()):
        p.data = torch.randn(p.shape, generator=g, dtype=torch.float64) * 0.1


def test_reviewkd_term_equals_the_official_abfs_and_hcl_pinned_value():
    # resnet32x4 -> resnet8x4 at 32x32: mdistiller's ABFs (CFG.REVIEWKD IN/OUT_CHANNELS [64, 128, 256, 256],
    # SHAPES = OUT_SHAPES [1, 8, 16, 32], mid 256) and its forward_train after the forwards, times 5, run here
    # in float64 in training mode with every parameter drawn as _review_params does (sorted names; figkd's
    # state-dict names are the official ones) on the inputs below: 13.924688671279492.
    term = build_objective([{"term": "reviewkd", "weight": 5.0}], context=_context("resnet32x4", "resnet8x4")).terms[0]
    term = term.double()
    _review_params(term)
    torch.manual_seed(8)
    shapes = ((32, 32), (64, 32), (128, 16), (256, 8))
    sf = [torch.randn(4, c, h, h, dtype=torch.float64) for c, h in shapes]
    sp = torch.randn(4, 256, dtype=torch.float64)
    tf = [torch.randn(4, c, h, h, dtype=torch.float64) for c, h in shapes]
    tp = torch.randn(4, 256, dtype=torch.float64)
    value = 5 * term(sf, [f + 1 for f in sf], sp, tf, tp)  # student_preact off: the preact list is unused
    assert math.isclose(value.item(), 13.924688671279492, rel_tol=1e-9)
    value.backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in term.parameters())


def test_reviewkd_abfs_have_the_official_parameter_count():
    # mdistiller ReviewKD.__init__ with CFG.REVIEWKD (the resnet32x4 -> resnet8x4 channels): ABF(64|128|256|256,
    # mid 256, out 64|128|256|256), the deepest without att_conv: 1,808,774 parameters (the official ABFs
    # built here count the same; get_extra_parameters).
    objective = build_objective("reviewkd", context=_context("resnet32x4", "resnet8x4"))
    assert sum(p.numel() for p in objective.parameters()) == 1_808_774


def _levels(term):
    """(in_channels, shapes, out_channels, out_shapes) in the official, shallowest-first order."""
    ins = [abf.conv1[0].in_channels for abf in term.abfs][::-1]
    outs = [abf.conv2[0].out_channels for abf in term.abfs][::-1]
    return ins, outs, [s[0] for s in term.out_sizes][::-1]


@pytest.mark.parametrize("teacher, student, size, ins, outs, out_shapes", [
    # dvlab-research/ReviewKD build_review_kd (CIFAR-100) and mdistiller configs/imagenet/r34_r18/reviewkd.yaml
    ("resnet32x4", "resnet8x4", 32, [64, 128, 256, 256], [64, 128, 256, 256], [32, 16, 8, 1]),
    ("resnet110", "resnet32", 32, [16, 32, 64, 64], [16, 32, 64, 64], [32, 16, 8, 1]),
    ("wrn_40_2", "wrn_16_2", 32, [32, 64, 128, 128], [32, 64, 128, 128], [32, 16, 8, 1]),
    ("wrn_40_2", "shufflenetv1", 32, [240, 480, 960, 960], [32, 64, 128, 128], [32, 16, 8, 1]),
    ("resnet32x4", "shufflenetv2", 32, [116, 232, 464, 1024], [64, 128, 256, 256], [32, 16, 8, 1]),
    ("vgg13", "mobilenetv2", 32, [12, 16, 48, 160, 1280], [128, 256, 512, 512, 512], [16, 8, 4, 4, 1]),
    ("resnet50", "mobilenetv2", 32, [12, 16, 48, 160, 1280], [256, 512, 1024, 2048, 2048], [32, 16, 8, 4, 1]),
    ("resnet34_imagenet", "resnet18_imagenet", 224, [64, 128, 256, 512, 512], [64, 128, 256, 512, 512],
     [56, 28, 14, 7, 1]),
])
def test_reviewkd_levels_follow_the_official_builds(teacher, student, size, ins, outs, out_shapes):
    term = build_objective("reviewkd", context=_context(teacher, student, size)).terms[1]
    assert isinstance(term, ReviewKD)
    assert _levels(term) == (ins, outs, out_shapes)
    mid = min(512, ins[-1])
    assert all(abf.conv1[0].out_channels == mid for abf in term.abfs)


def test_reviewkd_pairs_the_deepest_student_levels_and_refuses_too_few():
    # MobileNetV1 (teacher) lists 4 stages without a stem: 3 after its first + the embedding = 4 levels; the
    # ResNet18 student's 4 deepest are layer2..4 and its embedding (28, 14, 7, 1 at 224x224 on both sides).
    term = build_objective("reviewkd", context=_context("mobilenetv1_imagenet", "resnet18_imagenet", 224)).terms[1]
    assert _levels(term) == ([128, 256, 512, 512], [256, 512, 1024, 1024], [28, 14, 7, 1])
    tiny = FeatureShapes(feats=((8, 8, 8), (16, 4, 4)), preact_feats=((8, 8, 8), (16, 4, 4)), pooled=16, logits=10,
                         name="tiny")
    with pytest.raises(ValueError, match="ReviewKD cannot distil resnet8 -> tiny: the teacher has 4 levels"):
        build_objective("reviewkd", context=BuildContext(student=tiny, teacher=_context("resnet8", "resnet8").teacher))


def test_reviewkd_preset_warms_up_from_epoch_one_like_mdistiller():
    # mdistiller ReviewKD.forward_train: weight * min(epoch / WARMUP_EPOCHS, 1) with 1-based epochs.
    torch.manual_seed(0)
    teacher = build_model("resnet8", 10).eval()
    learner = build_learner(build_model("resnet8", 10), "reviewkd", teacher=teacher, num_classes=10,
                            input_size=(32, 32))
    x = torch.randn(4, 3, 32, 32)
    _, fs = learner.model(x, return_features=True)
    with torch.no_grad():
        _, ft = teacher(x, return_features=True)
    inputs = dict(student_logits=torch.zeros(4, 10), target=torch.zeros(4, dtype=torch.long),
                  student_feats=fs["feats"], student_preact_feats=fs["preact_feats"],
                  student_pooled=fs["pooled_feat"], teacher_preact_feats=ft["preact_feats"],
                  teacher_pooled=ft["pooled_feat"])
    learner.objective.eval()  # BatchNorm in eval mode: the term's value does not depend on the call
    raw = learner.objective.terms[1](fs["feats"], fs["preact_feats"], fs["pooled_feat"], ft["preact_feats"],
                                     ft["pooled_feat"])
    for epoch, factor in ((1, 1 / 20), (10, 0.5), (20, 1.0), (200, 1.0)):
        out = learner.objective(**inputs, epoch=torch.tensor(float(epoch)))
        torch.testing.assert_close(out["reviewkd"], 5.0 * factor * raw)
