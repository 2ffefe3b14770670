"""CRD: the contrastive criterion and the whole step pinned to RepDistiller, the negative sampler, the
heads' size, and the memory banks as state of the term.

How the pinned numbers were obtained: HobbitLong/RepDistiller at commit b84f547, ``crd/criterion.py``
(``CRDLoss``, ``ContrastLoss``, ``Embed``) and ``crd/memory.py`` (``ContrastMemory``), run in float64 on
the CPU (torch 2.13; ``AliasMethod.cuda`` replaced by a no-op, the alias sampler being unused when
``contrast_idx`` is given), with the outer weight 0.8 of its README applied. For the whole step, the
module was converted with ``.double()`` and its ``params`` buffer set to
``torch.tensor([K, 0.07, -1, -1, 0.5], dtype=torch.float64)`` (the official buffer is float32, which would
round T and the normalisation constants Z to float32), the heads' weights and the banks copied from the
tensors of ``_crd_state``, and ``contrast_idx = [index, negatives]`` passed for two successive steps.
Gradients are summarised by their L2 norm and their dot product with ``sin(0), sin(1), ...``
(``_summary``).
"""

import math

import pytest
import torch

from figkd.losses import CRD, BuildContext, build_objective, crd_loss, term_spec
from figkd.losses.crd import NegativeSampler
from figkd.losses.random import make_key
from figkd.models import build_model


def _close(value, expected):
    assert math.isclose(value, expected, rel_tol=1e-9), (value, expected)


def _summary(grad):
    g = grad.flatten()
    return g.norm().item(), (g * torch.sin(torch.arange(g.numel(), dtype=torch.float64))).sum().item()


def test_criterion_equals_repdistiller_contrast_loss_on_stated_scores():
    # 64 samples, K = 4096 negatives, N = 50000; scores uniform in [0, 2/N) (mean P_n = 1/N, as after the
    # normalisation by Z). RepDistiller: 0.8 * (ContrastLoss(50000)(xs) + ContrastLoss(50000)(xt)).
    torch.manual_seed(6)
    xs = (torch.rand(64, 4097, dtype=torch.float64) * (2 / 50000)).requires_grad_()
    xt = (torch.rand(64, 4097, dtype=torch.float64) * (2 / 50000)).requires_grad_()
    value = 0.8 * crd_loss(xs, xt, 50000)
    _close(value.item(), 15.463079144078604)
    value.backward()
    for got, want in zip(_summary(xs.grad) + _summary(xt.grad),
                         (195804.54643055412, 127376.72234015669, 120628.36241155566, 38624.92501447074), strict=True):
        _close(got, want)
    small = [(x[:3, :5].detach() * 25000 + 0.1).requires_grad_() for x in (xs, xt)]  # scores in [0.1, 0.6)
    torch.autograd.gradcheck(lambda a, b: crd_loss(a, b, 100), small)
    with pytest.raises(ValueError, match="two \\(B, 1 \\+ K\\) score matrices"):
        crd_loss(xs[:, :1], xt[:, :1], 50000)


def _crd_state():
    """Heads (16-d embeddings of 64-d student and 128-d teacher features), banks of 200 rows, two steps'
    negatives (50 per sample, drawn with replacement from all rows), the features and the rows."""
    torch.manual_seed(9)
    ws, bs = torch.randn(16, 64, dtype=torch.float64) * 0.1, torch.randn(16, dtype=torch.float64) * 0.1
    wt, bt = torch.randn(16, 128, dtype=torch.float64) * 0.1, torch.randn(16, dtype=torch.float64) * 0.1
    m1, m2 = torch.rand(200, 16, dtype=torch.float64) - 0.5, torch.rand(200, 16, dtype=torch.float64) - 0.5
    negatives = [torch.randint(0, 200, (64, 50)), torch.randint(0, 200, (64, 50))]
    torch.manual_seed(2)
    ps, pt = torch.randn(64, 64, dtype=torch.float64), torch.randn(64, 128, dtype=torch.float64)
    return (ws, bs, wt, bt, m1, m2), negatives, ps, pt, torch.arange(64) * 3


