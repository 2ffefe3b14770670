"""Wide ResNets (pre-activation): wrn_16_1, wrn_16_2, wrn_40_1, wrn_40_2.

Architecture, initialisation and parameter names follow HobbitLong/RepDistiller ``models/wrn.py``
(kept in megvii-research/mdistiller ``mdistiller/models/cifar/wrn.py``): a 3x3 stem of 16 channels,
three ``NetworkBlock`` stages ``block1..3`` (their blocks under ``.layer``) of BN-ReLU-conv blocks with
widths 16k, 32k, 64k and (depth - 4) / 6 blocks each, a 1x1 ``convShortcut`` where the width changes,
a final ``bn1`` + ReLU, adaptive average pooling and a linear classifier ``fc``.

Features follow mdistiller: a pre-activation network has no activation at its stage outputs, so
``feats`` holds the raw stage outputs and ``preact_feats`` the batch-normalised values that the next
ReLU consumes (the BN of the next stage's first block, and the final ``bn1``). mdistiller computes
those by calling the BN modules a second time, which in training mode updates their running
statistics twice; here the value is taken from the forward pass itself (same numbers, no side effect).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..base import FeatureModel, make_features


class BasicBlock(nn.Module):
    def __init__(self, in_planes: int, out_planes: int, stride: int, drop_rate: float = 0.0):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_planes)
        self.conv1 = nn.Conv2d(in_planes, out_planes, kernel_size=3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_planes)
        self.conv2 = nn.Conv2d(out_planes, out_planes, kernel_size=3, stride=1, padding=1, bias=False)
        self.drop_rate = drop_rate
        self.equal_in_out = in_planes == out_planes
        self.convShortcut = (
            None
            if self.equal_in_out
            else nn.Conv2d(in_planes, out_planes, kernel_size=1, stride=stride, padding=0, bias=False)
        )

    def forward_preact(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Return the block output and ``bn1(x)``, the pre-activation of the block's input."""
        preact = self.bn1(x)
        act = F.relu(preact)
        out = F.relu(self.bn2(self.conv1(act)), inplace=True)
        if self.drop_rate > 0:
            out = F.dropout(out, p=self.drop_rate, training=self.training)
        out = self.conv2(out)
        # As in the reference: the identity shortcut adds the raw input, the projection shortcut
        # takes the activated one.
        shortcut = x if self.convShortcut is None else self.convShortcut(act)
        return shortcut + out, preact

    def forward(self, x: Tensor) -> Tensor:
        return self.forward_preact(x)[0]


class NetworkBlock(nn.Module):
    def __init__(self, nb_layers: int, in_planes: int, out_planes: int, stride: int, drop_rate: float = 0.0):
        super().__init__()
        self.layer = nn.Sequential(
            *[
                BasicBlock(
                    in_planes if i == 0 else out_planes, out_planes, stride if i == 0 else 1, drop_rate
                )
                for i in range(nb_layers)
            ]
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.layer(x)

    def forward_input_preact(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Return the stage output and the first block's ``bn1(x)`` (the input's pre-activation)."""
        preact = x
        for index, block in enumerate(self.layer):
            if index == 0:
                x, preact = block.forward_preact(x)
            else:
                x = block(x)
        return x, preact


class WideResNet(FeatureModel):
    classifier_name = "fc"

    def __init__(self, depth: int, widen_factor: int, num_classes: int, drop_rate: float = 0.0):
        super().__init__()
        if (depth - 4) % 6 != 0:
            raise ValueError(f"depth must be 6n + 4 (10, 16, 22, 28, 40, ...), got {depth}")
        n = (depth - 4) // 6
        channels = [16, 16 * widen_factor, 32 * widen_factor, 64 * widen_factor]
        self.conv1 = nn.Conv2d(3, channels[0], kernel_size=3, stride=1, padding=1, bias=False)
        self.block1 = NetworkBlock(n, channels[0], channels[1], 1, drop_rate)
        self.block2 = NetworkBlock(n, channels[1], channels[2], 2, drop_rate)
        self.block3 = NetworkBlock(n, channels[2], channels[3], 2, drop_rate)
        self.bn1 = nn.BatchNorm2d(channels[3])
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(channels[3], num_classes)
        self.stage_channels = tuple(channels)
        self.feature_dim = channels[3]

        # Initialisation of the reference (RepDistiller models/wrn.py).
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                fan_out = m.kernel_size[0] * m.kernel_size[1] * m.out_channels
                nn.init.normal_(m.weight, 0.0, (2.0 / fan_out) ** 0.5)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.constant_(m.weight, 1)
                nn.init.constant_(m.bias, 0)
            elif isinstance(m, nn.Linear):
                nn.init.constant_(m.bias, 0)

    def forward(self, x: Tensor, return_features: bool = False):
        f0 = self.conv1(x)
        if not return_features:
            out = self.block3(self.block2(self.block1(f0)))
            out = F.relu(self.bn1(out))
            return self.fc(torch.flatten(self.avgpool(out), 1))
        f1 = self.block1(f0)
        f2, f1_pre = self.block2.forward_input_preact(f1)
        f3, f2_pre = self.block3.forward_input_preact(f2)
        f3_pre = self.bn1(f3)
        prepool = F.relu(f3_pre)
        pooled = torch.flatten(self.avgpool(prepool), 1)
        return self.fc(pooled), make_features([f0, f1, f2, f3], [f0, f1_pre, f2_pre, f3_pre], pooled, prepool)

    def get_bn_before_relu(self) -> list[nn.BatchNorm2d]:
        """The BatchNorms that compute ``preact_feats[1:]``: the next stage's first ``bn1`` and the final
        ``bn1`` (mdistiller ``get_bn_before_relu``)."""
        return [self.block2.layer[0].bn1, self.block3.layer[0].bn1, self.bn1]


def wrn_16_1(num_classes: int, drop_rate: float = 0.0) -> WideResNet:
    return WideResNet(16, 1, num_classes, drop_rate)


def wrn_16_2(num_classes: int, drop_rate: float = 0.0) -> WideResNet:
    return WideResNet(16, 2, num_classes, drop_rate)


def wrn_40_1(num_classes: int, drop_rate: float = 0.0) -> WideResNet:
    return WideResNet(40, 1, num_classes, drop_rate)


def wrn_40_2(num_classes: int, drop_rate: float = 0.0) -> WideResNet:
    return WideResNet(40, 2, num_classes, drop_rate)
