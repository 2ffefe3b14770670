"""RLD, TeKAP, LDRLD, EKD, DML and logit standardization: the official code's values and gradients.

How the pinned values were obtained: each official function was run, unmodified, in float64 on the
inputs of `_inputs()` (the issue's: ``torch.manual_seed(0); ls = randn(64, 100) * 2; lt = randn(64, 100)
* 4; y = randint(0, 100, (64,))``), from a scratch copy outside this repository (their code is not
committed), with ``.cuda()`` calls removed and the ``Distiller`` base class stubbed:

- RLD: zju-SWJ/RLD (commit d54578f) ``mdistiller/distillers/RLD.py`` ``rld_loss(ls, lt, y, alpha, beta, T,
  logit_stand, alpha_temperature)``;
- LDRLD: yema-web/LDRLD (b4dcfc9) ``distiller_zoo/LDRLD.py``: ``10.5 * a + 7 * b`` of
  ``selective_softmax_loss(ls, lt, 4, 7)`` (no CE);
- KD+LS, DKD+LS, DML: sunshangquan/logit-standardization-KD (f6e5aa5) ``mdistiller/distillers/KD.py``
  ``9 * kd_loss(ls, lt, 2, True)``, ``DKD.py`` ``dkd_loss(ls, lt, y, 9, 72, 2, True)`` (alpha, beta x9 as its
  ``tools/train.py`` does) and ``kd_loss(ls, lt, 1, False)`` (DML's KL to a peer ``lt`` at T = 1);
- MLKD+LS: the same repository's ``MLKD.py`` ``MLKD.forward_train`` (T 2, KD weight 9, CE weight 0.1, logit
  standardization) with student/teacher stubs returning ``(ls, lt)`` for the weak view and ``(ls2, lt2)``
  (`_inputs`) for the strong view, summed as its trainer does (``sum(l.mean() for l in losses_dict.values())``);
- TeKAP: mdimtiazh/TeKAP (279d380) ``distiller_zoo/Ours_TeKAP_L.py`` ``0.9 * DistillKL(4)(ls, lt, y)`` with
  ``torch.randn`` replaced by zeros (zero noise);
- EKD: lyxiang-casia/EKD (fb65a7e) ``mdistiller/distillers/KD4eModel.py`` ``KD4eModel.forward_train`` with the
  config of ``configs/cifar100/ekd/model/resnet32x4_resnet8x4.yaml`` (LAMB -1.22, T 1, KD and EKD weights 4.5,
  WARMUP 30), ``lamb`` as a float64 tensor (the code makes a float32 one), summed as its trainer does: as
  released ("code") and with its two overwriting assignments (``loss_kd = ... kd_loss(...)`` and
  ``loss_ekd = ... (logits_student - logits_teacher) ** 2``) deleted ("paper": the evidential terms).

Each pin is ``(value, <dL/ds, D>)``: the loss and the directional derivative of its gradient with respect to
the student logits along ``D = randn(64, 100)`` drawn from ``torch.Generator().manual_seed(1)``, both
from autograd through the official function. They must match to 1e-9 relative.
"""

import math

import pytest
import torch
import torch.nn.functional as F

from figkd.losses import (
    DMLLoss,
    EKDLoss,
    LDRLDLoss,
    RLDLoss,
    TeKAPLoss,
    build_objective,
    dkd_loss,
    dml_loss,
    ekd_loss,
    figkd_loss,
    kd_loss,
    ldrld_loss,
    mlkd_loss,
    rld_loss,
    standardize_logits,
    tekap_loss,
)
from figkd.losses.ldrld import pair_weights
from fixtures_losses import logit_inputs

