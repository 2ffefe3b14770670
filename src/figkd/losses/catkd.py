"""CAT-KD: class attention transfer (Guo et al., CVPR 2023), as in GzyAftermath/CAT-KD.

The class activation maps (CAMs) of both models - each class's classifier weights applied at every
position of the map before the global pooling, without the bias (`figkd.models.base.
class_activation_maps`; CAT-KD's converted ``*_test`` models compute them with a bias-free 1x1
``conv_test`` before the pooling) - are average-pooled to ``pool_size`` x ``pool_size``, optionally
L2-normalised over the spatial positions of each (sample, class), and compared by a mean squared error:

    L_cat = mean((n(pool(CAM_s)) - n(pool(CAM_t)))^2)        (``CAT_loss`` in
                                                              ``mdistiller/distillers/CAT_KD.py``)

CIFAR-100 setting: the authors publish one config per pair (``configs/cifar100/CAT_KD/*.yaml``), whose
values differ from their ``mdistiller/engine/cfg.py`` defaults (weight 400, 2x2, normalised). The
``cat_kd`` preset is the resnet32x4 -> resnet8x4 config (``res32x4_res8x4.yaml``): CAT weight 15, 2x2,
no normalisation, CE weight 1; `CIFAR100_PAIRS` holds every pair's.

The student's classifier is bias-free, as in CAT-KD: its ``tools/train.py`` (with ``if_test: True``, set by
every ``configs/cifar100/CAT_KD/*.yaml``) builds the *student* as the converted ``<name>_test`` model, whose
classifier is the bias-free 1x1 ``conv_test`` before the pooling (``mdistiller/models/cifar/*.py``), so its
logits are the pooled CAMs, ``W mean(f)``, without a bias. The term's option ``student_classifier_bias``
(default false: CAT-KD's setting) does the same to a figkd student when the Learner is built
(:meth:`CATKD.prepare_student`): the bias of its ``nn.Linear`` is set to zero and frozen (no gradient, not
given to the optimizer), so its logits equal a bias-free linear layer's at every step while its weights keep
the model's parameter names (the exported weights load into the plain model). ``student_classifier_bias:
true`` keeps the trained bias (figkd's behaviour before issue 22). The teacher's bias is dropped by the
conversion in CAT-KD and absent from its CAMs here alike.

`CATKDFeats` (``cat_kd_feats``) is the same loss on the last stage's maps instead of CAMs: what
lyxiang-casia/EKD's ``CAT_KD`` distiller computes (``mdistiller/distillers/CAT_KD.py``, commit fb65a7e), with
mdistiller's unconverted models, whose ``feats[-1]`` is the last stage's output, for the EKD cell
vgg13 -> vgg8 (``configs/cifar100/ekd/model/vgg13_vgg8.yaml``: weight 4.5, 2x2, not normalised).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ._common import check_features, full_precision
from .registry import register_term

#: GzyAftermath/CAT-KD ``configs/cifar100/CAT_KD/<file>``: (teacher, student) -> (file, CAT weight,
#: CAM resolution after pooling, normalisation). CE weight 1 and FiGKD's recipe (batch 64, 240 epochs,
#: lr 0.05, 0.01 for ShuffleNet/MobileNetV2 students) in every file.
CIFAR100_PAIRS: dict[tuple[str, str], tuple[str, float, int, bool]] = {
    ("resnet110", "resnet32"): ("res110_res32.yaml", 1.8, 2, False),
    ("resnet32x4", "resnet8x4"): ("res32x4_res8x4.yaml", 15.0, 2, False),
    ("resnet32x4", "shufflenetv1"): ("res32x4_shuv1.yaml", 600.0, 4, True),
    ("resnet32x4", "shufflenetv2"): ("res32x4_shuv2.yaml", 600.0, 4, True),
    ("resnet50", "mobilenetv2"): ("res50_mv2.yaml", 40.0, 2, True),
    ("resnet56", "resnet20"): ("res56_res20.yaml", 0.7, 2, False),
    ("vgg13", "mobilenetv2"): ("vgg13_mv2.yaml", 15.0, 2, True),
    ("vgg13", "vgg8"): ("vgg13_vgg8.yaml", 4.5, 2, False),
    ("wrn_40_2", "shufflenetv1"): ("wrn40_2_shuv1.yaml", 80.0, 4, True),
    ("wrn_40_2", "wrn_16_2"): ("wrn_40_2_wrn_16_2.yaml", 12.0, 2, False),
    ("wrn_40_2", "wrn_40_1"): ("wrn_40_2_wrn_40_1.yaml", 1.5, 2, False),
}


def _check(pool_size, normalize) -> None:
    if isinstance(pool_size, bool) or not isinstance(pool_size, int) or pool_size < 1:
        raise ValueError(f"CAT-KD: pool_size must be a positive integer, got {pool_size!r}")
    if not isinstance(normalize, bool):
        raise ValueError(f"CAT-KD: normalize must be true or false, got {normalize!r}")


@full_precision
def cat_kd_loss(student_cams: torch.Tensor, teacher_cams: torch.Tensor, pool_size: int = 2,
                normalize: bool = False) -> torch.Tensor:
    """CAT-KD's class attention transfer loss (see the module docstring).

    Args:
        student_cams: (B, C, H, W) student class activation maps.
        teacher_cams: (B, C, H', W') teacher class activation maps (detached here); spatial sizes may
            differ, both are pooled to ``pool_size`` x ``pool_size``.
        pool_size: the CAM resolution after adaptive average pooling (``CAM_RESOLUTION``).
        normalize: L2-normalise each pooled map over its positions (``IF_NORMALIZE``; eps 1e-12).

    Raises ValueError for different batch or class counts, or an empty batch. Computed in float32 or wider.
    """
    _check(pool_size, normalize)
    check_features(student_cams, teacher_cams, name="cat_kd_loss", inputs=("student_cams", "teacher_cams"))
    if student_cams.ndim != 4 or student_cams.shape[:2] != teacher_cams.shape[:2]:
        raise ValueError(f"cat_kd_loss: student CAMs {tuple(student_cams.shape)} and teacher CAMs "
                         f"{tuple(teacher_cams.shape)} must be (B, C, H, W) with the same B and C")
    s = F.adaptive_avg_pool2d(student_cams, pool_size)
    t = F.adaptive_avg_pool2d(teacher_cams.detach(), pool_size)
    if normalize:
        s, t = F.normalize(s, dim=(2, 3)), F.normalize(t, dim=(2, 3))
    return F.mse_loss(s, t)


@register_term("cat_kd", inputs=("student_cams", "teacher_cams"), function=cat_kd_loss,
               source="Guo et al. CVPR 2023; GzyAftermath/CAT-KD mdistiller/distillers/CAT_KD.py (defaults: "
                      "configs/cifar100/CAT_KD/res32x4_res8x4.yaml; bias-free student: tools/train.py if_test)",
               help="class attention transfer: MSE between the pooled class activation maps",
               presets={
                   # CAT-KD, resnet32x4 -> resnet8x4: GzyAftermath/CAT-KD configs/cifar100/CAT_KD/res32x4_res8x4.yaml
                   # (CAT_loss_weight 15, CAM_RESOLUTION 2, IF_NORMALIZE False: the term's defaults, CE_WEIGHT 1);
                   # other pairs differ (figkd.losses.catkd.CIFAR100_PAIRS).
                   "cat_kd": [{"term": "ce"}, {"term": "cat_kd", "weight": 15.0}],
               })
class CATKD(nn.Module):
    """The CAT-KD term: ``cat_kd_loss(student_cams, teacher_cams, pool_size, normalize)``. It has no
    trainable part: the student's CAMs come from its own classifier (the vocabulary's ``student_cams``).

    ``student_classifier_bias``: false (CAT-KD's converted student) makes the student's classifier bias-free
    when the Learner is built (:meth:`prepare_student`); true leaves it as the model has it.
    """

    def __init__(self, pool_size: int = 2, normalize: bool = False, student_classifier_bias: bool = False) -> None:
        super().__init__()
        _check(pool_size, normalize)
        if not isinstance(student_classifier_bias, bool):
            raise ValueError(f"CAT-KD: student_classifier_bias must be true or false, got {student_classifier_bias!r}")
        self.pool_size = pool_size
        self.normalize = normalize
        self.student_classifier_bias = student_classifier_bias

    def prepare_student(self, model: nn.Module) -> None:
        """Called once by the engine with the student before training (`figkd.engine.learner.build_learner`):
        without ``student_classifier_bias``, the bias of the student's classifier (``model.get_classifier()``)
        is set to zero and frozen, so that the logits are ``pooled @ W.T`` as with CAT-KD's bias-free
        ``conv_test``. Raises ValueError for a model without ``get_classifier``."""
        if self.student_classifier_bias:
            return
        get_classifier = getattr(model, "get_classifier", None)
        if get_classifier is None:
            raise ValueError(f"CAT-KD makes the student's classifier bias-free (student_classifier_bias: false), but "
                             f"{type(model).__name__} has no get_classifier(); set student_classifier_bias: true")
        bias = get_classifier().bias
        if bias is not None:
            with torch.no_grad():
                bias.zero_()
            bias.requires_grad_(False)

    def forward(self, student_cams: torch.Tensor, teacher_cams: torch.Tensor) -> torch.Tensor:
        return cat_kd_loss(student_cams, teacher_cams, self.pool_size, self.normalize)

    def extra_repr(self) -> str:
        return (f"pool_size={self.pool_size}, normalize={self.normalize}, "
                f"student_classifier_bias={self.student_classifier_bias}")


def cat_kd_feats_loss(student_feats: list[torch.Tensor], teacher_feats: list[torch.Tensor], pool_size: int = 2,
                      normalize: bool = False) -> torch.Tensor:
    """CAT-KD's loss on the last stage's maps, as EKD's vgg13 -> vgg8 distiller computes it:
    ``cat_kd_loss(student_feats[-1], teacher_feats[-1], pool_size, normalize)``.

    Args:
        student_feats, teacher_feats: the stage lists (each ``(B, C, H, W)``; the last stages need the same C).
        pool_size, normalize: as `cat_kd_loss` (lyxiang-casia/EKD configs/cifar100/ekd/model/vgg13_vgg8.yaml:
            CAM_RESOLUTION 2, IF_NORMALIZE False).
    """
    return cat_kd_loss(student_feats[-1], teacher_feats[-1], pool_size, normalize)


@register_term("cat_kd_feats", inputs=("student_feats", "teacher_feats"), function=cat_kd_feats_loss,
               source="lyxiang-casia/EKD mdistiller/distillers/CAT_KD.py, commit fb65a7e (CAT_loss on feats[-1] of "
                      "the unconverted models; defaults: configs/cifar100/ekd/model/vgg13_vgg8.yaml)",
               help="CAT-KD's loss on the last stage's maps (not CAMs): EKD's vgg13 -> vgg8 distiller")
class CATKDFeats(nn.Module):
    """CAT-KD's loss on the last stage's maps: ``cat_kd_loss(student_feats[-1], teacher_feats[-1], pool_size,
    normalize)`` (see the module docstring). Both last stages need the same number of channels (checked at
    build time when the context knows both models)."""

    @classmethod
    def from_context(cls, context, pool_size: int = 2, normalize: bool = False) -> CATKDFeats:
        if context.student is not None and context.teacher is not None:
            s, t = context.student.feats[-1][0], context.teacher.feats[-1][0]
            if s != t:
                raise ValueError(f"cat_kd_feats compares the last stages channel by channel, but the student's has "
                                 f"{s} channels and the teacher's {t}")
        return cls(pool_size, normalize)

    def __init__(self, pool_size: int = 2, normalize: bool = False) -> None:
        super().__init__()
        _check(pool_size, normalize)
        self.pool_size = pool_size
        self.normalize = normalize

    def forward(self, student_feats: list[torch.Tensor], teacher_feats: list[torch.Tensor]) -> torch.Tensor:
        return cat_kd_feats_loss(student_feats, teacher_feats, self.pool_size, self.normalize)

    def extra_repr(self) -> str:
        return f"pool_size={self.pool_size}, normalize={self.normalize}"
