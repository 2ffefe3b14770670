"""CAT-KD and DiffKD: pinned to their official code; what the engine feeds them; DiffKD's seeded draws.

How the pinned values were obtained: the official code was run here in float64, from the repositories
at the commits stated (never copied into figkd): GzyAftermath/CAT-KD 4467073
(``mdistiller/distillers/CAT_KD.py`` ``CAT_loss``) and hunto/image_classification_sota 6f7a70a
(``lib/models/losses/diffkd/diffkd.py`` ``DiffKD``, ``diffkd_modules.py``, ``scheduling_ddim.py``,
``lib/models/losses/kl_div.py`` ``KLDivergence``).
"""

import math

import pytest
import torch

from figkd.data.batch import Batch
from figkd.engine.learner import build_learner
from figkd.engine.teacher import TeacherForward
from figkd.losses import BuildContext, DiffKD, build_objective, cat_kd_loss, diffkd_loss
from figkd.losses.diffkd import DiffKDBranch, ddim_schedule
from figkd.models import build_model
from figkd.models.base import class_activation_maps


def _fs_ft():
    torch.manual_seed(1)
    fs = torch.randn(64, 64, 8, 8, dtype=torch.float64)
    ft = torch.randn(64, 64, 8, 8, dtype=torch.float64)
    return fs, ft


# -------------------------------------------------------------------------------------------- CAT-KD
@pytest.mark.parametrize("weight, pool_size, normalize, expected", [
    (15.0, 2, False, 1.8659870359763906),  # the number: res32x4_res8x4.yaml's setting
    (600.0, 4, True, 75.44353293964848),   # res32x4_shuv1.yaml / res32x4_shuv2.yaml's setting
])
def test_cat_kd_loss_equals_the_official_cat_loss(weight, pool_size, normalize, expected):
    # CAT_loss(fs, ft, CAM_RESOLUTION, IF_NORMALIZE) * CAT_loss_weight, with (fs, ft) taken as the CAMs of
    # 64 classes, run here.
    fs, ft = _fs_ft()
    fs.requires_grad_()
    value = weight * cat_kd_loss(fs, ft, pool_size=pool_size, normalize=normalize)
    assert math.isclose(value.item(), expected, rel_tol=1e-9)
    value.backward()
    if not normalize:  # d/ds mean((P s - P t)^2) = P^T 2 (P s - P t) / n, P the 4x4-block average
        pooled = torch.nn.functional.adaptive_avg_pool2d
        diff = pooled(fs.detach(), 2) - pooled(ft, 2)
        grad = (2 * diff / diff.numel()).repeat_interleave(4, 2).repeat_interleave(4, 3) / 16
        torch.testing.assert_close(fs.grad, weight * grad)
    small = fs[:2, :3, :4, :4].detach().clone().requires_grad_()
    torch.autograd.gradcheck(lambda a: cat_kd_loss(a, ft[:2, :3, :4, :4], pool_size, normalize), (small,))


def test_cat_kd_pools_maps_of_different_sizes_and_checks_classes():
    s, t = torch.randn(2, 10, 4, 4), torch.randn(2, 10, 8, 8)
    torch.testing.assert_close(cat_kd_loss(s, t), cat_kd_loss(s, torch.nn.functional.avg_pool2d(t, 2)))
    with pytest.raises(ValueError, match="same B and C"):
        cat_kd_loss(s, t[:, :5])
    with pytest.raises(ValueError, match="pool_size must be a positive integer"):
        build_objective([{"term": "cat_kd", "pool_size": 0}])


