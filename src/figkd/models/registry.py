"""The model registry: every model of figkd is built from its name.

Names are RepDistiller's and mdistiller's (``resnet8x4``, ``wrn_40_2``, ``vgg13``, ...), their
CamelCase and ``*_bn`` spellings are aliases (``MobileNetV2``, ``ShuffleV1``, ``ShuffleV2``,
``ResNet50``, ``vgg13_bn``, ...), and ``*_imagenet`` names the 224x224 models.

Calling a model
---------------
``model(x)`` returns the logits, shape ``[N, num_classes]``, and computes nothing else.

``model(x, return_features=True)`` returns ``(logits, features)``; ``features`` is a dict with the
structure of mdistiller's ``feats`` dict, so feature-based methods ported from mdistiller (FitNet, AT,
OFD, ReviewKD, CRD, ...) index it the same way:

``features["feats"]`` : list of tensors ``[N, C_i, H_i, W_i]``
    The output of the stem followed by the output of every stage, after the stage's final ReLU
    (index 0 is the stem; ``len(feats) == len(model.get_stage_channels())`` and ``C_i`` is
    ``model.get_stage_channels()[i]``). Exceptions, as in mdistiller: the pre-activation WRNs have
    no activation at stage outputs (``feats`` are the raw stage outputs); MobileNetV2's stage
    outputs are linear-bottleneck outputs (no ReLU); ``mobilenetv1_imagenet`` lists no stem.
``features["preact_feats"]`` : list of tensors, the same length and shapes as ``feats``
    The same stage outputs before the final ReLU (the residual sum, or the last BN's output), as
    OFD and ReviewKD need. Index 0 repeats ``feats[0]`` where mdistiller does (CIFAR models). For
    WRNs it is the batch-normalised value the next ReLU consumes; for MobileNetV2 it is ``feats``.
``features["pooled_feat"]`` : tensor ``[N, model.feature_dim]``
    The globally pooled embedding that the classifier receives (t-SNE, CRD, RKD).
``features["prepool_feat"]`` : tensor ``[N, model.feature_dim, H, W]``
    The map that the global average pooling turns into ``pooled_feat`` (CAT-KD's class activation
    maps, DiffKD's feature): ``feats[-1]`` for ResNets, VGG, ShuffleNetV1 and the ImageNet models; the
    final BN + ReLU of ``feats[-1]`` for WRNs; the output of the last 1x1 convolution (1280 or 1024
    channels) for MobileNetV2 and ShuffleNetV2.

Stage layout per family (for a 32x32 input; spatial sizes scale with the input):

=====================  ===========  ================================================
family                 len(feats)   spatial sizes
=====================  ===========  ================================================
CIFAR ResNet, WRN      4            32, 32, 16, 8
ShuffleNetV1/V2        4            32, 16, 8, 4
ResNet50 (CIFAR)       5            32, 32, 16, 8, 4
VGG                    5            32, 16, 8, 4, 4  (at 64x64: 64, 32, 16, 8, 4)
MobileNetV2            5            16, 16, 8, 4, 2 (input / 2, 2, 4, 8, 16)
ResNet *_imagenet      5            input / 2, 4, 8, 16, 32
MobileNetV1 imagenet   4            input / 4, 8, 16, 32
=====================  ===========  ================================================

Every model also has ``get_stage_channels()`` (channels of ``feats``), ``feature_dim`` (width of
``pooled_feat``), ``get_classifier()`` (the final ``nn.Linear``) and ``get_bn_before_relu()`` (the
BatchNorm before the final ReLU of each stage, one per entry of ``preact_feats[1:]``, as mdistiller's;
OFD's margins; ShuffleNetV2 raises ValueError: half of its stages' pre-activation channels pass
through no BatchNorm). Unlike mdistiller, whose
``get_stage_channels`` omits the stem for ResNet50 and is hard-coded for the ImageNet ResNets, here
it always matches ``feats`` entry for entry.

All models pool adaptively, so CIFAR-style models run on 32x32, 64x64 and larger inputs; they have
no data-dependent Python control flow (``torch.compile(fullgraph=True)`` traces them), and they work
with ``channels_last`` and bf16 autocast.

Models from outside the zoo
---------------------------
:func:`register_model` registers the user's own model where it is defined (from a ``FIGKD_PLUGINS``
module or file, `figkd.plugins`), with the names of the submodules whose outputs are its features;
``hf:<folder or hub id>`` names a Hugging Face image classifier (`figkd.models.hf`). Both are built by
:func:`build_model` like the zoo's models and wrapped in an adapter (`figkd.models.adapters`, where the
contract such a model meets is stated) that gives the entries of ``features`` it can.
"""

