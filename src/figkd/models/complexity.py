"""Parameters and multiply-accumulates (MACs) of a model, and the paper's Table 15 for comparison.

MACs are those of convolution and linear layers only, counted by ``torch.utils.flop_counter``'s
``FlopCounterMode`` on a batch of one: it reports 2 FLOPs per multiply-accumulate, so MACs = FLOPs / 2.
Of the operators it knows, only convolutions (``aten.convolution`` and its backend variants) and
matrix products of linear layers (``aten.mm``, ``aten.addmm``) are kept; normalisation, activation,
pooling and element-wise additions are not counted, nor are convolution biases. The model runs on the
``meta`` device (shapes only, no arithmetic), so counting ResNet50 at 64x64 takes milliseconds and
touches no real weights.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.func import functional_call
from torch.utils.flop_counter import FlopCounterMode

from .registry import build_model

aten = torch.ops.aten

# Operators counted, with FLOPs = 2 x MACs (torch.utils.flop_counter's convention).
COUNTED_OPS = {
    aten.convolution: "conv",
    aten._convolution: "conv",
    aten.cudnn_convolution: "conv",
    aten.convolution_overrideable: "conv",
    aten._slow_conv2d_forward: "conv",
    aten.mm: "linear",
    aten.addmm: "linear",
}

# The paper's Table 15 (TinyImageNet: 64x64 inputs, 200 classes): parameters (M) and "FLOPs" (M).
# Source: FiGKD paper, Table 15 ("Teacher-Student Scale Comparison", Sec. 5.4). The FLOPs column is a
# multiply-accumulate count with thop's (pytorch-OpCounter) rules, which add 4 operations per
# BatchNorm output element to the conv + linear MACs counted here; docs/models.md reconciles the two.
TABLE15: dict[str, tuple[float, float]] = {
    "resnet110": (1.74, 1029.58),
    "resnet32": (0.48, 281.56),
    "resnet32x4": (7.46, 4352.82),
    "resnet8x4": (1.26, 714.26),
    "wrn_40_2": (2.27, 1322.61),
    "wrn_16_2": (0.72, 409.30),
    "wrn_40_1": (0.58, 339.36),
    "vgg13": (9.51, 917.16),
    "vgg8": (4.02, 273.43),
    "resnet50": (23.91, 5246.70),
    "mobilenetv2": (0.94, 29.23),
    "shufflenetv1": (1.05, 42.88),
    "shufflenetv2": (1.46, 186.82),
}
TABLE15_INPUT_SIZE = 64
TABLE15_NUM_CLASSES = 200
# Teacher-student pairs of Table 15, in the paper's order, with its printed ratios (params, FLOPs).
TABLE15_PAIRS: dict[tuple[str, str], tuple[float, float]] = {
    ("resnet110", "resnet32"): (3.63, 3.66),
    ("resnet32x4", "resnet8x4"): (5.92, 6.09),
    ("wrn_40_2", "wrn_16_2"): (3.15, 3.23),
    ("wrn_40_2", "wrn_40_1"): (3.91, 3.90),
    ("vgg13", "vgg8"): (2.37, 3.35),
    ("wrn_40_2", "shufflenetv1"): (2.16, 30.84),
    ("resnet50", "mobilenetv2"): (25.44, 179.50),
    ("resnet32x4", "shufflenetv1"): (7.10, 101.51),
    ("resnet32x4", "shufflenetv2"): (5.11, 23.30),
    ("vgg13", "mobilenetv2"): (10.12, 31.38),
}


@dataclass(frozen=True)
class Complexity:
    """Parameter count and conv + linear MACs of one forward pass on one image."""

    params: int
    macs: int
    input_size: tuple[int, int]
    conv_macs: int
    linear_macs: int

    @property
    def params_m(self) -> float:
        return self.params / 1e6

    @property
    def macs_m(self) -> float:
        return self.macs / 1e6


def _size(input_size: int | tuple[int, int]) -> tuple[int, int]:
    if isinstance(input_size, int):
        return (input_size, input_size)
    height, width = input_size
    return (int(height), int(width))


def complexity(
    model: nn.Module | str,
    input_size: int | tuple[int, int] = 32,
    num_classes: int | None = None,
    in_channels: int = 3,
) -> Complexity:
    """Parameters and conv + linear MACs of ``model`` for one ``in_channels x H x W`` input.

    ``model`` is a module (left unchanged: the pass runs on meta-device copies of its parameters and
    buffers, in eval mode) or a registry name, built on the meta device with ``num_classes``.
    """
    if isinstance(model, str):
        if num_classes is None:
            raise ValueError("complexity(name, ...) needs num_classes")
        with torch.device("meta"):
            model = build_model(model, num_classes)
    height, width = _size(input_size)
    params = sum(p.numel() for p in model.parameters())
    tensors = {name: torch.empty_like(t, device="meta") for name, t in model.named_parameters()}
    tensors.update({name: torch.empty_like(t, device="meta") for name, t in model.named_buffers()})
    x = torch.empty(1, in_channels, height, width, device="meta")
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            functional_call(model, tensors, (x,))
    finally:
        model.train(was_training)
    counted = {"conv": 0, "linear": 0}
    for op, flops in counter.get_flop_counts().get("Global", {}).items():
        kind = COUNTED_OPS.get(op)
        if kind is not None:
            counted[kind] += flops // 2
    return Complexity(
        params=params,
        macs=counted["conv"] + counted["linear"],
        input_size=(height, width),
        conv_macs=counted["conv"],
        linear_macs=counted["linear"],
    )
