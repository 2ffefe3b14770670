"""The "MobileNetV2" of the KD literature: expansion 6, width 0.5 (registry name ``mobilenetv2``).

Architecture, initialisation and parameter names follow HobbitLong/RepDistiller
``models/mobilenetv2.py`` (``mobile_half``; kept in megvii-research/mdistiller
``mdistiller/models/cifar/mobilenetv2.py``): a 3x3 stride-2 stem ``conv1``, seven groups of inverted
residuals ``blocks.0..6`` (each block's layers under ``.conv``), a 1x1 ``conv2`` to 1280 channels,
average pooling and ``classifier.0`` (a Linear inside a Sequential). The reference pools with a fixed
``AvgPool2d`` sized for 32x32 inputs; the pooling here is adaptive, which is the same at 32x32.

Stage features follow mdistiller: the stem output, then the outputs of ``blocks[1]``, ``blocks[2]``,
``blocks[4]`` and ``blocks[6]``. Those four are outputs of linear bottlenecks (no ReLU follows), so
they are already pre-activation values: ``preact_feats`` is the same list as ``feats``.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ..base import FeatureModel, make_features


def conv_bn(inp: int, oup: int, stride: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(inp, oup, 3, stride, 1, bias=False), nn.BatchNorm2d(oup), nn.ReLU(inplace=True)
    )


def conv_1x1_bn(inp: int, oup: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(inp, oup, 1, 1, 0, bias=False), nn.BatchNorm2d(oup), nn.ReLU(inplace=True))


class InvertedResidual(nn.Module):
    def __init__(self, inp: int, oup: int, stride: int, expand_ratio: int):
        super().__init__()
        hidden = inp * expand_ratio
        self.use_res_connect = stride == 1 and inp == oup
        self.conv = nn.Sequential(
            nn.Conv2d(inp, hidden, 1, 1, 0, bias=False),  # pointwise expansion
            nn.BatchNorm2d(hidden),
            nn.ReLU(inplace=True),
            nn.Conv2d(hidden, hidden, 3, stride, 1, groups=hidden, bias=False),  # depthwise
            nn.BatchNorm2d(hidden),
            nn.ReLU(inplace=True),
            nn.Conv2d(hidden, oup, 1, 1, 0, bias=False),  # pointwise, linear
            nn.BatchNorm2d(oup),
        )

    def forward(self, x: Tensor) -> Tensor:
        if self.use_res_connect:
            return x + self.conv(x)
        return self.conv(x)


# (expansion t, channels c, repeats n, stride s) of each group at width 1 (RepDistiller's
# ``interverted_residual_setting``); ``T`` is replaced by the expansion ratio.
_SETTING = [
    (1, 16, 1, 1),
    ("T", 24, 2, 1),
    ("T", 32, 3, 2),
    ("T", 64, 4, 2),
    ("T", 96, 3, 1),
    ("T", 160, 3, 2),
    ("T", 320, 1, 1),
]
# Indices of ``blocks`` whose outputs are stage features (mdistiller's forward).
_STAGE_ENDS = (1, 2, 4, 6)


class MobileNetV2(FeatureModel):
    classifier_name = "classifier.0"

    def __init__(self, num_classes: int, expansion: int = 6, width_mult: float = 0.5):
        super().__init__()
        input_channel = int(32 * width_mult)
        self.conv1 = conv_bn(3, input_channel, 2)
        self.blocks = nn.ModuleList()
        for t, c, n, s in _SETTING:
            output_channel = int(c * width_mult)
            ratio = expansion if t == "T" else t
            layers = []
            for stride in [s] + [1] * (n - 1):
                layers.append(InvertedResidual(input_channel, output_channel, stride, ratio))
                input_channel = output_channel
            self.blocks.append(nn.Sequential(*layers))
        self.last_channel = int(1280 * width_mult) if width_mult > 1.0 else 1280
        self.conv2 = conv_1x1_bn(input_channel, self.last_channel)
        self.classifier = nn.Sequential(nn.Linear(self.last_channel, num_classes))
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.stage_channels = (int(32 * width_mult),) + tuple(
            int(_SETTING[i][1] * width_mult) for i in _STAGE_ENDS
        )
        self.feature_dim = self.last_channel

        # Initialisation of the reference (RepDistiller models/mobilenetv2.py, _initialize_weights).
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                fan_out = m.kernel_size[0] * m.kernel_size[1] * m.out_channels
                nn.init.normal_(m.weight, 0.0, (2.0 / fan_out) ** 0.5)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0.0, 0.01)
                nn.init.zeros_(m.bias)

    def forward(self, x: Tensor, return_features: bool = False):
        x = self.conv1(x)
        feats: list[Tensor] = [x] if return_features else []
        for index, group in enumerate(self.blocks):
            x = group(x)
            if return_features and index in _STAGE_ENDS:
                feats.append(x)
        x = self.conv2(x)
        pooled = torch.flatten(self.avgpool(x), 1)
        logits = self.classifier(pooled)
        if not return_features:
            return logits
        return logits, make_features(feats, list(feats), pooled, x)

    def get_bn_before_relu(self) -> list[nn.BatchNorm2d]:
        """The last BatchNorm of the stage-ending blocks 1, 2, 4, 6 (linear bottlenecks: their output, or
        with a residual the sum, is the stage feature; mdistiller ``get_bn_before_relu``)."""
        return [self.blocks[i][-1].conv[-1] for i in _STAGE_ENDS]


def mobilenetv2(num_classes: int, expansion: int = 6, width_mult: float = 0.5) -> MobileNetV2:
    return MobileNetV2(num_classes, expansion=expansion, width_mult=width_mult)
