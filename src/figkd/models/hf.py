"""Hugging Face image classifiers as figkd models: ``hf:<local folder or hub id>``.

``build_model("hf:./my-vit", num_classes)`` (and ``--teacher hf:...``, ``--student hf:...``, ``--model
hf:...`` on the command line) loads the model with ``transformers.AutoModelForImageClassification`` (the
optional extra: ``pip install 'figkd[hf]'``), from a folder written by ``save_pretrained`` or, where the
machine has network access and ``HF_HUB_OFFLINE`` is not set, from the hub. A local folder is read with
``local_files_only=True``: nothing is downloaded for it. Weights are loaded in float32.

- **The head.** When the model's class count differs from the dataset's, its classifier is replaced by a
  freshly initialised one of the right size (``ignore_mismatched_sizes``); :meth:`HFClassifier.notes` says
  which tensors were kept and which re-initialised, and the engine prints it.
- **Its own input.** The run's loader normalises images with the run's mean/std at the dataset recipe's
  size (one batch feeds a ViT teacher and a CNN student alike). The wrapper undoes that normalisation
  and applies the model's own, from the folder's image processor (``preprocessor_config.json``: the
  pixel values ``(x * 255 * rescale_factor - image_mean) / image_std``), and resizes the batch to the
  model's input size (``F.interpolate``, bilinear; antialiased when it shrinks): the processor's
  ``crop_size`` when it centre-crops, else its ``size``. Without an image processor the model receives
  the run's normalised images, resized to ``config.image_size`` where the config has one - said in the
  notes. The engine tells the wrapper the run's normalisation (`figkd.models.set_input_normalization`)
  and records the model's in the run directory (``config.yaml``, ``resolved.models``).
- **Features.** ``pooled_feat`` is the input of the model's ``classifier`` module (a ViT's class token
  after the final layer norm; a ConvNeXt's pooled, normalised embedding); ``feats`` are the hidden
  states when they are ``(N, C, H, W)`` maps (ConvNeXt, ResNet, Swin's reshaped ones), absent for a
  transformer's token sequences. Pre-activation features and the map before the pooling are not taken:
  OFD, ReviewKD, CAT-KD and DiffKD refuse a Hugging Face model when the objective is built.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator, Sequence
from functools import partial
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .adapters import Adapter, _keep_input, find_classifier

PREFIX = "hf:"
#: What a hub id looks like (``org/name`` or ``name``); anything else that is not a folder is an error.
_HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*(/[\w.-]+)?")
INSTALL = "Hugging Face models need the transformers library: pip install 'figkd[hf]'"


def is_hf(name: Any) -> bool:
    """Whether ``name`` names a Hugging Face model (``hf:...``)."""
    return isinstance(name, str) and name.startswith(PREFIX)


def source_of(name: str) -> tuple[str, bool]:
    """``(folder or hub id, is_local)`` of ``hf:<source>``. ValueError for an empty source, or a path
    that looks like a folder (``./x``, ``/x``, ``~/x``, ``a/b/c``) but does not exist."""
    text = name[len(PREFIX):].strip()
    if not text:
        raise ValueError("hf: needs a folder or a hub id after the colon, e.g. hf:./my-vit or "
                         "hf:google/vit-base-patch16-224")
    path = Path(text).expanduser()
    if path.exists():
        return str(path.resolve()), True
    if text.startswith((".", "/", "~")) or not _HUB_ID.fullmatch(text):
        raise ValueError(f"{name}: the folder {text} does not exist (a Hugging Face model folder holds "
                         "config.json and the weights, as save_pretrained writes them)")
    return text, False


def canonical(name: str) -> str:
    """``hf:<absolute folder>`` for a local folder, ``hf:<hub id>`` otherwise."""
    return PREFIX + source_of(name)[0]


def slug(name: str) -> str:
    """A short name for run directories and logs: ``hf-<folder name>``, ``hf-<org>--<name>`` for a hub id."""
    source, local = source_of(name)
    return "hf-" + (Path(source).name if local else source.replace("/", "--"))


@contextlib.contextmanager
def _quiet(transformers) -> Iterator[None]:
    """transformers' own loading messages and progress bars off (figkd prints its summary instead)."""
    logging = transformers.utils.logging
    verbosity, bars = logging.get_verbosity(), logging.is_progress_bar_enabled()
    logging.set_verbosity_error()
    logging.disable_progress_bar()
    try:
        yield
    finally:
        logging.set_verbosity(verbosity)
        if bars:
            logging.enable_progress_bar()


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


def _size_of(value: Any, key: str) -> Any:
    return value.get(key) if isinstance(value, dict) else getattr(value, key, None)


