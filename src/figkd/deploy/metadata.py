"""What an exported model says about itself: the preprocessing a caller needs and where the model came from.

``figkd export`` writes these entries into the ONNX model's ``metadata_props`` (string keys and values; lists
and mappings as JSON), readable with ``onnx.load(path).metadata_props`` or
``onnxruntime.InferenceSession(path).get_modelmeta().custom_metadata_map``:

=========================  ===========================================================================
``figkd.architecture``     the model's registry name (``resnet8x4``)
``figkd.input_size``       ``[C, H, W]`` of one image (JSON); the input ``images`` is ``[batch, C, H, W]``
``figkd.mean``             per-channel mean subtracted after scaling pixels to [0, 1] (JSON list)
``figkd.std``              per-channel std divided by after the mean (JSON list)
``figkd.preprocessing``    the same in words
``figkd.classes``          class names, index = output position (JSON list; absent when unknown)
``figkd.num_classes``      width of the output ``logits``
``figkd.dataset``          the dataset the model was trained on (figkd's name) and
``figkd.data_root``        where it was read from (what ``figkd eval FILE.onnx`` uses by default)
``figkd.precision``        ``fp32`` or ``int8``
``figkd.quantization``     for int8: format, weight/activation types, per-channel, calibration (JSON)
``figkd.source``           the run directory, which weights (best/last), their epoch, their recorded top-1
                           and its split (``recorded_top1``, ``recorded_split``: test or val) (JSON)
=========================  ===========================================================================
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from ..errors import ConfigError

__all__ = ["PREFIX", "ModelCard"]

PREFIX = "figkd."


@dataclass(frozen=True)
class ModelCard:
    """The metadata of one exported model (see the module docstring); ``input_size`` is ``(H, W)`` in pixels,
    ``mean``/``std`` are in [0, 1] units."""

    architecture: str
    input_size: tuple[int, int]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    num_classes: int
    in_channels: int = 3
    classes: tuple[str, ...] | None = None
    dataset: str | None = None
    data_root: str | None = None
    precision: str = "fp32"
    quantization: dict[str, Any] | None = None
    source: dict[str, Any] = field(default_factory=dict)

    def as_int8(self, quantization: Mapping[str, Any]) -> ModelCard:
        """The card of the int8 model quantised from this one."""
        return replace(self, precision="int8", quantization=dict(quantization))

    def preprocessing(self) -> str:
        h, w = self.input_size
        mean = ", ".join(f"{v:.4f}" for v in self.mean)
        std = ", ".join(f"{v:.4f}" for v in self.std)
        return (f"input 'images': float32 [batch, {self.in_channels}, {h}, {w}], RGB, channels first; pixels scaled "
                f"to [0, 1] (uint8 / 255), then (x - mean) / std per channel with mean ({mean}) and std ({std})"
                + (f"; images brought to {h}x{w} as figkd's {self.dataset} recipe does" if self.dataset else ""))

    def to_metadata(self) -> dict[str, str]:
        entries: dict[str, Any] = {
            "architecture": self.architecture,
            "input_size": [self.in_channels, *self.input_size],
            "mean": list(self.mean), "std": list(self.std),
            "preprocessing": self.preprocessing(),
            "classes": list(self.classes) if self.classes is not None else None,
            "num_classes": self.num_classes,
            "dataset": self.dataset, "data_root": self.data_root,
            "precision": self.precision, "quantization": self.quantization,
            "source": self.source or None,
        }
        return {PREFIX + k: v if isinstance(v, str) else json.dumps(v) for k, v in entries.items() if v is not None}

    @classmethod
    def from_metadata(cls, props: Mapping[str, str], where: str = "the model") -> ModelCard:
        """The card in a model's ``metadata_props``. ConfigError when the model was not exported by figkd
        (no ``figkd.*`` entries) or an entry is malformed."""
        if PREFIX + "architecture" not in props:
            raise ConfigError(f"{where} carries no figkd metadata (figkd.architecture, figkd.input_size, ...): "
                              "it was not written by figkd export; export the run with figkd export RUN_DIR")
        try:
            value = {k[len(PREFIX):]: v for k, v in props.items() if k.startswith(PREFIX)}
            size = json.loads(value["input_size"])
            classes = json.loads(value["classes"]) if "classes" in value else None
            return cls(architecture=value["architecture"], input_size=(int(size[1]), int(size[2])),
                       in_channels=int(size[0]), mean=tuple(float(v) for v in json.loads(value["mean"])),
                       std=tuple(float(v) for v in json.loads(value["std"])),
                       num_classes=int(value["num_classes"]),
                       classes=tuple(str(c) for c in classes) if classes is not None else None,
                       dataset=value.get("dataset"), data_root=value.get("data_root"),
                       precision=value.get("precision", "fp32"),
                       quantization=json.loads(value["quantization"]) if "quantization" in value else None,
                       source=json.loads(value["source"]) if "source" in value else {})
        except (KeyError, ValueError, TypeError, IndexError) as error:
            raise ConfigError(f"{where} has malformed figkd metadata ({type(error).__name__}: {error}); export "
                              "it again with figkd export") from None