from __future__ import annotations

import difflib
import inspect
import numbers
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import TypeVar

from torch import nn

from . import hf
from .adapters import Adapter, FeatureHooks, HookedModel
from .base import FeatureModel
from .cifar import mobilenetv2, resnet, resnetv2, shufflenetv1, shufflenetv2, vgg, wrn
from .imagenet import mobilenetv1
from .imagenet import resnet as imagenet_resnet

#: The paper's initial learning rates (Section 4.2: "The initial learning rate is set to 0.05, except for
#: ShuffleNet-V1/V2 and MobileNet-V2, which use 0.01"; mdistiller's CIFAR-100 configs do the same:
#: ``SOLVER.LR: 0.01`` for the ShuffleV1/V2 and MobileNetV2 students in ``configs/cifar100/*/``).
PAPER_LR = 0.05
PAPER_LR_SHUFFLENET_MOBILENETV2 = 0.01


@dataclass(frozen=True)
class ModelInfo:
    """What the registry knows about a model."""

    name: str
    builder: Callable[..., nn.Module]
    family: str  # "resnet", "wrn", "vgg", "mobilenet", "shufflenet"; "custom" (register_model), "hf"
    style: str  # "cifar" (3x3 stem; 32x32, 64x64, ...), "imagenet" (224x224), "custom", "hf"
    source: str  # the reference implementation whose architecture and parameter names it follows
    #: initial learning rate of the paper's recipe when the model is trained (as teacher or student)
    default_lr: float = PAPER_LR
    #: the modules whose outputs are the features of a model from outside the zoo (register_model)
    hooks: FeatureHooks | None = None
    #: the input size a registered model is designed for (register_model's input_size)
    size: int | None = None

    @property
    def input_size(self) -> int:
        """The input size the model is designed for (32 for CIFAR-style, 224 for ImageNet-style, a registered
        model's own)."""
        if self.size is not None:
            return self.size
        return 32 if self.style == "cifar" else 224


_REPDISTILLER = "HobbitLong/RepDistiller models/{} (= megvii-research/mdistiller mdistiller/models/cifar/{})"


def _cifar(name: str, builder: Callable[..., nn.Module], family: str, file: str,
           default_lr: float = PAPER_LR) -> ModelInfo:
    return ModelInfo(name, builder, family, "cifar", _REPDISTILLER.format(file, file), default_lr)


