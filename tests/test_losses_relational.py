"""PKT, RKD, SP and VID, pinned to the official code.

How the pinned numbers were obtained: megvii-research/mdistiller at commit a08d46f
(``mdistiller/distillers/PKT.py`` ``pkt_loss``, ``RKD.py`` ``rkd_loss``, ``SP.py`` ``sp_loss``, ``VID.py``
``vid_loss``) and HobbitLong/RepDistiller at commit b84f547 (``distiller_zoo/VID.py`` ``VIDLoss``) were
run in float64 (CPU, torch 2.13) on the inputs of ``_inputs`` below, with trainable modules replaced by
the identity and the outer weights of ``mdistiller/engine/cfg.py`` applied (PKT 30000, RKD 1 with
distance 25 and angle 50, SP 3000, VID 1). PKT, RKD and SP are also the values stated in issue 11.
Gradients: the official functions' autograd gradient with respect to the student input, summarised by
its L2 norm and by its dot product with ``sin(0), sin(1), ...`` over the flattened entries
(``_summary``), each pinned to 1e-9 relative.
"""

import math

import numpy as np
import pytest
import torch

from figkd.losses import (
    PKT,
    RKD,
    SP,
    VID,
    BuildContext,
    build_objective,
    pkt_loss,
    rkd_loss,
    sp_loss,
    term_spec,
    vid_loss,
)
from figkd.losses.rkd import rkd_angle_loss, rkd_distance_loss
from figkd.models import build_model


def _inputs():
    torch.manual_seed(1)
    fs = torch.randn(64, 64, 8, 8, dtype=torch.float64)
    ft = torch.randn(64, 64, 8, 8, dtype=torch.float64)
    torch.manual_seed(2)
    ps = torch.randn(64, 64, dtype=torch.float64)
    pt = torch.randn(64, 128, dtype=torch.float64)
    return fs, ft, ps, pt


def _summary(grad):
    g = grad.flatten()
    return g.norm().item(), (g * torch.sin(torch.arange(g.numel(), dtype=torch.float64))).sum().item()


def _close(value, expected):
    assert math.isclose(value, expected, rel_tol=1e-9), (value, expected)


def test_pkt_equals_mdistiller_value_and_gradient():
    _, _, ps, pt = _inputs()
    ps.requires_grad_()
    value = 30000.0 * pkt_loss(ps, pt)  # 64-d student, 128-d teacher: each side has its own B x B matrix
    _close(value.item(), 5.283730745777269)
    value.backward()
    for got, want in zip(_summary(ps.grad), (0.290328455113891, -0.29264274064593104), strict=True):
        _close(got, want)
    torch.autograd.gradcheck(lambda a: pkt_loss(a, pt[:6, :5]), (ps[:6, :4].detach().clone().requires_grad_(),))


def test_rkd_equals_mdistiller_value_and_gradient():
    _, _, ps, pt = _inputs()
    ps.requires_grad_()
    value = rkd_loss(ps, pt, distance_weight=25, angle_weight=50)
    _close(value.item(), 0.42362672351079145)
    value.backward()
    for got, want in zip(_summary(ps.grad), (0.051048091047280295, -0.0014269652477958902), strict=True):
        _close(got, want)
    small_t = pt[:5, :3]
    torch.autograd.gradcheck(lambda a: rkd_loss(a, small_t), (ps[:5, :4].detach().clone().requires_grad_(),))
    # the term reports the weighted parts; they sum to rkd_loss
    parts = RKD()(ps.detach(), pt)
    assert set(parts) == {"distance", "angle"}
    _close((parts["distance"] + parts["angle"]).item(), 0.42362672351079145)
    _close(parts["distance"].item(), 25 * rkd_distance_loss(ps, pt).item())
    _close(parts["angle"].item(), 50 * rkd_angle_loss(ps, pt).item())


