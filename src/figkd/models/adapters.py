"""Models from outside figkd's zoo: the contract they meet, and the adapter that takes their features.

The contract (stated once; `figkd.models.register_model` models and ``hf:`` models are held to it)
------------------------------------------------------------------------------------------------------
- **Built from the number of classes**: ``builder(num_classes=C, **options)`` returns a ``torch.nn.Module``.
- **Input**: a float batch ``(N, 3, H, W)`` of normalised RGB images at the run's input size (the dataset
  recipe's size, e.g. 32x32). Nothing else is passed to ``forward``.
- **Output**: the logits ``(N, C)``, or an object whose ``.logits`` is that tensor (a Hugging Face
  ``ImageClassifierOutput``).
- **Shapes on the meta device**: figkd finds output and feature shapes by calling the model on a batch of
  the ``meta`` device (shapes without data), so its forward must not read tensor values in Python
  (``.item()``, ``if x.sum() > 0``) - which standard classifiers never do.

:func:`check_contract` checks the last three at set-up, on a ``(2, 3, H, W)`` meta batch, and says in one
line what is missing (a ``ValueError``; the engine reports it as a ConfigError naming the model).

Features through forward hooks
------------------------------
A model that is not a `figkd.models.base.FeatureModel` is wrapped in :class:`HookedModel`. ``model(x)``
returns its logits; ``model(x, return_features=True)`` returns ``(logits, features)`` with the structure
documented in `figkd.models.registry`, for the entries the model can give, taken with forward hooks on its
named submodules (:class:`FeatureHooks`, from its registration):

- ``feats``: the outputs of the ``stages`` modules, in order (each must be a ``(N, C, H, W)`` map);
- ``pooled_feat``: the output of the ``pooled`` module, else the input of the classifier, flattened to
  ``(N, D)``;
- ``prepool_feat``: the output of the ``prepool`` module (the map the global pooling averages);
- ``preact_feats``: never (a hook sees a stage's output, not the value before its last ReLU).

An entry the model cannot give is absent from the dict and :meth:`Adapter.explain_missing` says why; the
build context (`figkd.losses.BuildContext`) records it, and a loss term that needs it is refused when the
objective is built, in one line naming the term, the model and what it lacks.

The hooks are registered for the one forward that asks for features and removed after it (no state on the
model between calls). An adapter's ``state_dict()`` is its model's own (no ``model.`` prefix), and
``load_state_dict`` takes the same keys: the weights a run exports load into the user's class directly
(``MyNet(num_classes=10).load_state_dict(load_file("best.safetensors"))``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

import torch
from torch import Tensor, nn

from .base import FeatureModel, shape_only_batch_norm

#: The entries of ``features`` (and of the loss vocabulary's ``<side>_<entry>``) a model may lack.
FEATURE_ENTRIES = ("feats", "preact_feats", "pooled", "prepool", "cams")


@dataclass(frozen=True)
class FeatureHooks:
    """Names of the submodules whose outputs are a model's features (see the module docstring).

    ``stages``: modules whose outputs are the stage maps, in order; ``pooled``: the module whose output is
    the ``(N, D)`` embedding the classifier receives (default: the classifier's input); ``prepool``: the
    module whose output is the map that the global pooling averages; ``classifier``: the final
    ``nn.Linear`` (default: the last ``nn.Linear`` with ``num_classes`` outputs), whose weights make the
    class activation maps and which ``--init`` re-initialises when the class count differs.
    """

    stages: tuple[str, ...] = ()
    pooled: str | None = None
    prepool: str | None = None
    classifier: str | None = None

    def names(self) -> list[tuple[str, str]]:
        """``(what, module name)`` of every named module."""
        out = [(f"stages[{i}]", n) for i, n in enumerate(self.stages)]
        out += [(k, v) for k, v in (("pooled", self.pooled), ("prepool", self.prepool),
                                    ("classifier", self.classifier)) if v]
        return out


def find_classifier(model: nn.Module, num_classes: int) -> str:
    """The name of the last ``nn.Linear`` of ``model`` with ``num_classes`` outputs ("" when there is none)."""
    found = ""
    for name, module in model.named_modules():
        if isinstance(module, nn.Linear) and module.out_features == num_classes:
            found = name
    return found


def _strip_prefix(module: nn.Module, state_dict: dict[str, Any], prefix: str, local_metadata: Any) -> None:
    """State-dict post hook of an adapter: ``<prefix>model.<key>`` -> ``<prefix><key>`` (order kept)."""
    inner = prefix + "model."
    for key in [k for k in state_dict if k.startswith(inner)]:
        state_dict[prefix + key[len(inner):]] = state_dict.pop(key)
    metadata = getattr(state_dict, "_metadata", None)  # module versions, keyed by module path
    if metadata is not None:
        base = prefix[:-1]  # this adapter's path ("" at the top)
        path = f"{base}.model" if base else "model"
        for key in [k for k in metadata if k == path or k.startswith(path + ".")]:
            rest = key[len(path):]  # "" or ".<submodule>"
            metadata[base + rest if base else rest.lstrip(".")] = metadata.pop(key)


def _add_prefix(module: nn.Module, state_dict: dict[str, Any], prefix: str, *args: Any) -> None:
    """Load-state-dict pre hook of an adapter: every ``<prefix><key>`` -> ``<prefix>model.<key>``."""
    for key in [k for k in state_dict if k.startswith(prefix)]:
        state_dict[prefix + "model." + key[len(prefix):]] = state_dict.pop(key)


class Adapter(nn.Module):
    """Base of the wrappers of models from outside the zoo (:class:`HookedModel`, `figkd.models.hf.HFClassifier`).

    Holds the wrapped module as ``self.model``; its state dict is the model's own (module docstring).
    ``num_classes`` is the width of the logits, ``classifier_name`` the classifier's name in the model
    ("" if unknown), ``registry_name`` the name it was built by.
    """

    def __init__(self, model: nn.Module, name: str, num_classes: int, classifier_name: str = ""):
        super().__init__()
        self.model = model
        self.registry_name = name
        self.num_classes = num_classes
        self.classifier_name = classifier_name
        self.register_state_dict_post_hook(_strip_prefix)
        self.register_load_state_dict_pre_hook(_add_prefix)

    def explain_missing(self, entry: str) -> str:
        """Why ``features`` lacks ``entry`` (one of :data:`FEATURE_ENTRIES`)."""
        raise NotImplementedError

    def missing_features(self, returned: Mapping[str, Any]) -> dict[str, str]:
        """``{entry: why}`` for each entry of :data:`FEATURE_ENTRIES` the model does not give, from the
        features dict one forward ``returned`` (the build context records it: `figkd.losses.probe_features`)."""
        keys = {"feats": "feats", "preact_feats": "preact_feats", "pooled": "pooled_feat", "prepool": "prepool_feat"}
        out = {entry: self.explain_missing(entry) for entry, key in keys.items() if key not in returned}
        try:
            self.get_classifier()
        except ValueError:
            out["cams"] = self.explain_missing("cams")
        if "prepool" in out:
            out["cams"] = self.explain_missing("cams")
        return out

    def get_classifier(self) -> nn.Linear:
        """The final linear layer (class activation maps); ValueError when the model has none known."""
        layer = self.model.get_submodule(self.classifier_name) if self.classifier_name else None
        if not isinstance(layer, nn.Linear):
            raise ValueError(f"model {self.registry_name!r} has no known nn.Linear classifier")
        return layer

    def describe(self) -> dict[str, Any]:
        """What a run directory records about the model (`figkd.engine.rundir.record`)."""
        return {"name": self.registry_name, "class": f"{type(self.model).__module__}.{type(self.model).__qualname__}"}

    def notes(self, weights: bool = True) -> list[str]:
        """Lines the engine prints when the model is built: what it does with its input, and (``weights``)
        which weights it kept and re-initialised."""
        return []


def logits_of(output: Any) -> Any:
    """The logits of a model's output: the output itself, or its ``.logits``."""
    return getattr(output, "logits", output)


def _keep_output(store: dict[str, Tensor], key: str, module: nn.Module, args: Any, output: Any) -> None:
    store[key] = output


def _keep_input(store: dict[str, Tensor], key: str, module: nn.Module, args: Any) -> None:
    store[key] = args[0].flatten(1)


class HookedModel(Adapter):
    """A model of the contract (module docstring) whose features are taken with forward hooks on its
    submodules named by ``hooks``. Raises ValueError naming a module name the model does not have."""

    def __init__(self, model: nn.Module, name: str, hooks: FeatureHooks, num_classes: int):
        classifier = hooks.classifier or find_classifier(model, num_classes)
        super().__init__(model, name, num_classes, classifier)
        known = dict(model.named_modules())
        for what, module_name in hooks.names():
            if module_name not in known:
                import difflib

                close = difflib.get_close_matches(module_name, [k for k in known if k], n=3, cutoff=0.5)
                hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else \
                    f"; its modules: {', '.join(repr(k) for k in list(known)[1:8])} ..."
                raise ValueError(f"model {name!r}: {what} names the module {module_name!r}, which "
                                 f"{type(model).__name__} does not have{hint}")
        if hooks.classifier and not isinstance(known[hooks.classifier], nn.Linear):
            raise ValueError(f"model {name!r}: classifier {hooks.classifier!r} is a "
                             f"{type(known[hooks.classifier]).__name__}, not an nn.Linear")
        self.hooks = hooks

    def forward(self, x: Tensor, return_features: bool = False):
        if not return_features:
            return logits_of(self.model(x))
        store: dict[str, Tensor] = {}
        handles = [self.model.get_submodule(n).register_forward_hook(partial(_keep_output, store, f"stage{i}"))
                   for i, n in enumerate(self.hooks.stages)]
        if self.hooks.prepool:
            handles.append(self.model.get_submodule(self.hooks.prepool).register_forward_hook(
                partial(_keep_output, store, "prepool")))
        if self.hooks.pooled:
            handles.append(self.model.get_submodule(self.hooks.pooled).register_forward_hook(
                partial(_keep_output, store, "pooled")))
        elif self.classifier_name:
            handles.append(self.model.get_submodule(self.classifier_name).register_forward_pre_hook(
                partial(_keep_input, store, "pooled")))
        try:
            logits = logits_of(self.model(x))
        finally:
            for handle in handles:
                handle.remove()
        features: dict[str, Any] = {}
        if self.hooks.stages:
            features["feats"] = [self._map(store.get(f"stage{i}"), f"stage module {n!r}")
                                 for i, n in enumerate(self.hooks.stages)]
        if "pooled" in store:
            features["pooled_feat"] = self._pooled(store["pooled"])
        if self.hooks.prepool:
            features["prepool_feat"] = self._map(store.get("prepool"), f"prepool module {self.hooks.prepool!r}")
        return logits, features

    def _map(self, value: Any, what: str) -> Tensor:
        if not isinstance(value, Tensor) or value.dim() != 4:
            found = "was not called" if value is None else (
                f"returns a tensor of shape {tuple(value.shape)}" if isinstance(value, Tensor)
                else f"returns a {type(value).__name__}")
            raise ValueError(f"model {self.registry_name!r}: its {what} {found}, not an (N, C, H, W) map")
        return value

    def _pooled(self, value: Any) -> Tensor:
        if not isinstance(value, Tensor) or value.dim() < 2:
            raise ValueError(f"model {self.registry_name!r}: its pooled embedding is not an (N, D) tensor")
        return value.flatten(1)

    def explain_missing(self, entry: str) -> str:
        name = self.registry_name
        return {
            "feats": f"register_model('{name}', stages=[...]) names no stage modules",
            "preact_feats": "figkd's forward hooks see a stage's output, not the value before its last ReLU "
                            "(only figkd's zoo models give pre-activation features)",
            "pooled": f"{name} has no nn.Linear with {self.num_classes} outputs whose input is the embedding: "
                      f"name its classifier or pooled module in register_model('{name}', ...)",
            "prepool": f"register_model('{name}', prepool=...) names no module for the map before the global pooling",
            "cams": f"class activation maps need the map before the global pooling (register_model('{name}', "
                    "prepool=...)) and an nn.Linear classifier",
        }[entry]

    def describe(self) -> dict[str, Any]:
        out = super().describe()
        out["hooks"] = {"stages": list(self.hooks.stages), "pooled": self.hooks.pooled
                        or (f"input of {self.classifier_name}" if self.classifier_name else None),
                        "prepool": self.hooks.prepool, "classifier": self.classifier_name or None}
        return out


def check_contract(model: nn.Module, input_size: Sequence[int], num_classes: int) -> None:
    """Check that ``model`` meets the contract (module docstring) on a ``(2, 3, H, W)`` batch of the meta
    device: it runs, and returns ``(2, num_classes)`` logits or an object with such ``.logits``. A zoo model
    (`FeatureModel`) passes without a call. Raises ValueError saying what is missing."""
    if isinstance(model, FeatureModel):
        return
    from torch.func import functional_call

    name = getattr(model, "registry_name", "") or type(model).__name__
    batch = (2, 3, *(int(s) for s in input_size))
    tensors = {k: torch.empty_like(v, device="meta") for k, v in (*model.named_parameters(), *model.named_buffers())}
    try:
        with shape_only_batch_norm():
            output = functional_call(model, tensors, (torch.empty(batch, device="meta"),), strict=False)
    except Exception as exc:  # the user's code: any error is reported, in one line
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise ValueError(f"model {name!r} fails on a {batch} batch of the meta device, where figkd finds shapes "
                         f"({type(exc).__name__}: {first}); the contract: (N, 3, H, W) in, (N, num_classes) logits "
                         "out, no tensor values read in Python") from None
    logits = logits_of(output)
    if not isinstance(logits, Tensor):
        raise ValueError(f"model {name!r} returns a {type(output).__name__}, not logits: the contract is (N, "
                         f"num_classes) logits, or an object with .logits")
    if tuple(logits.shape) != (2, num_classes):
        raise ValueError(f"model {name!r} returns logits of shape {tuple(logits.shape)} for a {batch} batch; "
                         f"expected (2, {num_classes}) (num_classes={num_classes})")


def set_input_normalization(model: nn.Module, mean: Sequence[float], std: Sequence[float]) -> None:
    """Tell ``model`` the per-channel ``mean``/``std`` ([0, 1] units) its input images are normalised with.
    A model with its own input convention (a Hugging Face model and its image processor's mean/std) converts
    them; any other model ignores it."""
    setter = getattr(model, "set_input_normalization", None)
    if callable(setter):
        setter(mean, std)


def describe_model(model: nn.Module | None) -> dict[str, Any] | None:
    """What a run directory records about a model from outside the zoo (None for a zoo model)."""
    return model.describe() if isinstance(model, Adapter) else None


def build_notes(model: nn.Module | None, weights: bool = True) -> list[str]:
    """The lines to print about how ``model`` was built: its input handling and (``weights``) which weights
    it kept and re-initialised (`Adapter.notes`; none for a zoo model)."""
    return model.notes(weights) if isinstance(model, Adapter) else []