_MODELS: dict[str, ModelInfo] = {
    info.name: info
    for info in [
        _cifar("resnet8", resnet.resnet8, "resnet", "resnet.py"),
        _cifar("resnet14", resnet.resnet14, "resnet", "resnet.py"),
        _cifar("resnet20", resnet.resnet20, "resnet", "resnet.py"),
        _cifar("resnet32", resnet.resnet32, "resnet", "resnet.py"),
        _cifar("resnet44", resnet.resnet44, "resnet", "resnet.py"),
        _cifar("resnet56", resnet.resnet56, "resnet", "resnet.py"),
        _cifar("resnet110", resnet.resnet110, "resnet", "resnet.py"),
        _cifar("resnet8x4", resnet.resnet8x4, "resnet", "resnet.py"),
        _cifar("resnet32x4", resnet.resnet32x4, "resnet", "resnet.py"),
        _cifar("resnet50", resnetv2.resnet50, "resnet", "resnetv2.py"),
        _cifar("wrn_16_1", wrn.wrn_16_1, "wrn", "wrn.py"),
        _cifar("wrn_16_2", wrn.wrn_16_2, "wrn", "wrn.py"),
        _cifar("wrn_40_1", wrn.wrn_40_1, "wrn", "wrn.py"),
        _cifar("wrn_40_2", wrn.wrn_40_2, "wrn", "wrn.py"),
        _cifar("vgg8", vgg.vgg8, "vgg", "vgg.py"),
        _cifar("vgg11", vgg.vgg11, "vgg", "vgg.py"),
        _cifar("vgg13", vgg.vgg13, "vgg", "vgg.py"),
        _cifar("vgg16", vgg.vgg16, "vgg", "vgg.py"),
        _cifar("vgg19", vgg.vgg19, "vgg", "vgg.py"),
        _cifar("mobilenetv2", mobilenetv2.mobilenetv2, "mobilenet", "mobilenetv2.py",
               PAPER_LR_SHUFFLENET_MOBILENETV2),
        _cifar("shufflenetv1", shufflenetv1.shufflenetv1, "shufflenet", "ShuffleNetv1.py",
               PAPER_LR_SHUFFLENET_MOBILENETV2),
        _cifar("shufflenetv2", shufflenetv2.shufflenetv2, "shufflenet", "ShuffleNetv2.py",
               PAPER_LR_SHUFFLENET_MOBILENETV2),
        ModelInfo(
            "resnet18_imagenet",
            imagenet_resnet.resnet18_imagenet,
            "resnet",
            "imagenet",
            "torchvision resnet18 naming (= mdistiller mdistiller/models/imagenet/resnet.py)",
        ),
        ModelInfo(
            "resnet34_imagenet",
            imagenet_resnet.resnet34_imagenet,
            "resnet",
            "imagenet",
            "torchvision resnet34 naming (= mdistiller mdistiller/models/imagenet/resnet.py)",
        ),
        ModelInfo(
            "resnet50_imagenet",
            imagenet_resnet.resnet50_imagenet,
            "resnet",
            "imagenet",
            "torchvision resnet50 naming (= mdistiller mdistiller/models/imagenet/resnet.py)",
        ),
        ModelInfo(
            "mobilenetv1_imagenet",
            mobilenetv1.mobilenetv1_imagenet,
            "mobilenet",
            "imagenet",
            "megvii-research/mdistiller mdistiller/models/imagenet/mobilenetv1.py",
        ),
    ]
}

# Other spellings: RepDistiller's/mdistiller's CamelCase names and builder names.
_ALIASES: dict[str, str] = {
    "MobileNetV2": "mobilenetv2",
    "mobile_half": "mobilenetv2",
    "ShuffleV1": "shufflenetv1",
    "ShuffleV2": "shufflenetv2",
    "ResNet50": "resnet50",
    "vgg8_bn": "vgg8",
    "vgg11_bn": "vgg11",
    "vgg13_bn": "vgg13",
    "vgg16_bn": "vgg16",
    "vgg19_bn": "vgg19",
    "MobileNetV1": "mobilenetv1_imagenet",
}


#: A registered name: it names run directories and is written on the command line.
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.+-]*")
Builder = TypeVar("Builder", bound=Callable[..., nn.Module])


