"""The paper's published numbers, as package data importable by every layer (it imports nothing of figkd but
:mod:`figkd.errors`); the numbers are typed from the paper (S. Kim, "FiGKD", Expert Systems with Applications
2026, arXiv 2505.11897):

- the reported top-1 accuracies (:mod:`figkd.paper.top1`): Tables 1-9 (``reported_top1.csv``, installed with
  the package: :func:`read_reported_top1`; the six cells of Table 1 that repeat another pair's number, with
  the originally published values: :data:`COPIED_CELLS`, :func:`copied_cells`), Table 10 (:data:`TABLE10`),
  Tables 11-13 and 16 (:data:`ABLATIONS`), and which figkd objective reproduces which method column
  (:data:`METHODS`);
- below: Table 14 (training overhead) and Table 15 (teacher and student size).

The configs of ``configs/paper/`` are generated from this data (:mod:`figkd.experiments.paper_configs`) and
``figkd report`` lays the paper's tables out from it (:mod:`figkd.experiments.paper`).
"""

from __future__ import annotations

from .top1 import (
    ABLATIONS,
    COPIED_CELLS,
    METHODS,
    REPORTED_TOP1_FILE,
    TABLE10,
    CopiedCell,
    copied_cells,
    read_reported_top1,
)

__all__ = ["ABLATIONS", "COPIED_CELLS", "METHODS", "REPORTED_TOP1_FILE", "TABLE10", "TABLE14", "TABLE15",
           "TABLE15_INPUT_SIZE", "TABLE15_NUM_CLASSES", "TABLE15_PAIRS", "CopiedCell", "copied_cells",
           "read_reported_top1"]

#: Paper Table 14 (Section 5.3): seconds per batch and overhead in percent over KD, per objective;
#: ResNet32x4 -> ResNet8x4, CIFAR-100, batch 64, one RTX 3090.
TABLE14: dict[str, tuple[float, float | None]] = {
    "KD": (0.1040, None), "FiGKD (J = 1)": (0.1061, 2.0), "FiGKD (J = 2)": (0.1243, 19.5),
    "FiGKD (J = 3)": (0.1353, 30.1)}

#: Paper Table 15 ("Teacher-Student Scale Comparison", Section 5.4; TinyImageNet: 64x64 inputs, 200 classes):
#: parameters (M) and "FLOPs" (M) per model. The FLOPs column is a multiply-accumulate count with thop's
#: (pytorch-OpCounter) rules, which add 4 operations per BatchNorm output element to the conv + linear MACs
#: that `figkd.models.complexity` counts; docs/models.md reconciles the two.
TABLE15: dict[str, tuple[float, float]] = {
    "resnet110": (1.74, 1029.58),
    "resnet32": (0.48, 281.56),
    "resnet32x4": (7.46, 4352.82),
    "resnet8x4": (1.26, 714.26),
    "wrn_40_2": (2.27, 1322.61),
    "wrn_16_2": (0.72, 409.30),
    "wrn_40_1": (0.58, 339.36),
    "vgg13": (9.51, 917.16),
    "vgg8": (4.02, 273.43),
    "resnet50": (23.91, 5246.70),
    "mobilenetv2": (0.94, 29.23),
    "shufflenetv1": (1.05, 42.88),
    "shufflenetv2": (1.46, 186.82),
}
TABLE15_INPUT_SIZE = 64
TABLE15_NUM_CLASSES = 200
#: Teacher-student pairs of Table 15, in the paper's order, with its printed ratios (params, FLOPs).
TABLE15_PAIRS: dict[tuple[str, str], tuple[float, float]] = {
    ("resnet110", "resnet32"): (3.63, 3.66),
    ("resnet32x4", "resnet8x4"): (5.92, 6.09),
    ("wrn_40_2", "wrn_16_2"): (3.15, 3.23),
    ("wrn_40_2", "wrn_40_1"): (3.91, 3.90),
    ("vgg13", "vgg8"): (2.37, 3.35),
    ("wrn_40_2", "shufflenetv1"): (2.16, 30.84),
    ("resnet50", "mobilenetv2"): (25.44, 179.50),
    ("resnet32x4", "shufflenetv1"): (7.10, 101.51),
    ("resnet32x4", "shufflenetv2"): (5.11, 23.30),
    ("vgg13", "mobilenetv2"): (10.12, 31.38),
}
