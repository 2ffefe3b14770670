"""``figkd export RUN_DIR``: the student of a run as ONNX (fp32, and with ``--int8`` a statically quantised
int8 model), checked against PyTorch and evaluated side by side.

In order: the run's model and weights (`figkd.deploy.student.load_student`); the output path checked for
writing; the fp32 export (`figkd.deploy.onnx_export.export_onnx`) and its parity check on the first test
batch (an error beyond the tolerance); with ``int8``, the quantised model calibrated on ``calibration``
training images; test top-1 of PyTorch, ONNX fp32 and int8 on the whole test split; then the files, each
written atomically (a temporary file renamed onto the name: never half a model under it).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..atomic import atomic_write_bytes
from ..errors import ConfigError
from .onnx_export import PARITY_TOLERANCE, check_parity, export_onnx, set_metadata
from .quantize import QUANTIZATION, quantize_int8
from .runtime import evaluate_onnx, session
from .student import calibration_batches, evaluation_loader, load_student

__all__ = ["check_output", "default_output", "export_run", "int8_path"]

#: Test images the parity check compares logits on (the first test batch, or fewer when the split is smaller).
PARITY_IMAGES = 64


def default_output(run_dir: str | os.PathLike, architecture: str) -> Path:
    """``RUN_DIR/deploy/<architecture>.onnx``; a model named by a path (``hf:<folder>``) by its short name,
    ``hf-<folder name>.onnx`` (`figkd.models.model_slug`, as its run directory is named)."""
    from ..models import model_slug

    try:
        name = model_slug(architecture)
    except ValueError:  # an hf: folder that no longer exists: loading the student has said so already
        name = architecture
    name = name.replace("/", "-").replace(":", "-").replace(os.sep, "-")
    return Path(run_dir) / "deploy" / f"{name}.onnx"


def int8_path(fp32: str | os.PathLike) -> Path:
    """The int8 model's file beside the fp32 one: ``student.onnx`` -> ``student.int8.onnx``."""
    fp32 = Path(fp32)
    return fp32.with_name(fp32.name[: -len(".onnx")] + ".int8.onnx")


def check_output(path: str | os.PathLike, what: str = "--out") -> Path:
    """Refuse (ConfigError) an output file that cannot be written, before any work is done: a folder, a name
    without ``.onnx``, a parent that is a file or is not writable."""
    path = Path(path)
    if path.is_dir():
        raise ConfigError(f"{what} {path} is a folder; name the .onnx file to write")
    if path.suffix != ".onnx":
        raise ConfigError(f"{what} {path}: an ONNX model's file name ends in .onnx")
    existing = path.parent
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise ConfigError(f"cannot write {path}: {existing} is a file, not a folder; choose another {what}")
    if not os.access(existing, os.W_OK | os.X_OK) or (path.exists() and not os.access(path, os.W_OK)):
        raise ConfigError(f"cannot write {path}: {existing} is not writable (permission denied or a read-only "
                          f"file system); choose another {what}")
    return path


def export_run(run_dir: str | os.PathLike, *, which: str = "best", out: str | os.PathLike | None = None,
               int8: bool = False, calibration: int = 512, batch_size: int = 256, threads: int | None = None,
               log: Callable[[str], object] = print) -> dict[str, Any]:
    """Export the student of ``run_dir`` (see the module docstring); returns what was done: ``files``
    (precision -> path, bytes), ``parity`` (`figkd.deploy.onnx_export.check_parity`), ``top1`` (runtime ->
    test top-1 in percent), ``test_images``, ``calibration_images`` (int8) and ``opset``.

    ``threads``: onnxruntime's intra-op threads (None: its default). Raises ConfigError (bad run directory,
    output, calibration count), `figkd.deploy.ExportError` (untraceable model, parity beyond the tolerance),
    DatasetNotFoundError (the run's dataset is missing) and WriteError (the disk refused the file).
    """
    import torch

    from ..engine.evaluate import evaluate

    student = load_student(run_dir, which)
    card, model = student.card, student.model
    fp32_path = check_output(out if out is not None else default_output(run_dir, card.architecture))
    q_path = check_output(int8_path(fp32_path)) if int8 else None
    log(f"exporting {card.architecture} of {student.run_dir.path}: {student.describe_weights()}")
    loader = evaluation_loader(card, batch_size)
    probe = next(iter(loader)).images[:PARITY_IMAGES]

    proto = export_onnx(model, card.input_size, metadata=card.to_metadata(), name=card.architecture)
    fp32 = proto.SerializeToString()
    fp32_session = session(fp32, threads=threads)
    parity = check_parity(model, fp32_session, probe, card.architecture)
    log(f"fp32 parity with PyTorch on {parity['images']} test images: max |logit difference| "
        f"{parity['max_abs_diff']:.2e} (tolerance {parity['tolerance']:.2e}: {PARITY_TOLERANCE:g} of the largest "
        "|logit|)")
    result: dict[str, Any] = {"architecture": card.architecture, "weights": student.weights["which"],
                              "epoch": student.weights["epoch"], "parity": parity,
                              "opset": next((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")),
                                            None)}
    blobs = {"fp32": (fp32_path, fp32)}
    sessions = {"onnx fp32": fp32_session}
    if int8:
        quantization = dict(QUANTIZATION, calibration_split="train", calibration_seed=0)
        q_proto, count = quantize_int8(proto, calibration_batches(card, calibration))
        quantization["calibration_images"] = count
        set_metadata(q_proto, card.as_int8(quantization).to_metadata())
        q_bytes = q_proto.SerializeToString()
        blobs["int8"] = (q_path, q_bytes)
        sessions["onnx int8"] = session(q_bytes, threads=threads)
        result["calibration_images"] = count
        log(f"int8: static QDQ quantisation, int8 per-channel weights, uint8 activations, calibrated (MinMax) on "
            f"{count} training images")

    top1 = {"pytorch": evaluate(model, loader, torch.device("cpu"))["top1"]}
    for name, sess in sessions.items():
        top1[name] = evaluate_onnx(sess, loader)["top1"]
    result["top1"], result["test_images"] = top1, len(loader.dataset)
    log(f"test top-1 on the {len(loader.dataset)} test images of {card.dataset}: "
        + " | ".join(f"{k} {v:.2f}" for k, v in top1.items()))

    result["files"] = {}
    for precision, (path, data) in blobs.items():
        atomic_write_bytes(path, data)
        result["files"][precision] = {"path": str(path), "bytes": len(data)}
        log(f"wrote {path} ({precision}, {len(data) / 2**20:.2f} MiB)")
    return result