def register_model(name: str | None = None, *, default_lr: float = PAPER_LR, input_size: int = 32,
                   stages: Sequence[str] = (), pooled: str | None = None, prepool: str | None = None,
                   classifier: str | None = None, aliases: Sequence[str] = (),
                   source: str = "") -> Callable[[Builder], Builder]:
    """Register a model where it is defined (a decorator, as timm's ``@register_model``)::

        @register_model("mynet_small", stages=["stem", "layer1", "layer2"], prepool="layer2")
        class MyNet(nn.Module):
            def __init__(self, num_classes: int, width: int = 16): ...
            def forward(self, x): ...          # (N, 3, H, W) -> (N, num_classes) logits

    The decorated class or function builds the model from ``num_classes`` (and its other keyword
    options, `build_model`'s ``**options``) and meets the contract of `figkd.models.adapters`. Loaded
    from a ``FIGKD_PLUGINS`` module or file, its name is known to every command (``--model``,
    ``--teacher``, ``--student``, ``--peers``, configs, sweeps, ``--resume``, eval, report, analyze).

    ``name``: default the builder's ``__name__``; letters, digits and ``_ . + -``. ``default_lr``: its
    initial learning rate when ``lr`` is not set. ``input_size``: the size it is designed for (``figkd
    models``). ``stages``, ``pooled``, ``prepool``, ``classifier``: the submodules whose outputs are its
    features (`figkd.models.adapters.FeatureHooks`); without ``stages`` the stage-feature methods (FitNet,
    AT, ...) refuse it, naming what it lacks. A class that subclasses `figkd.models.base.FeatureModel`
    returns its features itself and needs none of them. Returns the builder unchanged.

    Raises ValueError for a name (or alias) already registered to another builder or not of the form
    above, TypeError for a builder that does not take ``num_classes``. Registering the same builder
    again (its module imported a second time) replaces the entry.
    """
    def decorate(builder: Builder) -> Builder:
        key = name or getattr(builder, "__name__", "")
        if not isinstance(key, str) or not _NAME.fullmatch(key):
            raise ValueError(f"register_model: model name {key!r} must be letters, digits and _ . + - (it names run "
                             "directories)")
        params = inspect.signature(builder).parameters
        if "num_classes" not in params and not any(p.kind == p.VAR_KEYWORD for p in params.values()):
            raise TypeError(f"register_model({key!r}): {getattr(builder, '__qualname__', builder)} must take "
                            "num_classes (the contract: a model is built from the number of classes)")
        origin = f"{getattr(builder, '__module__', '?')}.{getattr(builder, '__qualname__', repr(builder))}"
        for taken in (key, *aliases):
            if not isinstance(taken, str) or not _NAME.fullmatch(taken):
                raise ValueError(f"register_model({key!r}): alias {taken!r} must be letters, digits and _ . + -")
            owner = _MODELS.get(_ALIASES.get(taken, taken))
            if owner is not None and _origin(owner.builder) != origin:
                raise ValueError(f"register_model: the name {taken!r} is already registered ({owner.source})")
        hooks = FeatureHooks(tuple(stages), pooled, prepool, classifier)
        _MODELS[key] = ModelInfo(key, builder, "custom", "custom", source or origin, float(default_lr), hooks,
                                 int(input_size))
        _ALIASES.update((alias, key) for alias in aliases)
        return builder

    return decorate


def _origin(builder: Callable[..., nn.Module]) -> str:
    return f"{getattr(builder, '__module__', '?')}.{getattr(builder, '__qualname__', repr(builder))}"


def list_models(style: str | None = None, include_aliases: bool = False) -> list[str]:
    """Registered model names, teachers' and students' families together, in registry order (the zoo,
    then the models of `register_model` in the order they were registered).

    ``style`` filters to ``"cifar"``, ``"imagenet"`` or ``"custom"`` (registered) models;
    ``include_aliases`` appends the alternative spellings (sorted).
    """
    if style not in (None, "cifar", "imagenet", "custom"):
        raise ValueError(f"style must be None, 'cifar', 'imagenet' or 'custom', got {style!r}")
    names = [name for name, info in _MODELS.items() if style is None or info.style == style]
    if include_aliases:
        names += sorted(alias for alias, target in _ALIASES.items() if target in names)
    return names