def test_whole_step_equals_repdistiller_crd_loss_over_two_steps():
    (ws, bs, wt, bt, m1, m2), negatives, ps, pt, index = _crd_state()
    crd = CRD(64, 128, torch.arange(200) % 10, feat_dim=16, num_negatives=50).double()
    with torch.no_grad():
        crd.embed_student.linear.weight.copy_(ws)
        crd.embed_student.linear.bias.copy_(bs)
        crd.embed_teacher.linear.weight.copy_(wt)
        crd.embed_teacher.linear.bias.copy_(bt)
        crd.memory_student.copy_(m1)  # the official memory_v1 (student embeddings)
        crd.memory_teacher.copy_(m2)  # memory_v2 (teacher embeddings)
    ps.requires_grad_()
    weights = torch.arange(1, 201, dtype=torch.float64)[:, None] * torch.arange(1, 17, dtype=torch.float64)[None, :]
    expected = [(17.39082581747909, 1723.2294985465765, -14731.862630908992),
                (16.668053710872723, 1388.8141125050515, -16536.929796652395)]
    for step, (neg, (loss_want, bank_s_want, bank_t_want)) in enumerate(zip(negatives, expected, strict=True)):
        loss = crd.contrast(ps, pt, index, neg)
        _close(0.8 * loss.item(), loss_want)
        # Z of the student and the teacher anchor, set at the first step and kept
        _close(crd.normalizers[0].item(), 136233.16119596618)
        _close(crd.normalizers[1].item(), 111899.47397086656)
        if step == 0:
            loss.backward()  # the gradient of the unweighted loss
            _close(ps.grad.sum().item(), 0.8211235407164852)
            _close(ps.grad.abs().sum().item(), 26.98545463538247)
            _close(crd.embed_student.linear.weight.grad.sum().item(), -3.2626089054848904)
        _close((crd.memory_student * weights).sum().item(), bank_s_want)  # the banks after the in-place update
        _close((crd.memory_teacher * weights).sum().item(), bank_t_want)


def test_heads_have_repdistillers_parameter_count_and_banks_are_state():
    # RepDistiller's CRDLoss for resnet32x4 -> resnet8x4 (s_dim = t_dim = 256, the width of feat[-1] of its
    # own models; feat_dim 128): embed_s + embed_t = 2 * (256 * 128 + 128) = 65,792 parameters, and the
    # buffers memory_v1, memory_v2 of (50000, 128) on CIFAR-100 (and its 5-entry params).
    with torch.device("meta"):
        t, s = build_model("resnet32x4", 100), build_model("resnet8x4", 100)
    targets = torch.arange(50000) % 100
    context = BuildContext.from_models(s, t, input_size=(32, 32), train_targets=targets)
    assert context.train_size == 50000
    objective = build_objective("crd", context=context)
    crd = objective.terms[1]
    assert isinstance(crd, CRD) and objective.weights == (1.0, 0.8)
    assert sum(p.numel() for p in objective.parameters()) == 65792
    state = crd.state_dict()
    assert {k: tuple(v.shape) for k, v in state.items() if "memory" in k or "normal" in k} == {
        "memory_student": (50000, 128), "memory_teacher": (50000, 128), "normalizers": (2,)}
    assert not any(k.startswith("sampler.") for k in state)  # derived from the labels: not saved
    assert term_spec("crd").batch_coupled and term_spec("crd").inputs[2:] == ("index", "epoch")
    with pytest.raises(ValueError, match="'crd' is built from the train_targets"):
        build_objective("crd", context=BuildContext.from_models(s, t, input_size=(32, 32), train_size=50000))


def test_memory_banks_start_as_repdistillers():
    # RepDistiller's ContrastMemory: torch.rand(N, D).mul_(2 stdv).add_(-stdv), stdv = 1 / sqrt(D / 3), the
    # student bank first; after the two heads (nn.Linear) in the same order of construction.
    targets = torch.arange(30) % 3
    torch.manual_seed(0)
    crd = CRD(8, 12, targets, feat_dim=6, num_negatives=4)
    torch.manual_seed(0)
    torch.nn.Linear(8, 6), torch.nn.Linear(12, 6)
    stdv = 1.0 / math.sqrt(6 / 3)
    assert torch.equal(crd.memory_student, torch.rand(30, 6).mul_(2 * stdv).add_(-stdv))
    assert torch.equal(crd.memory_teacher, torch.rand(30, 6).mul_(2 * stdv).add_(-stdv))
    assert torch.equal(crd.normalizers, torch.tensor([-1.0, -1.0]))


def _targets():
    # 3 classes of 20, 30 and 10 samples, interleaved: other-class pools of 40, 30 and 50 rows
    return torch.tensor([0] * 20 + [1] * 30 + [2] * 10)[torch.randperm(60, generator=torch.Generator().manual_seed(0))]


