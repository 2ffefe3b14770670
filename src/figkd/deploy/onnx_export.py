"""A classifier (any ``nn.Module`` mapping images ``(N, C, H, W)`` float32 to logits ``(N, num_classes)``) as
an ONNX model, through the ``torch.export``-based exporter (``torch.onnx.export(..., dynamo=True)``).

The model is traced once by ``torch.export.export`` (non-strict) with a dynamic batch axis, then translated
by ``torch.onnx.export`` with the opset the exporter chooses and its graph optimisation (constant folding;
eval-mode BatchNorm is folded into the convolutions). Tracing is done by figkd itself rather than by
``torch.onnx.export``'s own capture, which falls back to other capture strategies (strict, draft export)
when the first fails: a model that ``torch.export`` cannot trace is an :class:`ExportError`, not a graph
captured some other way. The input is named ``images`` (``[batch, C, H, W]``), the output ``logits``
(``[batch, num_classes]``).

Why export is slow (measured on the development machine, 2 cores, PyTorch 2.13): the time is that of
``torch.export`` tracing every operator with symbolic shapes twice (capture, then the exporter's
decompositions), about 40 % each, plus the translation and its optimisation; a fixed ~1 s per export builds
the exporter's operator registry. It grows with the number of operators (resnet110: 13 s, resnet8x4: 2.4 s
of CPU time), not with the input size or the class count (tracing runs on shapes, not values).
"""

from __future__ import annotations

import contextlib
import io
import logging
import re
import warnings
from collections.abc import Iterator, Mapping

import numpy as np
import torch
from torch import nn

from ..errors import UserError

__all__ = ["INPUT_NAME", "OUTPUT_NAME", "PARITY_TOLERANCE", "ExportError", "check_parity", "export_onnx",
           "max_logit_difference"]

INPUT_NAME = "images"
OUTPUT_NAME = "logits"

#: The largest |logit difference| between PyTorch and the fp32 ONNX model that the parity check accepts,
#: relative to the largest |logit| of the batch (the bound is ``PARITY_TOLERANCE * max(1, max |logit|)``).
#: Both compute in float32 with other convolution kernels and another order of summation, so they differ by
#: rounding only: over all 26 zoo architectures (random weights, 16x16 with 10 classes and 32x32 with 100;
#: ``benchmarks/export_zoo.py``) and the trained students of docs/performance.md ("Deployment") the ratio
#: stayed below 1.2e-6. 1e-4 leaves a margin of about 80x, while a real mismatch (a wrong operator, a
#: missing normalisation, another model's weights) moves the logits by a sizeable part of their range.
PARITY_TOLERANCE = 1e-4

#: The loggers whose messages the exporter prints while it works (progress, skipped torchvision operators,
#: symbolic-shape notes): quietened during an export, whose result or error the command reports itself.
_LOGGERS = ("torch.onnx", "torch.export", "torch._export", "torch.fx.experimental.symbolic_shapes")


class ExportError(UserError):
    """A model that cannot be exported to ONNX (an operator without an ONNX translation, code that
    ``torch.export`` cannot trace) or whose export does not match PyTorch; the message names the cause."""


@contextlib.contextmanager
def quiet_exporter() -> Iterator[io.StringIO]:
    """Keep the exporter's own output off the terminal: its progress lines and the graphs it prints when a
    capture fails (stdout/stderr, gathered into the yielded buffer), its log messages below ERROR, and the
    Future/DeprecationWarnings of the libraries it drives. Results are unchanged."""
    buffer = io.StringIO()
    loggers = [logging.getLogger(name) for name in _LOGGERS]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.ERROR)
    try:
        with contextlib.redirect_stdout(buffer), contextlib.redirect_stderr(buffer), warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            warnings.simplefilter("ignore", DeprecationWarning)
            yield buffer
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)


def export_onnx(model: nn.Module, input_size: tuple[int, int], *, metadata: Mapping[str, str] | None = None,
                in_channels: int = 3, name: str | None = None):
    """``model`` as an ``onnx.ModelProto`` with a dynamic batch axis and ``metadata`` (string keys and values)
    in its ``metadata_props``.

    ``input_size``: ``(height, width)`` of the images the model takes, in pixels; the traced example is a
    batch of two (``torch.export`` specialises axes of size 1). The model is exported in eval mode on the CPU
    and left in the mode it was in. ``name`` names the model in error messages. Raises :class:`ExportError`
    naming the operator without an ONNX translation, or why ``torch.export`` cannot trace the model.
    """
    name = name or getattr(model, "registry_name", None) or type(model).__name__
    height, width = (int(v) for v in input_size)
    example = torch.randn(2, in_channels, height, width)
    was_training = model.training
    model.eval()
    try:
        with quiet_exporter():
            try:
                program = torch.export.export(model, (example,), dynamic_shapes=({0: torch.export.Dim("batch")},),
                                              strict=False)
            except Exception as error:  # torch.export raises many kinds; each becomes one line naming its cause
                raise ExportError(_trace_message(name, error)) from error
            try:
                onnx_program = torch.onnx.export(program, dynamo=True, dynamic_shapes=({0: "batch"},),
                                                 input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
                                                 verbose=False, optimize=True)
            except Exception as error:  # the translation's errors (ConversionError, DispatchError, ...)
                raise ExportError(_conversion_message(name, error)) from error
    finally:
        model.train(was_training)
    proto = onnx_program.model_proto
    set_metadata(proto, metadata or {})
    return proto