def _processor_input(processor) -> tuple[tuple[int, int] | None, list[float], list[float], float]:
    """``(input size, mean, std, scale)`` of an image processor: the model's pixel values are
    ``(x * scale - mean) / std`` for images ``x`` in [0, 1]."""
    size = None
    crop = getattr(processor, "crop_size", None)
    for candidate in ([crop] if getattr(processor, "do_center_crop", False) and crop else []) + \
            [getattr(processor, "size", None)]:
        if candidate is None:
            continue
        h, w, edge = (_size_of(candidate, k) for k in ("height", "width", "shortest_edge"))
        if h and w:
            size = (int(h), int(w))
        elif edge:
            size = (int(edge), int(edge))
        if size:
            break
    normalize = getattr(processor, "do_normalize", True)
    mean = [float(v) for v in (processor.image_mean if normalize else (0.0, 0.0, 0.0))]
    std = [float(v) for v in (processor.image_std if normalize else (1.0, 1.0, 1.0))]
    if len(mean) == 1:
        mean, std = mean * 3, std * 3
    rescale = float(getattr(processor, "rescale_factor", 1 / 255)) if getattr(processor, "do_rescale", True) else 1.0
    return size, mean, std, 255.0 * rescale


class HFClassifier(Adapter):
    """A ``transformers`` image classifier behind figkd's model interface (module docstring).

    ``input_size``: ``(H, W)`` the model is fed (None: the run's size); ``mean``/``std``/``scale``: its pixel
    convention (None: it receives the run's normalised images unchanged); ``loading``: what was loaded.
    """

    def __init__(self, model: nn.Module, name: str, num_classes: int, *, input_size: tuple[int, int] | None,
                 mean: Sequence[float] | None, std: Sequence[float] | None, scale: float = 1.0,
                 loading: dict[str, Any] | None = None, processor: str = ""):
        super().__init__(model, name, num_classes, find_classifier(model, num_classes))
        self.input_size = tuple(input_size) if input_size else None
        self.mean = list(mean) if mean is not None else None
        self.std = list(std) if std is not None else None
        self.scale = float(scale)
        self.loading = loading or {}
        self.processor = processor
        # x -> x * in_scale + in_shift: the run's normalisation undone and the model's applied (identity until
        # set_input_normalization; buffers so that they follow the model's device; not in the state dict)
        self.register_buffer("in_scale", torch.ones(1, 3, 1, 1), persistent=False)
        self.register_buffer("in_shift", torch.zeros(1, 3, 1, 1), persistent=False)

    def set_input_normalization(self, mean: Sequence[float], std: Sequence[float]) -> None:
        """The run's images are ``(x - mean) / std``: feed the model ``(x * scale - its mean) / its std``."""
        if self.mean is None or self.std is None:
            return
        run_mean, run_std = (torch.tensor([float(v) for v in t], dtype=torch.float64) for t in (mean, std))
        own_mean, own_std = (torch.tensor(t, dtype=torch.float64) for t in (self.mean, self.std))
        a = run_std * self.scale / own_std
        b = (run_mean * self.scale - own_mean) / own_std
        self.in_scale.copy_(a.view(1, 3, 1, 1))
        self.in_shift.copy_(b.view(1, 3, 1, 1))

    def pixel_values(self, x: Tensor) -> Tensor:
        """The run's batch as the model's input (normalisation converted, resized)."""
        x = x * self.in_scale.to(x.dtype) + self.in_shift.to(x.dtype)
        if self.input_size is not None and tuple(x.shape[-2:]) != self.input_size:
            shrink = x.shape[-2] > self.input_size[0] or x.shape[-1] > self.input_size[1]
            x = F.interpolate(x, size=self.input_size, mode="bilinear", align_corners=False, antialias=shrink)
        return x

    def forward(self, x: Tensor, return_features: bool = False):
        pixels = self.pixel_values(x)
        if not return_features:
            return self.model(pixel_values=pixels).logits
        store: dict[str, Tensor] = {}
        handle = (self.model.get_submodule(self.classifier_name).register_forward_pre_hook(
            partial(_keep_input, store, "pooled")) if self.classifier_name else None)
        try:
            out = self.model(pixel_values=pixels, output_hidden_states=True)
        finally:
            if handle is not None:
                handle.remove()
        features: dict[str, Any] = {}
        hidden = getattr(out, "reshaped_hidden_states", None) or getattr(out, "hidden_states", None)
        if hidden and all(isinstance(h, Tensor) and h.dim() == 4 for h in hidden):
            features["feats"] = list(hidden)
        if "pooled" in store:
            features["pooled_feat"] = store["pooled"]
        return out.logits, features

    def explain_missing(self, entry: str) -> str:
        cls = type(self.model).__name__
        return {
            "feats": f"{cls}'s hidden states are not (N, C, H, W) maps (a vision transformer's are token sequences)",
            "preact_feats": "figkd takes no pre-activation features from a Hugging Face model",
            "pooled": f"{cls} has no nn.Linear classifier with {self.num_classes} outputs whose input is the embedding",
            "prepool": "figkd takes no map before the global pooling from a Hugging Face model",
            "cams": "class activation maps need the map before the global pooling, which figkd does not take from "
                    "a Hugging Face model",
        }[entry]

    def describe(self) -> dict[str, Any]:
        out = super().describe()
        out.update({"source": self.registry_name,
                    "input_size": list(self.input_size) if self.input_size else None,
                    "normalization": ({"mean": self.mean, "std": self.std, "scale": self.scale,
                                       "from": self.processor} if self.mean is not None else
                                      "none: the run's normalised images (no image processor)"),
                    "weights": self.loading})
        return out

    def notes(self, weights: bool = True) -> list[str]:
        name, loading = self.registry_name, self.loading
        line = f"{name}: {type(self.model).__name__}, {loading.get('kept', 0)} tensors of its weights kept"
        reinit = loading.get("reinitialised") or []
        if reinit:
            line += (f"; re-initialised for {self.num_classes} classes (the folder's head has "
                     f"{loading.get('pretrained_classes')}): {', '.join(reinit)}")
        if loading.get("missing"):
            line += f"; not in its weights, initialised: {', '.join(loading['missing'][:5])}"
        size = "x".join(str(s) for s in self.input_size) if self.input_size else "the run's size"
        if self.mean is not None:
            how = (f"input resized to {size}, normalised with its image processor's mean "
                   f"{_fmt(self.mean)} and std {_fmt(self.std)}")
        else:
            how = f"no image processor: it receives the run's normalised images, at {size}"
        return ([line] if weights else []) + [f"{name}: {how}"]