def test_engine_feeds_cat_kd_the_cams_of_both_classifiers():
    # CAT-KD's converted models (``*_test``) put the classifier's weights in a bias-free 1x1 conv_test before
    # the pooling; class_activation_maps is that conv on prepool_feat. The student's CAMs carry gradients to
    # its classifier's weights (not its bias); the teacher's are computed under no_grad.
    torch.manual_seed(0)
    teacher, student = build_model("resnet20", 10).eval(), build_model("resnet8", 10)
    learner = build_learner(student, "cat_kd", teacher=teacher, num_classes=10, input_size=(32, 32))
    assert learner.needs.cams("student") and learner.needs.cams("teacher") and learner.needs.features("teacher")
    batch = Batch(torch.randn(4, 3, 32, 32), torch.randint(0, 10, (4,)))
    outputs = TeacherForward(teacher, learner.needs)(batch, torch.autocast("cpu", enabled=False))
    with torch.no_grad():
        _, ft = teacher(batch.images, return_features=True)
        conv_test = teacher.get_classifier().weight[:, :, None, None]
    torch.testing.assert_close(outputs["teacher_cams"], torch.nn.functional.conv2d(ft["prepool_feat"], conv_test))
    assert not outputs["teacher_cams"].requires_grad
    terms, _ = learner(batch, outputs, torch.tensor(1.0))
    terms["cat_kd"].backward()  # CAT-KD alone (not CE)
    classifier = student.get_classifier()
    assert classifier.weight.grad.abs().sum() > 0 and classifier.bias.grad is None
    _, fs = student(batch.images, return_features=True)
    torch.testing.assert_close(terms["cat_kd"], 15.0 * cat_kd_loss(class_activation_maps(student, fs["prepool_feat"]),
                                                                   outputs["teacher_cams"]))


# -------------------------------------------------------------------------------------------- DiffKD
def _official_params(module):
    g = torch.Generator().manual_seed(11)
    for _, p in sorted(module.named_parameters()):
        p.data = torch.randn(p.shape, generator=g, dtype=torch.float64) * 0.2


def _branch_inputs(student_channels, teacher_channels, size, width):
    torch.manual_seed(12)
    s = torch.randn(4, student_channels, size, size, dtype=torch.float64)
    t = torch.randn(4, teacher_channels, size, size, dtype=torch.float64)
    adapter_noise = torch.randn(4, width, size, size, dtype=torch.float64)
    train_noise = torch.randn(4, width, size, size).double()  # float32 values, as the official code draws them
    return s, t, adapter_noise, train_noise, torch.tensor([999, 0, 437, 120])


@pytest.mark.parametrize("channels, size, kernel, latent, criterion, expected", [
    # DiffKD(16, 32, kernel_size=3, use_ae=True, ae_channels=16) then nn.MSELoss (the feature branch)
    ((16, 32), 4, 3, 16, "mse", {"distill": 0.2269718006363584, "ddim": 1.0245282303010783,
                                 "ae": 1.0922148770936657}),
    # DiffKD(10, 10, kernel_size=1) then KLDivergence(tau=1) (the logits branch, logits as 1x1 maps)
    ((10, 10), 1, 1, None, "kl", {"distill": 0.5438906733967864, "ddim": 1.0127539162352064}),
])
def test_diffkd_branch_equals_the_official_module(channels, size, kernel, latent, criterion, expected):
    # The official DiffKD module in float64, training mode, every parameter drawn as _official_params does
    # (sorted names: figkd keeps the official ones), its torch.randn calls answered with the adapter noise and
    # then the training noise of _branch_inputs and torch.randint with its timesteps; forward returned
    # (refined, teacher, ddim_loss, rec_loss), the distance taken as kd_loss.py does. Values run here.
    branch = DiffKDBranch(*channels, kernel, 5, 1000, latent).double()
    _official_params(branch)
    s, t, adapter, train, steps = _branch_inputs(*channels, size, latent or channels[1])
    s.requires_grad_()
    parts = branch(s, t, adapter, train, steps, criterion, 1.0)
    assert set(parts) == set(expected)
    for key, value in expected.items():
        assert math.isclose(parts[key].item(), value, rel_tol=1e-9), key
    sum(parts.values()).backward()
    assert torch.isfinite(s.grad).all() and s.grad.abs().sum() > 0
    assert all(p.grad is not None for n, p in branch.named_parameters() if "time_embedding" not in n)


def test_ddim_schedule_is_the_second_half_of_a_ten_step_schedule():
    steps = ddim_schedule(1000, 5)
    assert [s[0] for s in steps] == [400, 300, 200, 100, 0]
    betas = torch.linspace(1e-4, 0.02, 1000, dtype=torch.float32)
    alphas = torch.cumprod(1 - betas, 0)
    t, sqrt_a, sqrt_b, sqrt_a_prev, sqrt_b_prev = steps[0]
    assert (sqrt_a, sqrt_b) == (float(alphas[400] ** 0.5), float((1 - alphas[400]) ** 0.5))
    assert sqrt_a_prev == float(alphas[300] ** 0.5) and steps[-1][3:] == (1.0, 0.0)  # a_prev = 1 below step 0


