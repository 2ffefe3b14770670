"""CIFAR-style ResNets: resnet8 ... resnet110, resnet8x4, resnet32x4.

Architecture, initialisation and parameter names follow HobbitLong/RepDistiller ``models/resnet.py``,
which megvii-research/mdistiller ``mdistiller/models/cifar/resnet.py`` keeps unchanged: a 3x3 stem,
three stages of basic blocks (depth = 6n + 2) with widths ``num_filters[1:]``, 1x1-conv + BN
projection shortcuts named ``downsample.0`` / ``downsample.1``, and a linear classifier ``fc``.
The references pool with ``AvgPool2d(8)`` (32x32 inputs only); here the pooling is adaptive, which is
the same at 32x32 and lets the model run on 64x64 TinyImageNet and larger inputs.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..base import FeatureModel, ResidualBlock, init_kaiming_, make_features, run_stages


def conv3x3(in_planes: int, out_planes: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_planes, out_planes, kernel_size=3, stride=stride, padding=1, bias=False)


class BasicBlock(ResidualBlock):
    expansion = 1

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None):
        super().__init__()
        self.conv1 = conv3x3(inplanes, planes, stride)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = conv3x3(planes, planes)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = downsample

    def _preact(self, x: Tensor) -> Tensor:
        out = F.relu(self.bn1(self.conv1(x)), inplace=True)
        out = self.bn2(self.conv2(out))
        shortcut = x if self.downsample is None else self.downsample(x)
        return out + shortcut


class ResNet(FeatureModel):
    """CIFAR ResNet with basic blocks; ``depth`` = 6n + 2, ``num_filters`` = [stem, stage1..3]."""

    classifier_name = "fc"

    def __init__(self, depth: int, num_filters: list[int], num_classes: int):
        super().__init__()
        if (depth - 2) % 6 != 0:
            raise ValueError(f"depth must be 6n + 2 (8, 14, 20, 32, ...), got {depth}")
        n = (depth - 2) // 6
        self.inplanes = num_filters[0]
        self.conv1 = nn.Conv2d(3, num_filters[0], kernel_size=3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(num_filters[0])
        self.layer1 = self._make_layer(num_filters[1], n, stride=1)
        self.layer2 = self._make_layer(num_filters[2], n, stride=2)
        self.layer3 = self._make_layer(num_filters[3], n, stride=2)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(num_filters[3] * BasicBlock.expansion, num_classes)
        self.stage_channels = tuple(num_filters)
        self.feature_dim = num_filters[3] * BasicBlock.expansion

        init_kaiming_(self)  # the reference's (RepDistiller models/resnet.py)

    def _make_layer(self, planes: int, blocks: int, stride: int) -> nn.Sequential:
        downsample = None
        if stride != 1 or self.inplanes != planes * BasicBlock.expansion:
            downsample = nn.Sequential(
                nn.Conv2d(
                    self.inplanes, planes * BasicBlock.expansion, kernel_size=1, stride=stride, bias=False
                ),
                nn.BatchNorm2d(planes * BasicBlock.expansion),
            )
        layers = [BasicBlock(self.inplanes, planes, stride, downsample)]
        self.inplanes = planes * BasicBlock.expansion
        layers += [BasicBlock(self.inplanes, planes) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def forward(self, x: Tensor, return_features: bool = False):
        x = F.relu(self.bn1(self.conv1(x)))
        feats, preacts = ([x], [x]) if return_features else (None, None)
        x = run_stages(x, (self.layer1, self.layer2, self.layer3), feats, preacts)
        pooled = torch.flatten(self.avgpool(x), 1)
        logits = self.fc(pooled)
        return (logits, make_features(feats, preacts, pooled, x)) if return_features else logits

    def get_bn_before_relu(self) -> list[nn.BatchNorm2d]:
        """``bn2`` of each stage's last block (mdistiller ``get_bn_before_relu``; the shortcut is added after it)."""
        return [self.layer1[-1].bn2, self.layer2[-1].bn2, self.layer3[-1].bn2]


def resnet8(num_classes: int) -> ResNet:
    return ResNet(8, [16, 16, 32, 64], num_classes)


def resnet14(num_classes: int) -> ResNet:
    return ResNet(14, [16, 16, 32, 64], num_classes)


def resnet20(num_classes: int) -> ResNet:
    return ResNet(20, [16, 16, 32, 64], num_classes)


def resnet32(num_classes: int) -> ResNet:
    return ResNet(32, [16, 16, 32, 64], num_classes)


def resnet44(num_classes: int) -> ResNet:
    return ResNet(44, [16, 16, 32, 64], num_classes)


def resnet56(num_classes: int) -> ResNet:
    return ResNet(56, [16, 16, 32, 64], num_classes)


def resnet110(num_classes: int) -> ResNet:
    return ResNet(110, [16, 16, 32, 64], num_classes)


def resnet8x4(num_classes: int) -> ResNet:
    return ResNet(8, [32, 64, 128, 256], num_classes)


def resnet32x4(num_classes: int) -> ResNet:
    return ResNet(32, [32, 64, 128, 256], num_classes)
