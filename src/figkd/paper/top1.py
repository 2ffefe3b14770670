"""The paper's reported top-1 accuracies and figkd's configs per column: Tables 1-9 (``reported_top1.csv``,
package data), Table 10 and the ablations of Tables 11-13 and 16, and which figkd objective reproduces which
method column. Plain data; the configs of ``configs/paper/`` (:mod:`figkd.experiments.paper_configs`) and
``figkd report``'s table layouts (:mod:`figkd.experiments.paper`) are both built from it.

Every number is typed from the paper (S. Kim, "FiGKD", Expert Systems with Applications 2026,
arXiv 2505.11897): Tables 1-9 in ``reported_top1.csv`` (one row per cell, in the paper's row order),
Tables 10-13 (the ablations of Section 5) and Table 16 (Appendix A) below.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from ..errors import ConfigError

__all__ = ["ABLATIONS", "COPIED_CELLS", "METHODS", "REPORTED_TOP1_FILE", "TABLE10", "CopiedCell", "copied_cells",
           "read_reported_top1"]

#: The file of Tables 1-9's reported top-1 (columns table, dataset, teacher, student, method, top1; ``method``
#: is a column name of the paper's tables, or ``teacher`` / ``student`` for the models trained alone).
REPORTED_TOP1_FILE = "reported_top1.csv"


def read_reported_top1(folder: str | Path | None = None) -> list[dict]:
    """Every reported top-1 of Tables 1-9 as ``{table, dataset, teacher, student, method: str, top1: float}``
    rows, in the file's order.

    ``folder``: a folder holding another ``reported_top1.csv`` to read instead of the one installed with
    figkd (``figkd report --paper-dir``); raises :class:`~figkd.errors.ConfigError` when it holds none.
    """
    if folder is None:
        text = resources.files(__package__).joinpath(REPORTED_TOP1_FILE).read_text(encoding="utf-8")
    else:
        path = Path(folder) / REPORTED_TOP1_FILE
        if not path.is_file():
            raise ConfigError(f"{folder} holds no {REPORTED_TOP1_FILE}: pass --paper-dir a folder with one (the "
                              "paper's numbers are installed with figkd: leave --paper-dir out to use them)")
        text = path.read_text(encoding="utf-8")
    return [{**r, "top1": float(r["top1"])} for r in csv.DictReader(io.StringIO(text, newline=""))]


@dataclass(frozen=True)
class CopiedCell:
    """A cell of Tables 1-9 where the paper prints another pair's number (a copy error of the paper).

    ``copied_from``: the (teacher, student) of the same table and method whose number the cell repeats;
    ``published``: the number the method's own source publishes for the cell's pair, None where no primary
    source available to figkd states it; ``source``: that source (file and line, or paper and table), or why
    no number is given.
    """

    copied_from: tuple[str, str]
    published: float | None
    source: str

    def note(self) -> str:
        """One line for a table's footnote."""
        teacher, student = self.copied_from
        text = f"the paper prints {teacher} -> {student}'s number here (a copy error of its Table 1)"
        if self.published is None:
            return f"{text}; the originally published value: {self.source}"
        return f"{text}; published for this pair: {self.published:.2f} ({self.source})"


_REPDISTILLER = "HobbitLong/RepDistiller README.md:{}, commit b84f547, the WRN-40-2 -> WRN-40-1 column"
#: Table 1, the WRN-40-2 -> WRN-40-1 column: FitNet, PKT, CRD, AT, VID and OFD repeat the ResNet32x4 -> ResNet8x4
#: column's numbers (73.50, 73.64, 75.51, 73.44, 73.09, 74.95), while the column's other RepDistiller methods (RKD
#: 72.22, SP 72.43) are RepDistiller's numbers for the pair (issue 22). Key: (table, dataset, teacher, student,
#: method) as in ``reported_top1.csv``.
COPIED_CELLS: dict[tuple[str, str, str, str, str], CopiedCell] = {
    ("table1", "cifar100", "wrn_40_2", "wrn_40_1", "FitNet"): CopiedCell(
        ("resnet32x4", "resnet8x4"), 72.24, _REPDISTILLER.format(81)),
    ("table1", "cifar100", "wrn_40_2", "wrn_40_1", "AT"): CopiedCell(
        ("resnet32x4", "resnet8x4"), 72.77, _REPDISTILLER.format(82)),
    ("table1", "cifar100", "wrn_40_2", "wrn_40_1", "VID"): CopiedCell(
        ("resnet32x4", "resnet8x4"), 73.30, _REPDISTILLER.format(85)),
    ("table1", "cifar100", "wrn_40_2", "wrn_40_1", "PKT"): CopiedCell(
        ("resnet32x4", "resnet8x4"), 73.45, _REPDISTILLER.format(87)),
    ("table1", "cifar100", "wrn_40_2", "wrn_40_1", "CRD"): CopiedCell(
        ("resnet32x4", "resnet8x4"), 74.14, _REPDISTILLER.format(92)),
    ("table1", "cifar100", "wrn_40_2", "wrn_40_1", "OFD"): CopiedCell(
        ("resnet32x4", "resnet8x4"), None,
        "not stated: it is to be read in ReviewKD's (Chen et al., CVPR 2021) or DKD's (Zhao et al., CVPR 2022) "
        "CIFAR-100 table, whose text was not available to check a number against"),
}


