"""ShuffleNetV2 of the KD literature, net size 1 (registry name ``shufflenetv2``, alias ``ShuffleV2``).

Architecture and parameter names follow HobbitLong/RepDistiller ``models/ShuffleNetv2.py``
(``ShuffleV2``; kept in megvii-research/mdistiller ``mdistiller/models/cifar/ShuffleNetv2.py``): a 1x1
stem of 24 channels with no pooling, three stages ``layer1..3`` of one ``DownBlock`` followed by
3/7/3 basic blocks (channels 116/232/464), a 1x1 ``conv2`` to 1024 channels, average pooling and a
linear classifier ``linear``. The reference pools with ``avg_pool2d(4)`` (32x32 inputs only); the
pooling here is adaptive. The reference leaves PyTorch's default initialisation, and so does this
module.

As in mdistiller, a stage's pre-activation feature is the concatenation of the untouched half and the
last block's BN output, taken before the channel shuffle (so its channel order differs from the
stage output's).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..base import FeatureModel, make_features, run_stages
from .shufflenetv1 import channel_shuffle

# Channels of the three stages and of conv2, and the number of basic blocks per stage
# (RepDistiller models/ShuffleNetv2.py, ``configs``).
CONFIGS: dict[float, dict[str, tuple[int, ...]]] = {
    0.5: {"out_channels": (48, 96, 192, 1024), "num_blocks": (3, 7, 3)},
    1: {"out_channels": (116, 232, 464, 1024), "num_blocks": (3, 7, 3)},
    1.5: {"out_channels": (176, 352, 704, 1024), "num_blocks": (3, 7, 3)},
    2: {"out_channels": (224, 488, 976, 2048), "num_blocks": (3, 7, 3)},
}


class BasicBlock(nn.Module):
    def __init__(self, in_channels: int, split_ratio: float = 0.5):
        super().__init__()
        self.split = int(in_channels * split_ratio)
        branch = in_channels - self.split
        self.conv1 = nn.Conv2d(branch, branch, kernel_size=1, bias=False)
        self.bn1 = nn.BatchNorm2d(branch)
        self.conv2 = nn.Conv2d(branch, branch, kernel_size=3, stride=1, padding=1, groups=branch, bias=False)
        self.bn2 = nn.BatchNorm2d(branch)
        self.conv3 = nn.Conv2d(branch, branch, kernel_size=1, bias=False)
        self.bn3 = nn.BatchNorm2d(branch)

    def _branch(self, x: Tensor) -> tuple[Tensor, Tensor]:
        x1, x2 = x[:, : self.split], x[:, self.split :]
        out = F.relu(self.bn1(self.conv1(x2)), inplace=True)
        out = self.bn2(self.conv2(out))
        return x1, self.bn3(self.conv3(out))

    def forward(self, x: Tensor) -> Tensor:
        x1, preact = self._branch(x)
        return channel_shuffle(torch.cat([x1, F.relu(preact)], 1), 2)

    def forward_preact(self, x: Tensor) -> tuple[Tensor, Tensor]:
        x1, preact = self._branch(x)
        out = channel_shuffle(torch.cat([x1, F.relu(preact)], 1), 2)
        return out, torch.cat([x1, preact], 1)


class DownBlock(nn.Module):
    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        mid = out_channels // 2
        # left branch
        self.conv1 = nn.Conv2d(
            in_channels, in_channels, 3, stride=2, padding=1, groups=in_channels, bias=False
        )
        self.bn1 = nn.BatchNorm2d(in_channels)
        self.conv2 = nn.Conv2d(in_channels, mid, kernel_size=1, bias=False)
        self.bn2 = nn.BatchNorm2d(mid)
        # right branch
        self.conv3 = nn.Conv2d(in_channels, mid, kernel_size=1, bias=False)
        self.bn3 = nn.BatchNorm2d(mid)
        self.conv4 = nn.Conv2d(mid, mid, kernel_size=3, stride=2, padding=1, groups=mid, bias=False)
        self.bn4 = nn.BatchNorm2d(mid)
        self.conv5 = nn.Conv2d(mid, mid, kernel_size=1, bias=False)
        self.bn5 = nn.BatchNorm2d(mid)

    def forward(self, x: Tensor) -> Tensor:
        left = F.relu(self.bn2(self.conv2(self.bn1(self.conv1(x)))), inplace=True)
        right = F.relu(self.bn3(self.conv3(x)), inplace=True)
        right = F.relu(self.bn5(self.conv5(self.bn4(self.conv4(right)))), inplace=True)
        return channel_shuffle(torch.cat([left, right], 1), 2)


class ShuffleNetV2(FeatureModel):
    classifier_name = "linear"

    def __init__(self, net_size: float, num_classes: int):
        super().__init__()
        if net_size not in CONFIGS:
            raise ValueError(f"net_size must be one of {sorted(CONFIGS)}, got {net_size}")
        out_channels = CONFIGS[net_size]["out_channels"]
        num_blocks = CONFIGS[net_size]["num_blocks"]
        self.conv1 = nn.Conv2d(3, 24, kernel_size=1, bias=False)
        self.bn1 = nn.BatchNorm2d(24)
        self.in_channels = 24
        self.layer1 = self._make_layer(out_channels[0], num_blocks[0])
        self.layer2 = self._make_layer(out_channels[1], num_blocks[1])
        self.layer3 = self._make_layer(out_channels[2], num_blocks[2])
        self.conv2 = nn.Conv2d(
            out_channels[2], out_channels[3], kernel_size=1, stride=1, padding=0, bias=False
        )
        self.bn2 = nn.BatchNorm2d(out_channels[3])
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.linear = nn.Linear(out_channels[3], num_classes)
        self.stage_channels = (24, *out_channels[:3])
        self.feature_dim = out_channels[3]

    def _make_layer(self, out_channels: int, num_blocks: int) -> nn.Sequential:
        layers: list[nn.Module] = [DownBlock(self.in_channels, out_channels)]
        layers += [BasicBlock(out_channels) for _ in range(num_blocks)]
        self.in_channels = out_channels
        return nn.Sequential(*layers)

    def forward(self, x: Tensor, return_features: bool = False):
        x = F.relu(self.bn1(self.conv1(x)))
        feats, preacts = ([x], [x]) if return_features else (None, None)
        x = run_stages(x, (self.layer1, self.layer2, self.layer3), feats, preacts)
        x = F.relu(self.bn2(self.conv2(x)))
        pooled = torch.flatten(self.avgpool(x), 1)
        logits = self.linear(pooled)
        return (logits, make_features(feats, preacts, pooled, x)) if return_features else logits

    def get_bn_before_relu(self) -> list[nn.BatchNorm2d]:
        """Raises ValueError: a stage's pre-activation feature concatenates the last block's untouched half
        (no BatchNorm) with its ``bn3`` output, so no BatchNorm describes all its channels (mdistiller's
        ShuffleV2 raises NotImplementedError too)."""
        raise ValueError("shufflenetv2 has no BatchNorm before its stage features' ReLU: half of each stage's "
                         "pre-activation channels are the last block's untouched input")


def shufflenetv2(num_classes: int, net_size: float = 1) -> ShuffleNetV2:
    return ShuffleNetV2(net_size, num_classes)
