"""Every architecture of the zoo exports to ONNX (dynamic batch axis) and matches PyTorch in fp32.

Exporting costs what ``torch.export`` costs to trace each operator, twice (capture and the exporter's
decompositions): on the 2-core development machine from about 2 s of CPU time (resnet8x4) to 10-18 s
(resnet110, the ShuffleNets), 120-200 s for all 26 registered models depending on the machine's load,
whatever the input size or class count (tracing runs on shapes, not values). Models that differ only in
depth or width (resnet8 ... resnet110, resnet8x4, resnet32x4; wrn_16_1 ... wrn_40_2; vgg11 ... vgg19;
resnet18/34_imagenet) are built from the same module classes by the same code, so they trace through the
same operators: this test exports one of each such group - the one with the fewest modules - which keeps it
near a minute. The groups are derived from the registry (model class and the set of its module classes), so a
new model built from new modules gets its own export here. ``benchmarks/export_zoo.py`` exports all 26 with
the same check (docs/performance.md, "Deployment").
"""

from __future__ import annotations

import pytest
import torch

from figkd.deploy import PARITY_TOLERANCE, export_onnx, max_logit_difference, session
from figkd.models import build_model, list_models

# The deploy extra (pip install figkd[deploy]); CI installs it (make test), a plain .[dev] install skips these.
for _module in ("onnx", "onnxscript", "onnxruntime"):
    pytest.importorskip(_module)


def _structure(name: str) -> tuple:
    with torch.device("meta"):
        model = build_model(name, 10)
    return type(model).__module__, type(model).__qualname__, frozenset(type(m).__qualname__ for m in model.modules())


def _representatives() -> list[str]:
    """One model per group of models built from the same module classes: the one with the fewest modules."""
    groups: dict[tuple, list[tuple[int, str]]] = {}
    for name in list_models():
        with torch.device("meta"):
            size = len(list(build_model(name, 10).modules()))
        groups.setdefault(_structure(name), []).append((size, name))
    return [min(members)[1] for members in groups.values()]


@pytest.mark.slow
@pytest.mark.parametrize("name", _representatives())
def test_every_architecture_exports_and_matches_pytorch(name):
    torch.manual_seed(0)
    model = build_model(name, 10).eval()
    proto = export_onnx(model, (16, 16))
    dims = proto.graph.input[0].type.tensor_type.shape.dim
    assert [d.dim_param or d.dim_value for d in dims] == ["batch", 3, 16, 16]
    images = torch.randn(4, 3, 16, 16, generator=torch.Generator().manual_seed(1))
    diff, scale = max_logit_difference(model, session(proto.SerializeToString(), threads=1), images)
    # Relative to the logits' own scale (float32 rounding is relative; some untrained models give tiny logits).
    assert scale > 0 and diff <= PARITY_TOLERANCE * scale, (diff, scale)