PINNED = {
    "rld": (34.59086109475382, -0.290572667559902),
    "rld_cfg_alpha_t1": (35.73287988445358, -0.2977310363699106),
    "rld_ls_T2_x9": (45.624671022561934, -0.24958620512664556),
    "ldrld": (76.3308047645907, 0.26655551216100154),
    "kd_ls_T2_w9": (8.690060925805764, 0.05186162363358442),
    "dml_T1": (4.971978097660077, -0.054209149755730206),
    "dkd_ls_a9_b72_T2": (69.72276961408524, 0.47104879446763137),
    "tekap_zero_noise_x0.9": (26.570199988630392, 0.06318248707431544),
    "mlkd_ls_T2_w9": (67.18361436085794, 0.14904841081507444),
    "ekd_code": (120.72105729321225, -0.4069109240194638),
    "ekd_paper_epoch240": (333.98776248889976, 0.355721969457102),
    "ekd_paper_epoch15": (180.10264004872408, 0.15309080669343975),
    "ekd_code_T2_lamb-0.86_w2.5": (77.93793855206275, -0.05537686993619423),
    "ekd_paper_T2_lamb-0.86_w2.5_epoch10": (100.90307300407679, 0.049908413022279385),
}

#: The issue's numbers (issue 12, "Pinned numbers"), printed there to 16 significant digits.
ISSUE = {"rld": 34.59086109475382, "ldrld": 76.3308047645907, "kd_ls_T2_w9": 8.690060925805764,
         "dml_T1": 4.971978097660078, "tekap_zero_noise_x0.9": 26.570199988630396}


_inputs = logit_inputs  # the inputs the pinned values were computed on


