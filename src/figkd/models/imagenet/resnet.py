"""ImageNet-style ResNets for 224x224 inputs: resnet18_imagenet, resnet34_imagenet, resnet50_imagenet.

The architecture and parameter names are the usual ones of torchvision's ``resnet18/34/50`` (which
megvii-research/mdistiller ``mdistiller/models/imagenet/resnet.py`` also keeps): a 7x7 stride-2 stem
``conv1`` / ``bn1``, a 3x3 stride-2 max-pool, four stages ``layer1..4``, projection shortcuts named
``downsample.0`` / ``downsample.1``, stride on the 3x3 convolution of bottlenecks ("ResNet v1.5"),
adaptive average pooling and ``fc``. torchvision's and mdistiller's published weights load unchanged.

Features follow mdistiller: ``feats`` = ReLU of the stem's BN output and of each stage's output,
``preact_feats`` = the same values before that ReLU. (mdistiller moves each block's final ReLU to the
start of the next block to expose them; the block here returns both, with the same numbers.)
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..base import FeatureModel, ResidualBlock, init_kaiming_, make_features, run_stages
from ..cifar.resnet import BasicBlock, conv3x3  # the same block and key names in both families


class Bottleneck(ResidualBlock):
    expansion = 4

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, kernel_size=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = conv3x3(planes, planes, stride)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, planes * self.expansion, kernel_size=1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion)
        self.downsample = downsample

    def _preact(self, x: Tensor) -> Tensor:
        out = F.relu(self.bn1(self.conv1(x)), inplace=True)
        out = F.relu(self.bn2(self.conv2(out)), inplace=True)
        out = self.bn3(self.conv3(out))
        return out + (x if self.downsample is None else self.downsample(x))


class ResNet(FeatureModel):
    classifier_name = "fc"

    def __init__(self, block: type[BasicBlock] | type[Bottleneck], layers: list[int], num_classes: int):
        super().__init__()
        self.inplanes = 64
        self.conv1 = nn.Conv2d(3, 64, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.layer1 = self._make_layer(block, 64, layers[0])
        self.layer2 = self._make_layer(block, 128, layers[1], stride=2)
        self.layer3 = self._make_layer(block, 256, layers[2], stride=2)
        self.layer4 = self._make_layer(block, 512, layers[3], stride=2)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(512 * block.expansion, num_classes)
        self.stage_channels = (64, *(c * block.expansion for c in (64, 128, 256, 512)))
        self.feature_dim = 512 * block.expansion

        init_kaiming_(self)  # torchvision's initialisation = mdistiller's normal(0, sqrt(2/n))

    def _make_layer(self, block, planes: int, blocks: int, stride: int = 1) -> nn.Sequential:
        downsample = None
        if stride != 1 or self.inplanes != planes * block.expansion:
            downsample = nn.Sequential(
                nn.Conv2d(self.inplanes, planes * block.expansion, kernel_size=1, stride=stride, bias=False),
                nn.BatchNorm2d(planes * block.expansion),
            )
        layers = [block(self.inplanes, planes, stride, downsample)]
        self.inplanes = planes * block.expansion
        layers += [block(self.inplanes, planes) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def forward(self, x: Tensor, return_features: bool = False):
        stem = self.bn1(self.conv1(x))
        x = F.relu(stem)
        feats, preacts = ([x], [stem]) if return_features else (None, None)
        x = run_stages(self.maxpool(x), (self.layer1, self.layer2, self.layer3, self.layer4), feats, preacts)
        pooled = torch.flatten(self.avgpool(x), 1)
        logits = self.fc(pooled)
        return (logits, make_features(feats, preacts, pooled, x)) if return_features else logits

    def get_bn_before_relu(self) -> list[nn.BatchNorm2d]:
        """The residual branch's last BatchNorm (``bn2`` of basic blocks, ``bn3`` of bottlenecks) of each
        stage's last block, layer1..4. (mdistiller's lists layer2..4 only, its layer1 entry commented out.)"""
        last = "bn3" if isinstance(self.layer1[0], Bottleneck) else "bn2"
        return [getattr(layer[-1], last) for layer in (self.layer1, self.layer2, self.layer3, self.layer4)]


def resnet18_imagenet(num_classes: int) -> ResNet:
    return ResNet(BasicBlock, [2, 2, 2, 2], num_classes)


def resnet34_imagenet(num_classes: int) -> ResNet:
    return ResNet(BasicBlock, [3, 4, 6, 3], num_classes)


def resnet50_imagenet(num_classes: int) -> ResNet:
    return ResNet(Bottleneck, [3, 4, 6, 3], num_classes)
