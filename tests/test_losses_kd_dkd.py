"""KD, DKD and CE: oracle values of the official code, precision policy, gradients, errors.

The oracle values are the issue's (issue 2, section 5): produced by running mdistiller's
`kd_loss` / `dkd_loss` (megvii-research/mdistiller, `mdistiller/distillers/KD.py`, `DKD.py`) in
float64 on the inputs of `_inputs()`. They must match to 1e-9 relative.
"""

import pytest
import torch
import torch.nn.functional as F

from figkd.losses import CELoss, DKDLoss, KDLoss, ce_loss, dkd_loss, kd_loss
from fixtures_losses import logit_inputs

ORACLE = {
    "kd_T4": 9.684900314046567,
    "ce0.1_kd0.9_T4": 9.335780381288988,
    "dkd_a1_b8_T4": 77.65597111838993,
    "tckd_a1_b0_T4": 0.07522760448349547,
    "nckd_a0_b1_T4": 9.697592939238303,
}


_inputs = logit_inputs  # the inputs the pinned values were computed on


def _rel(a, b):
    return abs(float(a) - b) / abs(b)


def test_kd_oracle():
    ls, lt, y = _inputs()
    assert _rel(kd_loss(ls, lt, temperature=4.0), ORACLE["kd_T4"]) < 1e-9
    assert _rel(KDLoss(4.0)(ls, lt), ORACLE["kd_T4"]) < 1e-9
    mixed = 0.1 * F.cross_entropy(ls, y) + 0.9 * kd_loss(ls, lt, 4.0)
    assert _rel(mixed, ORACLE["ce0.1_kd0.9_T4"]) < 1e-9


def test_dkd_oracle():
    ls, lt, y = _inputs()
    assert _rel(dkd_loss(ls, lt, y, alpha=1.0, beta=8.0, temperature=4.0), ORACLE["dkd_a1_b8_T4"]) < 1e-9
    assert _rel(dkd_loss(ls, lt, y, alpha=1.0, beta=0.0, temperature=4.0), ORACLE["tckd_a1_b0_T4"]) < 1e-9
    assert _rel(dkd_loss(ls, lt, y, alpha=0.0, beta=1.0, temperature=4.0), ORACLE["nckd_a0_b1_T4"]) < 1e-9
    assert _rel(DKDLoss()(ls, lt, y), ORACLE["dkd_a1_b8_T4"]) < 1e-9


def test_defaults_are_the_papers():
    ls, lt, y = _inputs()
    assert kd_loss(ls, lt) == kd_loss(ls, lt, 4.0)
    assert dkd_loss(ls, lt, y) == dkd_loss(ls, lt, y, 1.0, 8.0, 4.0)


def test_dkd_matches_mask_formulation_in_float32():
    # The official code removes the target class with a -1000 shift; ours masks it exactly.
    ls, lt, y = _inputs()
    s, t = ls.float(), lt.float()
    T = 4.0
    gt = F.one_hot(y, 100).bool()
    ps, pt = F.softmax(s / T, 1), F.softmax(t / T, 1)
    bs = torch.stack([(ps * gt).sum(1), (ps * ~gt).sum(1)], 1)
    bt = torch.stack([(pt * gt).sum(1), (pt * ~gt).sum(1)], 1)
    tckd = F.kl_div(torch.log(bs), bt, reduction="sum") * T**2 / 64
    nckd = F.kl_div(F.log_softmax(s / T - 1000.0 * gt, 1), F.softmax(t / T - 1000.0 * gt, 1),
                    reduction="sum") * T**2 / 64
    ref = tckd + 8.0 * nckd
    assert torch.allclose(dkd_loss(s, t, y), ref, rtol=1e-5)


@pytest.mark.parametrize("fn", ["kd", "dkd", "ce"])
def test_teacher_not_differentiated_student_is(fn):
    ls, lt, y = _inputs()
    s = ls.clone().requires_grad_()
    t = lt.clone().requires_grad_()
    loss = {"kd": lambda: kd_loss(s, t), "dkd": lambda: dkd_loss(s, t, y), "ce": lambda: ce_loss(s, y)}[fn]()
    loss.backward()
    assert t.grad is None
    assert s.grad is not None and s.grad.abs().sum() > 0


