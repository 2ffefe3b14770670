"""The paper's tables as layouts: their columns (teacher-student cells), rows (methods or settings) and the
paper's number in each cell.

Sources, both installed with figkd:

- :mod:`figkd.paper`: every top-1 of Tables 1-9 (``reported_top1.csv``, typed from the paper, one row per
  cell, in the paper's row order; ``--paper-dir``: a folder with another copy), which objective reproduces
  which column (``METHODS``: the two FiGKD readings), and the ablations of Tables 10-13 and 16 with their
  reported numbers (``TABLE10``, ``ABLATIONS``);
- :mod:`figkd.experiments.paper_configs`: the configs of every cell (those of ``configs/paper/``: DKD's
  per-pair beta, MLKD's own recipe, TAKD's assistant, ...). A run belongs to a row when its method
  (:func:`~figkd.experiments.runs.method_name`) is the method of that row's config for that cell, or,
  for the compared methods of Tables 1-9, when its method is the column's name (case, ``-`` and ``_``
  ignored: a ``crd`` preset lands in the CRD row), so methods added later appear by themselves.

Row groups of Tables 1-9 follow the paper's "Types" column (Tables 1-4): Features, Logits, Ours.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from ..config import RunConfig
from ..errors import ConfigError
from ..models import default_lr
from ..paper import ABLATIONS, METHODS, TABLE10, copied_cells, read_reported_top1
from .paper_configs import FIGKD_RECIPE_SUFFIX, generate
from .runs import method_name

#: Paper Tables 1-4, "Types" column: the feature-based methods (the rest of the compared ones are logit-based).
FEATURE_METHODS = frozenset({"FitNet", "PKT", "VID", "AT", "RKD", "SP", "CRD", "OFD", "DiffKD", "ReviewKD", "CAT-KD"})

TITLES = {
    1: "CIFAR-100, homogeneous teacher-student pairs",
    2: "CIFAR-100, heterogeneous pairs",
    3: "TinyImageNet, homogeneous pairs",
    4: "TinyImageNet, heterogeneous pairs",
    5: "fine-grained datasets at 224x224 (CUB-200, MIT67, Stanford40, Stanford Dogs)",
    6: "CUB-200 at 32x32",
    7: "MIT67 at 32x32",
    8: "Stanford40 at 32x32",
    9: "Stanford Dogs at 32x32",
    10: "frequency effect (MLKD base): distilled subbands",
    11: "decomposition level J (Haar)",
    12: "Gaussian noise on the teacher's high-frequency subbands",
    13: "1D vs 2D DWT",
    14: "training overhead (s per batch)",
    15: "teacher and student size (TinyImageNet, 64x64, 200 classes)",
    16: "wavelet basis (Appendix A)",
}
MAIN_TABLES = tuple(range(1, 10))
#: The training recipe of a run: what the report compares with the cell's config.
RECIPE_FIELDS = ("epochs", "batch_size", "lr", "momentum", "weight_decay", "lr_milestones", "lr_decay",
                 "lr_warmup_epochs", "lr_warmup_hold")


def recipe_of(cfg: dict) -> dict:
    """The recipe fields of a run or config dict (RunConfig defaults filled in; ``lr`` None resolved to the
    model registry's default learning rate of the student, or of the model of a train run)."""
    defaults = RunConfig().to_dict()
    out = {key: cfg.get(key, defaults[key]) for key in RECIPE_FIELDS}
    if out["lr"] is None:  # a peers run (DML): its last peer, the student of the paper's cell
        out["lr"] = default_lr(cfg.get("student") or cfg.get("model") or (cfg.get("peers") or [""])[-1])
    return out
ABLATION_TABLES = (10, 11, 12, 13, 16)


@dataclass(frozen=True)
class Column:
    """A teacher-student cell of a table (teacher None: a model trained alone)."""

    dataset: str
    teacher: str
    student: str

    def label(self, with_dataset: bool) -> str:
        pair = f"{self.teacher}->{self.student}"
        return f"{self.dataset}: {pair}" if with_dataset else pair


@dataclass
class Row:
    """A row of a table: what it compares and, per column, the paper's number and the methods that fill it.

    ``role``: ``teacher`` / ``student`` (models trained alone: the column's teacher or student) or
    ``distill``. ``methods[column]``: method names (:func:`method_name`) that reproduce the row in that
    column; ``aliases``: normalised names that also match (a compared method's column name).
    ``expected[column]``: the method of the paper config, when there is one (runs of another method that
    match only through an alias are flagged). ``recipes[column]``: that config's recipe (:func:`recipe_of`:
    runs of another recipe are flagged); with ``strict_recipe`` a run of another recipe does not belong to
    the row at all (MLKD's two rows: its own published recipe and FiGKD's).
    """

    group: str
    label: str
    role: str = "distill"
    paper: dict[Column, float] = field(default_factory=dict)
    methods: dict[Column, set[str]] = field(default_factory=dict)
    aliases: frozenset[str] = frozenset()
    expected: dict[Column, str] = field(default_factory=dict)
    recipes: dict[Column, dict] = field(default_factory=dict)
    strict_recipe: bool = False
    #: the teacher architecture of this row's runs where it is not the column's (TAKD: the assistant)
    teachers: dict[Column, str] = field(default_factory=dict)
    #: a note on the paper's number of a column where it is known to be wrong (`figkd.paper.copied_cells`)
    paper_notes: dict[Column, str] = field(default_factory=dict)

    def matches(self, column: Column, method: str, recipe: dict | None = None) -> bool:
        if self.strict_recipe and recipe is not None and column in self.recipes and recipe != self.recipes[column]:
            return False
        return method in self.methods.get(column, ()) or normalise(method) in self.aliases


@dataclass
class TableSpec:
    number: int
    title: str
    kind: str  # "main" or "ablation"
    columns: list[Column]
    rows: list[Row]

    @property
    def multi_dataset(self) -> bool:
        return len({c.dataset for c in self.columns}) > 1


def normalise(name: str) -> str:
    """Lower case, letters and digits only: ``CAT-KD`` and ``cat_kd`` are one name."""
    return re.sub(r"[^a-z0-9+]", "", name.lower())


# ------------------------------------------------------------------------------------------------ sources
def _paper_dir(paper_dir: str | Path | None) -> Path | None:
    """``--paper-dir`` (a folder with another ``reported_top1.csv``) as a Path; None: the package's data."""
    return None if paper_dir is None else Path(paper_dir)


def _csv_rows(paper_dir: Path | None) -> list[dict]:
    """The reported top-1 of Tables 1-9 (:func:`figkd.paper.read_reported_top1`: ConfigError when
    ``paper_dir`` holds no ``reported_top1.csv``)."""
    return read_reported_top1(paper_dir)


@functools.lru_cache(maxsize=4)
def _config_methods(paper_dir: Path | None) -> dict[tuple[str, Column, str], tuple[str, dict, str | None]]:
    """(table, column, variant) -> the method, the recipe and the teacher architecture of that generated
    distill config (TAKD: the assistant; DML: None)."""
    out = {}
    for rel, text in generate(_csv_rows(paper_dir)).items():
        if rel.startswith("table"):
            cfg = yaml.safe_load(text)
            # the cell is the pair folder's: TAKD's student config distils from the assistant, and a DML
            # config names its peers, not a teacher and a student
            teacher, student = Path(rel).parent.name.split("-", 1)
            column = Column(cfg["dataset"], teacher, student)
            out[(rel.split("/")[0], column, Path(rel).stem)] = (method_name(cfg["objective"]), recipe_of(cfg),
                                                                cfg.get("teacher"))
    return out


def _config_method(paper_dir: Path | None, table: str, column: Column, variant: str) -> str | None:
    """The method of the generated config ``<table>/.../<teacher>-<student>/<variant>.yaml`` of ``column``."""
    found = _config_methods(paper_dir).get((table, column, variant))
    return found[0] if found else None


def _config_recipe(paper_dir: Path | None, table: str, column: Column, variant: str) -> dict | None:
    """The recipe of that generated config (None: no such config)."""
    found = _config_methods(paper_dir).get((table, column, variant))
    return found[1] if found else None


def _config_teacher(paper_dir: Path | None, table: str, column: Column, variant: str) -> str | None:
    """The teacher architecture of that generated config when it is not the column's (TAKD's assistant)."""
    found = _config_methods(paper_dir).get((table, column, variant))
    return found[2] if found and found[2] and found[2] != column.teacher else None


# ------------------------------------------------------------------------------------------------ tables
def _main_table(number: int, paper_dir: Path | None) -> TableSpec:
    table = f"table{number}"
    rows_csv = [r for r in _csv_rows(paper_dir) if r["table"] == table]
    columns: list[Column] = []
    for r in rows_csv:
        c = Column(r["dataset"], r["teacher"], r["student"])
        if c not in columns:
            columns.append(c)
    reported: dict[tuple[str, Column], float] = {
        (r["method"], Column(r["dataset"], r["teacher"], r["student"])): r["top1"] for r in rows_csv}
    methods = []
    for r in rows_csv:
        if r["method"] not in methods and r["method"] not in ("teacher", "student", "FiGKD"):
            methods.append(r["method"])
    for extra in METHODS:  # a method with configs but no number in this table (DIST in most tables)
        if extra != "FiGKD" and extra not in methods and any(
                _config_method(paper_dir, table, c, v) for c in columns for v in METHODS[extra]):
            methods.append(extra)

    copied = copied_cells(rows_csv)

    def paper(method: str) -> dict[Column, float]:
        return {c: reported[(method, c)] for c in columns if (method, c) in reported}

    def notes(method: str) -> dict[Column, str]:
        return {c: cell.note() for c in columns
                if (cell := copied.get((table, c.dataset, c.teacher, c.student, method))) is not None}

    def configured(variants: list[str]) -> tuple[dict[Column, set[str]], dict[Column, str], dict[Column, dict]]:
        by_col: dict[Column, set[str]] = {}
        recipes: dict[Column, dict] = {}
        for c in columns:
            for v in variants:
                if (t := _config_teacher(paper_dir, table, c, v)) is not None:
                    teachers[c] = t
            names = {m for v in variants if (m := _config_method(paper_dir, table, c, v))}
            if names:
                by_col[c] = names
            found = [r for v in variants if (r := _config_recipe(paper_dir, table, c, v)) is not None]
            if found and all(r == found[0] for r in found):
                recipes[c] = found[0]
        expected = {c: next(iter(n)) for c, n in by_col.items() if len(n) == 1}
        return by_col, expected, recipes

    rows = [Row("", "Teacher", "teacher", paper("teacher")), Row("", "Student", "student", paper("student"))]
    for group in ("Features", "Logits"):
        for m in methods:
            if (m in FEATURE_METHODS) != (group == "Features"):
                continue
            variants = METHODS.get(m, [])
            teachers: dict[Column, str] = {}
            by_col, expected, recipes = configured(variants)
            # A method run on its own published recipe with copies on FiGKD's (MLKD on CIFAR-100): two rows,
            # each run in the row of its recipe; the paper's number belongs to the method's own recipe.
            copies = [v + FIGKD_RECIPE_SUFFIX for v in variants]
            copy_cols, copy_expected, copy_recipes = configured(copies)
            strict = bool(copy_cols)
            rows.append(Row(group, m, paper=paper(m), methods=by_col, aliases=frozenset({normalise(m)}),
                            expected=expected, recipes=recipes, strict_recipe=strict, teachers=teachers,
                            paper_notes=notes(m)))
            if strict:
                rows.append(Row(group, f"{m} (FiGKD's recipe)", methods=copy_cols, expected=copy_expected,
                                recipes=copy_recipes, strict_recipe=True))
    teachers = {}
    for variant in METHODS["FiGKD"]:
        by_col, expected, recipes = configured([variant])
        rows.append(Row("Ours", f"FiGKD ({variant})", paper=paper("FiGKD"), methods=by_col, expected=expected,
                        recipes=recipes))
    return TableSpec(number, TITLES[number], "main", columns, rows)


def _ablation_table(number: int, paper_dir: Path | None) -> TableSpec:
    table = f"table{number}"
    if number == 10:
        settings = [("MLKD base", label, variant, values) for label, variant, _obj, values in TABLE10]
    else:
        _what, table_rows = ABLATIONS[table]
        settings = []
        for base, group in (("figkd", "Eq. 7 base (ce + figkd)"), ("mlkd+figkd", "MLKD base (mlkd + figkd)")):
            settings += [(group, label, base + suffix, values) for label, suffix, _opts, values in table_rows]
    columns: list[Column] = []
    for *_, values in settings:
        for dataset, (teacher, student) in values:
            c = Column(dataset, teacher, student)
            if c not in columns:
                columns.append(c)
    rows = []
    for group, label, variant, values in settings:
        paper = {Column(d, t, s): v for (d, (t, s)), v in values.items()}
        methods = {c: {m} for c in columns if (m := _config_method(paper_dir, table, c, variant))}
        recipes = {c: r for c in columns if (r := _config_recipe(paper_dir, table, c, variant)) is not None}
        rows.append(Row(group, label, paper=paper, methods=methods,
                        expected={c: next(iter(m)) for c, m in methods.items()}, recipes=recipes))
    return TableSpec(number, TITLES[number], "ablation", columns, rows)


def table_spec(number: int, paper_dir: str | Path | None = None) -> TableSpec:
    """The layout of paper Table ``number`` (1-13 or 16; 14 and 15 have their own, see the report)."""
    d = _paper_dir(paper_dir)
    if number in MAIN_TABLES:
        return _main_table(number, d)
    if number in ABLATION_TABLES:
        return _ablation_table(number, d)
    raise ConfigError(f"table {number} is not laid out from runs (tables {MAIN_TABLES[0]}-{MAIN_TABLES[-1]}, "
                      f"{', '.join(map(str, ABLATION_TABLES))}; 14: figkd analyze overhead; 15: figkd models)")


def reported_top1(dataset: str, teacher: str, student: str, method: str,
                  paper_dir: str | Path | None = None) -> float | None:
    """The paper's top-1 of a method on a teacher-student pair (Tables 1-9), or None when not reported."""
    for r in _csv_rows(_paper_dir(paper_dir)):
        if (r["dataset"], r["teacher"], r["student"], r["method"]) == (dataset, teacher, student, method):
            return r["top1"]
    return None
