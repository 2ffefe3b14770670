"""The CIFAR-style ResNet50 of the KD literature (registry name ``resnet50``, alias ``ResNet50``).

Architecture, initialisation and parameter names follow HobbitLong/RepDistiller ``models/resnetv2.py``
(kept in megvii-research/mdistiller ``mdistiller/models/cifar/resnetv2.py``): a 3x3 stride-1 stem of
64 channels and no max-pool, four stages of bottlenecks [3, 4, 6, 3] (stride on the 3x3 conv),
projection shortcuts named ``shortcut.0`` / ``shortcut.1``, adaptive average pooling and a linear
classifier ``linear``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..base import FeatureModel, ResidualBlock, init_kaiming_, make_features, run_stages


class Bottleneck(ResidualBlock):
    expansion = 4

    def __init__(self, in_planes: int, planes: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, kernel_size=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, kernel_size=3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, self.expansion * planes, kernel_size=1, bias=False)
        self.bn3 = nn.BatchNorm2d(self.expansion * planes)
        # An empty Sequential is the identity and holds no parameters, as in the reference.
        self.shortcut = nn.Sequential()
        if stride != 1 or in_planes != self.expansion * planes:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_planes, self.expansion * planes, kernel_size=1, stride=stride, bias=False),
                nn.BatchNorm2d(self.expansion * planes),
            )

    def _preact(self, x: Tensor) -> Tensor:
        out = F.relu(self.bn1(self.conv1(x)), inplace=True)
        out = F.relu(self.bn2(self.conv2(out)), inplace=True)
        out = self.bn3(self.conv3(out))
        return out + self.shortcut(x)


class ResNetV2(FeatureModel):
    """CIFAR ResNet with bottleneck blocks (RepDistiller's ``ResNet`` in ``resnetv2.py``)."""

    classifier_name = "linear"

    def __init__(self, num_blocks: list[int], num_classes: int, zero_init_residual: bool = False):
        super().__init__()
        self.in_planes = 64
        self.conv1 = nn.Conv2d(3, 64, kernel_size=3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.layer1 = self._make_layer(64, num_blocks[0], stride=1)
        self.layer2 = self._make_layer(128, num_blocks[1], stride=2)
        self.layer3 = self._make_layer(256, num_blocks[2], stride=2)
        self.layer4 = self._make_layer(512, num_blocks[3], stride=2)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.linear = nn.Linear(512 * Bottleneck.expansion, num_classes)
        self.stage_channels = (64, 256, 512, 1024, 2048)
        self.feature_dim = 512 * Bottleneck.expansion

        init_kaiming_(self)  # the reference's (RepDistiller models/resnetv2.py)
        if zero_init_residual:
            for m in self.modules():
                if isinstance(m, Bottleneck):
                    nn.init.constant_(m.bn3.weight, 0)

    def _make_layer(self, planes: int, num_blocks: int, stride: int) -> nn.Sequential:
        layers = []
        for block_stride in [stride] + [1] * (num_blocks - 1):
            layers.append(Bottleneck(self.in_planes, planes, block_stride))
            self.in_planes = planes * Bottleneck.expansion
        return nn.Sequential(*layers)

    def forward(self, x: Tensor, return_features: bool = False):
        x = F.relu(self.bn1(self.conv1(x)))
        feats, preacts = ([x], [x]) if return_features else (None, None)
        x = run_stages(x, (self.layer1, self.layer2, self.layer3, self.layer4), feats, preacts)
        pooled = torch.flatten(self.avgpool(x), 1)
        logits = self.linear(pooled)
        return (logits, make_features(feats, preacts, pooled, x)) if return_features else logits

    def get_bn_before_relu(self) -> list[nn.BatchNorm2d]:
        """``bn3`` of each stage's last bottleneck (mdistiller ``get_bn_before_relu``; the shortcut is added
        after it)."""
        return [self.layer1[-1].bn3, self.layer2[-1].bn3, self.layer3[-1].bn3, self.layer4[-1].bn3]


def resnet50(num_classes: int, zero_init_residual: bool = False) -> ResNetV2:
    return ResNetV2([3, 4, 6, 3], num_classes, zero_init_residual=zero_init_residual)