def _fmt(values: Sequence[float]) -> str:
    return "(" + ", ".join(f"{v:.4g}" for v in values) + ")"


def build_hf(name: str, num_classes: int) -> HFClassifier:
    """Load ``hf:<folder or hub id>`` for ``num_classes`` classes (module docstring). ValueError (one line)
    when transformers is missing, the folder is not a model of ``AutoModelForImageClassification``, or its
    weights cannot be read."""
    source, local = source_of(name)
    if local and not (Path(source) / "config.json").is_file():
        raise ValueError(f"{name}: {source} is not a Hugging Face model folder (no config.json; save_pretrained "
                         "writes config.json and the weights)")
    try:
        import transformers
    except ImportError:
        raise ValueError(f"{name}: {INSTALL}") from None
    with _quiet(transformers):
        try:
            config = transformers.AutoConfig.from_pretrained(source, local_files_only=local)
            pretrained_classes = getattr(config, "num_labels", None)
            model, info = transformers.AutoModelForImageClassification.from_pretrained(
                source, num_labels=num_classes, ignore_mismatched_sizes=True, local_files_only=local,
                output_loading_info=True, dtype=torch.float32)
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ValueError(f"{name}: transformers cannot load it as an image classifier "
                             f"(AutoModelForImageClassification: {_first_line(exc)})") from None
        size, mean, std, scale, processor = _input_convention(transformers, source, local, config)
    reinitialised = sorted(k for k, *_ in info.get("mismatched_keys", ()))
    missing = sorted(info.get("missing_keys", ()))
    kept = len(model.state_dict()) - len(reinitialised) - len(missing)
    loading = {"kept": kept, "reinitialised": reinitialised, "missing": missing,
               "pretrained_classes": pretrained_classes}
    return HFClassifier(model.float(), PREFIX + source, num_classes, input_size=size, mean=mean, std=std,
                        scale=scale, loading=loading, processor=processor)


def _input_convention(transformers, source: str, local: bool, config):
    """``(input size, mean, std, scale, where from)`` of the model: its image processor's, else (no
    processor) ``config.image_size`` and no normalisation of its own."""
    has_processor = (Path(source) / "preprocessor_config.json").is_file() if local else True
    processor = None
    if has_processor:
        try:
            processor = transformers.AutoImageProcessor.from_pretrained(source, local_files_only=local)
        except OSError:
            if local:
                raise ValueError(f"hf:{source}: its preprocessor_config.json cannot be read") from None
        except (ValueError, KeyError, TypeError) as exc:
            raise ValueError(f"hf:{source}: its image processor cannot be loaded ({_first_line(exc)})") from None
    if processor is not None and getattr(processor, "image_mean", None) is not None:
        size, mean, std, scale = _processor_input(processor)
        return size, mean, std, scale, f"{type(processor).__name__} (preprocessor_config.json)"
    image_size = getattr(config, "image_size", None)
    if isinstance(image_size, int):
        image_size = (image_size, image_size)
    elif isinstance(image_size, Sequence) and len(image_size) == 2:
        image_size = (int(image_size[0]), int(image_size[1]))
    else:
        image_size = None
    return image_size, None, None, 1.0, ""