def copied_cells(rows: list[dict]) -> dict[tuple[str, str, str, str, str], CopiedCell]:
    """The cells of ``rows`` (:func:`read_reported_top1`) that show a copy error of :data:`COPIED_CELLS`: those
    whose number equals the number of the pair it was copied from (same table, dataset and method), keyed like
    :data:`COPIED_CELLS`. A copy of the file with the cell corrected (``--paper-dir``) has none of them."""
    top1 = {(r["table"], r["dataset"], r["teacher"], r["student"], r["method"]): r["top1"] for r in rows}
    out = {}
    for key, cell in COPIED_CELLS.items():
        table, dataset, _, _, method = key
        source = top1.get((table, dataset, *cell.copied_from, method))
        if key in top1 and source is not None and top1[key] == source:
            out[key] = cell
    return out


#: Methods of Tables 1-9 this project implements: the paper's column name -> the config variants (objectives of
#: ``configs/paper/table<N>/.../<variant>.yaml``) that reproduce it. FiGKD has two readings (docs/method.md
#: section 3): Eq. 7 (``figkd``) and Table 10's MLKD base (``mlkd+figkd``; Table 10's "High only" row equals the
#: FiGKD column of Tables 1-4). EKD: as released (``ekd-code``) and as its paper writes it (``ekd``).
METHODS: dict[str, list[str]] = {
    "KD": ["kd"], "DKD": ["dkd"], "MLKD": ["mlkd"], "DIST": ["dist"], "FiGKD": ["figkd", "mlkd+figkd"],
    "FitNet": ["fitnet"], "AT": ["at"],
    "OFD": ["ofd"], "ReviewKD": ["reviewkd"], "CAT-KD": ["cat_kd"], "DiffKD": ["diffkd"],
    "PKT": ["pkt"], "RKD": ["rkd"], "SP": ["sp"], "VID": ["vid"], "CRD": ["crd"],
    "RLD": ["rld"], "TeKAP": ["tekap"], "LDRLD": ["ldrld"], "EKD": ["ekd-code", "ekd"], "DML": ["dml"],
    "TAKD": ["takd"]}

# The teacher-student pairs of the ablations.
R32x4_R8x4, V13_V8, W402_W162 = ("resnet32x4", "resnet8x4"), ("vgg13", "vgg8"), ("wrn_40_2", "wrn_16_2")
V13_MV2, W402_W401 = ("vgg13", "mobilenetv2"), ("wrn_40_2", "wrn_40_1")
W402_SV1, R32x4_SV1, R32x4_SV2 = ("wrn_40_2", "shufflenetv1"), ("resnet32x4", "shufflenetv1"), \
    ("resnet32x4", "shufflenetv2")

_MLKD = {"term": "mlkd", "weight": 1.0}