def test_rkd_and_pkt_are_finite_on_degenerate_embeddings():
    # RKD's off-diagonal distances are clamped at sqrt(eps) > 0, so tied or zero embeddings of two
    # samples or more keep the official value; a single sample has no positive distance, where the
    # official mean over no entries is nan and the distance term is 0 here (the documented deviation).
    for batch in (1, 2, 5):
        for value in (0.0, 1.0, 1e4):
            s = torch.full((batch, 8), value, requires_grad=True)
            loss = rkd_loss(s, torch.full((batch, 16), value))
            loss.backward()
            assert loss.item() == 0.0 and torch.isfinite(s.grad).all(), (batch, value)
    # PKT at a zero embedding: the norm's gradient there is finite (vector_norm), the loss is 0
    s = torch.zeros(4, 8, requires_grad=True)
    loss = pkt_loss(s, torch.zeros(4, 16))
    loss.backward()
    assert loss.item() == 0.0 and torch.isfinite(s.grad).all()


def test_sp_equals_mdistiller_value_and_gradient():
    fs, ft, _, _ = _inputs()
    fs.requires_grad_()
    value = 3000.0 * sp_loss([fs], [ft])
    _close(value.item(), 1.3847922908041792)
    value.backward()
    for got, want in zip(_summary(fs.grad), (0.06208548552103482, -0.025248536541083187), strict=True):
        _close(got, want)
    torch.autograd.gradcheck(lambda a: sp_loss([a], [ft[:5, :3, :2, :2]]),
                             (fs[:5, :2, :3, :3].detach().clone().requires_grad_(),))
    with pytest.raises(ValueError, match="equally long, non-empty"):
        sp_loss([fs], [])


def test_sp_term_uses_the_last_stage_and_sums_stages():
    torch.manual_seed(0)
    s = [torch.randn(4, 8, 8, 8), torch.randn(4, 16, 4, 4)]
    t = [torch.randn(4, 6, 8, 8), torch.randn(4, 32, 2, 2)]
    assert torch.equal(SP()(s, t), sp_loss([s[-1]], [t[-1]]))
    torch.testing.assert_close(sp_loss(s, t), sp_loss(s[:1], t[:1]) + sp_loss(s[1:], t[1:]))


# VID: mdistiller's vid_loss(nn.Identity(), log_scale, fs, ft, 1e-5), i.e. the predicted mean is fs,
# with the log-scale torch.manual_seed(5); torch.randn(64, dtype=torch.float64).
def test_vid_equals_official_value_and_gradient_for_a_stated_mean_and_log_scale():
    fs, ft, _, _ = _inputs()
    torch.manual_seed(5)
    log_scale = torch.randn(64, dtype=torch.float64).requires_grad_()
    mean = fs.clone().requires_grad_()
    value = vid_loss(mean, ft, log_scale, eps=1e-5)
    _close(value.item(), 1.6529704015702675)
    value.backward()
    for got, want in zip(_summary(mean.grad), (0.007232396177891689, 0.0019222064761617217), strict=True):
        _close(got, want)
    for got, want in zip(_summary(log_scale.grad), (0.26271498527918985, 0.15488715940004188), strict=True):
        _close(got, want)
    small = (fs[:3, :2, :2, :2].clone().requires_grad_(), log_scale[:2].detach().clone().requires_grad_())
    torch.autograd.gradcheck(lambda m, a: vid_loss(m, ft[:3, :2, :2, :2], a), small)


def test_vid_regressors_start_at_variance_5_and_pool_as_the_official_code():
    # The official initial log-scale, np.log(np.exp(5 - 1e-5) - 1) * torch.ones(64) (float32, as both official
    # codes store it), cast to float64: mdistiller's vid_loss with it gives 1.0040502711506498.
    fs, ft, _, _ = _inputs()
    term = VID([64], [64]).double()
    [reg] = term.regressors
    variance = torch.nn.functional.softplus(reg.log_scale) + 1e-5
    torch.testing.assert_close(variance, torch.full((64,), 5.0, dtype=torch.float64), rtol=1e-6, atol=0)
    reg.regressor = torch.nn.Identity()
    _close(term([None, fs], [None, ft]).item(), 1.0040502711506498)
    # Student 16x16, teacher 32x32: the teacher map is average-pooled to 16x16 before the loss. mdistiller's
    # vid_loss(nn.Identity(), log_scale_32, s, t, 1e-5) on these inputs: 0.8288296693284098.
    torch.manual_seed(3)
    s = [torch.randn(64, c, h, h, dtype=torch.float64) for c, h in ((16, 32), (32, 16), (64, 8))][1]
    t = torch.randn(64, 32, 32, 32, dtype=torch.float64, generator=torch.Generator().manual_seed(7))
    torch.manual_seed(5)
    log_scale = torch.randn(32, dtype=torch.float64)
    term = VID([32], [32]).double()
    term.regressors[0].regressor = torch.nn.Identity()
    with torch.no_grad():
        term.regressors[0].log_scale.copy_(log_scale)
    _close(term([None, s], [None, t]).item(), 0.8288296693284098)


