"""ShuffleNetV1 of the KD literature: groups 3, planes 240/480/960, blocks 4/8/4 (``shufflenetv1``).

Architecture and parameter names follow HobbitLong/RepDistiller ``models/ShuffleNetv1.py``
(``ShuffleV1``; kept in megvii-research/mdistiller ``mdistiller/models/cifar/ShuffleNetv1.py``),
including its departures from the ShuffleNet paper: a 1x1 stem of 24 channels with no pooling, a
ReLU after the depthwise convolution, and an ungrouped first 1x1 convolution when the input has 24
channels. Each stage starts with a stride-2 block that concatenates an average-pooled shortcut.
The reference pools with ``avg_pool2d(4)`` (32x32 inputs only); the pooling here is adaptive.
The reference leaves PyTorch's default initialisation, and so does this module.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..base import FeatureModel, make_features, run_stages


def channel_shuffle(x: Tensor, groups: int) -> Tensor:
    """[N, C, H, W] -> [N, g, C/g, H, W] -> [N, C/g, g, H, W] -> [N, C, H, W]."""
    n, c, h, w = x.shape
    return x.reshape(n, groups, c // groups, h, w).transpose(1, 2).reshape(n, c, h, w)


class Bottleneck(nn.Module):
    def __init__(self, in_planes: int, out_planes: int, stride: int, groups: int):
        super().__init__()
        self.stride = stride
        mid_planes = out_planes // 4
        self.first_groups = 1 if in_planes == 24 else groups
        self.conv1 = nn.Conv2d(in_planes, mid_planes, kernel_size=1, groups=self.first_groups, bias=False)
        self.bn1 = nn.BatchNorm2d(mid_planes)
        self.conv2 = nn.Conv2d(
            mid_planes, mid_planes, kernel_size=3, stride=stride, padding=1, groups=mid_planes, bias=False
        )
        self.bn2 = nn.BatchNorm2d(mid_planes)
        self.conv3 = nn.Conv2d(mid_planes, out_planes, kernel_size=1, groups=groups, bias=False)
        self.bn3 = nn.BatchNorm2d(out_planes)

    def forward_preact(self, x: Tensor) -> tuple[Tensor, Tensor]:
        out = F.relu(self.bn1(self.conv1(x)), inplace=True)
        out = channel_shuffle(out, self.first_groups)
        out = F.relu(self.bn2(self.conv2(out)), inplace=True)
        out = self.bn3(self.conv3(out))
        if self.stride == 2:
            preact = torch.cat([out, F.avg_pool2d(x, 3, stride=2, padding=1)], 1)
        else:
            preact = out + x
        return F.relu(preact), preact

    def forward(self, x: Tensor) -> Tensor:
        return self.forward_preact(x)[0]


class ShuffleNetV1(FeatureModel):
    classifier_name = "linear"

    def __init__(self, out_planes: list[int], num_blocks: list[int], groups: int, num_classes: int):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 24, kernel_size=1, bias=False)
        self.bn1 = nn.BatchNorm2d(24)
        self.in_planes = 24
        self.layer1 = self._make_layer(out_planes[0], num_blocks[0], groups)
        self.layer2 = self._make_layer(out_planes[1], num_blocks[1], groups)
        self.layer3 = self._make_layer(out_planes[2], num_blocks[2], groups)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.linear = nn.Linear(out_planes[2], num_classes)
        self.stage_channels = (24, *out_planes)
        self.feature_dim = out_planes[2]

    def _make_layer(self, out_planes: int, num_blocks: int, groups: int) -> nn.Sequential:
        layers = []
        for i in range(num_blocks):
            # The first block of a stage concatenates its (pooled) input: it adds the rest.
            cat_planes = self.in_planes if i == 0 else 0
            layers.append(Bottleneck(self.in_planes, out_planes - cat_planes, 2 if i == 0 else 1, groups))
            self.in_planes = out_planes
        return nn.Sequential(*layers)

    def forward(self, x: Tensor, return_features: bool = False):
        x = F.relu(self.bn1(self.conv1(x)))
        feats, preacts = ([x], [x]) if return_features else (None, None)
        x = run_stages(x, (self.layer1, self.layer2, self.layer3), feats, preacts)
        pooled = torch.flatten(self.avgpool(x), 1)
        logits = self.linear(pooled)
        return (logits, make_features(feats, preacts, pooled, x)) if return_features else logits

    def get_bn_before_relu(self) -> list[nn.BatchNorm2d]:
        """``bn3`` of each stage's last block (a stride-1 block: its input is added after ``bn3``, as the
        shortcut of a ResNet block). mdistiller's ShuffleV1 raises NotImplementedError here."""
        return [self.layer1[-1].bn3, self.layer2[-1].bn3, self.layer3[-1].bn3]


def shufflenetv1(num_classes: int) -> ShuffleNetV1:
    return ShuffleNetV1([240, 480, 960], [4, 8, 4], groups=3, num_classes=num_classes)