def canonical_name(name: str) -> str:
    """The registry name for ``name`` or one of its aliases (``hf:<folder>`` with the folder's absolute path);
    ``ValueError`` for an unknown name."""
    if hf.is_hf(name):
        return hf.canonical(name)
    if name in _MODELS:
        return name
    if name in _ALIASES:
        return _ALIASES[name]
    known = list(_MODELS) + list(_ALIASES)
    lowered = {k.lower(): k for k in known}
    close = difflib.get_close_matches(name.lower(), list(lowered), n=3, cutoff=0.6)
    hint = f" Did you mean {', '.join(repr(lowered[c]) for c in close)}?" if close else ""
    raise ValueError(
        f"unknown model {name!r}.{hint} Known models: {', '.join(_MODELS)}; "
        f"aliases: {', '.join(sorted(_ALIASES))}; your own: register_model in a FIGKD_PLUGINS module, or "
        "hf:<folder or hub id> for a Hugging Face model."
    )


def get_model_info(name: str) -> ModelInfo:
    """The registry entry of a model name or alias; for ``hf:...``, an entry made for it."""
    if hf.is_hf(name):
        full = hf.canonical(name)
        return ModelInfo(full, partial(hf.build_hf, full), "hf", "hf", "Hugging Face transformers "
                         "AutoModelForImageClassification")
    return _MODELS[canonical_name(name)]


def model_slug(name: str) -> str:
    """A model's name as a path component and in logs: its name, ``hf-<folder name>`` for ``hf:<folder>``."""
    return hf.slug(name) if hf.is_hf(name) else name


def default_lr(name: str) -> float:
    """The paper's initial learning rate for model ``name`` (Section 4.2: 0.05, 0.01 for ShuffleNet-V1/V2
    and MobileNet-V2), a property of its registry entry (`ModelInfo.default_lr`; aliases resolve to their
    model). ``ValueError`` for an unknown name."""
    return get_model_info(name).default_lr



def build_model(name: str, num_classes: int, **options) -> nn.Module:
    """Build a registered model with freshly initialised weights (the reference's initialisation); a model
    of `register_model` as its builder makes it, wrapped in `figkd.models.adapters.HookedModel` unless it is a
    `FeatureModel`; ``hf:<folder or hub id>`` with its pretrained weights (`figkd.models.hf`).

    ``options`` are the builder's keyword arguments (e.g. ``drop_rate`` for WRNs,
    ``zero_init_residual`` for ``resnet50``, ``width_mult`` for ``mobilenetv2``); an option the model
    does not take is a ``ValueError`` naming the ones it does. Wrap the call in
    ``with torch.device("meta"):`` to build a model without allocating its weights.
    """
    info = get_model_info(name)
    if isinstance(num_classes, bool) or not isinstance(num_classes, numbers.Integral) or num_classes < 1:
        raise ValueError(f"num_classes must be a positive integer, got {num_classes!r}")
    num_classes = int(num_classes)
    params = inspect.signature(info.builder).parameters
    accepted = [p for p in params if p != "num_classes"]
    open_ended = any(p.kind == p.VAR_KEYWORD for p in params.values())
    unknown = [] if open_ended else sorted(set(options) - set(accepted))
    if unknown:
        raise ValueError(
            f"model {info.name!r} takes no option(s) {', '.join(unknown)}; "
            f"its options: {', '.join(accepted) if accepted else 'none'}"
        )
    try:
        model = info.builder(num_classes=num_classes, **options)
    except Exception as exc:
        if info.family != "custom":
            raise
        first = (str(exc).strip().splitlines() or [""])[0]  # the user's builder: said in one line
        raise ValueError(f"model {info.name!r}: its builder ({info.source}) raised {type(exc).__name__}: {first}") \
            from exc
    if not isinstance(model, nn.Module):
        raise ValueError(f"model {info.name!r}: its builder returned a {type(model).__name__}, not a torch.nn.Module")
    if not isinstance(model, (FeatureModel, Adapter)):  # a model from outside the zoo: features through hooks
        model = HookedModel(model, info.name, info.hooks or FeatureHooks(), num_classes)
    model.registry_name = info.name  # what error messages name it by (e.g. a pair a method cannot distil)
    return model
