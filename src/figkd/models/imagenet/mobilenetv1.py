"""ImageNet-style MobileNetV1 (width 1) for 224x224 inputs: ``mobilenetv1_imagenet``.

Architecture and parameter names follow megvii-research/mdistiller
``mdistiller/models/imagenet/mobilenetv1.py``, whose ImageNet teacher/student weights load unchanged:
``model.0`` is a 3x3 stride-2 conv-BN-ReLU, ``model.1..13`` are depthwise-separable blocks (conv-BN-
ReLU-conv-BN-ReLU), ``model.14`` the average pooling (a fixed ``AvgPool2d(7)`` in the reference,
adaptive here, the same at 224x224) and ``fc`` the classifier.

Features follow mdistiller: the outputs of ``model.3``, ``model.5``, ``model.11`` and ``model.13``
(128, 256, 512, 1024 channels) before their last ReLU (``preact_feats``) and after it (``feats``);
the stem is not among them.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..base import FeatureModel, make_features


def conv_bn(inp: int, oup: int, stride: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(inp, oup, 3, stride, 1, bias=False), nn.BatchNorm2d(oup), nn.ReLU(inplace=True)
    )


def conv_dw(inp: int, oup: int, stride: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(inp, inp, 3, stride, 1, groups=inp, bias=False),
        nn.BatchNorm2d(inp),
        nn.ReLU(inplace=True),
        nn.Conv2d(inp, oup, 1, 1, 0, bias=False),
        nn.BatchNorm2d(oup),
        nn.ReLU(inplace=True),
    )


# (in, out, stride) of the depthwise-separable blocks model.1 .. model.13 (mdistiller's MobileNetV1).
_BLOCKS = [
    (32, 64, 1),
    (64, 128, 2),
    (128, 128, 1),
    (128, 256, 2),
    (256, 256, 1),
    (256, 512, 2),
    (512, 512, 1),
    (512, 512, 1),
    (512, 512, 1),
    (512, 512, 1),
    (512, 512, 1),
    (512, 1024, 2),
    (1024, 1024, 1),
]
# Indices in ``model`` whose outputs are stage features (mdistiller's forward).
_STAGE_ENDS = (3, 5, 11, 13)


def _without_last_relu(block: nn.Sequential, x: Tensor) -> Tensor:
    last = len(block) - 1
    for index, layer in enumerate(block):
        if index < last:
            x = layer(x)
    return x


class MobileNetV1(FeatureModel):
    classifier_name = "fc"

    def __init__(self, num_classes: int):
        super().__init__()
        self.model = nn.Sequential(
            conv_bn(3, 32, 2),
            *[conv_dw(inp, oup, stride) for inp, oup, stride in _BLOCKS],
            nn.AdaptiveAvgPool2d(1),
        )
        self.fc = nn.Linear(1024, num_classes)
        self.stage_channels = (128, 256, 512, 1024)
        self.feature_dim = 1024
        # mdistiller leaves PyTorch's default initialisation; so does this module.

    def forward(self, x: Tensor, return_features: bool = False):
        if not return_features:
            return self.fc(torch.flatten(self.model(x), 1))
        feats, preacts = [], []
        for index, layer in enumerate(self.model):
            if index in _STAGE_ENDS:
                preact = _without_last_relu(layer, x)
                x = F.relu(preact)
                preacts.append(preact)
                feats.append(x)
            else:
                x = layer(x)
        pooled = torch.flatten(x, 1)
        return self.fc(pooled), make_features(feats, preacts, pooled, feats[-1])

    def get_bn_before_relu(self) -> list[nn.BatchNorm2d]:
        """The last BatchNorm of ``model.5``, ``model.11`` and ``model.13`` (``preact_feats[1:]``; mdistiller
        lists ``model.3``'s too, which its OFD, reading ``preact_feats[1:]``, would misalign)."""
        return [self.model[i][-2] for i in _STAGE_ENDS[1:]]


def mobilenetv1_imagenet(num_classes: int) -> MobileNetV1:
    return MobileNetV1(num_classes)
