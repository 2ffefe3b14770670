"""Paper cells run as the baselines' authors ran them (issue 22): each generated config of ``configs/paper``
is built as the engine builds it and compared with what the official code does for that cell.

How the official numbers were obtained (the official code run unmodified, in float64, from a scratch copy
outside this repository, never committed):

- EKD, vgg13 -> vgg8: lyxiang-casia/EKD (commit fb65a7e) ``mdistiller/distillers/CAT_KD.py``
  ``CAT_KD.forward_train`` (the distiller ``configs/cifar100/ekd/model/vgg13_vgg8.yaml`` selects), with that
  file's settings (CAT_loss_weight 4.5, CAM_RESOLUTION 2, IF_NORMALIZE False, LAMB -0.60, KD and EKD weights
  4.5, TEMPERATURE 1, WARMUP 30; the other keys of ``mdistiller/engine/cfg.py``), student and teacher stubs
  returning the logits of `fixtures_losses.logit_inputs` and ``{"feats": [f]}`` with the maps of
  `_ekd_feats`, ``ce_lamb_S``/``ce_lamb_T`` replaced by float64 tensors (the code makes float32 ones), at
  ``epoch`` 15 and 240, summed as its trainer does (``sum(l.mean() for l in losses_dict.values())``); the
  slopes are autograd's gradients of that total along fixed directions (`_slopes`).
- LDRLD's learning rate: yema-web/LDRLD (commit b4dcfc9) ``helper/util.py`` ``adjust_learning_rate_wram_up``,
  called before each epoch 1..240 as its ``train_student.py`` does (``--wram_up 20`` > 1; ``opt.learning_rate``
  0.05, or 0.01 for MobileNetV2/ShuffleV1/V2 students; decay epochs 150, 180, 210; rate 0.1) on a
  ``torch.optim.SGD`` built with that learning rate, reading ``param_groups[0]["lr"]`` after each call.
"""

from __future__ import annotations

import csv
import io
import math
import re

import pytest
import torch
import yaml

from figkd.experiments.paper_configs import generate
from figkd.losses import BuildContext, build_objective
from figkd.models import build_model
from fixtures_losses import logit_inputs

#: epoch -> (total, slope along D for the student logits, slope along DF for the student's last stage).
EKD_VGG_OFFICIAL = {
    15: (121.87092062729866, 0.18554508015825597, -0.011893409530445192),
    240: (216.1302345142997, 0.4058861282925852, -0.011893409530445192),
}


@pytest.fixture(scope="module")
def generated() -> dict[str, str]:
    """Every generated config's text."""
    return generate()


@pytest.fixture(scope="module")
def configs(generated) -> dict[str, dict]:
    """Every generated config, parsed."""
    return {rel: yaml.safe_load(text) for rel, text in generated.items()}


def _context(teacher: str, student: str, classes: int = 100, size: int = 32) -> BuildContext:
    with torch.device("meta"):
        t, s = build_model(teacher, classes), build_model(student, classes)
    return BuildContext.from_models(s, t, input_size=(size, size))


def _ekd_feats():
    """The last-stage maps of vgg8 and vgg13 at 32x32 (512 x 4 x 4), post-ReLU like theirs."""
    fs = torch.relu(torch.randn(64, 512, 4, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(4)))
    ft = torch.relu(2 * torch.randn(64, 512, 4, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(5)))
    return fs, ft


