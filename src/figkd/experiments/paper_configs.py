"""The generator of ``configs/paper/``: one figkd config per experiment of the paper, written from the paper's
reported numbers and ablation definitions (:mod:`figkd.paper`) and the baselines' published settings below.

    python configs/paper/generate.py            # rewrites configs/paper/{teachers,students,table*,fig4}/
    python configs/paper/generate.py --out DIR  # writes the same tree under DIR (the test compares)

``figkd report`` reads the generated configs from :func:`generate` (which method and recipe each cell's
config runs), so this module is part of the installed package, not of the checkout's ``configs/``.

Deterministic and idempotent: the output depends only on :mod:`figkd.paper` (``reported_top1.csv``: the
paper's Tables 1-9; Tables 10-13 and 16, read from the paper's text), the tables of this module and the model
registry's default learning rates. Every generated directory is removed and written again, so a config that
is no longer generated disappears; only files carrying the generated header are removed, and a directory
holding anything else is refused. See docs/reproducing.md for how to run them.

Layout:
- ``teachers/<dataset>/<model>.yaml``: ``figkd train`` for every teacher of Tables 1-9;
- ``students/<dataset>/<model>.yaml``: ``figkd train`` for the "student alone" rows (a model that is
  also a teacher on that dataset is only under ``teachers/``);
- ``table<N>/<teacher>-<student>/<variant>.yaml`` (Table 5 and 10: ``table<N>/<dataset>/<pair>/``):
  ``figkd distill``, one file per method or ablation row;
- ``fig4/<dataset>/<teacher>-<student>/<variant>.yaml``: ``figkd distill``, the loss-weight sweep of Fig. 4
  (a grid of figkd's choosing: the paper's values were lost in the text extraction).

Every config's header names its paper cell and reported top-1, its recipe (FiGKD's, Section 4.2, or a
baseline's own published recipe), the command that runs it, and the command that runs it in fp32 (the
paper's and mdistiller's precision; the defaults train in bf16 autocast with channels_last and a
captured step on a GPU). The default learning rate of FiGKD's recipe comes from the model registry
(``figkd.models.ModelInfo.default_lr``).

Every distill config sets ``out`` to ``runs/distill/<dataset>/<teacher>-<student>/<variant>-s0``, named
by the variant the tables use (the default ``runs/distill/<dataset>/<teacher>-<student>-<objective>-s<seed>``
names a term-list objective by its terms and a digest: unique, not readable). One experiment has one run
directory whichever table lists it (the FiGKD cell of Table 1 and the J = 1 row of Table 11 are the same
file content and the same run), so a run already finished for one table is skipped for the next.
"""

from __future__ import annotations

import argparse
from collections import defaultdict
from pathlib import Path

from ..config import RunConfig
from ..losses.catkd import CIFAR100_PAIRS as CAT_KD_PAIRS
from ..models import default_lr
from ..paper import ABLATIONS, METHODS, TABLE10, copied_cells, read_reported_top1

#: Where each dataset family is expected (docs/reproducing.md says what goes inside).
DATA_ROOT = {
    "cifar100": "data/cifar100",
    "tiny_imagenet": "data/tiny-imagenet-200",
    "cub200": "data/CUB_200_2011",
    "stanford_dogs": "data/stanford_dogs",
    "mit67": "data/mit67",
    "stanford40": "data/stanford40",
}
NUM_CLASSES = {"cifar100": 100, "tiny_imagenet": 200, "cub200": 200, "stanford_dogs": 120, "mit67": 67,
               "stanford40": 40}

#: Variants written by their own writer (not a distill config of the pair's teacher and student): DML trains
#: the pair's two architectures together as peers; TAKD is two configs, the assistant's and the student's.
PEER_VARIANTS = ("dml",)
TAKD_VARIANT, TAKD_ASSISTANT_VARIANT = "takd", "takd-assistant"
#: Pairs whose feature lists are built differently (Table 5's MobileNetV1 -> ResNet18 at 224x224: mdistiller's
#: MobileNetV1 lists its four stages, 56/28/14/7 px, without its stem; ResNet18 lists its stem, 112 px, and its four
#: stages), so that mdistiller's indexing pairs maps of different resolutions: AT zips ``feats[1:]`` (student
#: 56/28/14 px with teacher 28/14/7 px, ResNet18's 7 px stage dropped; figkd's ``stages: first``, explicit here,
#: as figkd refuses unequal lists otherwise) and FitNet's hint layer 2 pairs ResNet18's 128 x 28 x 28 with
#: MobileNetV1's 512 x 14 x 14 (``hint_layer: 2`` for both lists, the preset's). The cells keep mdistiller's indexing:
#: Table 5's numbers exist in no earlier paper, so the FiGKD authors produced them with a public implementation,
#: and the one that has these two ImageNet models (MobileNetV1 only in its ImageNet zoo) and every compared method
#: of Table 5 but MLKD (FitNet, PKT, RKD, CRD, AT, ReviewKD, KD, DKD) is mdistiller, which pairs them so (the paper
#: does not name its code: an inference, not a record). Pairing by resolution would be ``stages: last`` (28-28,
#: 14-14, 7-7) and ``teacher_hint_layer: 1`` (256 x 28 x 28).
INDEX_PAIRED = {("mobilenetv1_imagenet", "resnet18_imagenet")}
#: DIST is generated for every pair of these tables (CIFAR-style models, where its preset - the DIST
#: authors' CIFAR-100 recipe - applies), whether or not the paper reports it.
DIST_TABLES = ("table1", "table2", "table3", "table4", "table6", "table7", "table8", "table9")

#: mdistiller configs/cifar100/dkd/*.yaml: DKD's beta per CIFAR-100 pair (default 8).
DKD_BETA_CIFAR100 = {
    ("vgg13", "vgg8"): 6.0, ("vgg13", "mobilenetv2"): 6.0, ("wrn_40_2", "wrn_16_2"): 6.0,
    ("wrn_40_2", "wrn_40_1"): 6.0, ("resnet56", "resnet20"): 2.0, ("resnet110", "resnet32"): 2.0,
}

#: ReviewKD's weight per CIFAR-100 pair in dvlab-research/ReviewKD CIFAR-100/script/reviewKD.sh (commit cede6ea);
#: the others have no config of their own: mdistiller's configs/cifar100/reviewkd.yaml weight 5 (the preset).
REVIEWKD_WEIGHT_CIFAR100 = {
    ("wrn_40_2", "wrn_16_2"): 5.0, ("wrn_40_2", "wrn_40_1"): 5.0, ("wrn_40_2", "shufflenetv1"): 5.0,
    ("resnet32x4", "resnet8x4"): 5.0, ("resnet32x4", "shufflenetv1"): 5.0, ("resnet32x4", "shufflenetv2"): 8.0,
    ("resnet56", "resnet20"): 0.6, ("resnet110", "resnet32"): 1.0,
}
#: mdistiller configs/imagenet/r34_r18/reviewkd.yaml (ReviewKD on 224x224 ResNet34 -> ResNet18): weight 1,
#: warm-up 1 epoch, the student's pre-activation features (STU_PREACT: True). Used for Table 5.
REVIEWKD_IMAGENET = {"term": "reviewkd", "weight": 1.0, "warmup": 1, "student_preact": True}


