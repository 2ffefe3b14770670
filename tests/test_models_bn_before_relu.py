"""What OFD, CAT-KD and DiffKD read from every zoo model: the BatchNorm before each stage's final ReLU
(`get_bn_before_relu`, mdistiller's name) and the map before the global pooling (``prepool_feat``).

Each model runs once on a real batch (ImageNet-style models at 64x64: their pooling is adaptive);
forward hooks record what each listed BatchNorm outputs, which must be the stage's pre-activation
feature (VGG, WRN, MobileNets) or, in a residual block, that feature minus the block's shortcut.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from figkd.models import build_model, get_model_info, list_models
from figkd.models.base import ResidualBlock, class_activation_maps
from figkd.models.cifar.mobilenetv2 import InvertedResidual
from figkd.models.cifar.shufflenetv1 import Bottleneck as ShuffleV1Block

BLOCKS = (ResidualBlock, InvertedResidual, ShuffleV1Block)


def _block_of(model, bn_name):
    """The residual block a BatchNorm belongs to (nearest enclosing one), or None."""
    parts = bn_name.split(".")
    for cut in range(len(parts) - 1, 0, -1):
        module = model.get_submodule(".".join(parts[:cut]))
        if isinstance(module, BLOCKS):
            return module
    return None


def _shortcut(block, x):
    if isinstance(block, InvertedResidual):
        return x if block.use_res_connect else torch.zeros(())
    for attr in ("downsample", "shortcut"):
        module = getattr(block, attr, None)
        if module is not None:
            return module(x)
    return x


@pytest.mark.parametrize("name", [n for n in list_models() if n != "shufflenetv2"])
def test_bn_before_relu_computes_each_pre_activation_stage_feature(name):
    torch.manual_seed(0)
    model = build_model(name, 10).eval()
    for m in model.modules():  # non-trivial statistics and affine parameters
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.5, 0.5)
    bns = model.get_bn_before_relu()
    names = {id(m): n for n, m in model.named_modules()}
    outputs, inputs = {}, {}
    hooks = [bn.register_forward_hook(lambda mod, i, o: outputs.__setitem__(id(mod), o)) for bn in bns]
    blocks = {id(bn): _block_of(model, names[id(bn)]) for bn in bns}
    for block in blocks.values():  # a stage's last block runs forward_preact: its conv1 sees the block's input
        if block is not None:
            entry = getattr(block, "conv1", block)
            key = id(block)
            hooks.append(entry.register_forward_pre_hook(lambda mod, i, key=key: inputs.__setitem__(key, i[0])))
    size = 32 if get_model_info(name).style == "cifar" else 64
    with torch.no_grad():
        _, features = model(torch.randn(2, 3, size, size), return_features=True)
        preacts = features["preact_feats"][1:]
        assert len(bns) == len(preacts)
        for bn, preact in zip(bns, preacts, strict=True):
            assert isinstance(bn, torch.nn.BatchNorm2d) and bn.num_features == preact.shape[1]
            out, block = outputs[id(bn)], blocks[id(bn)]
            if block is None:
                assert torch.equal(out, preact), names[id(bn)]
            else:
                torch.testing.assert_close(out + _shortcut(block, inputs[id(block)]), preact)
    for h in hooks:
        h.remove()


def test_shufflenetv2_has_no_bn_before_relu():
    with pytest.raises(ValueError, match="shufflenetv2 has no BatchNorm before its stage features' ReLU"):
        build_model("shufflenetv2", 10).get_bn_before_relu()


@pytest.mark.parametrize("name", list_models())
def test_prepool_feat_is_what_the_pooling_averages_and_cams_give_the_logits(name):
    torch.manual_seed(0)
    model = build_model(name, 10).eval()
    size = 32 if get_model_info(name).style == "cifar" else 64
    with torch.no_grad():
        logits, features = model(torch.randn(2, 3, size, size), return_features=True)
        prepool = features["prepool_feat"]
        torch.testing.assert_close(features["pooled_feat"], prepool.mean((2, 3)))
        cams = class_activation_maps(model, prepool)
        assert cams.shape == (2, 10, *prepool.shape[2:])
        torch.testing.assert_close(cams.mean((2, 3)) + model.get_classifier().bias, logits, rtol=1e-4, atol=1e-4)
    assert model.registry_name == name


def test_wrn_prepool_is_the_final_relu():
    model = build_model("wrn_16_1", 10).eval()
    with torch.no_grad():
        _, features = model(torch.randn(2, 3, 32, 32), return_features=True)
    assert torch.equal(features["prepool_feat"], F.relu(features["preact_feats"][-1]))
