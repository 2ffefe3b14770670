"""Real forward passes of a few small models: features' meaning, 32/64/224 inputs, compile, bf16.

Kept to the smallest model of each family: the structure of every model is checked on the meta
device in test_models_registry.py.
"""

from __future__ import annotations

import functools

import pytest
import torch
import torch.nn.functional as F

from figkd.models import build_model
from figkd.models.cifar.shufflenetv1 import channel_shuffle

# (name, input size): the smallest model of each CIFAR family; resnet50 at 16x16 to keep it cheap
# (the pooling is adaptive, so any size works).
CASES = [
    ("resnet8", 32),
    ("resnet8", 64),
    ("wrn_16_1", 32),
    ("wrn_16_1", 64),
    ("vgg8", 32),
    ("vgg8", 64),
    ("mobilenetv2", 32),
    ("shufflenetv1", 32),
    ("shufflenetv2", 32),
    ("resnet50", 16),
]
# Models whose stage features are the ReLU of their pre-activation features.
RELU_FEATS = {"resnet8", "vgg8", "shufflenetv1", "resnet50"}


def _model(name: str, num_classes: int = 10, seed: int = 0):
    torch.manual_seed(seed)
    model = build_model(name, num_classes)
    # Non-trivial BatchNorm statistics, so that eval-mode features differ from train-mode ones.
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-0.1, 0.1)
            module.running_var.uniform_(0.5, 1.5)
    return model.eval()


@functools.cache
def _run(name: str, size: int):
    """(model, plain logits, feature-path logits, features) for one random image, computed once."""
    model = _model(name)
    x = torch.randn(1, 3, size, size, generator=torch.Generator().manual_seed(size))
    with torch.no_grad():
        plain = model(x)
        logits, features = model(x, return_features=True)
    return model, plain, logits, features


@pytest.mark.parametrize(("name", "size"), CASES)
def test_plain_and_feature_forward_agree(name, size):
    model, plain, logits, features = _run(name, size)
    assert plain.shape == (1, 10)
    torch.testing.assert_close(plain, logits, rtol=0, atol=0)
    pooled = features["pooled_feat"]
    torch.testing.assert_close(model.get_classifier()(pooled), logits)
    if name in RELU_FEATS:
        for feat, preact in zip(features["feats"], features["preact_feats"], strict=True):
            torch.testing.assert_close(feat, F.relu(preact))
        assert (features["preact_feats"][-1] < 0).any()  # really taken before the ReLU
        torch.testing.assert_close(pooled, features["feats"][-1].mean((2, 3)))


def test_shufflenetv2_preact_is_taken_before_the_channel_shuffle():
    # As in mdistiller: preact = cat(untouched half, BN output), the stage output is the shuffled ReLU.
    _, _, _, features = _run("shufflenetv2", 32)
    for feat, preact in zip(features["feats"][1:], features["preact_feats"][1:], strict=True):
        torch.testing.assert_close(feat, channel_shuffle(F.relu(preact), 2))


def test_wrn_preact_feats_are_the_batchnorm_that_the_next_relu_consumes():
    # mdistiller: f1_pre = block2.layer[0].bn1(f1), f2_pre = block3.layer[0].bn1(f2), f3_pre = bn1(f3).
    model, _, _, features = _run("wrn_16_1", 32)
    f0, f1, f2, f3 = features["feats"]
    p0, p1, p2, p3 = features["preact_feats"]
    with torch.no_grad():
        torch.testing.assert_close(p0, f0)
        torch.testing.assert_close(p1, model.block2.layer[0].bn1(f1))
        torch.testing.assert_close(p2, model.block3.layer[0].bn1(f2))
        torch.testing.assert_close(p3, model.bn1(f3))
    torch.testing.assert_close(features["pooled_feat"], F.relu(p3).mean((2, 3)))