#: MLKD's own CIFAR-100 recipe, one config per pair: Jin-Ying/Multi-Level-Logit-Distillation
#: ``configs/cifar100/ours/<file>`` at its latest commit 5ee473f (2024-09-23). Every file keeps batch 64,
#: momentum 0.9, weight decay 5e-4 and the decay x0.1 after epochs 150, 180, 210 (FiGKD's values too)
#: and sets LR and EPOCHS: 0.025 and 240 for the pairs of one family; 0.01 and 480 for the pairs with a
#: ShuffleNetV1 or MobileNetV2 student, 0.01 and 960 for resnet32x4 -> ShuffleNetV1/V2 (the milestones
#: stay at 150/180/210, so those runs spend epochs 211-960 at lr 1e-5). Earlier commits differ (6327e73:
#: 480 epochs for the one-family pairs and lr 0.0025 for vgg13/resnet50 -> MobileNetV2 and
#: wrn_40_2 -> ShuffleNetV1; 77b91ec: 480 epochs for resnet32x4 -> ShuffleNetV1/V2).
MLKD_SOURCE = "Jin-Ying/Multi-Level-Logit-Distillation configs/cifar100/ours/{}, commit 5ee473f"
MLKD_RECIPE_CIFAR100 = {  # (teacher, student) -> (file, lr, epochs)
    ("resnet110", "resnet32"): ("res110_res32.yaml", 0.025, 240),
    ("resnet32x4", "resnet8x4"): ("res32x4_res8x4.yaml", 0.025, 240),
    ("resnet56", "resnet20"): ("res56_res20.yaml", 0.025, 240),
    ("vgg13", "vgg8"): ("vgg13_vgg8.yaml", 0.025, 240),
    ("wrn_40_2", "wrn_16_2"): ("wrn40_2_wrn_16_2.yaml", 0.025, 240),
    ("wrn_40_2", "wrn_40_1"): ("wrn40_2_wrn_40_1.yaml", 0.025, 240),
    ("resnet32x4", "shufflenetv1"): ("res32x4_shuv1.yaml", 0.01, 960),
    ("resnet32x4", "shufflenetv2"): ("res32x4_shuv2.yaml", 0.01, 960),
    ("resnet50", "mobilenetv2"): ("res50_mv2.yaml", 0.01, 480),
    ("vgg13", "mobilenetv2"): ("vgg13_mv2.yaml", 0.01, 480),
    ("wrn_40_2", "shufflenetv1"): ("wrn40_2_shuv1.yaml", 0.01, 480),
}
#: EKD's per-pair settings: lyxiang-casia/EKD ``configs/cifar100/ekd/model/<file>`` (commit fb65a7e):
#: (file, LAMB, KD_WEIGHT, EKD_WEIGHT, WARMUP). TEMPERATURE is 1 in every file; LR and EPOCHS are FiGKD's (0.05,
#: 0.01 for MobileNetV2/ShuffleNet, 240). Every file but vgg13_vgg8.yaml selects the KD4eModel distiller, which
#: overwrites its evidential terms (the ``ekd-code`` variant) and never applies CE_WEIGHT (5.0 in some files).
#: vgg13_vgg8.yaml selects EKD's CAT_KD distiller (EKD_CAT_KD).
EKD_SOURCE = "lyxiang-casia/EKD configs/cifar100/ekd/model/{}, commit fb65a7e"
#: The pairs whose EKD config selects EKD's CAT_KD distiller (lyxiang-casia/EKD ``mdistiller/distillers/CAT_KD.py``,
#: ``configs/cifar100/ekd/model/vgg13_vgg8.yaml``): the evidential terms as its paper writes them (evidential CE,
#: first-order KL, Dirichlet KL with the warm-up; nothing overwritten) plus CAT_loss_weight x CAT-KD's loss on the
#: last stage's maps (the unconverted models' ``feats[-1]``: ``if_test`` is off, no CAMs), pooled to
#: CAM_RESOLUTION, IF_NORMALIZE: (CAT weight, resolution, normalise). What produced that cell's published number.
EKD_CAT_KD = {("vgg13", "vgg8"): (4.5, 2, False)}
EKD_CIFAR100 = {
    ("resnet110", "resnet32"): ("resnet110_resnet32.yaml", -0.86, 2.5, 2.5, 30),
    ("resnet32x4", "resnet8x4"): ("resnet32x4_resnet8x4.yaml", -1.22, 4.5, 4.5, 30),
    ("wrn_40_2", "wrn_16_2"): ("wrn_40_2_wrn_16_2.yaml", -1.16, 2.5, 2.5, 30),
    ("wrn_40_2", "wrn_40_1"): ("wrn_40_2_wrn_40_1.yaml", -1.21, 4.5, 2.0, 30),
    ("vgg13", "vgg8"): ("vgg13_vgg8.yaml", -0.60, 4.5, 4.5, 30),
    ("resnet50", "mobilenetv2"): ("resnet50_mnv2.yaml", -1.10, 4.5, 3.0, 150),
    ("resnet32x4", "shufflenetv2"): ("resnet32x4_shn_v2.yaml", -1.22, 4.5, 4.5, 30),
    ("vgg13", "mobilenetv2"): ("vgg13_mnv2.yaml", -1.23, 4.5, 3.0, 150),
}