def test_negatives_come_from_other_classes_without_replacement():
    targets = _targets()
    sampler = NegativeSampler(targets, 25, make_key(0, "crd/negatives"))  # 25 <= 30: without replacement
    assert sampler.without_replacement and not sampler.with_replacement
    index = torch.arange(60)
    neg = sampler(index, torch.tensor(1.0))
    assert neg.shape == (60, 25) and neg.dtype == torch.int64
    assert not (targets[neg] == targets[index][:, None]).any()
    assert all(len(set(row.tolist())) == 25 for row in neg)


def test_negatives_with_replacement_where_a_class_has_too_few_others():
    targets = _targets()
    sampler = NegativeSampler(targets, 35, make_key(0, "crd/negatives"))  # class 1 has only 30 others
    assert sampler.with_replacement and sampler.without_replacement
    index = torch.arange(60)
    neg = sampler(index, torch.tensor(1.0))
    assert not (targets[neg] == targets[index][:, None]).any()
    rows_1 = neg[targets == 1]
    assert all(len(set(r.tolist())) < 35 for r in rows_1)  # 35 draws among 30 rows: repeats
    assert all(len(set(r.tolist())) == 35 for r in neg[targets != 1])
    only = NegativeSampler(targets, 100, make_key(0, "crd/negatives"))
    assert only.with_replacement and not only.without_replacement
    assert not (targets[only(index, torch.tensor(2.0))] == targets[:, None]).any()


def test_negatives_depend_only_on_seed_epoch_and_sample():
    targets = _targets()
    sampler = NegativeSampler(targets, 25, make_key(0, "crd/negatives"))
    epoch = torch.tensor(3.0)
    whole = sampler(torch.arange(60), epoch)
    # another batch composition (what another rank, another batch size or a resumed run sees)
    part = sampler(torch.tensor([41, 7, 13]), epoch)
    assert torch.equal(part.sort(1).values, whole[[41, 7, 13]].sort(1).values)
    assert not torch.equal(sampler(torch.arange(60), torch.tensor(4.0)).sort(1).values, whole.sort(1).values)
    other_seed = NegativeSampler(targets, 25, make_key(1, "crd/negatives"))
    assert not torch.equal(other_seed(torch.arange(60), epoch).sort(1).values, whole.sort(1).values)


def test_negatives_are_uniform_over_the_other_classes():
    targets = _targets()
    sampler = NegativeSampler(targets, 10, make_key(0, "crd/negatives"))
    index = torch.nonzero(targets == 0).flatten()[:1]  # one sample of class 0: 40 candidates
    hits = torch.zeros(60)
    for epoch in range(1, 801):
        hits += torch.bincount(sampler(index, torch.tensor(float(epoch)))[0], minlength=60)
    candidates = targets != 0
    assert hits[~candidates].sum() == 0
    expected = 800 * 10 / 40  # each of the 40 rows is chosen with probability 10/40 per draw
    assert (hits[candidates] - expected).abs().max() < 5 * math.sqrt(expected)  # binomial sd ~ 12


def test_step_runs_on_meta_tensors_on_both_sampling_paths():
    # The meta device has no data: any host read (.item(), a Python branch on a value) would raise.
    targets = _targets()
    for k in (25, 35):
        with torch.device("meta"):
            crd = CRD(8, 12, targets, feat_dim=6, num_negatives=k)
            f_s = torch.empty(5, 8, requires_grad=True)
            loss = crd(f_s, torch.empty(5, 12), torch.zeros(5, dtype=torch.int64), torch.ones(()))
            loss.backward()
        assert loss.shape == () and f_s.grad.shape == (5, 8)


def test_term_trains_its_heads_and_updates_the_banks_in_place():
    targets = _targets()
    torch.manual_seed(0)
    crd = CRD(8, 12, targets, feat_dim=6, num_negatives=25)
    bank = crd.memory_student
    address, before = bank.data_ptr(), bank.clone()
    index = torch.tensor([3, 17, 42])
    loss = crd(torch.randn(3, 8), torch.randn(3, 12), index, torch.tensor(1.0))
    loss.backward()
    assert crd.embed_student.linear.weight.grad.abs().sum() > 0 and crd.embed_teacher.linear.weight.grad.abs().sum() > 0
    assert crd.memory_student.data_ptr() == address  # in place: a captured step keeps its address
    changed = (crd.memory_student != before).any(1)
    assert changed.nonzero().flatten().tolist() == [3, 17, 42]
    torch.testing.assert_close(crd.memory_student[index].norm(dim=1), torch.ones(3))
    assert (crd.normalizers > 0).all()
    with pytest.raises(ValueError, match="one class"):
        CRD(8, 12, torch.zeros(10, dtype=torch.int64))