def test_wrn_features_do_not_update_batchnorm_statistics_twice():
    # mdistiller calls those BNs a second time; here one training step updates each BN once.
    torch.manual_seed(0)
    a, b = build_model("wrn_16_1", 10), build_model("wrn_16_1", 10)
    b.load_state_dict(a.state_dict())
    x = torch.randn(2, 3, 32, 32)
    a(x)
    b(x, return_features=True)
    for (key, value_a), value_b in zip(a.state_dict().items(), b.state_dict().values(), strict=True):
        torch.testing.assert_close(value_a, value_b, msg=key)


def test_mobilenetv2_preact_feats_are_its_linear_stage_outputs():
    _, _, _, features = _run("mobilenetv2", 32)
    for feat, preact in zip(features["feats"], features["preact_feats"], strict=True):
        assert feat is preact
    assert (features["feats"][-1] < 0).any()  # linear bottleneck outputs: no ReLU


def test_vgg_applies_pool3_only_at_64():
    assert _run("vgg8", 32)[3]["feats"][-1].shape[-1] == 4
    assert _run("vgg8", 64)[3]["feats"][-1].shape[-1] == 4
    with torch.device("meta"):
        model = build_model("vgg8", 10)
    _, features = model(torch.empty(1, 3, 96, 96, device="meta"), return_features=True)
    assert features["feats"][-1].shape[-1] == 12


def test_smallest_imagenet_model_at_224():
    model = _model("mobilenetv1_imagenet", num_classes=1000)
    x = torch.randn(1, 3, 224, 224)
    with torch.no_grad():
        plain = model(x)
        logits, features = model(x, return_features=True)
    assert plain.shape == (1, 1000)
    torch.testing.assert_close(plain, logits, rtol=0, atol=0)
    assert [f.shape[-1] for f in features["feats"]] == [56, 28, 14, 7]
    for feat, preact in zip(features["feats"], features["preact_feats"], strict=True):
        torch.testing.assert_close(feat, F.relu(preact))


@pytest.mark.parametrize("name", ["resnet18_imagenet", "resnet50_imagenet"])
def test_imagenet_resnets_at_small_input(name):
    # The pooling is adaptive: 32x32 gives 1x1 maps after layer4, and costs a fiftieth of 224x224.
    model = _model(name, num_classes=5)
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        plain = model(x)
        logits, features = model(x, return_features=True)
    torch.testing.assert_close(plain, logits, rtol=0, atol=0)
    for feat, preact in zip(features["feats"], features["preact_feats"], strict=True):
        torch.testing.assert_close(feat, F.relu(preact))


@pytest.mark.parametrize("name", ["resnet8", "shufflenetv2"])
def test_channels_last_and_bf16_autocast(name):
    model = _model(name)
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        reference = model(x)
        model_cl = model.to(memory_format=torch.channels_last)
        out_cl = model_cl(x.to(memory_format=torch.channels_last))
        torch.testing.assert_close(out_cl, reference, rtol=1e-4, atol=1e-4)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out_bf16, features = model_cl(x.to(memory_format=torch.channels_last), return_features=True)
    assert out_bf16.dtype == torch.bfloat16
    assert torch.isfinite(out_bf16.float()).all()
    torch.testing.assert_close(out_bf16.float(), reference, rtol=0.1, atol=0.1)


@pytest.mark.parametrize("name", ["resnet8", "wrn_16_1"])
def test_torch_compile_traces_without_graph_breaks(name):
    # fullgraph=True fails on any graph break (data-dependent Python control flow); the "eager"
    # backend checks the trace without compiling kernels.
    torch._dynamo.reset()
    model = _model(name)
    compiled = torch.compile(model, backend="eager", fullgraph=True)
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(compiled(x), model(x))
        logits, features = compiled(x, return_features=True)
    assert len(features["feats"]) == len(model.get_stage_channels())
    torch._dynamo.reset()


def test_training_step_runs():
    model = build_model("resnet8", 10).train()
    x, y = torch.randn(4, 3, 32, 32), torch.randint(0, 10, (4,))
    logits, features = model(x, return_features=True)
    loss = F.cross_entropy(logits, y) + features["feats"][-1].pow(2).mean()
    loss.backward()
    assert all(p.grad is not None for p in model.parameters())