#: TAKD's teacher assistant per pair of Tables 1-2. TAKD (Mirzadeh et al., AAAI 2020) finds an intermediate-size
#: assistant best and publishes no assistant for these pairs (its code trains ResNets and plain CNNs with T and
#: lambda searched by NNI). Rule used here (tests/test_paper_configs.py checks it against the model registry):
#: among the registry's CIFAR models whose parameter count lies strictly between the student's and the teacher's,
#: prefer the teacher's family, then the student's, then any; among those, the count closest (in ratio) to the
#: geometric mean of the two. Counts for 100 classes, in millions. Each TAKD config's header says how to use another
#: assistant (two keys of each of its two configs); figkd report follows the teacher_ckpt link either way.
TAKD_ASSISTANTS = {
    ("resnet110", "resnet32"): ("resnet56", "ResNet family, 0.86M between 1.74M and 0.47M (geometric mean 0.91M)"),
    ("resnet32x4", "resnet8x4"): ("resnet110", "the only ResNet between 7.43M and 1.23M (1.74M)"),
    ("wrn_40_2", "wrn_16_2"): ("resnet8x4", "no WRN lies between 2.26M and 0.70M; 1.23M is the model closest to "
                                            "the geometric mean 1.26M"),
    ("wrn_40_2", "wrn_40_1"): ("wrn_16_2", "the only WRN between 2.26M and 0.57M (0.70M)"),
    ("vgg13", "vgg8"): ("vgg11", "the only VGG between 9.46M and 3.97M (9.28M)"),
    ("resnet32x4", "shufflenetv1"): ("resnet110", "ResNet family, 1.74M between 7.43M and 0.95M, closer to the "
                                                  "geometric mean 2.66M than resnet8x4's 1.23M"),
    ("resnet32x4", "shufflenetv2"): ("resnet110", "the only ResNet between 7.43M and 1.36M (1.74M)"),
    ("resnet50", "mobilenetv2"): ("resnet32x4", "ResNet family, 7.43M between 23.71M and 0.81M, the closest to the "
                                                "geometric mean 4.39M"),
    ("vgg13", "mobilenetv2"): ("vgg8", "VGG family, 3.97M between 9.46M and 0.81M, the closest to the geometric "
                                       "mean 2.77M"),
    ("wrn_40_2", "shufflenetv1"): ("shufflenetv2", "no WRN lies between 2.26M and 0.95M; the student's family: "
                                                   "1.36M, near the geometric mean 1.46M"),
}

#: Suffix of a baseline variant run on FiGKD's recipe where its own published recipe differs.
FIGKD_RECIPE_SUFFIX = "-figkd-recipe"
#: The variants whose own recipe gets such a copy (MLKD's lr and epochs differ from FiGKD's; LDRLD's recipe is
#: FiGKD's plus a warm-up, and runs on its own only).
FIGKD_RECIPE_COPIES = ("mlkd",)

#: LDRLD's training recipe: yema-web/LDRLD ``train_student.py`` (commit b4dcfc9) runs with ``--wram_up 20`` (its
#: default; ``helper/util.py`` ``adjust_learning_rate_wram_up``) and otherwise FiGKD's recipe (its defaults: lr
#: 0.05, 0.01 for MobileNetV2/ShuffleV1/V2, 240 epochs, batch 64, decay x0.1 after 150/180/210, weight decay 5e-4,
#: momentum 0.9). RunConfig fields; the schedule: `figkd.engine.recipe.lr_at_epoch`.
LDRLD_SOURCE = ("yema-web/LDRLD train_student.py --wram_up 20, helper/util.py adjust_learning_rate_wram_up, "
                "commit b4dcfc9")
LDRLD_RECIPE = {"lr_warmup_epochs": 20, "lr_warmup_hold": True}
#: Settings that train in fp32 as the paper and mdistiller do (RunConfig: amp, channels_last, cuda_graph).
FP32_SET = ("amp=none", "channels_last=off", "cuda_graph=off")

CE = {"term": "ce", "weight": 1.0}
MLKD = {"term": "mlkd", "weight": 1.0}


def _figkd(**options):
    return {"term": "figkd", "weight": 2.0, **options}


# --- Ablations (paper Section 5 and Appendix A; their rows and numbers: figkd.paper.TABLE10, ABLATIONS) ------
#: Table 10 on the Eq. 7 base (ce + figkd): the same rows with CE in place of MLKD. Its "Low x, High x" row
#: is the student trained alone (configs/paper/students/ or teachers/), not a distillation.
TABLE10_EQ7 = [
    ("Low v, High x", "figkd-low", [CE, _figkd(bands="low")], TABLE10[1][3]),
    ("Low x, High v (FiGKD)", "figkd", "figkd", TABLE10[2][3]),
    ("Low v, High v", "figkd-both", [CE, _figkd(bands="both")], TABLE10[3][3]),
]


#: Fig. 4 (Section 5.1.2: sensitivity to the loss weights of Eq. 7, ResNet32x4 -> ResNet8x4 on CIFAR-100 and
#: TinyImageNet): the CE weight alpha varied at detail weight beta 2, and beta varied at alpha 1. The values
#: the paper swept were lost in the text extraction, and its numbers exist only in the figure; this grid is
#: figkd's choice (issue 13): alpha in {0.5, 1, 2, 4} at beta 2, beta in {0.5, 1, 2, 4, 8} at alpha 1.
#: (alpha 1, beta 2) is the default, the ``figkd`` preset: the same run as the FiGKD cell of Tables 1 and 3.
FIG4_PAIR = ("resnet32x4", "resnet8x4")
FIG4_DATASETS = ("cifar100", "tiny_imagenet")
FIG4_ALPHAS = (0.5, 1.0, 2.0, 4.0)
FIG4_BETAS = (0.5, 1.0, 2.0, 4.0, 8.0)


def fig4_points() -> list[tuple[str, float, float]]:
    """(variant, alpha, beta) of the Fig. 4 grid; the default point is the ``figkd`` variant."""
    points = [(f"figkd-alpha{a:g}", a, 2.0) for a in FIG4_ALPHAS if a != 1.0]
    points += [(f"figkd-beta{b:g}", 1.0, b) for b in FIG4_BETAS if b != 2.0]
    return [("figkd", 1.0, 2.0)] + points


# --- Writing -------------------------------------------------------------------------------------------
def family(dataset: str) -> str:
    for suffix in ("_224", "_32"):
        if dataset.endswith(suffix):
            return dataset[: -len(suffix)]
    return dataset