def set_metadata(proto, metadata: Mapping[str, str]) -> None:
    """Set ``metadata`` in ``proto.metadata_props``, replacing entries of the same keys."""
    keep = [(p.key, p.value) for p in proto.metadata_props if p.key not in metadata]
    del proto.metadata_props[:]
    for key, value in [*keep, *metadata.items()]:
        entry = proto.metadata_props.add()
        entry.key, entry.value = str(key), str(value)


# ------------------------------------------------------------------------------------------ parity
@torch.inference_mode()
def max_logit_difference(model: nn.Module, session, images: torch.Tensor) -> tuple[float, float]:
    """``(max |logit difference|, max |logit|)`` between ``model`` (PyTorch, on the CPU) and the ONNX
    ``session`` on ``images`` (float32 ``(N, C, H, W)``, normalised), over the whole batch and over its first
    image alone (which exercises the dynamic batch axis at size 1)."""
    from .runtime import run_logits

    was_training = model.training
    model.eval()
    try:
        images = images.detach().float().cpu()
        worst, scale = 0.0, 0.0
        for batch in (images, images[:1]):
            expected = model(batch).float().numpy()
            got = run_logits(session, batch.numpy())
            worst = max(worst, float(np.abs(got - expected).max()))
            scale = max(scale, float(np.abs(expected).max()))
    finally:
        model.train(was_training)
    return worst, scale


def check_parity(model: nn.Module, session, images: torch.Tensor, name: str) -> dict[str, float]:
    """:func:`max_logit_difference` against the bound ``PARITY_TOLERANCE * max(1, max |logit|)``; returns
    ``{"max_abs_diff", "max_abs_logit", "tolerance", "images"}`` and raises :class:`ExportError` beyond it."""
    diff, scale = max_logit_difference(model, session, images)
    bound = PARITY_TOLERANCE * max(1.0, scale)
    result = {"max_abs_diff": diff, "max_abs_logit": scale, "tolerance": bound, "images": int(images.shape[0])}
    if not diff <= bound:  # also a NaN
        raise ExportError(f"the ONNX export of {name} does not match PyTorch: max |logit difference| {diff:.3g} on "
                          f"{images.shape[0]} images is above the tolerance {bound:.3g} ({PARITY_TOLERANCE:g} of the "
                          f"largest |logit|, {scale:.3g}); nothing was written")
    return result


# ---------------------------------------------------------------------------------------- messages
_TARGET = re.compile(r"target=torch\.ops\.([\w.]+)")
_OVERLOAD = re.compile(r"OpOverload\(op='([\w.]+)', overload='(\w+)'\)")
_SUMMARY_LINE = re.compile(r"<class '[\w.]+'>: (.+)")
_CALL_SITE = re.compile(r'File "([^"]+)", line (\d+), in (\S+)')


def _chain(error: BaseException) -> list[BaseException]:
    out, seen = [], set()
    while error is not None and id(error) not in seen:
        out.append(error)
        seen.add(id(error))
        error = error.__cause__ or error.__context__
    return out


def _clean(text: str) -> str:
    """``text`` without terminal colour codes, on one line."""
    return " ".join(re.sub(r"\x1b\[[0-9;]*m", "", text).split())


def _conversion_message(name: str, error: BaseException) -> str:
    """The translation's error as one line: the operator (``aten.kthvalue.default``) and the exporter's reason."""
    text = "\n".join(str(e) for e in _chain(error))
    operator = None
    match = _TARGET.search(text)
    if match:
        operator = match.group(1)
    else:
        match = _OVERLOAD.search(text)
        if match:
            operator = f"{match.group(1)}.{match.group(2)}"
    summary = text.split("## Exception summary", 1)[-1]
    reasons = [_clean(m.group(1)) for m in _SUMMARY_LINE.finditer(summary)]
    reason = reasons[0] if reasons else _clean(text.splitlines()[0] if text else type(error).__name__)
    if operator:
        return (f"cannot export {name} to ONNX: operator {operator} has no ONNX translation in torch.onnx "
                f"({reason}); write that part of the model with operators ONNX supports")
    return f"cannot export {name} to ONNX: the ONNX translation failed ({reason})"


def _trace_message(name: str, error: BaseException) -> str:
    """``torch.export``'s error as one line: its first line and the model code it was raised at."""
    chain = _chain(error)
    innermost = chain[-1]
    lines = [line for line in str(innermost).splitlines() if line.strip()]
    first = _clean(lines[0]) if lines else type(innermost).__name__
    sites = [m for e in chain for m in _CALL_SITE.finditer(str(e))]
    where = f" (at {sites[0].group(1)}:{sites[0].group(2)}, in {sites[0].group(3)})" if sites else ""
    return (f"cannot export {name} to ONNX: torch.export cannot trace it: {type(innermost).__name__}: {first}{where}; "
            "see https://pytorch.org/docs/stable/export.html for what it can trace")