def test_gradcheck_kd_dkd():
    torch.manual_seed(1)
    s = torch.randn(4, 7, dtype=torch.float64, requires_grad=True)
    t = torch.randn(4, 7, dtype=torch.float64)
    y = torch.tensor([0, 3, 6, 2])
    assert torch.autograd.gradcheck(lambda x: kd_loss(x, t, 2.0), (s,))
    assert torch.autograd.gradcheck(lambda x: dkd_loss(x, t, y, 1.0, 8.0, 2.0), (s,))


def test_dkd_confident_teacher_gradient_is_finite_regression():
    # Issue 17: one sample, two classes, target 0, teacher 100 logits ahead, T = 1, float32. The value
    # was right and the gradient nan (exp overflow in the masked target entry of NCKD). The right
    # values: loss log 2 (student 50/50 against a certain teacher; NCKD over one class is 0) and
    # gradient softmax(s) - onehot(0) = [-0.5, 0.5] (mdistiller's dkd_loss in float64 agrees).
    s = torch.tensor([[0.0, 0.0]], requires_grad=True)
    t = torch.tensor([[100.0, 0.0]])
    y = torch.tensor([0])
    loss = dkd_loss(s, t, y, alpha=1.0, beta=8.0, temperature=1.0)
    loss.backward()
    assert loss.dtype == torch.float32
    assert float(loss.detach()) == pytest.approx(0.6931472, abs=1e-7)
    assert torch.allclose(s.grad, torch.tensor([[-0.5, 0.5]]), atol=1e-7), s.grad
    s64 = s.detach().double().requires_grad_()
    dkd_loss(s64, t.double(), y, 1.0, 8.0, 1.0).backward()
    assert torch.allclose(s64.grad, s.grad.double(), atol=1e-7)


def test_zero_when_student_equals_teacher():
    ls, _, y = _inputs()
    assert abs(float(kd_loss(ls, ls))) < 1e-12
    assert abs(float(dkd_loss(ls, ls, y))) < 1e-12


@pytest.mark.parametrize("name", ["kd", "dkd", "ce"])
def test_precision_float32_or_wider(name):
    ls, lt, y = _inputs()
    fn = {
        "kd": lambda s, t: kd_loss(s, t),
        "dkd": lambda s, t: dkd_loss(s, t, y),
        "ce": lambda s, t: ce_loss(s, y),
    }[name]
    # float64 stays float64; bf16 / fp16 inputs are computed in float32.
    assert fn(ls, lt).dtype == torch.float64
    sb, tb = ls.bfloat16(), lt.bfloat16()
    out = fn(sb, tb)
    assert out.dtype == torch.float32
    assert torch.equal(out, fn(sb.float(), tb.float()))
    assert fn(ls.half(), lt.half()).dtype == torch.float32
    # autocast to bf16 around the call changes nothing.
    s, t = ls.float(), lt.float()
    ref = fn(s, t)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        inside = fn(s, t)
    assert inside.dtype == torch.float32
    assert torch.equal(inside, ref)


def test_modules_and_errors():
    ls, lt, y = _inputs()
    assert torch.equal(CELoss()(ls, y), F.cross_entropy(ls, y))
    with pytest.raises(ValueError, match="temperature"):
        KDLoss(0.0)
    with pytest.raises(ValueError, match="temperature"):
        kd_loss(ls, lt, temperature=-1.0)
    with pytest.raises(ValueError, match="shape"):
        kd_loss(ls, lt[:, :50])
    with pytest.raises(ValueError, match=r"\(batch, num_classes\)"):
        kd_loss(ls[0], lt[0])
    with pytest.raises(ValueError, match="target"):
        dkd_loss(ls, lt, y[:10])
    with pytest.raises(TypeError, match="integer"):
        dkd_loss(ls, lt, y.double())
    with pytest.raises(ValueError, match="alpha"):
        DKDLoss(alpha="1")
    assert "temperature=4.0" in repr(KDLoss())
    # int32 targets are accepted
    assert torch.equal(dkd_loss(ls, lt, y.int()), dkd_loss(ls, lt, y))