#: Paper Table 10 (frequency effect, MLKD base): row -> (variant, objective, {(dataset, pair): top-1}).
TABLE10: list[tuple[str, str, str | list[dict], dict[tuple[str, tuple[str, str]], float]]] = [
    ("Low x, High x (baseline: MLKD)", "mlkd", "mlkd",
     {("cifar100", W402_W162): 76.63, ("cifar100", V13_V8): 75.18, ("cifar100", V13_MV2): 70.57,
      ("tiny_imagenet", R32x4_R8x4): 60.67, ("tiny_imagenet", V13_V8): 63.76,
      ("tiny_imagenet", R32x4_SV2): 68.63}),
    ("Low v, High x", "mlkd+figkd-low", [_MLKD, {"term": "figkd", "weight": 2.0, "bands": "low"}],
     {("cifar100", W402_W162): 76.44, ("cifar100", V13_V8): 75.23, ("cifar100", V13_MV2): 70.65,
      ("tiny_imagenet", R32x4_R8x4): 60.45, ("tiny_imagenet", V13_V8): 63.99,
      ("tiny_imagenet", R32x4_SV2): 69.39}),
    ("Low x, High v (FiGKD)", "mlkd+figkd", "mlkd+figkd",
     {("cifar100", W402_W162): 77.06, ("cifar100", V13_V8): 76.17, ("cifar100", V13_MV2): 71.81,
      ("tiny_imagenet", R32x4_R8x4): 60.92, ("tiny_imagenet", V13_V8): 64.52,
      ("tiny_imagenet", R32x4_SV2): 70.10}),
    ("Low v, High v", "mlkd+figkd-both", [_MLKD, {"term": "figkd", "weight": 2.0, "bands": "both"}],
     {("cifar100", W402_W162): 76.56, ("cifar100", V13_V8): 75.83, ("cifar100", V13_MV2): 71.18,
      ("tiny_imagenet", R32x4_R8x4): 60.71, ("tiny_imagenet", V13_V8): 64.19,
      ("tiny_imagenet", R32x4_SV2): 69.59}),
]


def _cifar_rows(pairs, rows):
    """(label, suffix, figkd options, reported top-1 per pair) rows -> Table-10-style rows on CIFAR-100."""
    return [(label, suffix, options, {("cifar100", p): v for p, v in zip(pairs, values, strict=True)})
            for label, suffix, options, values in rows]


#: Paper Tables 11-13 (Section 5) and 16 (Appendix A), CIFAR-100: table -> (what it varies, rows); a row is
#: (label, variant suffix ("" = the default row), options of the figkd term, {(dataset, pair): top-1}). Each
#: is run on both bases: Eq. 7 (ce + figkd, variant ``figkd<suffix>``) and MLKD (mlkd + figkd, variant
#: ``mlkd+figkd<suffix>``); the paper's default rows equal its FiGKD column.
ABLATIONS: dict[str, tuple[str, list[tuple[str, str, dict, dict[tuple[str, tuple[str, str]], float]]]]] = {
    "table11": ("decomposition level J (Haar)", _cifar_rows(
        [R32x4_R8x4, V13_V8, W402_W162, V13_MV2],
        [("J = 1", "", {}, [78.05, 76.17, 77.06, 71.81]),
         ("J = 2", "-level2", {"level": 2}, [78.05, 75.93, 76.80, 71.25]),
         ("J = 3", "-level3", {"level": 3}, [77.97, 75.77, 76.52, 71.11])])),
    "table12": ("Gaussian noise on the teacher's high-frequency subbands", _cifar_rows(
        [R32x4_R8x4, V13_V8, W402_W162, W402_SV1],
        [("noise std 0.0", "", {}, [78.05, 76.17, 77.06, 78.84]),
         ("noise std 0.05", "-noise0.05", {"noise_std": 0.05}, [77.94, 75.90, 77.05, 78.67]),
         ("noise std 0.10", "-noise0.1", {"noise_std": 0.1}, [77.89, 76.01, 76.85, 78.45]),
         ("noise std 0.20", "-noise0.2", {"noise_std": 0.2}, [77.84, 76.07, 76.88, 78.31]),
         ("noise std 0.50", "-noise0.5", {"noise_std": 0.5}, [77.71, 75.94, 76.93, 78.51])])),
    "table13": ("1D vs 2D DWT", _cifar_rows(
        [R32x4_R8x4, W402_W162, W402_W401, V13_V8, W402_SV1, R32x4_SV1, R32x4_SV2, V13_MV2],
        [("1D-DWT", "-1d", {"dims": 1}, [77.75, 76.92, 75.61, 75.42, 78.39, 78.11, 79.03, 71.15]),
         ("2D-DWT", "", {}, [78.05, 77.06, 76.04, 76.17, 78.84, 78.70, 79.64, 71.81])])),
    "table16": ("wavelet basis (Appendix A)", _cifar_rows(
        [R32x4_R8x4, R32x4_SV2, V13_V8, V13_MV2, W402_W162, W402_SV1],
        [("Haar", "", {}, [78.05, 79.64, 76.17, 71.81, 77.06, 78.84]),
         ("db2", "-db2", {"wavelet": "db2"}, [77.80, 79.09, 75.90, 71.29, 76.92, 78.71]),
         ("bior1.3", "-bior1.3", {"wavelet": "bior1.3"}, [77.39, 79.11, 75.37, 70.90, 76.78, 77.96])])),
}