def _strong(ls, lt):
    ls2 = ls + torch.randn(64, 100, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    lt2 = lt + 2 * torch.randn(64, 100, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    return ls2, lt2


DIRECTION = torch.randn(64, 100, dtype=torch.float64, generator=torch.Generator().manual_seed(1))


def _value_and_slope(fn):
    ls, lt, y = _inputs()
    s = ls.clone().requires_grad_()
    t = lt.clone().requires_grad_()
    value = fn(s, t, y)
    if isinstance(value, dict):
        value = sum(value.values())
    value.backward()
    assert t.grad is None or not t.grad.any(), "the teacher (or peer) received a gradient"
    return float(value.detach()), float((s.grad * DIRECTION).sum())


def _zero_noise(k=3):
    return torch.zeros(k, 64, 100, dtype=torch.float64)


CASES = {
    "rld": lambda s, t, y: rld_loss(s, t, y),
    "rld_cfg_alpha_t1": lambda s, t, y: rld_loss(s, t, y, alpha_temperature=1.0),
    "rld_ls_T2_x9": lambda s, t, y: rld_loss(s, t, y, 9.0, 72.0, 2.0, 2.0, standardize=True),
    "ldrld": lambda s, t, y: ldrld_loss(s, t),
    "kd_ls_T2_w9": lambda s, t, y: 9.0 * kd_loss(s, t, 2.0, standardize=True),
    "dml_T1": lambda s, t, y: dml_loss(s, [t]),
    "dkd_ls_a9_b72_T2": lambda s, t, y: dkd_loss(s, t, y, 9.0, 72.0, 2.0, standardize=True),
    "tekap_zero_noise_x0.9": lambda s, t, y: 0.9 * tekap_loss(s, t, _zero_noise()),
    "mlkd_ls_T2_w9": lambda s, t, y: mlkd_loss(s, t, *_strong(*_inputs()[:2]), y, 2.0, 0.1, 9.0, standardize=True),
    "ekd_code": lambda s, t, y: ekd_loss(s, t, y, 240, variant="code"),
    "ekd_paper_epoch240": lambda s, t, y: ekd_loss(s, t, y, 240),
    "ekd_paper_epoch15": lambda s, t, y: ekd_loss(s, t, y, torch.tensor(15.0)),
    "ekd_code_T2_lamb-0.86_w2.5": lambda s, t, y: ekd_loss(s, t, y, 240, "code", -0.86, 2.0, 1.0, 2.5, 2.5),
    "ekd_paper_T2_lamb-0.86_w2.5_epoch10": lambda s, t, y: ekd_loss(s, t, y, 10, "paper", -0.86, 2.0, 1.0, 2.5, 2.5),
}


@pytest.mark.parametrize("name", PINNED)
def test_value_and_gradient_equal_the_official_code(name):
    value, slope = _value_and_slope(CASES[name])
    want_value, want_slope = PINNED[name]
    assert math.isclose(value, want_value, rel_tol=1e-9), (value, want_value)
    assert math.isclose(slope, want_slope, rel_tol=1e-9), (slope, want_slope)
    if name in ISSUE:
        assert math.isclose(value, ISSUE[name], rel_tol=1e-9)


def test_modules_and_presets_give_the_functions_values():
    ls, lt, y = _inputs()
    epoch = torch.tensor(240.0)
    assert math.isclose(RLDLoss()(ls, lt, y), PINNED["rld"][0], rel_tol=1e-12)
    assert math.isclose(LDRLDLoss()(ls, lt), PINNED["ldrld"][0], rel_tol=1e-12)
    assert math.isclose(DMLLoss()(ls, [lt]), PINNED["dml_T1"][0], rel_tol=1e-12)
    parts = EKDLoss(variant="code")(ls, lt, y, epoch)
    assert set(parts) == {"ce", "kd", "mse"} and math.isclose(sum(parts.values()), PINNED["ekd_code"][0], rel_tol=1e-12)
    assert set(EKDLoss()(ls, lt, y, epoch)) == {"ce", "kd", "dirichlet"}
    inputs = dict(student_logits=ls, teacher_logits=lt, target=y, epoch=epoch)
    ce = F.cross_entropy(ls, y)
    expected = {
        "rld": ce + PINNED["rld"][0],  # the warm-up (20 epochs) is over at epoch 240
        "ldrld": ce + PINNED["ldrld"][0],
        "kd+ls": 0.1 * ce + PINNED["kd_ls_T2_w9"][0],
        "dkd+ls": ce + PINNED["dkd_ls_a9_b72_T2"][0],
        "ekd-code": PINNED["ekd_code"][0],
        "ekd": PINNED["ekd_paper_epoch240"][0],
        "figkd+ls": ce + 2.0 * figkd_loss(standardize_logits(ls), standardize_logits(lt)),
    }
    for preset, want in expected.items():
        out = build_objective(preset)(**inputs)
        assert math.isclose(out["total"], want, rel_tol=1e-12), preset
    # RLD's warm-up multiplies the RLD term only (RLD.forward_train): epoch 5 of 20
    out = build_objective("rld")(**{**inputs, "epoch": torch.tensor(5.0)})
    assert math.isclose(out["rld"], PINNED["rld"][0] * 5 / 20, rel_tol=1e-12)
    assert math.isclose(out["ce"], ce, rel_tol=1e-12)
    # EKD's warm-up ramps the Dirichlet term only (KD4eModel.forward_train): epoch 15 of 30, the official value
    out = build_objective("ekd")(**{**inputs, "epoch": torch.tensor(15.0)})
    assert math.isclose(out["total"], PINNED["ekd_paper_epoch15"][0], rel_tol=1e-12)
    # MLKD+LS: the official value above
    ls2, lt2 = _strong(ls, lt)
    out = build_objective("mlkd+ls")(**inputs, student_logits_strong=ls2, teacher_logits_strong=lt2)
    assert math.isclose(out["total"], PINNED["mlkd_ls_T2_w9"][0], rel_tol=1e-12)


def test_logit_standardization_is_a_z_score_with_the_official_epsilon():
    ls, lt, _ = _inputs()
    z = standardize_logits(ls)
    ref = (ls - ls.mean(1, keepdim=True)) / (1e-7 + ls.std(1, keepdim=True))  # unbiased std, eps on the std
    assert torch.equal(z, ref)
    assert torch.allclose(z.mean(1), torch.zeros(64, dtype=torch.float64), atol=1e-12)
    assert torch.allclose(z.std(1), torch.ones(64, dtype=torch.float64), atol=1e-6)
    # invariant to each sample's shift and scale: the point of LS
    shifted = ls * torch.rand(64, 1, dtype=torch.float64).add(0.5) + torch.randn(64, 1, dtype=torch.float64)
    assert torch.allclose(kd_loss(shifted, lt, 2.0, standardize=True), kd_loss(ls, lt, 2.0, standardize=True),
                          rtol=1e-6)
    with pytest.raises(ValueError, match="num_classes >= 2"):
        standardize_logits(ls[:, :1])


@pytest.mark.parametrize("name,call", [
    ("kd", lambda s, t, y, z: kd_loss(s, t, standardize=z)),
    ("dkd", lambda s, t, y, z: dkd_loss(s, t, y, standardize=z)),
    ("rld", lambda s, t, y, z: rld_loss(s, t, y, standardize=z)),
    ("ldrld", lambda s, t, y, z: ldrld_loss(s, t, standardize=z)),
    ("tekap", lambda s, t, y, z: tekap_loss(s, t, torch.randn(3, 64, 100, dtype=torch.float64,
                                                                generator=torch.Generator().manual_seed(4)),
                                            standardize=z)),
    ("figkd", lambda s, t, y, z: figkd_loss(s, t, standardize=z)),
])
def test_standardize_equals_the_term_on_standardized_logits(name, call):
    """Every logit term's ``standardize`` is the term applied to z-scored student and teacher logits."""
    ls, lt, y = _inputs()
    got = call(ls, lt, y, True)
    want = call(standardize_logits(ls), standardize_logits(lt), y, False)
    assert math.isclose(got, want, rel_tol=1e-12), name
    with pytest.raises(ValueError, match="standardize must be true or false"):
        call(ls, lt, y, "yes")


def test_mlkd_standardizes_its_kd_sums_only():
    """As the LS repository's MLKD.py: the KD sums on z-scored logits, CE, cc and bc on the raw ones."""
    ls, lt, y = _inputs()
    ls2, lt2 = _strong(ls, lt)
    plain = mlkd_loss(ls, lt, ls2, lt2, y, 2.0, 0.1, 9.0)
    stand = mlkd_loss(ls, lt, ls2, lt2, y, 2.0, 0.1, 9.0, standardize=True)
    for part in ("ce", "cc", "bc"):
        assert torch.equal(plain[part], stand[part]), part
    assert not torch.isclose(plain["kd"], stand["kd"])  # its value is pinned above (mlkd_ls_T2_w9)


def test_rld_masks_every_class_the_teacher_ranks_at_or_above_the_truth():
    s = torch.tensor([[0.0, 1.0, 2.0, 3.0]], dtype=torch.float64)
    t = torch.tensor([[4.0, 3.0, 2.0, 1.0]], dtype=torch.float64)
    y = torch.tensor([1])
    # teacher: class 0 (4.0) above the truth (3.0): classes 0 and 1 dropped, MCD over classes 2 and 3
    mcd = rld_loss(s, t, y, alpha=0.0, beta=1.0, temperature=1.0)
    p_t, log_p_s = F.softmax(t[:, 2:], 1), F.log_softmax(s[:, 2:], 1)
    assert math.isclose(mcd, (p_t * (p_t.log() - log_p_s)).sum(), rel_tol=1e-12)
    # SCD: the student's [p(y), rest] against the teacher's [p(top class), rest]
    scd = rld_loss(s, t, y, alpha=1.0, beta=0.0, alpha_temperature=1.0)
    ps, pt = F.softmax(s, 1)[0], F.softmax(t, 1)[0]
    bs, bt = torch.stack([ps[1], 1 - ps[1]]), torch.stack([pt[0], 1 - pt[0]])
    assert math.isclose(scd, (bt * (bt.log() - bs.log())).sum(), rel_tol=1e-12)
    # the truth ranked last by the teacher: nothing kept, MCD 0 with a finite (zero) gradient
    s = s.clone().requires_grad_()
    last = rld_loss(s, t, torch.tensor([3]), alpha=0.0, beta=1.0)
    last.backward()
    assert last == 0 and torch.equal(s.grad, torch.zeros_like(s))


def test_ldrld_pair_weights_and_gamma_quirk():
    # ADW(i, j) = 2 / (1.5 + |i - j|) * exp(-0.05 (i + j)) on 1-based ranks; 21 pairs for k = 7
    weights = pair_weights(7)
    assert len(weights) == 21 and weights[0][:2] == (0, 1)
    assert math.isclose(weights[0][2], 2 / 2.5 * math.exp(-0.05 * 3), rel_tol=1e-15)
    assert math.isclose(weights[-1][2], 2 / 2.5 * math.exp(-0.05 * 13), rel_tol=1e-15)
    # the preset weighs CE once (the code: gamma^2 with gamma = 1, the same)
    ls, lt, y = _inputs()
    out = build_objective("ldrld")(student_logits=ls, teacher_logits=lt, target=y)
    assert math.isclose(out["ce"], F.cross_entropy(ls, y), rel_tol=1e-12)
    with pytest.raises(ValueError, match="k = 7 needs more than 7 classes"):  # the function, at the call
        ldrld_loss(ls[:, :7], lt[:, :7])


def test_tekap_noise_is_a_pure_function_of_seed_epoch_and_sample():
    ls, lt, _ = _inputs()
    term = TeKAPLoss(seed=3)
    index = torch.arange(64) * 7
    epoch = torch.tensor(2.0)
    a = term(ls, lt, index, epoch)
    assert torch.equal(a, TeKAPLoss(seed=3)(ls, lt, index, epoch))  # same seed, epoch, samples
    assert not torch.equal(a, term(ls, lt, index, torch.tensor(3.0)))  # fresh each epoch
    assert not torch.equal(a, TeKAPLoss(seed=4)(ls, lt, index, epoch))
    # each sample's noise depends on the sample, not on the batch it is in (DDP shards, resume)
    noise = term.noise(index, epoch, 100)
    assert noise.shape == (3, 64, 100)
    assert torch.equal(term.noise(index[10:20], epoch, 100), noise[:, 10:20])
    assert abs(float(noise.mean())) < 0.02 and abs(float(noise.std()) - 1) < 0.02
    # with that noise the loss is the function's
    assert torch.equal(a, tekap_loss(ls, lt, noise.double()))
    # the preset: CE 0.1 + 0.9 x TeKAP, noise from the run's seed
    assert math.isclose(0.9 * tekap_loss(ls, lt, _zero_noise()), PINNED["tekap_zero_noise_x0.9"][0], rel_tol=1e-12)
    no_noise = TeKAPLoss(noise_weight=0.0)(ls, lt, index, epoch)
    assert math.isclose(no_noise, tekap_loss(ls, lt, _zero_noise()), rel_tol=1e-12)


def test_ekd_variants_and_warmup():
    ls, lt, y = _inputs()
    code = ekd_loss(ls, lt, y, variant="code")
    assert math.isclose(code["mse"], 4.5 * ((ls - lt) ** 2).mean(), rel_tol=1e-12)
    assert math.isclose(code["kd"], 4.5 * kd_loss(ls, lt, 1.0), rel_tol=1e-12)
    paper = {e: ekd_loss(ls, lt, y, torch.tensor(float(e))) for e in (3, 30, 60)}
    assert math.isclose(paper[3]["dirichlet"] * 10, paper[30]["dirichlet"], rel_tol=1e-12)
    assert torch.equal(paper[30]["dirichlet"], paper[60]["dirichlet"])
    assert torch.equal(paper[3]["kd"], paper[60]["kd"]) and torch.equal(paper[3]["ce"], code["ce"])
    with pytest.raises(ValueError, match="variant must be one of paper, code"):
        ekd_loss(ls, lt, y, variant="released")


def test_dml_needs_a_peer_and_averages_over_peers():
    ls, lt, _ = _inputs()
    two = dml_loss(ls, [lt, 2 * lt])
    assert math.isclose(two, (dml_loss(ls, [lt]) + dml_loss(ls, [2 * lt])) / 2, rel_tol=1e-12)
    with pytest.raises(ValueError, match="at least one other peer"):
        dml_loss(ls, [])
    with torch.autocast("cpu", dtype=torch.bfloat16):
        low = dml_loss(ls.float(), [lt.bfloat16()])
    assert low.dtype == torch.float32


@pytest.mark.parametrize("name", ["rld", "ldrld", "tekap", "ekd", "ekd-code", "dml", "kd+ls", "dkd+ls", "figkd+ls"])
def test_gradcheck(name):
    torch.manual_seed(1)
    s = (torch.randn(6, 10, dtype=torch.float64) * 2).requires_grad_()
    t = torch.randn(6, 10, dtype=torch.float64) * 3
    y = torch.randint(0, 10, (6,))
    obj = build_objective(name, num_classes=10)
    if name == "ldrld":
        obj = build_objective([{"term": "ldrld", "k": 4}], num_classes=10)

    def total(x):
        return obj(student_logits=x, teacher_logits=t, target=y, epoch=torch.tensor(7.0), index=torch.arange(6),
                   peer_logits=[t])["total"]

    assert torch.autograd.gradcheck(total, (s,))