def _slopes():
    d = torch.randn(64, 100, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    df = torch.randn(64, 512, 4, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(6))
    return d, df


@pytest.mark.parametrize("epoch", sorted(EKD_VGG_OFFICIAL))
def test_ekd_vgg13_vgg8_cell_equals_the_official_cat_kd_distiller(configs, epoch):
    cfg = configs["table1/vgg13-vgg8/ekd-code.yaml"]
    objective = build_objective(cfg["objective"], context=_context("vgg13", "vgg8"))
    ls, lt, y = logit_inputs()
    fs, ft = _ekd_feats()
    s, f = ls.clone().requires_grad_(), fs.clone().requires_grad_()
    out = objective(student_logits=s, teacher_logits=lt, target=y, epoch=torch.tensor(float(epoch)),
                    student_feats=[f], teacher_feats=[ft])
    out["total"].backward()
    d, df = _slopes()
    total, slope_s, slope_f = EKD_VGG_OFFICIAL[epoch]
    assert math.isclose(out["total"].item(), total, rel_tol=1e-12)
    assert math.isclose((s.grad * d).sum(), slope_s, rel_tol=1e-9)
    assert math.isclose((f.grad * df).sum(), slope_f, rel_tol=1e-9)


@pytest.fixture(scope="module")
def random_teacher(tmp_path_factory) -> str:
    """A resnet8 teacher with its initial weights (what CAT-KD reads of it is its classifier and maps)."""
    from figkd.models import save_weights

    path = tmp_path_factory.mktemp("teacher") / "resnet8.safetensors"
    torch.manual_seed(0)
    save_weights(build_model("resnet8", 10), path)
    return str(path)


def test_cat_kd_cell_trains_a_bias_free_student_classifier(configs, random_teacher, tmp_path):
    # The objective of a CAT-KD cell of Table 1 (GzyAftermath/CAT-KD's vgg13 -> vgg8 config), on digits at 16x16
    # with resnet8 models: CAT-KD's tools/train.py builds the student as its converted *_test model, whose
    # classifier is a bias-free 1x1 conv_test; so is the student of the cell's run.
    from safetensors.torch import load_file

    from figkd.config import RunConfig
    from figkd.engine import run

    objective = configs["table1/vgg13-vgg8/cat_kd.yaml"]["objective"]
    assert [t["term"] for t in objective] == ["ce", "cat_kd"] and "student_classifier_bias" not in objective[1]
    cfg = RunConfig(dataset="digits_16", teacher="resnet8", teacher_ckpt=random_teacher, student="resnet8",
                    objective=objective, epochs=1, batch_size=128, device="cpu", progress="off", tensorboard=False,
                    out=str(tmp_path / "run"))
    run(cfg, "distill")
    weights = load_file(tmp_path / "run" / "checkpoints" / "best.safetensors")
    model = build_model("resnet8", 10)
    torch.manual_seed(0)
    initial = build_model("resnet8", 10).fc.weight.detach().clone()  # the run's student starts from seed 0 too
    model.load_state_dict(weights)
    assert torch.equal(model.fc.bias, torch.zeros(10))  # no bias, after an epoch of SGD with weight decay
    assert not torch.equal(model.fc.weight, initial)  # while the classifier's weights trained
    x = torch.randn(4, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    logits, features = model.eval()(x, return_features=True)
    assert torch.equal(logits, torch.nn.functional.linear(features["pooled_feat"], model.fc.weight))


def test_cat_kd_keeps_the_classifier_bias_when_asked():
    from figkd.engine.learner import build_learner

    for keep in (False, True):
        student = build_model("resnet8", 10)
        with torch.no_grad():
            student.fc.bias.fill_(0.5)
        build_learner(student, [{"term": "cat_kd", "student_classifier_bias": keep}],
                      teacher=build_model("resnet8", 10), num_classes=10, input_size=(32, 32))
        assert student.fc.bias.requires_grad == keep and bool((student.fc.bias == 0.5).all()) == keep


#: base lr -> {epoch: the official optimizer's learning rate during that epoch} (see the module docstring).
LDRLD_OFFICIAL_LR = {
    0.05: {1: 0.0025000000000000005, 10: 0.025, 19: 0.0475, 20: 0.0475, 21: 0.0475, 100: 0.0475, 150: 0.0475,
           151: 0.005000000000000001, 180: 0.005000000000000001, 181: 0.0005000000000000001,
           211: 5.0000000000000016e-05, 240: 5.0000000000000016e-05},
    0.01: {1: 0.0005, 10: 0.005, 19: 0.0095, 20: 0.0095, 21: 0.0095, 100: 0.0095, 150: 0.0095, 151: 0.001,
           181: 0.00010000000000000002, 211: 1.0000000000000003e-05},
}


@pytest.mark.parametrize("rel", ["table1/resnet32x4-resnet8x4/ldrld.yaml", "table2/resnet32x4-shufflenetv2/ldrld.yaml"])
def test_ldrld_cells_follow_the_official_learning_rate_schedule(configs, rel):
    from figkd.config import RunConfig
    from figkd.engine.recipe import initial_lr, scheduled_lr

    cfg = RunConfig(**configs[rel])
    base = initial_lr(cfg, cfg.student)
    assert base == (0.01 if cfg.student == "shufflenetv2" else 0.05)  # train_student.py's rule
    for epoch, lr in LDRLD_OFFICIAL_LR[base].items():
        assert scheduled_lr(cfg, base, epoch) == lr, epoch  # equal to the last bit


TABLE5_INDEX_PAIRED = [f"table5/{d}/mobilenetv1_imagenet-resnet18_imagenet"
                       for d in ("cub200_224", "mit67_224", "stanford40_224", "stanford_dogs_224")]


@pytest.mark.parametrize("where", TABLE5_INDEX_PAIRED)
def test_table5_mobilenetv1_resnet18_cells_pair_stages_as_mdistiller_indexes_them(configs, where):
    # mdistiller's AT zips feats[1:] and its FitNet indexes both lists with hint layer 2; its ImageNet MobileNetV1
    # lists no stem and ResNet18 does (mdistiller/models/imagenet/mobilenetv1.py:57, resnet.py:183-189), so maps of
    # different resolutions are paired: what the cells keep (figkd.experiments.paper_configs.INDEX_PAIRED).
    from figkd.losses import at_loss

    context = _context("mobilenetv1_imagenet", "resnet18_imagenet", classes=200, size=224)
    assert context.student.feats == ((64, 112, 112), (64, 56, 56), (128, 28, 28), (256, 14, 14), (512, 7, 7))
    assert context.teacher.feats == ((128, 56, 56), (256, 28, 28), (512, 14, 14), (1024, 7, 7))
    gen = torch.Generator().manual_seed(0)
    fs = [torch.randn(2, *shape, generator=gen) for shape in context.student.feats]
    ft = [torch.randn(2, *shape, generator=gen) for shape in context.teacher.feats]
    at = build_objective(configs[f"{where}/at.yaml"]["objective"], context=context)
    # AT: ResNet18's 56, 28, 14 px stages with MobileNetV1's 28, 14, 7 px ones (ResNet18's 7 px stage unused)
    assert torch.equal(at(student_logits=torch.zeros(2, 200), target=torch.zeros(2, dtype=torch.long),
                          student_feats=fs, teacher_feats=ft)["at"], 1000.0 * at_loss(fs[1:4], ft[1:4]))
    fitnet = build_objective(configs[f"{where}/fitnet.yaml"]["objective"], context=context).terms[1]
    # FitNet: ResNet18's hint 2 (128 x 28 x 28) through a connector to MobileNetV1's hint 2 (512 x 14 x 14)
    assert (fitnet.hint_layer, fitnet.teacher_hint_layer) == (2, 2)
    assert fitnet.connector(fs[2]).shape == ft[2].shape == (2, 512, 14, 14)


def test_pairing_by_resolution_is_an_option():
    # The alternative the Table 5 headers name: AT stages 'last' and FitNet teacher_hint_layer 1.
    from figkd.losses import at_loss

    context = _context("mobilenetv1_imagenet", "resnet18_imagenet", classes=200, size=224)
    gen = torch.Generator().manual_seed(0)
    fs = [torch.randn(2, *shape, generator=gen) for shape in context.student.feats]
    ft = [torch.randn(2, *shape, generator=gen) for shape in context.teacher.feats]
    at, fitnet = build_objective([{"term": "at", "stages": "last"}, {"term": "fitnet", "teacher_hint_layer": 1}],
                                 context=context).terms
    assert torch.equal(at(fs, ft), at_loss(fs[2:], ft[1:]))  # 28-28, 14-14, 7-7
    assert fitnet.connector(fs[2]).shape == ft[1].shape == (2, 256, 28, 28)
    with pytest.raises(ValueError, match="teacher_hint_layer must be an index into the stage features, 0..3, got 4"):
        build_objective([{"term": "fitnet", "teacher_hint_layer": 4}], context=context)


def test_takd_assistant_is_overridden_as_its_headers_say(generated, configs, tmp_path, monkeypatch):
    # TAKD (resnet110 -> resnet32; assistant by figkd's size rule: resnet56) with another assistant, resnet44, set as
    # the generated headers say: the sweep runs the new assistant first, and figkd report puts the student's run in
    # the TAKD cell, flagged with its assistant.
    from figkd.config import RunConfig
    from figkd.experiments.report import report
    from figkd.experiments.sweep import plan

    where = "table1/resnet110-resnet32"
    header = generated[f"{where}/takd.yaml"].splitlines()
    [line] = [h for h in header if h.startswith("# Another assistant A:")]
    m = re.search(r"in takd-assistant\.yaml set student: A and out: (\S+); in takd\.yaml set teacher: A and "
                  r"teacher_ckpt: (\S+) ", line)
    assert m and m[1] == m[2] == "runs/distill/cifar100/resnet110-A/kd-s0"
    out = m[1].replace("-A/", "-resnet44/")
    monkeypatch.chdir(tmp_path)
    (tmp_path / "c").mkdir()
    assistant = {**configs[f"{where}/takd-assistant.yaml"], "student": "resnet44", "out": out}
    student = {**configs[f"{where}/takd.yaml"], "teacher": "resnet44", "teacher_ckpt": out,
               "out": "runs/distill/cifar100/resnet110-resnet32/takd-resnet44-s0"}
    for name, cfg in (("1-student", student), ("2-assistant", assistant)):
        RunConfig(**cfg)  # valid configs
        (tmp_path / "c" / f"{name}.yaml").write_text(yaml.safe_dump(cfg))
    runs = plan(["c"])
    assert [str(r.run_dir) for r in runs] == [out, student["out"]] and runs[1].deps == [0]
    for cfg in (assistant, student):  # both finished, as the engine records them (absolute paths)
        d = tmp_path / cfg["out"]
        d.mkdir(parents=True)
        recorded = {**RunConfig(**cfg).to_dict(), "teacher_ckpt": str(tmp_path / cfg["teacher_ckpt"])}
        (d / "config.yaml").write_text(yaml.safe_dump(recorded))
        (d / "summary.json").write_text('{"last_top1": 71.5, "best_top1": 72.0}')
    rows = {(r["row"], r["column"]): r for r in csv.DictReader(io.StringIO(report(tmp_path / "runs", ["1"],
                                                                                  fmt="csv")))}
    takd = rows[("TAKD", "resnet110->resnet32")]
    assert (takd["mean"], takd["n"], takd["flags"]) == ("71.5000", "1", "assistant resnet44 (paper config: resnet56)")