def test_vid_parameter_count_equals_the_official_one_for_resnet32x4_to_resnet8x4():
    # Counted with the official modules on their own resnet32x4 / resnet8x4 definitions (stages after the
    # stem: 64, 128, 256 channels on both sides): RepDistiller's VIDLoss(s, t, t) per stage, as its
    # train_student.py builds them, has 258,496 parameters = mdistiller's VID.get_extra_parameters()
    # (the three regressors: 258,048 = sum of s t + 2 t^2) + 448 log-scales (64 + 128 + 256).
    with torch.device("meta"):
        t, s = build_model("resnet32x4", 100), build_model("resnet8x4", 100)
    objective = build_objective("vid", context=BuildContext.from_models(s, t, input_size=(32, 32)))
    vid = objective.terms[1]
    assert isinstance(vid, VID) and len(vid.regressors) == 3
    regressors = sum(p.numel() for r in vid.regressors for p in r.regressor.parameters())
    assert regressors == sum(c * c + 2 * c * c for c in (64, 128, 256)) == 258048
    assert sum(p.numel() for p in objective.parameters()) == 258496


def test_vid_trains_its_variance_and_refuses_unequal_stage_counts():
    torch.manual_seed(0)
    term = VID([4, 8], [6, 6])
    s = [None, torch.randn(2, 4, 8, 8), torch.randn(2, 8, 4, 4)]
    t = [None, torch.randn(2, 6, 4, 4), torch.randn(2, 6, 4, 4)]
    term(s, t).backward()
    assert all(r.log_scale.grad is not None and r.log_scale.grad.abs().sum() > 0 for r in term.regressors)
    teacher, student = build_model("resnet50", 10), build_model("resnet8", 10)
    context = BuildContext.from_models(student, teacher, input_size=(32, 32))
    with pytest.raises(ValueError, match="the student has 3 stages after its stem and the teacher 4"):
        build_objective("vid", context=context)
    first = build_objective([{"term": "vid", "stages": "first"}], context=context).terms[0]
    last = build_objective([{"term": "vid", "stages": "last"}], context=context).terms[0]
    assert [r.log_scale.numel() for r in first.regressors] == [256, 512, 1024]  # resnet50's first three stages
    assert [r.log_scale.numel() for r in last.regressors] == [512, 1024, 2048]
    with pytest.raises(ValueError, match="stages must be one of same, first, last"):
        build_objective([{"term": "vid", "stages": "middle"}], context=context)


@pytest.mark.parametrize("name, cls", [("pkt", PKT), ("rkd", RKD), ("sp", SP)])
def test_relational_terms_mix_samples_and_have_no_parameters(name, cls):
    spec = term_spec(name)
    assert spec.batch_coupled  # B x B (or B^3) relations: DDP must gather the global batch
    assert not term_spec("vid").batch_coupled  # a mean of per-sample losses
    term = build_objective(name).terms[1]
    assert isinstance(term, cls) and not list(term.parameters())


def test_relational_losses_run_on_meta_tensors_in_float32_under_autocast():
    with torch.device("meta"):
        s, t = torch.empty(8, 16), torch.empty(8, 32)
        assert rkd_loss(s, t).shape == () and pkt_loss(s, t).shape == ()
    x = torch.randn(8, 16, dtype=torch.bfloat16)
    y = torch.randn(8, 32, dtype=torch.bfloat16)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert pkt_loss(x, y).dtype == torch.float32 and rkd_loss(x, y).dtype == torch.float32
    assert np.isfinite(sp_loss([x.reshape(8, 4, 2, 2)], [y.reshape(8, 8, 2, 2)]).item())