def _scalar(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        return repr(v)
    if isinstance(v, str) and (v[0].isdigit() or any(c in v for c in ":#{}[],&*!|>'\"%@`")):
        return f"'{v}'"
    return str(v)


def _objective_yaml(obj) -> str:
    if isinstance(obj, str):
        return f"objective: {_scalar(obj)}\n"
    lines = ["objective:"]
    for term in obj:
        lines.append("  - {" + ", ".join(f"{k}: {_scalar(v)}" for k, v in term.items()) + "}")
    return "\n".join(lines) + "\n"


def _fmt(v: float | None) -> str:
    return "not reported" if v is None else f"{v:.2f}"


def teacher_run_dir(dataset: str, model: str, fp32: bool = False) -> str:
    """``figkd.engine.run.default_run_dir`` of the teacher's train config at seed 0 (its fp32 run: ``--out``)."""
    return f"runs/train/{dataset}/{model}{'-fp32' if fp32 else ''}-s0"


def distill_out(dataset: str, teacher: str, student: str, variant: str, fp32: bool = False) -> str:
    return f"runs/distill/{dataset}/{teacher}-{student}/{variant}{'-fp32' if fp32 else ''}-s0"


def _recipe_text(lr: float, epochs: int) -> str:
    d = RunConfig()
    milestones = ", ".join(map(str, d.lr_milestones))
    return (f"SGD lr {lr:g}, {epochs} epochs, lr x{d.lr_decay:g} after epochs {milestones}, batch {d.batch_size}, "
            f"weight decay {d.weight_decay:g}, momentum {d.momentum:g}")


def figkd_recipe_line(model: str) -> str:
    """The header line of a config on FiGKD's recipe (RunConfig defaults; lr: the model's default_lr)."""
    return (f"Recipe: FiGKD's (paper Section 4.2; RunConfig defaults): "
            f"{_recipe_text(default_lr(model), RunConfig().epochs)} (lr: {model}'s default_lr in the model registry).")


def fp32_lines(command: str, out: str, teacher_ckpt: str | None = None) -> list[str]:
    """Header lines: how to run the config in fp32, into its own run directory (amp and channels_last are
    part of a run's identity; cuda_graph is not, and is off so that the step runs eagerly as in mdistiller)."""
    sets = " ".join(f"--set {kv}" for kv in FP32_SET)
    extra = f"--set teacher_ckpt={teacher_ckpt} " if teacher_ckpt else ""
    return ["fp32 (the paper's and mdistiller's precision; the defaults on a GPU are bf16 autocast, channels_last and",
            "a captured step; amp and channels_last belong to a run's identity, hence its own run directory):",
            f"  figkd {command} --config <this file> {sets} \\",
            f"    {extra}--out {out}"]


def _header(lines: list[str]) -> str:
    return "".join(f"# {h}\n" if h else "#\n" for h in lines)


def train_yaml(dataset: str, model: str, header: list[str]) -> str:
    body = (f"dataset: {dataset}\ndata_root: {DATA_ROOT[family(dataset)]}\nmodel: {model}\n"
            "objective: vanilla\nseed: 0\n")
    return _header(header) + body


def distill_yaml(dataset: str, teacher: str, student: str, variant: str, objective, header: list[str],
                 recipe: dict | None = None, *, teacher_from: tuple[str, str, str] | None = None,
                 out_pair: tuple[str, str] | None = None) -> str:
    """A distill config: ``header`` (paper cell, variant, recipe), then the teacher, run and fp32 lines.

    ``teacher_from``: (config that trains the teacher, its run directory, its fp32 run directory) when the
    teacher is not a model trained alone (TAKD's assistant); ``out_pair``: the (teacher, student) whose
    run-directory folder holds this run (default: this config's).
    """
    config, ckpt, ckpt_fp32 = teacher_from or (f"configs/paper/teachers/{dataset}/{teacher}.yaml",
                                               teacher_run_dir(dataset, teacher),
                                               teacher_run_dir(dataset, teacher, fp32=True))
    pair = out_pair or (teacher, student)
    header = header + [f"Teacher: {config} must have finished.",
                       "Run: figkd distill --config <this file>",
                       *fp32_lines("distill", distill_out(dataset, *pair, variant, fp32=True), ckpt_fp32)]
    body = (f"dataset: {dataset}\ndata_root: {DATA_ROOT[family(dataset)]}\n"
            f"teacher: {teacher}\nteacher_ckpt: {ckpt}\nstudent: {student}\n"
            + _objective_yaml(objective)
            + "".join(f"{k}: {_scalar(v)}\n" for k, v in (recipe or {}).items())
            + f"seed: 0\nout: {distill_out(dataset, *pair, variant)}\n")
    return _header(header) + body


def peers_yaml(dataset: str, teacher: str, student: str, variant: str, objective: str, header: list[str]) -> str:
    """A deep-mutual-learning config: the pair's two architectures trained together from scratch as peers."""
    out = distill_out(dataset, teacher, student, variant)
    header = header + ["Run: figkd distill --config <this file>   (no teacher: both peers train from scratch)",
                       f"Run directories: {out}/peer0-{teacher} and {out}/peer1-{student} (the reported cell).",
                       *fp32_lines("distill", distill_out(dataset, teacher, student, variant, fp32=True))]
    body = (f"dataset: {dataset}\ndata_root: {DATA_ROOT[family(dataset)]}\npeers: [{teacher}, {student}]\n"
            + _objective_yaml(objective) + f"seed: 0\nout: {out}\n")
    return _header(header) + body


def table_number(table: str) -> str:
    return table.removeprefix("table")


def pair_dir(table: str, dataset: str, teacher: str, student: str, multi_dataset: bool) -> str:
    pair = f"{teacher}-{student}"
    return f"{table}/{dataset}/{pair}" if multi_dataset else f"{table}/{pair}"


def dkd_objective(dataset: str, teacher: str, student: str):
    beta = DKD_BETA_CIFAR100.get((teacher, student)) if dataset == "cifar100" else None
    if beta is None:
        return "dkd"
    return [dict(CE), {"term": "dkd", "weight": 1.0, "alpha": 1.0, "beta": beta, "temperature": 4.0,
                       "warmup": 20}]


def ekd_objective(variant: str, dataset: str, teacher: str, student: str):
    """EKD's term with its per-pair published settings (EKD_CIFAR100), as released ("ekd-code") or as the
    paper's evidential terms ("ekd"); the presets elsewhere. As released for a pair of EKD_CAT_KD: EKD's
    CAT_KD distiller, the evidential terms plus ``cat_kd_feats``."""
    setting = EKD_CIFAR100.get((teacher, student)) if dataset == "cifar100" else None
    if setting is None:
        return variant
    _, lamb, kd_weight, ekd_weight, warmup = setting
    cat = EKD_CAT_KD.get((teacher, student)) if variant == "ekd-code" else None
    code = variant == "ekd-code" and cat is None
    term = {"term": "ekd", "weight": 1.0, "variant": "code" if code else "paper", "lamb": lamb,
            "temperature": 1.0, "kd_weight": kd_weight, "ekd_weight": ekd_weight}
    if not code:
        term["dirichlet_warmup"] = warmup
    if cat is None:
        return [term]
    weight, pool, normalize = cat
    return [term, {"term": "cat_kd_feats", "weight": weight, "pool_size": pool, "normalize": normalize}]


def _objective_for(variant: str, dataset: str, teacher: str, student: str):
    if variant == "dkd":
        return dkd_objective(dataset, teacher, student)
    if variant in ("ekd", "ekd-code"):
        return ekd_objective(variant, dataset, teacher, student)
    if variant == "at" and (teacher, student) in INDEX_PAIRED:
        return [dict(CE), {"term": "at", "weight": 1000.0, "p": 2.0, "stages": "first"}]
    if variant == "fitnet" and (teacher, student) in INDEX_PAIRED:
        return [dict(CE), {"term": "fitnet", "weight": 100.0, "hint_layer": 2}]  # = preset fitnet, index-paired
    return variant


def feature_variant(variant: str, dataset: str, teacher: str, student: str) -> tuple[object, str] | None:
    """(objective, header note) of OFD, ReviewKD, CAT-KD and DiffKD for one cell; None for other variants.

    Each uses its official setting for the pair where one is published (on another dataset of the tables:
    the pair's CIFAR-100 setting, the only one published), else the method's official default (its preset),
    and says which. All four run on FiGKD's recipe, which is mdistiller's and CAT-KD's CIFAR-100 recipe.
    """
    pair = (teacher, student)
    cifar = "CIFAR-100 setting" if dataset == "cifar100" else "CIFAR-100 setting (none published for this dataset)"
    if variant == "ofd":
        note = ("OFD (mdistiller's setting, CFG.OFD: ce 1 + ofd 0.001, 1x1 connectors, margins from the teacher's "
                "BatchNorms; mdistiller's only config is resnet32x4 -> resnet8x4, configs/cifar100/ofd.yaml")
        if pair != ("resnet32x4", "resnet8x4") or dataset != "cifar100":
            note += ": this pair has none, the official default is used"
        if pair == ("resnet50", "mobilenetv2"):
            note += ("; mdistiller's OFD breaks on this pair (its issue 68: no pre-activation features in its "
                     "MobileNetV2), figkd's models expose them")
        return "ofd", note + ")"
    if variant == "reviewkd":
        if dataset.endswith("_224"):
            return [dict(CE), dict(REVIEWKD_IMAGENET)], (
                "ReviewKD with mdistiller's ImageNet setting for ResNet34 -> ResNet18 (configs/imagenet/r34_r18/"
                "reviewkd.yaml: ce 1 + reviewkd 1, warm-up 1 epoch, the student's pre-activation features), the "
                "closest published one for these 224x224 models" + ("" if pair == ("resnet34_imagenet",
                                                                                    "resnet18_imagenet")
                                                                    else " (this pair has none)"))
        weight = REVIEWKD_WEIGHT_CIFAR100.get(pair)
        recipe = ("; dvlab-research/ReviewKD's own trainer uses batch 128, lr 0.1 (0.02 for ShuffleNet/MobileNet "
                  "students) and Nesterov momentum, which figkd does not reproduce: mdistiller's recipe (= FiGKD's)")
        if weight is None:
            return "reviewkd", ("ReviewKD (mdistiller's configs/cifar100/reviewkd.yaml: ce 1 + reviewkd 5, warm-up 20 "
                                "epochs; dvlab-research/ReviewKD publishes no weight for this pair: the official "
                                "default" + recipe + ")")
        return ([dict(CE), {"term": "reviewkd", "weight": weight, "warmup": 20, "student_preact": False}],
                f"ReviewKD with the weight {weight:g} of dvlab-research/ReviewKD CIFAR-100/script/reviewKD.sh for "
                f"this pair's {cifar} (ce 1, warm-up 20 epochs as mdistiller" + recipe + ")")
    if variant == "cat_kd":
        bias_free = ("; the student's classifier bias-free, as CAT-KD's converted student (tools/train.py with "
                     "if_test: the *_test model's conv_test; the term's student_classifier_bias: false)")
        if pair not in CAT_KD_PAIRS:
            return "cat_kd", ("CAT-KD (preset: the resnet32x4 -> resnet8x4 config of GzyAftermath/CAT-KD; this pair "
                              f"has none of its own{bias_free})")
        file, weight, pool, normalize = CAT_KD_PAIRS[pair]
        return ([dict(CE), {"term": "cat_kd", "weight": weight, "pool_size": pool, "normalize": normalize}],
                f"CAT-KD with GzyAftermath/CAT-KD configs/cifar100/CAT_KD/{file} ({cifar}: ce 1 + cat_kd "
                f"{weight:g}, CAMs pooled to {pool}x{pool}, {'' if normalize else 'not '}normalised; its cfg.py "
                f"defaults, weight 400, 2x2, normalised, differ{bias_free})")
    if variant == "diffkd":
        return "diffkd", ("DiffKD (no official CIFAR config: the official defaults, those of its wrapper "
                          "hunto/image_classification_sota lib/models/losses/kd_loss.py:77-79 and of diffkd_b1.yaml: "
                          "ce 1 + diffkd 1, tau 1, autoencoder 1024 channels wide whatever the teacher's width, "
                          "5 denoising steps; docs/method.md lists each choice)")
    return None


def own_recipe(variant: str, dataset: str, teacher: str, student: str) -> tuple[dict, str] | None:
    """A baseline's own published recipe where it differs from FiGKD's: (config fields, header line), else None.

    MLKD on CIFAR-100 (MLKD_RECIPE_CIFAR100); LDRLD (LDRLD_RECIPE: FiGKD's with its learning-rate warm-up). KD
    and DKD follow mdistiller's CIFAR-100 recipe, which is FiGKD's (lr 0.05, 0.01 for ShuffleNet/MobileNetV2, 240
    epochs); DKD's per-pair beta is in its objective.
    """
    if variant == "ldrld" and dataset == "cifar100":
        lr = default_lr(student)
        line = (f"Recipe: LDRLD's own ({LDRLD_SOURCE}): {_recipe_text(lr, RunConfig().epochs)} (FiGKD's, its "
                f"defaults; lr: {student}'s default_lr, as its 0.01 rule for MobileNetV2/ShuffleV1/V2), with its "
                "learning-rate warm-up: epochs 1-19 at lr x e/20, then lr x 19/20 until epoch 150, as "
                "adjust_learning_rate_wram_up never sets lr back (lr_warmup_epochs 20, lr_warmup_hold true).")
        return dict(LDRLD_RECIPE), line
    if variant != "mlkd" or dataset != "cifar100" or (teacher, student) not in MLKD_RECIPE_CIFAR100:
        return None
    file, lr, epochs = MLKD_RECIPE_CIFAR100[(teacher, student)]
    line = (f"Recipe: MLKD's own, as published for this pair ({MLKD_SOURCE.format(file)}): "
            f"{_recipe_text(lr, epochs)}. On FiGKD's recipe: mlkd{FIGKD_RECIPE_SUFFIX}.yaml.")
    return {"lr": lr, "epochs": epochs}, line


#: PKT, RKD, SP, VID, CRD: where each preset's setting comes from. mdistiller publishes one CIFAR-100 config
#: per method, ``configs/cifar100/<method>.yaml``, for resnet32x4 -> resnet8x4 only; it sets the solver
#: (FiGKD's recipe) and keeps the method's defaults of ``mdistiller/engine/cfg.py``. RepDistiller
#: (``train_student.py`` and its README's commands) uses one setting for every CIFAR-100 pair.
FEATURE_PRESET_SOURCE = {
    "pkt": "mdistiller's setting: ce 1 + pkt 30000, on the penultimate embeddings",
    "rkd": "mdistiller's setting: ce 1 + rkd 1 (distance 25, angle 50), on the penultimate embeddings",
    "sp": "mdistiller's setting: ce 1 + sp 3000, on the last stage",
    "vid": "mdistiller's and RepDistiller's setting: ce 1 + vid 1 (initial variance 5, eps 1e-5), a regressor "
           "and a trained variance per stage",
    "crd": "RepDistiller's setting: ce 1 + crd 0.8 (128-d heads, 16384 negatives from other classes, T 0.07, "
           "momentum 0.5)",
}
FEATURE_CONFIG_PAIR = ("resnet32x4", "resnet8x4")


def feature_note(variant: str, dataset: str, teacher: str, student: str) -> str:
    """The header note of a PKT/RKD/SP/VID/CRD config: its setting, and whether the official code publishes a
    config for this pair or its default setting is used."""
    head = FEATURE_PRESET_SOURCE[variant]
    if dataset != "cifar100":
        return f"{head}). The official code publishes settings for CIFAR-100 only; its default one is used unchanged"
    if (teacher, student) == FEATURE_CONFIG_PAIR:
        return (f"{head}). Source: mdistiller configs/cifar100/{variant}.yaml and RepDistiller "
                "scripts/run_cifar_distill.sh, both written for this pair")
    return (f"{head}). The official code has no config of its own for this pair: its default setting is used "
            "(mdistiller/engine/cfg.py, RepDistiller train_student.py), the one of its resnet32x4 -> resnet8x4 "
            "config")


def baseline_variants(variant: str, dataset: str, teacher: str, student: str):
    """[(variant, recipe fields, recipe line, note)] of one method variant: on its own recipe where
    published (plus a ``-figkd-recipe`` copy on FiGKD's for the methods of FIGKD_RECIPE_COPIES), else on
    FiGKD's."""
    own = own_recipe(variant, dataset, teacher, student)
    figkd_line = figkd_recipe_line(student)
    if own is None:
        note = (" (MLKD's repository publishes recipes for CIFAR-100 and ImageNet, none for this dataset: "
                "FiGKD's recipe here)"
                if variant == "mlkd" and dataset != "cifar100" else "")
        return [(variant, None, figkd_line, note)]
    if variant not in FIGKD_RECIPE_COPIES:
        return [(variant, own[0], own[1], "")]
    return [(variant, own[0], own[1], ""),
            (variant + FIGKD_RECIPE_SUFFIX, None, figkd_line,
             f" on FiGKD's recipe, for a same-recipe comparison (the paper's {variant.upper()} column is "
             f"{variant.upper()}'s published result, on its own recipe: {variant}.yaml)")]


_VARIANT_NOTE = {
    "rld": "RLD (zju-SWJ/RLD CFG.RLD and README: ce 1 + rld (alpha 1, beta 8, T 4, confidence T 4), warm-up 20)",
    "tekap": "TeKAP, logit level (mdimtiazh/TeKAP README: ce 0.1 + 0.9 x (KD + 0.8 x KD to 3 perturbed teachers), "
             "T 4)",
    "ldrld": "LDRLD (yema-web/LDRLD README: ce 1 + ldrld (alpha 10.5, beta 7, k 7, T 4)), on its training script's "
             "recipe with its learning-rate warm-up (below; docs/method.md)",
    "ekd-code": "EKD as released (KD4eModel's effective loss: evidential CE + KD at T 1 + MSE between logits), "
                "which produced the published numbers",
    "ekd": "EKD's evidential terms (the paper's formulation: evidential CE + first-order KL + Dirichlet KL), which "
           "the released code computes and then overwrites",
    "figkd": "FiGKD as Eq. 7: ce 1 + figkd 2 (Haar, J = 1, high subbands, MSE)",
    "mlkd+figkd": "FiGKD on the MLKD base (Table 10's reading): mlkd 1 + figkd 2",
    "dist": "DIST (authors' CIFAR-100 recipe: ce 1 + dist 2, tau 4)",
    "fitnet": "FitNet (mdistiller's setting: ce 1 + fitnet 100, hint layer 2, ConvReg connector)",
    "at": "AT (mdistiller's setting: ce 1 + at 1000, p 2)",
}


def dml_header(cell: str, teacher: str, student: str) -> list[str]:
    return [f"{cell} (the {student} peer)",
            f"Variant: DML (Zhang et al. CVPR 2018; preset dml: ce 1 + the KL to the other peer at T 1): {teacher} and "
            f"{student} trained together from scratch as peers (no pre-trained teacher), one forward each per step; "
            f"the cell is the {student} peer's accuracy.",
            "Substituted (no official setting exists for CIFAR-100 or these models): the official code, "
            "YingZhangDUT/Deep-Mutual-Learning (TensorFlow), has only a Market-1501 person re-identification setting "
            "(two MobileNets, scripts/train_dml_mobilenet_on_market.sh); here the loss is the paper's Eq. 10 for two "
            "peers and the recipe FiGKD's, and both peers' forwards are computed once per step instead of "
            "Algorithm 1's peer-by-peer update (docs/method.md, DML).",
            figkd_recipe_line(student) + f" The {teacher} peer: lr {default_lr(teacher):g} (its default_lr)."]


def takd_files(where: str, cell: str, dataset: str, teacher: str, student: str) -> dict[str, str]:
    """TAKD's two configs of a pair: the assistant distilled from the teacher by KD, then the student from the
    assistant (its teacher checkpoint is the assistant's run directory: a sweep runs the assistant first)."""
    assistant, why = TAKD_ASSISTANTS[(teacher, student)]
    a_path = f"{where}/{TAKD_ASSISTANT_VARIANT}.yaml"
    kd = "mdistiller's KD: ce 0.1 + kd 0.9, T 4"
    a_run = distill_out(dataset, teacher, assistant, "kd")
    other = distill_out(dataset, teacher, "A", "kd")
    substituted = ("Substituted (TAKD publishes no setting for these pairs: imirzadeh/Teacher-Assistant-Knowledge-"
                   "Distillation searches T and lambda per pair with NNI and trains ResNets and plain CNNs): "
                   f"{kd} at both steps, FiGKD's recipe, and the assistant chosen by a size rule (TAKD_ASSISTANTS in "
                   "figkd.experiments.paper_configs).")
    override = (f"Another assistant A: in {TAKD_ASSISTANT_VARIANT}.yaml set student: A and out: {other}; in "
                f"{TAKD_VARIANT}.yaml set teacher: A and teacher_ckpt: {other} (or --set the same on the command "
                "line; and the student's out, if a run from the default assistant is there). figkd sweep runs the "
                "assistant first (the teacher_ckpt link); figkd report puts the student's run in this TAKD cell, "
                "flagged with its assistant.")
    a_header = [f"{cell}; this config: its teacher assistant (step 1 of 2)",
                f"Variant: TAKD step 1: the assistant {assistant} distilled from {teacher} ({kd}). Assistant: {why}.",
                substituted, override, figkd_recipe_line(assistant)]
    s_header = [cell,
                f"Variant: TAKD step 2: {student} distilled from the assistant {assistant} ({kd}), which "
                f"configs/paper/{a_path} trains from {teacher} into {a_run} (assistant: {why}).",
                substituted, override, figkd_recipe_line(student)]
    a_out = (a_run, distill_out(dataset, teacher, assistant, "kd", fp32=True))
    return {a_path: distill_yaml(dataset, teacher, assistant, "kd", "kd", a_header),
            f"{where}/{TAKD_VARIANT}.yaml": distill_yaml(
                dataset, assistant, student, TAKD_VARIANT, "kd", s_header,
                teacher_from=(f"configs/paper/{a_path}", *a_out), out_pair=(teacher, student))}


def generate(rows: list[dict] | None = None) -> dict[str, str]:
    """Every config as {relative path: file text}.

    ``rows``: the reported top-1 of Tables 1-9 (:func:`figkd.paper.read_reported_top1`; default: the paper's,
    installed with figkd), whose cells get a config per implemented method.
    """
    rows = read_reported_top1() if rows is None else rows
    copied = copied_cells(rows)  # cells whose printed number is another pair's (a copy error of the paper)
    files: dict[str, str] = {}
    reported = {(r["table"], r["dataset"], r["teacher"], r["student"], r["method"]): r["top1"] for r in rows}
    tables_datasets: dict[str, set] = defaultdict(set)
    for r in rows:
        tables_datasets[r["table"]].add(r["dataset"])

    # Models trained alone: teachers first (a model that is a teacher on a dataset is not also a student).
    alone: dict[tuple[str, str, str], list[str]] = defaultdict(list)  # (role, dataset, model) -> cells
    for r in rows:
        if r["method"] not in ("teacher", "student"):
            continue
        model = r["teacher"] if r["method"] == "teacher" else r["student"]
        cell = (f"Table {table_number(r['table'])} ({r['dataset']}), {r['method']} {model} of pair "
                f"{r['teacher']} -> {r['student']}: top-1 {_fmt(r['top1'])}")
        alone[(r["method"], r["dataset"], model)].append(cell)
    teachers = {(d, m) for role, d, m in alone if role == "teacher"}
    merged: dict[tuple[str, str], tuple[str, list[str]]] = {}
    for (_role, dataset, model), cells in sorted(alone.items(), key=lambda kv: (kv[0][0] != "teacher", kv[0])):
        key = (dataset, model)
        kind = "teachers" if key in teachers else "students"
        prev = merged.get(key, (kind, []))
        merged[key] = (kind, prev[1] + cells)
    for (dataset, model), (kind, cells) in sorted(merged.items()):
        header = [f"figkd train: {model} alone on {dataset} (the paper's recipe: RunConfig defaults).",
                  figkd_recipe_line(model),
                  "Run: figkd train --config <this file>   (seeds 1, 2: add --set seed=1 / --set seed=2)",
                  f"Run directory: {teacher_run_dir(dataset, model)} (ends in -s1, -s2 for the other seeds).",
                  *fp32_lines("train", teacher_run_dir(dataset, model, fp32=True)),
                  "Paper, reported top-1 (%):"] + [f"  {c}" for c in cells]
        files[f"{kind}/{dataset}/{model}.yaml"] = train_yaml(dataset, model, header)

    # Tables 1-9: every distillation cell of an implemented method.
    cells = sorted({(r["table"], r["dataset"], r["teacher"], r["student"]) for r in rows},
                   key=lambda c: (int(table_number(c[0])), c[1], c[2], c[3]))
    for table, dataset, teacher, student in cells:
        multi = len(tables_datasets[table]) > 1
        for method, variants in METHODS.items():
            top1 = reported.get((table, dataset, teacher, student, method))
            if top1 is None and not (method == "DIST" and table in DIST_TABLES):
                continue
            for base_variant in variants:
                objective = _objective_for(base_variant, dataset, teacher, student)
                note = _VARIANT_NOTE.get(base_variant, f"{method} (preset {base_variant!r})")
                if base_variant in FEATURE_PRESET_SOURCE:
                    note = f"{method} ({feature_note(base_variant, dataset, teacher, student)}"
                feature = feature_variant(base_variant, dataset, teacher, student)
                if feature is not None:
                    objective, note = feature
                if base_variant == "dkd" and not isinstance(objective, str):
                    note = f"DKD with mdistiller's per-pair beta {objective[1]['beta']} (preset beta: 8)"
                if base_variant == "at" and not isinstance(objective, str):
                    note = ("AT (mdistiller's setting: ce 1 + at 1000, p 2) with stages 'first': mdistiller's pairing, "
                            "its zip of feats[1:], which here pairs maps of different resolutions (ResNet18's 56, 28 "
                            "and 14 px stages with MobileNetV1's 28, 14 and 7 px; ResNet18's 7 px stage unused), "
                            "because mdistiller's MobileNetV1 lists no stem and ResNet18 does. Kept as the published "
                            "numbers were most likely produced with it (INDEX_PAIRED in "
                            "figkd.experiments.paper_configs); by resolution: stages 'last'")
                if base_variant == "fitnet" and not isinstance(objective, str):
                    note = ("FitNet (mdistiller's setting: ce 1 + fitnet 100, ConvReg connector) with hint layer 2 on "
                            "both sides, as mdistiller indexes them: ResNet18's 128 x 28 x 28 stage against "
                            "MobileNetV1's 512 x 14 x 14 (a stride-2 connector), because mdistiller's MobileNetV1 "
                            "lists no stem and ResNet18 does. Kept as the published numbers were most likely "
                            "produced with it (INDEX_PAIRED in figkd.experiments.paper_configs); by resolution: "
                            "teacher_hint_layer 1 (256 x 28 x 28)")
                if base_variant in ("fitnet", "at") and dataset != "cifar100":
                    note += ". mdistiller publishes this setting for CIFAR-100 only; it is used here unchanged"
                if base_variant in ("ekd", "ekd-code") and not isinstance(objective, str):
                    file, lamb, kd_w, ekd_w, warmup = EKD_CIFAR100[(teacher, student)]
                    cat = EKD_CAT_KD.get((teacher, student)) if base_variant == "ekd-code" else None
                    if cat is not None:
                        note = ("EKD as released for this pair, which produced the published number: the pair's config "
                                "selects EKD's CAT_KD distiller "
                                "(mdistiller/distillers/CAT_KD.py), whose loss is the evidential terms as the paper "
                                "writes them (evidential CE + first-order KL + Dirichlet KL, nothing overwritten) "
                                f"plus {cat[0]:g} x CAT-KD's loss on the last stage's maps (feats[-1] of the "
                                f"unconverted models, not CAMs), pooled to {cat[1]}x{cat[1]}, "
                                f"{'' if cat[2] else 'not '}normalised (term cat_kd_feats)")
                    note += (f"; this pair's setting ({EKD_SOURCE.format(file)}): lamb {lamb}, T 1, KD weight {kd_w}, "
                             f"EKD weight {ekd_w}" + (f", Dirichlet warm-up {warmup} epochs"
                                                      if base_variant == "ekd" or cat is not None else ""))
                cell = (f"Paper Table {table_number(table)} ({dataset}), {teacher} -> {student}, {method}: "
                        f"reported top-1 {_fmt(top1)}")
                if (table, dataset, teacher, student, method) in copied:
                    cell += f" - but {copied[(table, dataset, teacher, student, method)].note()}"
                where = pair_dir(table, dataset, teacher, student, multi)
                if base_variant in PEER_VARIANTS:
                    files[f"{where}/{base_variant}.yaml"] = peers_yaml(dataset, teacher, student, base_variant,
                                                                       base_variant, dml_header(cell, teacher, student))
                    continue
                if base_variant == TAKD_VARIANT:
                    files.update(takd_files(where, cell, dataset, teacher, student))
                    continue
                for variant, recipe, recipe_line, extra in baseline_variants(base_variant, dataset, teacher,
                                                                             student):
                    header = [cell, f"Variant: {note}{extra}.", recipe_line]
                    path = f"{where}/{variant}.yaml"
                    files[path] = distill_yaml(dataset, teacher, student, variant, objective, header, recipe)

    # Table 10: MLKD base (the baseline row is MLKD's cell of Tables 1-4: on MLKD's recipe where published,
    # with its FiGKD-recipe copy as the same-recipe baseline of the other rows), and the Eq. 7 base.
    for label, base_variant, objective, values in TABLE10:
        for (dataset, (teacher, student)), top1 in values.items():
            for variant, recipe, recipe_line, extra in baseline_variants(base_variant, dataset, teacher, student):
                header = [f"Paper Table 10 (frequency effect, {dataset}), {teacher} -> {student}, row "
                          f"'{label}': reported top-1 {_fmt(top1)}",
                          "Base: MLKD (the row without frequency terms equals MLKD's cells of Tables 1-4)"
                          f"{extra}.",
                          recipe_line]
                path = f"table10/{dataset}/{teacher}-{student}/{variant}.yaml"
                files[path] = distill_yaml(dataset, teacher, student, variant, objective, header, recipe)
    for label, variant, objective, values in TABLE10_EQ7:
        for (dataset, (teacher, student)), top1 in values.items():
            alone = merged_path(merged, dataset, student)
            header = [f"Paper Table 10 (frequency effect, {dataset}), {teacher} -> {student}, row "
                      f"'{label}': reported top-1 {_fmt(top1)} (measured on the MLKD base)",
                      f"Base: Eq. 7 (ce 1 + figkd 2); this base's 'Low x, High x' row is the student alone: "
                      f"configs/paper/{alone}.",
                      figkd_recipe_line(student)]
            path = f"table10/{dataset}/{teacher}-{student}/{variant}.yaml"
            files[path] = distill_yaml(dataset, teacher, student, variant, objective, header)

    # Tables 11-13 and 16, on both bases.
    for table, (what, table_rows) in ABLATIONS.items():
        for label, suffix, options, values in table_rows:
            for base_name, base in (("figkd", CE), ("mlkd+figkd", MLKD)):
                variant = base_name + suffix
                objective = [dict(base), _figkd(**options)] if options else base_name
                base_text = ("Eq. 7 (ce 1 + figkd 2)" if base is CE
                             else "MLKD (mlkd 1 + figkd 2, Table 10's reading)")
                for (dataset, (teacher, student)), top1 in values.items():
                    header = [f"Paper Table {table_number(table)} ({what}, {dataset}), {teacher} -> {student}, "
                              f"row '{label}': reported top-1 {_fmt(top1)}",
                              f"Base: {base_text}.",
                              figkd_recipe_line(student)]
                    path = f"{table}/{teacher}-{student}/{variant}.yaml"
                    files[path] = distill_yaml(dataset, teacher, student, variant, objective, header)
    # Fig. 4: the loss-weight grid (Eq. 7 with other weights).
    teacher, student = FIG4_PAIR
    for dataset in FIG4_DATASETS:
        for variant, alpha, beta in fig4_points():
            objective = "figkd" if variant == "figkd" else [{"term": "ce", "weight": alpha},
                                                             {"term": "figkd", "weight": beta}]
            header = [f"Paper Fig. 4 (loss-weight sensitivity, {dataset}), {teacher} -> {student}: CE weight alpha "
                      f"{alpha:g}, detail weight beta {beta:g}; reported top-1 only drawn in the figure",
                      "Grid: figkd's choice (alpha 0.5-4 at beta 2, beta 0.5-8 at alpha 1); the values the paper "
                      "swept were lost in the text extraction. Plot: figkd analyze sensitivity runs/",
                      figkd_recipe_line(student)]
            path = f"fig4/{dataset}/{teacher}-{student}/{variant}.yaml"
            files[path] = distill_yaml(dataset, teacher, student, variant, objective, header)
    return files


def merged_path(merged: dict, dataset: str, model: str) -> str:
    """``teachers/<dataset>/<model>.yaml`` or ``students/...``: where the model trained alone is."""
    kind, _ = merged[(dataset, model)]
    return f"{kind}/{dataset}/{model}.yaml"


def generated_dirs(files: dict[str, str]) -> list[str]:
    return sorted({p.split("/", 1)[0] for p in files})


#: The line every generated config has; only files with it are ever removed.
GENERATED_MARK = "# Run: figkd "


def _is_generated(path: Path) -> bool:
    return path.suffix == ".yaml" and any(line.startswith(GENERATED_MARK) for line in path.read_text().splitlines())


def _remove_generated(folder: Path) -> None:
    """Remove the configs this script wrote under ``folder`` (and folders left empty); refuse (SystemExit)
    when the folder holds anything else, which this script did not write and never deletes."""
    files = [p for p in folder.rglob("*") if not p.is_dir()]
    foreign = [p for p in files if not _is_generated(p)]
    if foreign:
        raise SystemExit(f"generate.py: {folder} holds files this script did not write (e.g. {foreign[0]}); "
                         "it deletes nothing it did not write: choose another --out")
    for p in files:
        p.unlink()
    for d in sorted((p for p in folder.rglob("*") if p.is_dir()), key=lambda p: len(p.parts), reverse=True):
        d.rmdir()
    folder.rmdir()


def write(out: Path) -> int:
    files = generate()
    for d in generated_dirs(files):
        if (out / d).is_dir():
            _remove_generated(out / d)
    for rel, text in sorted(files.items()):
        path = out / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return len(files)


def main(argv: list[str] | None = None, default_out: Path | None = None) -> int:
    """The command line of ``configs/paper/generate.py`` (``default_out``: its folder)."""
    p = argparse.ArgumentParser(description="Write every config of configs/paper/ from the paper's reported numbers "
                                            "and ablation definitions.")
    p.add_argument("--out", type=Path, default=default_out, required=default_out is None,
                   help=f"folder to write into (default: {default_out})")
    args = p.parse_args(argv)
    n = write(args.out)
    print(f"wrote {n} configs under {args.out}")
    return 0
