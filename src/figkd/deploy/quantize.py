"""Static int8 quantisation of an exported fp32 model with onnxruntime's ``quantization`` module.

The fp32 model is first prepared by ``onnxruntime.quantization.shape_inference.quant_pre_process`` (shape
inference and onnxruntime's graph optimisations, as onnxruntime recommends before quantising), then
``quantize_static`` writes a QDQ model (QuantizeLinear/DequantizeLinear pairs around each quantised operator,
which onnxruntime's CPU kernels fuse into integer operators): weights int8, symmetric, one scale per output
channel; activations uint8, asymmetric, their ranges the minimum and maximum seen on the calibration images
(``CalibrationMethod.MinMax``). These are the choices onnxruntime's documentation gives for x86-64 CPUs with
VNNI (``quantize_static``'s docstring, "Choosing parameters for CPU inference"; the development machine's
Xeon has AVX512-VNNI); per-channel weights are what the accuracy of ResNet-style convolutions needs. On an x86
CPU without VNNI, onnxruntime recommends ``reduce_range=True`` (7-bit weights) instead.
"""

from __future__ import annotations

import itertools
import logging
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ConfigError
from .onnx_export import INPUT_NAME

__all__ = ["QUANTIZATION", "quantize_int8"]

#: The settings of :func:`quantize_int8`, as recorded in the int8 model's ``figkd.quantization`` metadata.
QUANTIZATION: dict[str, Any] = {"format": "QDQ", "weights": "int8, symmetric, per channel",
                                "activations": "uint8, asymmetric, per tensor", "calibration_method": "MinMax",
                                "reduce_range": False, "library": "onnxruntime.quantization.quantize_static"}


def _reader(batches: Iterable[np.ndarray]):
    """An onnxruntime ``CalibrationDataReader`` over ``batches`` (float32 ``(N, C, H, W)``, normalised)."""
    from onnxruntime.quantization import CalibrationDataReader

    class Batches(CalibrationDataReader):
        def __init__(self) -> None:
            self.count = 0
            self._it: Iterator[np.ndarray] = iter(batches)

        def get_next(self):
            batch = next(self._it, None)
            if batch is None:
                return None
            self.count += int(batch.shape[0])
            return {INPUT_NAME: np.ascontiguousarray(batch, dtype=np.float32)}

    return Batches()


def quantize_int8(model, calibration: Iterable[np.ndarray]) -> tuple[Any, int]:
    """``(int8 onnx.ModelProto, number of calibration images)`` of the fp32 ``model`` (an ``onnx.ModelProto``
    exported by `figkd.deploy.export_onnx`), calibrated on the batches of ``calibration``. The fp32 model's
    metadata is kept (the caller marks the result as int8). ConfigError when ``calibration`` is empty."""
    import onnx
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    batches = iter(calibration)
    first = next(batches, None)
    if first is None:
        raise ConfigError("int8 quantisation needs calibration images, and none were given")
    reader = _reader(itertools.chain([first], batches))
    quiet = logging.getLogger("onnxruntime")  # "please run pre-processing first"-style notes; we do
    level = quiet.level
    quiet.setLevel(logging.ERROR)
    try:
        with tempfile.TemporaryDirectory(prefix="figkd-int8-") as tmp:
            prepared, quantized = Path(tmp) / "prepared.onnx", Path(tmp) / "int8.onnx"
            quant_pre_process(model, str(prepared))
            quantize_static(str(prepared), str(quantized), reader, quant_format=QuantFormat.QDQ, per_channel=True,
                            reduce_range=False, activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                            calibrate_method=CalibrationMethod.MinMax)
            result = onnx.load(str(quantized))
    finally:
        quiet.setLevel(level)
    _copy_metadata(model, result)
    return result, reader.count


def _copy_metadata(source, target) -> None:
    from .onnx_export import set_metadata

    set_metadata(target, {p.key: p.value for p in source.metadata_props})
