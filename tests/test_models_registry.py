"""The registry: names, aliases, exact parameter counts, parameter names, feature structure.

Everything here runs on the meta device (shapes only), so no test does real arithmetic.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from figkd.models import build_model, canonical_name, get_model_info, list_models
from figkd.paper import TABLE15

# Parameter counts given in issue 3 (RepDistiller/mdistiller models at 100 classes; torchvision's and
# mdistiller's ImageNet models at 1000 classes).
COUNTS_100 = {
    "resnet8x4": 1_233_540,
    "resnet32x4": 7_433_860,
    "resnet110": 1_736_564,
    "resnet56": 861_620,
    "resnet32": 472_756,
    "resnet20": 278_324,
    "resnet50": 23_705_252,
    "wrn_40_2": 2_255_156,
    "wrn_16_2": 703_284,
    "wrn_40_1": 569_780,
    "vgg13": 9_462_180,
    "vgg8": 3_965_028,
    "mobilenetv2": 812_836,
    "shufflenetv1": 949_258,
    "shufflenetv2": 1_355_528,
}
COUNTS_1000 = {
    "resnet18_imagenet": 11_689_512,
    "resnet34_imagenet": 21_797_672,
    "resnet50_imagenet": 25_557_032,  # torchvision resnet50
    "mobilenetv1_imagenet": 4_231_976,
}
# Models without a count in the issue: pinned from this implementation (same blocks and widths as
# the counted ones), so that an accidental change shows.
COUNTS_100_PINNED = {
    "resnet8": 83_892,
    "resnet14": 181_108,
    "resnet44": 667_188,
    "wrn_16_1": 180_916,
    "vgg11": 9_277_284,
    "vgg16": 14_774_436,
    "vgg19": 20_086_692,
}


def meta_model(name: str, num_classes: int):
    with torch.device("meta"):
        return build_model(name, num_classes)


def n_params(model) -> int:
    return sum(p.numel() for p in model.parameters())


def test_list_models_has_every_model_of_the_issue():
    cifar = {
        "resnet8", "resnet14", "resnet20", "resnet32", "resnet44", "resnet56", "resnet110", "resnet8x4",
        "resnet32x4", "wrn_16_1", "wrn_16_2", "wrn_40_1", "wrn_40_2", "vgg8", "vgg11", "vgg13", "vgg16",
        "vgg19", "mobilenetv2", "shufflenetv1", "shufflenetv2", "resnet50",
    }  # fmt: skip
    imagenet = {"resnet18_imagenet", "resnet34_imagenet", "resnet50_imagenet", "mobilenetv1_imagenet"}
    assert set(list_models(style="cifar")) == cifar
    assert set(list_models(style="imagenet")) == imagenet
    assert set(list_models()) == cifar | imagenet
    assert len(list_models()) == len(set(list_models()))
    assert set(COUNTS_100) | set(COUNTS_100_PINNED) | set(COUNTS_1000) == cifar | imagenet


@pytest.mark.parametrize(
    ("alias", "name"),
    [
        ("MobileNetV2", "mobilenetv2"),
        ("ShuffleV1", "shufflenetv1"),
        ("ShuffleV2", "shufflenetv2"),
        ("ResNet50", "resnet50"),
        ("vgg13_bn", "vgg13"),
        ("vgg8_bn", "vgg8"),
        ("mobile_half", "mobilenetv2"),
        ("MobileNetV1", "mobilenetv1_imagenet"),
    ],
)
def test_aliases(alias, name):
    assert canonical_name(alias) == name
    assert alias in list_models(include_aliases=True)
    assert n_params(meta_model(alias, 100)) == n_params(meta_model(name, 100))


def test_unknown_name_lists_known_models_and_suggests():
    with pytest.raises(ValueError) as info:
        build_model("resnet32x5", 100)
    message = str(info.value)
    assert "unknown model 'resnet32x5'" in message
    assert "Did you mean 'resnet32x4'" in message
    assert "wrn_40_2" in message and "ShuffleV1" in message
    with pytest.raises(ValueError, match="Did you mean 'ShuffleV2'"):
        build_model("shufflev2", 100)


def test_bad_num_classes_and_options():
    with pytest.raises(ValueError, match="num_classes"):
        build_model("resnet8", 0)
    with pytest.raises(ValueError, match="num_classes"):
        build_model("resnet8", 10.0)
    with pytest.raises(ValueError, match="takes no option.*dropout.*its options: drop_rate"):
        build_model("wrn_16_1", 10, dropout=0.3)
    with pytest.raises(ValueError, match="its options: none"):
        build_model("resnet8", 10, width=2)
    with torch.device("meta"):
        model = build_model("resnet50", 10, zero_init_residual=True)
        assert build_model("resnet8", np.int64(7)).num_classes == 7
    assert model.num_classes == 10


def test_model_info():
    info = get_model_info("ShuffleV2")
    assert (info.name, info.family, info.style) == ("shufflenetv2", "shufflenet", "cifar")
    assert info.input_size == 32
    assert "ShuffleNetv2.py" in info.source
    assert get_model_info("resnet18_imagenet").input_size == 224


def test_every_model_has_the_papers_default_learning_rate():
    """Paper Section 4.2: 0.05, except ShuffleNet-V1/V2 and MobileNet-V2 (0.01), whatever the spelling;
    MobileNetV1 (Table 5's teachers) is not among the exceptions (issue 14, point 6)."""
    from figkd.config import RunConfig
    from figkd.engine.recipe import initial_lr
    from figkd.models import default_lr

    small = {"mobilenetv2", "shufflenetv1", "shufflenetv2"}
    for name in list_models(include_aliases=True):
        info = get_model_info(name)
        assert isinstance(info.default_lr, float) and info.default_lr > 0, name
        assert info.default_lr == (0.01 if info.name in small else 0.05), name
        assert default_lr(name) == initial_lr(RunConfig(), name) == info.default_lr, name
    assert default_lr("mobilenetv1_imagenet") == default_lr("MobileNetV1") == 0.05
    for name in ("mobilenetv2", "MobileNetV2", "mobile_half", "shufflenetv1", "ShuffleV1", "shufflenetv2",
                 "ShuffleV2"):
        assert default_lr(name) == 0.01, name
    assert initial_lr(RunConfig(lr=0.2), "mobile_half") == 0.2  # an explicit lr wins
    with pytest.raises(ValueError, match="unknown model 'mobilenetv3'"):
        default_lr("mobilenetv3")


@pytest.mark.parametrize("name", sorted(COUNTS_100))
def test_parameter_count_100_classes(name):
    assert n_params(meta_model(name, 100)) == COUNTS_100[name]


@pytest.mark.parametrize("name", sorted(COUNTS_100_PINNED))
def test_parameter_count_pinned(name):
    assert n_params(meta_model(name, 100)) == COUNTS_100_PINNED[name]


@pytest.mark.parametrize("name", sorted(COUNTS_1000))
def test_parameter_count_1000_classes(name):
    assert n_params(meta_model(name, 1000)) == COUNTS_1000[name]


@pytest.mark.parametrize("name", sorted(TABLE15))
def test_parameter_count_200_classes_rounds_to_table15(name):
    count = n_params(meta_model(name, 200))
    assert round(count / 1e6, 2) == TABLE15[name][0]
    # Only the classifier depends on the class count.
    model = meta_model(name, 100)
    assert count - COUNTS_100[name] == 100 * (model.feature_dim + 1)


# Keys and shapes read off the reference files (RepDistiller models/*.py, mdistiller
# mdistiller/models/{cifar,imagenet}/*.py, torchvision resnet naming): if these hold and the counts are
# exact, the published checkpoints load.
REFERENCE_KEYS = {
    "resnet8x4": {
        "conv1.weight": (32, 3, 3, 3),
        "bn1.running_mean": (32,),
        "layer1.0.downsample.0.weight": (64, 32, 1, 1),
        "layer1.0.downsample.1.num_batches_tracked": (),
        "layer3.0.bn2.weight": (256,),
        "fc.weight": (100, 256),
        "fc.bias": (100,),
    },
    "resnet32": {"layer2.0.downsample.0.weight": (32, 16, 1, 1), "layer3.4.conv2.weight": (64, 64, 3, 3)},
    "resnet50": {
        "conv1.weight": (64, 3, 3, 3),
        "layer1.0.shortcut.0.weight": (256, 64, 1, 1),
        "layer1.0.shortcut.1.running_var": (256,),
        "layer4.2.bn3.bias": (2048,),
        "linear.weight": (100, 2048),
    },
    "wrn_40_2": {
        "conv1.weight": (16, 3, 3, 3),
        "block1.layer.0.bn1.weight": (16,),
        "block1.layer.0.convShortcut.weight": (32, 16, 1, 1),
        "block3.layer.5.conv2.weight": (128, 128, 3, 3),
        "bn1.weight": (128,),
        "fc.weight": (100, 128),
    },
    "vgg13": {
        "block0.0.weight": (64, 3, 3, 3),
        "block0.0.bias": (64,),
        "block0.1.running_var": (64,),
        "block0.3.weight": (64, 64, 3, 3),
        "block4.4.weight": (512,),
        "classifier.weight": (100, 512),
    },
    "vgg8": {"block0.0.weight": (64, 3, 3, 3), "block4.1.weight": (512,), "classifier.bias": (100,)},
    "mobilenetv2": {
        "conv1.0.weight": (16, 3, 3, 3),
        "conv1.1.weight": (16,),
        "blocks.0.0.conv.0.weight": (16, 16, 1, 1),
        "blocks.1.0.conv.3.weight": (48, 1, 3, 3),
        "blocks.6.0.conv.7.running_mean": (160,),
        "conv2.0.weight": (1280, 160, 1, 1),
        "classifier.0.weight": (100, 1280),
    },
    "shufflenetv1": {
        "conv1.weight": (24, 3, 1, 1),
        "layer1.0.conv1.weight": (54, 24, 1, 1),
        "layer1.0.conv3.weight": (216, 18, 1, 1),
        "layer1.1.conv1.weight": (60, 80, 1, 1),
        "layer3.3.bn3.weight": (960,),
        "linear.weight": (100, 960),
    },
    "shufflenetv2": {
        "layer1.0.conv1.weight": (24, 1, 3, 3),
        "layer1.0.conv5.weight": (58, 58, 1, 1),
        "layer1.1.conv1.weight": (58, 58, 1, 1),
        "layer3.3.bn3.weight": (232,),
        "conv2.weight": (1024, 464, 1, 1),
        "linear.weight": (100, 1024),
    },
    "resnet18_imagenet": {
        "conv1.weight": (64, 3, 7, 7),
        "layer2.0.downsample.0.weight": (128, 64, 1, 1),
        "layer4.1.bn2.weight": (512,),
        "fc.weight": (100, 512),
    },
    "resnet50_imagenet": {
        "layer1.0.downsample.0.weight": (256, 64, 1, 1),
        "layer1.0.conv2.weight": (64, 64, 3, 3),
        "layer4.0.conv2.weight": (512, 512, 3, 3),
    },
    "mobilenetv1_imagenet": {
        "model.0.0.weight": (32, 3, 3, 3),
        "model.0.1.weight": (32,),
        "model.1.0.weight": (32, 1, 3, 3),
        "model.1.3.weight": (64, 32, 1, 1),
        "model.13.4.running_var": (1024,),
        "fc.weight": (100, 1024),
    },
}


@pytest.mark.parametrize("name", sorted(REFERENCE_KEYS))
def test_parameter_names_match_the_references(name):
    state = meta_model(name, 100).state_dict()
    for key, shape in REFERENCE_KEYS[name].items():
        assert key in state, key
        assert tuple(state[key].shape) == shape, key


def test_optional_modules_absent_where_the_reference_has_none():
    assert "layer1.0.downsample.0.weight" not in meta_model("resnet32", 100).state_dict()
    assert "block1.layer.0.convShortcut.weight" not in meta_model("wrn_40_1", 100).state_dict()
    assert "layer1.1.shortcut.0.weight" not in meta_model("resnet50", 100).state_dict()


# Expected spatial size of each stage feature for a 32x32 (CIFAR) or 224x224 (ImageNet) input.
STAGE_SIZES = {
    "resnet": [32, 32, 16, 8],
    "resnet50": [32, 32, 16, 8, 4],
    "wrn": [32, 32, 16, 8],
    "vgg": [32, 16, 8, 4, 4],
    "mobilenetv2": [16, 16, 8, 4, 2],
    "shufflenet": [32, 16, 8, 4],
    "resnet_imagenet": [112, 56, 28, 14, 7],
    "mobilenetv1_imagenet": [56, 28, 14, 7],
}


def _stage_sizes(name: str) -> list[int]:
    info = get_model_info(name)
    if name in STAGE_SIZES:
        return STAGE_SIZES[name]
    if info.style == "imagenet":
        return STAGE_SIZES[f"{info.family}_imagenet"]
    return STAGE_SIZES[info.family]


@pytest.mark.parametrize("name", list_models())
def test_feature_structure(name):
    """Structure of forward(x, return_features=True) as documented in figkd.models.registry."""
    model = meta_model(name, 10).eval()
    size = get_model_info(name).input_size
    logits, features = model(torch.empty(2, 3, size, size, device="meta"), return_features=True)
    assert logits.shape == (2, 10)
    assert set(features) == {"feats", "preact_feats", "pooled_feat", "prepool_feat"}
    feats, preacts = features["feats"], features["preact_feats"]
    assert [f.shape[1] for f in feats] == model.get_stage_channels()
    assert [f.shape[-1] for f in feats] == _stage_sizes(name)
    assert [f.shape for f in preacts] == [f.shape for f in feats]
    assert features["pooled_feat"].shape == (2, model.feature_dim)
    assert features["prepool_feat"].shape[:2] == (2, model.feature_dim)
    assert model.get_classifier().in_features == model.feature_dim
    assert model.num_classes == 10
    plain = model(torch.empty(2, 3, size, size, device="meta"))
    assert isinstance(plain, torch.Tensor) and plain.shape == (2, 10)


@pytest.mark.parametrize(
    "name",
    [
        "vgg13",
        "resnet8x4",
        "wrn_40_2",
        "shufflenetv2",
        "mobilenetv2",
        "resnet50",
    ],
)
def test_cifar_models_run_at_64(name):
    model = meta_model(name, 200).eval()
    logits, features = model(torch.empty(1, 3, 64, 64, device="meta"), return_features=True)
    assert logits.shape == (1, 200)
    expected = [2 * s for s in _stage_sizes(name)]
    if name == "vgg13":  # pool3 is applied at 64x64 (RepDistiller's rule): block4 stays at 4x4
        expected[-1] = 4
    assert [f.shape[-1] for f in features["feats"]] == expected
