"""figkd.deploy: a distilled student as it is deployed - ONNX export, int8 quantisation, latency.

>>> from figkd.deploy import export_onnx, quantize_int8, session, check_parity
>>> proto = export_onnx(model, (32, 32), metadata=card.to_metadata())      # onnx.ModelProto, batch axis dynamic
>>> sess = session(proto.SerializeToString(), threads=1)                    # onnxruntime, CPU
>>> check_parity(model, sess, images, "resnet8x4")                          # ExportError beyond the tolerance

Command line (docs/deploy.md): ``figkd export RUN_DIR [--int8]``, ``figkd eval FILE.onnx``,
``figkd bench RUN_DIR|FILE.onnx``. Needs the optional extra ``pip install figkd[deploy]`` (onnx, onnxscript,
onnxruntime): the functions import them when called (an ImportError without them), and the commands check
for them first and say what to install (`figkd.deploy.extra.require_extra`).
"""

from .bench import bench, run_bench
from .export_run import export_run
from .metadata import ModelCard
from .onnx_export import PARITY_TOLERANCE, ExportError, check_parity, export_onnx, max_logit_difference
from .quantize import QUANTIZATION, quantize_int8
from .runtime import evaluate_onnx, model_metadata, run_logits, session
from .student import RunStudent, calibration_batches, evaluation_loader, load_student

__all__ = [
    "ExportError",
    "ModelCard",
    "PARITY_TOLERANCE",
    "QUANTIZATION",
    "RunStudent",
    "bench",
    "calibration_batches",
    "check_parity",
    "evaluate_onnx",
    "evaluation_loader",
    "export_onnx",
    "export_run",
    "load_student",
    "max_logit_difference",
    "model_metadata",
    "quantize_int8",
    "run_bench",
    "run_logits",
    "session",
]
