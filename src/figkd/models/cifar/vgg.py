"""CIFAR-style VGGs with BatchNorm: vgg8, vgg11, vgg13, vgg16, vgg19 (aliases ``vgg13_bn``, ...).

Architecture, initialisation and parameter names follow HobbitLong/RepDistiller ``models/vgg.py``
(kept in megvii-research/mdistiller ``mdistiller/models/cifar/vgg.py``), the ``*_bn`` variants that
both repositories register as ``vgg8`` ... ``vgg19``: five blocks ``block0..4`` of conv(3x3, with
bias)-BN-ReLU, each block's last ReLU applied outside the block so that its pre-activation output is
available, max-pools ``pool0..3`` between blocks, adaptive average pooling and a single linear
classifier ``classifier`` on 512 channels.

As in the reference, ``pool3`` (between block3 and block4) is applied only when the input is 64
pixels high (TinyImageNet), so that block4 sees 4x4 maps at both 32x32 and 64x64; the Table 15 MACs
of the paper (64x64) match this. The test is on the static input shape, so it costs nothing under
``torch.compile``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..base import FeatureModel, make_features

# Channels of each convolution in block0..4 (RepDistiller models/vgg.py, ``cfg``).
CONFIGS: dict[str, list[list[int]]] = {
    "S": [[64], [128], [256], [512], [512]],
    "A": [[64], [128], [256, 256], [512, 512], [512, 512]],
    "B": [[64, 64], [128, 128], [256, 256], [512, 512], [512, 512]],
    "D": [[64, 64], [128, 128], [256, 256, 256], [512, 512, 512], [512, 512, 512]],
    "E": [[64, 64], [128, 128], [256, 256, 256, 256], [512, 512, 512, 512], [512, 512, 512, 512]],
}


def _make_block(channels: list[int], in_channels: int) -> nn.Sequential:
    layers: list[nn.Module] = []
    for out_channels in channels:
        layers += [
            nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
        ]
        in_channels = out_channels
    return nn.Sequential(*layers[:-1])  # the block's last ReLU is applied in forward


class VGG(FeatureModel):
    classifier_name = "classifier"

    def __init__(self, cfg: list[list[int]], num_classes: int):
        super().__init__()
        self.block0 = _make_block(cfg[0], 3)
        self.block1 = _make_block(cfg[1], cfg[0][-1])
        self.block2 = _make_block(cfg[2], cfg[1][-1])
        self.block3 = _make_block(cfg[3], cfg[2][-1])
        self.block4 = _make_block(cfg[4], cfg[3][-1])
        self.pool0 = nn.MaxPool2d(kernel_size=2, stride=2)
        self.pool1 = nn.MaxPool2d(kernel_size=2, stride=2)
        self.pool2 = nn.MaxPool2d(kernel_size=2, stride=2)
        self.pool3 = nn.MaxPool2d(kernel_size=2, stride=2)
        self.pool4 = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(cfg[4][-1], num_classes)
        self.stage_channels = tuple(c[-1] for c in cfg)
        self.feature_dim = cfg[4][-1]

        # Initialisation of the reference (RepDistiller models/vgg.py, _initialize_weights).
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                fan_out = m.kernel_size[0] * m.kernel_size[1] * m.out_channels
                nn.init.normal_(m.weight, 0.0, (2.0 / fan_out) ** 0.5)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0.0, 0.01)
                nn.init.zeros_(m.bias)

    def forward(self, x: Tensor, return_features: bool = False):
        apply_pool3 = x.shape[2] == 64  # RepDistiller's rule, see the module docstring
        x = F.relu(self.block0(x))
        # Stage outputs are collected only when asked for, so the plain pass holds no extra tensors.
        feats: list[Tensor] = [x] if return_features else []
        preacts: list[Tensor] = [x] if return_features else []
        steps = (
            (self.pool0, self.block1),
            (self.pool1, self.block2),
            (self.pool2, self.block3),
            (self.pool3 if apply_pool3 else None, self.block4),
        )
        for pool, block in steps:
            x = block(x if pool is None else pool(x))
            if return_features:
                preacts.append(x)
            x = F.relu(x)
            if return_features:
                feats.append(x)
        pooled = torch.flatten(self.pool4(x), 1)
        logits = self.classifier(pooled)
        if not return_features:
            return logits
        return logits, make_features(feats, preacts, pooled, x)

    def get_bn_before_relu(self) -> list[nn.BatchNorm2d]:
        """The last BatchNorm of ``block1..4`` (mdistiller ``get_bn_before_relu``)."""
        return [self.block1[-1], self.block2[-1], self.block3[-1], self.block4[-1]]


def vgg8(num_classes: int) -> VGG:
    return VGG(CONFIGS["S"], num_classes)


def vgg11(num_classes: int) -> VGG:
    return VGG(CONFIGS["A"], num_classes)


def vgg13(num_classes: int) -> VGG:
    return VGG(CONFIGS["B"], num_classes)


def vgg16(num_classes: int) -> VGG:
    return VGG(CONFIGS["D"], num_classes)


def vgg19(num_classes: int) -> VGG:
    return VGG(CONFIGS["E"], num_classes)
