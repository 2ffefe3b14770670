"""ONNX models run with onnxruntime: sessions, logits, test-split accuracy, and the figkd metadata they carry.

A session runs on the CPU (``CPUExecutionProvider``) or, where onnxruntime has it, CUDA
(``CUDAExecutionProvider``); ``threads`` sets its intra-op threads (None: onnxruntime's default, one per
physical core) and it runs operators one after another (``inter_op_num_threads`` 1), as an application
serving one request at a time would.
"""

from __future__ import annotations

import os

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import ConfigError

__all__ = ["evaluate_onnx", "model_metadata", "providers_for", "run_logits", "session"]


def providers_for(device: str) -> list[str]:
    """The onnxruntime execution providers of ``device`` (``cpu``, ``cuda``; ``auto``: CUDA where onnxruntime
    has it, else the CPU). ConfigError for ``cuda`` without onnxruntime's CUDA provider."""
    import onnxruntime as ort

    available = ort.get_available_providers()
    kind = device.split(":")[0]
    if kind == "auto":
        kind = "cuda" if "CUDAExecutionProvider" in available else "cpu"
    if kind == "cpu":
        return ["CPUExecutionProvider"]
    if kind == "cuda":
        if "CUDAExecutionProvider" not in available:
            raise ConfigError("device cuda was asked for but this onnxruntime has no CUDAExecutionProvider "
                              f"(it has {', '.join(available)}): pip install onnxruntime-gpu, or use --device cpu")
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]
    raise ConfigError(f"onnxruntime runs on cpu or cuda, not {device!r}")


def session(model: bytes | str | os.PathLike, *, threads: int | None = None, device: str = "cpu"):
    """An ``onnxruntime.InferenceSession`` of ``model`` (serialised bytes or a file). ConfigError naming the
    file when onnxruntime cannot load it."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3  # errors only: the command prints its own lines
    options.inter_op_num_threads = 1
    if threads is not None:
        options.intra_op_num_threads = int(threads)
    source = model if isinstance(model, bytes) else os.fspath(model)
    try:
        return ort.InferenceSession(source, options, providers=providers_for(device))
    except Exception as error:  # onnxruntime's own exception types (InvalidGraph, Fail, NoSuchFile, ...)
        what = "the exported model" if isinstance(model, bytes) else str(model)
        text = " ".join(str(error).split())
        raise ConfigError(f"onnxruntime cannot load {what}: {text}") from None


def run_logits(sess, images: np.ndarray) -> np.ndarray:
    """The model's output for ``images`` (float32 ``(N, C, H, W)``): float32 ``(N, num_classes)``."""
    return sess.run(None, {sess.get_inputs()[0].name: np.ascontiguousarray(images, dtype=np.float32)})[0]


def model_metadata(sess) -> dict[str, str]:
    """The model's ``metadata_props`` (what figkd export writes under ``figkd.*``, see `figkd.deploy.metadata`)."""
    return dict(sess.get_modelmeta().custom_metadata_map)


def evaluate_onnx(sess, loader) -> dict[str, float]:
    """Top-1, top-5 (percent) and mean cross-entropy of the ONNX ``sess`` over every sample of ``loader``
    (a figkd evaluation loader, whose batches are normalised as the model expects): the numbers
    `figkd.engine.evaluate.evaluate` gives for a PyTorch model."""
    from ..engine.metrics import topk_correct

    hits = torch.zeros(2, dtype=torch.int64)
    loss_sum, count = 0.0, 0
    for batch in loader:
        logits = torch.from_numpy(run_logits(sess, batch.images.detach().cpu().float().numpy()))
        target = batch.target.cpu()
        hits += topk_correct(logits, target)
        loss_sum += float(F.cross_entropy(logits, target, reduction="sum").double())
        count += int(target.shape[0])
    n = max(count, 1)
    return {"top1": 100.0 * int(hits[0]) / n, "top5": 100.0 * int(hits[1]) / n, "loss": loss_sum / n, "count": count}

