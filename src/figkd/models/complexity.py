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
