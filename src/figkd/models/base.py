"""What every figkd model shares: the base class and the helpers that collect stage features.

The structure of the features is documented once, in :mod:`figkd.models.registry`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch.nn.functional as F
from torch import Tensor, nn

Features = dict[str, list[Tensor] | Tensor]


class FeatureModel(nn.Module):
    """Base class of the figkd zoo.

    Subclasses set ``stage_channels`` (the channels of each entry of ``features["feats"]``),
    ``feature_dim`` (the width of ``features["pooled_feat"]``) and ``classifier_name`` (the module
    path of the final ``nn.Linear``), and implement ``forward(x, return_features=False)`` and
    ``get_bn_before_relu()``.
    """

    stage_channels: tuple[int, ...] = ()
    feature_dim: int = 0
    classifier_name: str = ""
    #: the registry name (set by `figkd.models.build_model`; empty for a model built from its class)
    registry_name: str = ""

    def get_stage_channels(self) -> list[int]:
        """Channels of each stage feature, in the order of ``features["feats"]``."""
        return list(self.stage_channels)

    def get_classifier(self) -> nn.Linear:
        """The final linear layer (its ``out_features`` is the number of classes)."""
        layer = self.get_submodule(self.classifier_name)
        assert isinstance(layer, nn.Linear)
        return layer

    @property
    def num_classes(self) -> int:
        return self.get_classifier().out_features

    def get_bn_before_relu(self) -> list[nn.BatchNorm2d]:
        """The BatchNorm before each stage's final ReLU: one per entry of ``features["preact_feats"][1:]``.

        Entry ``i`` is the BatchNorm whose output is ``preact_feats[i + 1]`` (VGG, WRN, MobileNets) or,
        in a residual block, its residual branch's last BatchNorm, to which the shortcut is added (the
        approximation of the OFD paper and of mdistiller's ``get_bn_before_relu``). OFD computes its
        margins from their affine parameters. Raises ValueError for a model without one
        (ShuffleNetV2: half of each stage's pre-activation channels pass through no BatchNorm).
        """
        raise NotImplementedError(f"{type(self).__name__} does not list its BatchNorms before ReLU")


class ResidualBlock(nn.Module):
    """A residual block whose output is ``relu(preact)``; subclasses implement ``_preact(x)`` (the
    sum of the residual branch and the shortcut, before the final ReLU)."""

    def _preact(self, x: Tensor) -> Tensor:
        raise NotImplementedError

    def forward(self, x: Tensor) -> Tensor:
        return F.relu(self._preact(x))

    def forward_preact(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """``(relu(preact), preact)``: the output and the pre-activation feature (OFD, ReviewKD)."""
        preact = self._preact(x)
        return F.relu(preact), preact


def init_kaiming_(model: nn.Module) -> None:
    """Kaiming-normal (fan_out, ReLU) convolutions and BatchNorm at weight 1, bias 0, in module
    order: the initialisation of RepDistiller's ``models/resnet.py`` and ``resnetv2.py`` and of
    torchvision's ResNet (= mdistiller's normal(0, sqrt(2/n)))."""
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


def forward_stage(stage: nn.Sequential, x: Tensor) -> tuple[Tensor, Tensor]:
    """Run a stage; return its output and the pre-activation output of its last block.

    Every block but the last runs its plain ``forward``; the last one runs ``forward_preact``, which
    returns ``(out, preact)``. The loop is over modules, so it unrolls under ``torch.compile``.
    """
    last = len(stage) - 1
    for index, block in enumerate(stage):
        if index == last:
            return block.forward_preact(x)
        x = block(x)
    raise ValueError("empty stage")


def run_stages(x: Tensor, stages, feats: list[Tensor] | None = None,
               preacts: list[Tensor] | None = None) -> Tensor:
    """Run ``stages`` in order. With ``feats``/``preacts`` lists, append each stage's output and the
    pre-activation output of its last block (:func:`forward_stage`); without them, plain forwards."""
    for stage in stages:
        if feats is None or preacts is None:
            x = stage(x)
        else:
            x, preact = forward_stage(stage, x)
            feats.append(x)
            preacts.append(preact)
    return x


def class_activation_maps(model: FeatureModel, prepool: Tensor) -> Tensor:
    """Class activation maps (Zhou et al., CVPR 2016): the classifier's weights applied at every position
    of ``prepool`` (the map before the global pooling, ``features["prepool_feat"]``), without its bias.

    ``(B, D, H, W) -> (B, C, H, W)``; their spatial mean is the logits minus the bias. This is what
    GzyAftermath/CAT-KD's converted models compute with their ``conv_test`` (the classifier's weights as
    a bias-free 1x1 convolution before the pooling: ``mdistiller/models/cifar/*.py`` ``*_test``).
    """
    weight = model.get_classifier().weight
    return F.conv2d(prepool, weight[:, :, None, None].to(prepool.dtype))


def make_features(feats: list[Tensor], preact_feats: list[Tensor], pooled: Tensor, prepool: Tensor) -> Features:
    """The features dictionary returned by ``forward(x, return_features=True)``; ``prepool`` is the map
    that the global average pooling turns into ``pooled`` (``pooled == prepool.mean((2, 3))``)."""
    return {"feats": feats, "preact_feats": preact_feats, "pooled_feat": pooled, "prepool_feat": prepool}


@contextlib.contextmanager
def shape_only_batch_norm() -> Iterator[None]:
    """Batch norm of a meta tensor returns its input (the shape is all a probe needs): PyTorch runs
    batch norm on the meta device through a Python decomposition, ~10 ms per call, which made probing a
    ResNet-50 pair take seconds. Tensors on other devices (another thread's real work) are untouched."""
    real = F.batch_norm

    def batch_norm(input, *args, **kwargs):
        return input if input.device.type == "meta" else real(input, *args, **kwargs)

    F.batch_norm = batch_norm
    try:
        yield
    finally:
        F.batch_norm = real
