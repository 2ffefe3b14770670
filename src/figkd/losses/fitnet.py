"""FitNets: hints for thin deep nets (Romero et al., ICLR 2015), as in mdistiller.

mdistiller (``mdistiller/distillers/FitNet.py``): the student's feature at the hint layer goes through
a trainable connector (`figkd.losses.connectors.ConvReg`, sized from the student's and the teacher's
feature shapes at that layer) and is pulled to the teacher's feature with a mean squared error:

    L_fitnet = mean((ConvReg(f_s[h]) - f_t[h])^2)

CIFAR-100 setting (``mdistiller/engine/cfg.py``, ``CFG.FITNET``): hint layer 2 (index into
``features["feats"]``, stem = 0), feature weight 100, CE weight 1 (the ``fitnet`` preset).

mdistiller indexes both feature lists with the same ``HINT_LAYER``, so where the lists are built differently
the hint pairs maps of different resolutions: ImageNet-style MobileNetV1's list has no stem entry and
ResNet18's has, so at 224x224 hint layer 2 pairs ResNet18's 128 x 28 x 28 with MobileNetV1's 512 x 14 x 14
(the connector's convolution has stride 2). ``teacher_hint_layer`` (default: ``hint_layer``, mdistiller's
rule) names the teacher's entry separately: 1 pairs that student map with MobileNetV1's 256 x 28 x 28.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ._common import check_features, full_precision, require_stage_lists
from .connectors import ConvReg
from .registry import register_term


@full_precision
def fitnet_loss(student_hint: torch.Tensor, teacher_hint: torch.Tensor) -> torch.Tensor:
    """Mean squared error between the (connected) student hint and the teacher's feature.

    Args:
        student_hint: (B, C, H, W) student feature after the connector (differentiated).
        teacher_hint: (B, C, H, W) teacher feature at the hint layer (detached here).

    Raises ValueError if the shapes differ or the batch is empty. Computed in float32 or wider.
    """
    check_features(student_hint, teacher_hint, name="fitnet_loss")
    if student_hint.shape != teacher_hint.shape:
        raise ValueError(f"fitnet_loss: the connected student feature {tuple(student_hint.shape)} and the teacher "
                         f"feature {tuple(teacher_hint.shape)} differ in shape")
    return F.mse_loss(student_hint, teacher_hint.detach())


@register_term("fitnet", inputs=("student_feats", "teacher_feats"), function=fitnet_loss,
               source="Romero et al. ICLR 2015; mdistiller/distillers/FitNet.py and _common.py ConvReg "
                      "(hint layer 2: mdistiller/engine/cfg.py CFG.FITNET)",
               help="FitNet: MSE between the student's hint-layer feature (through a trained connector) and "
                    "the teacher's",
               presets={
                   # mdistiller CIFAR-100 FitNet: CFG.FITNET.HINT_LAYER 2 (the term's default), LOSS.CE_WEIGHT 1,
                   # LOSS.FEAT_WEIGHT 100 (mdistiller/engine/cfg.py; mdistiller/distillers/FitNet.py).
                   "fitnet": [{"term": "ce"}, {"term": "fitnet", "weight": 100.0}],
               })
class FitNet(nn.Module):
    """The FitNet term: ``fitnet_loss(connector(student_feats[hint_layer]), teacher_feats[teacher_hint_layer])``
    (``teacher_hint_layer`` None: ``hint_layer``, as mdistiller).

    Built from a `figkd.losses.BuildContext` with both models' feature shapes; the connector is
    ``self.connector`` (a `ConvReg`), trained with the student.
    """

    @classmethod
    def from_context(cls, context, hint_layer: int = 2, teacher_hint_layer: int | None = None) -> FitNet:
        student, teacher = context.require("fitnet", "student", "teacher")
        if teacher_hint_layer is None:  # one index into both lists (mdistiller)
            checks = [("hint_layer", hint_layer, min(len(student.feats), len(teacher.feats)))]
        else:
            checks = [("hint_layer", hint_layer, len(student.feats)),
                      ("teacher_hint_layer", teacher_hint_layer, len(teacher.feats))]
        for name, value, n in checks:
            if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < n:
                raise ValueError(f"{name} must be an index into the stage features, 0..{n - 1}, got {value!r}")
        t_hint = hint_layer if teacher_hint_layer is None else teacher_hint_layer
        return cls(student.feats[hint_layer], teacher.feats[t_hint], hint_layer, teacher_hint_layer)

    def __init__(self, student_shape, teacher_shape, hint_layer: int = 2,
                 teacher_hint_layer: int | None = None) -> None:
        super().__init__()
        self.hint_layer = hint_layer
        self.teacher_hint_layer = hint_layer if teacher_hint_layer is None else teacher_hint_layer
        self.connector = ConvReg(student_shape, teacher_shape)

    def forward(self, student_feats: list[torch.Tensor], teacher_feats: list[torch.Tensor]) -> torch.Tensor:
        require_stage_lists("FitNet", student_feats=student_feats, teacher_feats=teacher_feats)
        return fitnet_loss(self.connector(student_feats[self.hint_layer]), teacher_feats[self.teacher_hint_layer])

    def extra_repr(self) -> str:
        return f"hint_layer={self.hint_layer}, teacher_hint_layer={self.teacher_hint_layer}"