def test_diffkd_loss_is_distance_plus_denoising():
    torch.manual_seed(0)
    s, t, p, n = (torch.randn(3, 4, 2, 2) for _ in range(4))
    torch.testing.assert_close(diffkd_loss(s, t, p, n), torch.nn.functional.mse_loss(s, t)
                               + torch.nn.functional.mse_loss(p, n))
    kl = torch.nn.functional.kl_div(torch.log_softmax(s / 2, 1), torch.softmax(t / 2, 1), reduction="batchmean")
    torch.testing.assert_close(diffkd_loss(s, t, p, n, criterion="kl", temperature=2.0),
                               4 * kl + torch.nn.functional.mse_loss(p, n))


def _context(teacher, student):
    with torch.device("meta"):
        t, s = build_model(teacher, 100), build_model(student, 100)
    return BuildContext.from_models(s, t, input_size=(32, 32), seed=3)


def test_diffkd_has_the_official_parameter_count():
    # resnet32x4 -> resnet8x4 with the official defaults (docs/method.md): what the official wrapper builds,
    # DiffKD(256, 256, kernel_size=3, use_ae=True, ae_channels=1024) (kd_loss.py:77-90, commit 6cb1441) on the
    # maps before the pooling, has 6,857,730 parameters and DiffKD(100, 100, kernel_size=1) on the logits
    # 352,302; with ae_channels=None, the DiffKD class's own default (half the teacher's width), 339,554 (each
    # count printed by the official classes, built from a scratch copy).
    term = build_objective("diffkd", context=_context("resnet32x4", "resnet8x4")).terms[1]
    assert isinstance(term, DiffKD)
    assert sum(p.numel() for p in term.feature.parameters()) == 6_857_730
    assert sum(p.numel() for p in term.logits.parameters()) == 352_302
    assert term.feature.width == 1024  # ae_channels: the wrapper's default, whatever the teacher's width
    half = build_objective([{"term": "diffkd", "ae_channels": None}],
                           context=_context("resnet32x4", "resnet8x4")).terms[0]
    assert sum(p.numel() for p in half.feature.parameters()) == 339_554 and half.feature.width == 128


def test_diffkd_draws_are_keyed_by_seed_epoch_and_sample():
    term = build_objective("diffkd", context=_context("resnet8", "resnet8")).terms[1]
    index, epoch = torch.tensor([5, 9, 2, 7]), torch.tensor(3.0)
    whole = term.draws("feature", index, epoch, (32, 8, 8), (32, 8, 8))
    half = term.draws("feature", index[2:], epoch, (32, 8, 8), (32, 8, 8))
    assert all(torch.equal(a[2:], b) for a, b in zip(whole, half, strict=True))  # any batch split, any rank
    later = term.draws("feature", index, torch.tensor(4.0), (32, 8, 8), (32, 8, 8))
    assert not torch.equal(whole[0], later[0]) and not torch.equal(whole[2], later[2])
    logits = term.draws("logits", index, epoch, (32, 8, 8), (32, 8, 8))
    assert not torch.equal(whole[0], logits[0])  # each branch and draw has its own stream
    assert whole[2].dtype == torch.int64 and 0 <= int(whole[2].min()) and int(whole[2].max()) < 1000


def test_diffkd_term_reports_its_parts_and_repeats_itself():
    torch.manual_seed(0)
    teacher = build_model("resnet8", 10).eval()
    learner = build_learner(build_model("resnet8", 10), "diffkd", teacher=teacher, num_classes=10,
                            input_size=(32, 32), seed=1)
    batch = Batch(torch.randn(4, 3, 32, 32), torch.randint(0, 10, (4,)), index=torch.tensor([0, 1, 2, 3]))
    outputs = TeacherForward(teacher, learner.needs)(batch, torch.autocast("cpu", enabled=False))
    learner.eval()
    first, _ = learner(batch, outputs, torch.tensor(2.0))
    again, _ = learner(batch, outputs, torch.tensor(2.0))
    parts = ("feat", "feat_ddim", "feat_ae", "logits", "logits_ddim")
    assert {f"diffkd/{p}" for p in parts} <= set(first)
    torch.testing.assert_close(first["diffkd"], sum(first[f"diffkd/{p}"] for p in parts))
    assert torch.equal(first["diffkd"], again["diffkd"])  # a function of (seed, epoch, index), not of a generator
    other, _ = learner(batch, outputs, torch.tensor(3.0))
    assert not torch.equal(first["diffkd"], other["diffkd"])
