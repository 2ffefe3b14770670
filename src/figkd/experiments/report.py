"""``figkd report``: run directories collected into the paper's tables, our numbers beside the paper's.

    figkd report runs/                     # every table that has runs, then the runs of no paper table
    figkd report runs/ --table 1 --metric best --format latex

Runs are grouped by (dataset, teacher, student, method) (:mod:`figkd.experiments.runs`). Each cell of a
paper table shows our mean ± sample standard deviation over the finished runs (seeds) of its group,
``(n=k)`` when fewer than 3, the paper's number and the difference (ours - paper). ``—`` marks a
missing value: a cell is never dropped. A cell is flagged (``†k``, explained under the table) when a
run in it differs from the recipe of the cell's config in ``configs/paper`` (epochs, batch size, learning
rate and schedule, momentum, weight decay; without a config: :class:`figkd.config.RunConfig`'s defaults,
which are the paper's; MLKD's CIFAR-100 cells have two rows, its own published recipe and FiGKD's, and
each run lands in the row of its recipe), when its objective
differs from the cell's config in ``configs/paper`` (it reached the row through the method's name
only), or when a seed appears twice. Unfinished runs are not averaged; they are counted in the cell
(``+k unfinished``). A paper number known to be wrong (six cells of Table 1 repeat another pair's number:
`figkd.paper.copied_cells`) is marked ``‡k`` and explained under the table, with the originally published
value where a primary source states it (CSV: the ``paper_note`` column).

Layouts: Tables 1-9 (rows = teacher, student, then the methods grouped Features / Logits / Ours,
columns = teacher-student pairs, and Avg.), the ablations 10-13 and 16 (rows = settings), Table 14
(the ``overhead.json`` written by ``figkd analyze overhead`` under the folder), Table 15 (parameters
and MACs of ``figkd models``), ``other``: every group in no paper table (one row per group), and ``val``:
the runs with a validation split (``val_fraction``, ``figkd tune``'s trials), which never read the test split:
their validation top-1, labelled as such, in a table of their own - never in a paper cell or ``other``, never
averaged with test numbers, and finished when their summary exists (:func:`validation_table`).
The Avg. column averages the column means that exist (``k/n`` when some are missing); its
difference is the mean of the per-pair differences.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import statistics
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from .paper import ABLATION_TABLES, MAIN_TABLES, RECIPE_FIELDS, TITLES, Column, Row, TableSpec, recipe_of, table_spec
from .runs import METRICS, RunRecord, collect_runs

FORMATS = ("md", "csv", "latex")
MISSING = "—"


# ------------------------------------------------------------------------------------------------ cells
@dataclass
class Cell:
    """Our runs in one table cell and the paper's number."""

    values: list[float] = field(default_factory=list)
    seeds: list[int] = field(default_factory=list)
    paper: float | None = None
    flags: list[str] = field(default_factory=list)
    unfinished: int = 0
    paper_note: str | None = None  # the paper's number is known to be wrong (``‡k`` under the table)

    @property
    def n(self) -> int:
        return len(self.values)

    @property
    def mean(self) -> float | None:
        return statistics.fmean(self.values) if self.values else None

    @property
    def std(self) -> float | None:
        """Sample standard deviation (n - 1); None for fewer than two runs."""
        return statistics.stdev(self.values) if len(self.values) > 1 else None

    @property
    def diff(self) -> float | None:
        return None if self.mean is None or self.paper is None else self.mean - self.paper


def recipe_differences(cfg: dict[str, Any], expected: dict[str, Any] | None = None) -> list[str]:
    """The recipe fields of a run config that differ from ``expected`` (the cell's config recipe,
    :func:`~figkd.experiments.paper.recipe_of`), or from the paper's (RunConfig defaults) when None."""
    ours = recipe_of(cfg)
    theirs = expected if expected is not None else recipe_of({"student": cfg.get("student") or cfg.get("model")})
    return [f"{key} {ours[key]} (paper {theirs[key]})" for key in RECIPE_FIELDS if ours[key] != theirs[key]]


def _recipe(r: RunRecord) -> dict[str, Any]:
    """:func:`recipe_of` the run's config. A config without a learning rate (``lr: null``) stands for its
    model's default, which only the model's registration knows: for a model not registered in this
    process (a plugin's, or another version's) that is a ConfigError naming the run and the fix."""
    try:
        return recipe_of(r.cfg)
    except ValueError:  # figkd.models.default_lr of a name unknown here
        raise ConfigError(
            f"{r.run_dir}: its model {r.student!r} is not registered in this process and its config.yaml records "
            "no learning rate (lr: null), whose default only the model's registration knows: load the plugin that "
            "registers it (FIGKD_PLUGINS=module_or_file.py figkd report ...), or write the learning rate it used "
            "into its config.yaml") from None


def _fill(cell: Cell, runs: list[RunRecord], metric: str, expected: str | None,
          recipe: dict[str, Any] | None = None, *, compare_recipe: bool = True,
          value_of: Callable[[RunRecord], float | None] | None = None) -> None:
    """Add ``runs`` to ``cell``; flag recipes that differ from ``recipe`` (the paper's when None) unless
    ``compare_recipe`` is False (runs of no paper table), objectives other than ``expected``, repeated
    seeds. ``value_of``: a run's number (default: its test top-1 at ``metric``; None: unfinished)."""
    for r in runs:
        value = r.top1(metric) if value_of is None else value_of(r)
        if value is None:
            cell.unfinished += 1
            continue
        cell.values.append(value)
        cell.seeds.append(r.seed)
        for d in recipe_differences(r.cfg, recipe) if compare_recipe else ():
            if d not in cell.flags:
                cell.flags.append(d)
        if expected is not None and r.method != expected:
            note = f"objective {r.method} (paper config: {expected})"
            if note not in cell.flags:
                cell.flags.append(note)
    if len(set(cell.seeds)) < len(cell.seeds):
        cell.flags.append("a seed appears more than once")


@dataclass
class Table:
    """A laid-out table: header, row labels (group, label) and cells, notes under it."""

    title: str
    columns: list[str]
    rows: list[tuple[str, str]]
    cells: list[list[Cell]]
    notes: list[str] = field(default_factory=list)
    avg: bool = True
    seeds: bool = True  # cells average seeds (False: single measurements, no n shown)
    header: str | None = None  # the line under the title (default: what a top-1 cell shows)

    def line(self, i: int, marks: dict[tuple[int, int], str], paper_marks: dict[tuple[int, int], str]) -> list[str]:
        """The texts of row ``i``, the Avg. cell last."""
        cells = self.cells[i] + ([_avg(self.cells[i])] if self.avg else [])
        return [_cell_text(c, marks.get((i, j), ""), self.seeds, paper_marks.get((i, j), ""))
                for j, c in enumerate(cells)]


def chain_teachers(runs: list[RunRecord]) -> dict[int, str]:
    """``id(run)`` -> the teacher of the distilled run it distils from, for the distill runs whose
    ``teacher_ckpt`` is (or lies inside) the directory of another collected distill run whose student is their
    teacher: a chain's first teacher (TAKD: the teacher of the assistant)."""
    by_dir = {os.path.abspath(r.run_dir): r for r in runs if r.command == "distill"}
    out: dict[int, str] = {}
    for r in runs:
        ckpt = r.cfg.get("teacher_ckpt")
        if r.command != "distill" or not isinstance(ckpt, str):
            continue
        path = Path(os.path.abspath(os.path.expanduser(ckpt)))
        for candidate in (path, *path.parents):
            source = by_dir.get(str(candidate))
            if source is not None and source is not r and source.student == r.teacher and source.teacher:
                out[id(r)] = source.teacher
                break
    return out


def _runs_of(row: Row, column: Column, runs: list[RunRecord], chains: dict[int, str] | None = None) -> list[RunRecord]:
    if row.role in ("teacher", "student"):
        model = column.teacher if row.role == "teacher" else column.student
        return [r for r in runs if r.command == "train" and r.dataset == column.dataset and r.student == model]
    teacher = row.teachers.get(column, column.teacher)  # TAKD's runs distil from the assistant

    def teacher_fits(r: RunRecord) -> bool:
        if r.teacher == teacher:
            return True
        # TAKD with another assistant than its config's: a run distilled from a run distilled from the column's teacher
        return (column in row.teachers and r.teacher != column.teacher
                and (chains or {}).get(id(r)) == column.teacher)

    return [r for r in runs if r.command == "distill" and r.dataset == column.dataset
            and teacher_fits(r) and r.student == column.student
            and row.matches(column, r.method, _recipe(r))]


def build_table(spec: TableSpec, runs: list[RunRecord], metric: str) -> tuple[Table, set[int]]:
    """Table ``spec`` filled from ``runs``; also returns the indices of the runs it used."""
    used: set[int] = set()
    index = {id(r): i for i, r in enumerate(runs)}
    chains = chain_teachers(runs)
    rows = [(row.group, row.label) for row in spec.rows]
    cells = []
    for row in spec.rows:
        line = []
        for column in spec.columns:
            members = _runs_of(row, column, runs, chains)
            used.update(index[id(r)] for r in members)
            cell = Cell(paper=row.paper.get(column), paper_note=row.paper_notes.get(column))
            _fill(cell, members, metric, row.expected.get(column), row.recipes.get(column))
            assistant = row.teachers.get(column)
            for other in sorted({r.teacher for r in members if assistant and r.teacher != assistant}):
                cell.flags.append(f"assistant {other} (paper config: {assistant})")
            line.append(cell)
        cells.append(line)
    # Methods of no row (a preset the paper's table does not list): their own rows, group "Other".
    if spec.kind == "main":
        cols = set(spec.columns)
        extra: dict[str, list[RunRecord]] = {}
        for i, r in enumerate(runs):
            column = Column(r.dataset, r.teacher or "", r.student)
            if (i not in used and r.command == "distill" and column in cols
                    and isinstance(r.cfg.get("objective"), str)):
                extra.setdefault(r.method, []).append(r)
        for method, members in sorted(extra.items()):
            rows.append(("Other", method))
            line = []
            for column in spec.columns:
                mine = [r for r in members if Column(r.dataset, r.teacher, r.student) == column]
                used.update(index[id(r)] for r in mine)
                cell = Cell()
                _fill(cell, mine, metric, None)
                line.append(cell)
            cells.append(line)
    labels = [c.label(spec.multi_dataset) for c in spec.columns]
    title = f"Table {spec.number}: {spec.title}"
    return Table(title, labels, rows, cells), used


@dataclass
class AvgCell(Cell):
    """The Avg. column: mean of the column means, the paper's mean, the mean of the per-pair differences."""

    mean_diff: float | None = None
    coverage: str = ""  # "k/n" when only k of the n columns have our runs

    @property
    def diff(self) -> float | None:
        return self.mean_diff


def _avg(cells: list[Cell]) -> AvgCell:
    ours = [c.mean for c in cells if c.mean is not None]
    paper = [c.paper for c in cells if c.paper is not None]
    diffs = [c.diff for c in cells if c.diff is not None]
    return AvgCell(values=[statistics.fmean(ours)] if ours else [], paper=statistics.fmean(paper) if paper else None,
                   mean_diff=statistics.fmean(diffs) if diffs else None,
                   coverage=f"{len(ours)}/{len(cells)}" if ours and len(ours) < len(cells) else "")


# ------------------------------------------------------------------------------------------------ rendering
def _ours_text(cell: Cell, seeds: bool) -> str:
    if cell.mean is None:
        text = MISSING
    elif cell.std is None:
        text = f"{cell.mean:.2f}"
    else:
        text = f"{cell.mean:.2f} ± {cell.std:.2f}"
    if isinstance(cell, AvgCell):
        return text + (f" ({cell.coverage})" if cell.coverage else "")
    if seeds and 0 < cell.n < 3:
        text += f" (n={cell.n})"
    if cell.unfinished:
        text += f" +{cell.unfinished} unfinished"
    return text


def _cell_text(cell: Cell, note: str, seeds: bool = True, paper_mark: str = "") -> str:
    if cell.paper is None and cell.mean is None and not cell.unfinished:
        return MISSING
    text = _ours_text(cell, seeds)
    if cell.paper is not None:
        text += f" / {cell.paper:.2f}{paper_mark}"
        if cell.diff is not None:
            text += f" ({cell.diff:+.2f})"
    return text + note


def _notes(table: Table) -> tuple[dict[tuple[int, int], str], dict[tuple[int, int], str], list[str]]:
    """A mark per flagged cell (``†k``: our runs), a mark per cell whose paper number is known to be wrong
    (``‡k``, after that number), and the notes (one per distinct text)."""
    marks: dict[tuple[int, int], str] = {}
    paper_marks: dict[tuple[int, int], str] = {}
    texts: dict[str, int] = {}
    paper_texts: dict[str, int] = {}
    for i, line in enumerate(table.cells):
        for j, cell in enumerate(line):
            if cell.flags:
                text = "; ".join(cell.flags)
                k = texts.setdefault(text, len(texts) + 1)
                marks[(i, j)] = f" †{k}"
            if cell.paper_note:
                k = paper_texts.setdefault(cell.paper_note, len(paper_texts) + 1)
                paper_marks[(i, j)] = f"‡{k}"
    return marks, paper_marks, ([f"†{k}: {text}" for text, k in texts.items()]
                                + [f"‡{k}: {text}" for text, k in paper_texts.items()])


def _header(table: Table, metric: str) -> str:
    if table.header is not None:
        return table.header
    which = "last epoch" if metric == "last" else "best epoch"
    return (f"top-1 (%), {which} ({'--metric best' if metric == 'last' else '--metric last'} for the other); "
            f"cells: ours mean ± std over seeds (n when < 3) / paper (ours - paper); {MISSING} missing")


def render_md(table: Table, metric: str) -> str:
    marks, paper_marks, notes = _notes(table)
    cols = table.columns + (["Avg."] if table.avg else [])
    out = [f"### {table.title}", "", _header(table, metric), "", "| | | " + " | ".join(cols) + " |",
           "|---|---|" + "---|" * len(cols)]
    last_group = None
    for i, (group, label) in enumerate(table.rows):
        texts = table.line(i, marks, paper_marks)
        shown = group if group != last_group else ""
        last_group = group
        out.append(f"| {shown} | {label} | " + " | ".join(texts) + " |")
    out += [""] + [f"{n}  " for n in notes] + table.notes
    return "\n".join(out).rstrip() + "\n"


def _tex(text: str) -> str:
    for a, b in (("\\", r"\textbackslash{}"), ("_", r"\_"), ("%", r"\%"), ("&", r"\&"), ("#", r"\#"),
                 ("±", r"$\pm$"), ("—", "--"), ("†", r"$^\dagger$"), ("‡", r"$^\ddagger$"), ("->", r"$\to$")):
        text = text.replace(a, b)
    return text


def render_latex(table: Table, metric: str) -> str:
    marks, paper_marks, notes = _notes(table)
    cols = table.columns + (["Avg."] if table.avg else [])
    out = [f"% {table.title}; {_header(table, metric)}", r"\begin{tabular}{ll" + "c" * len(cols) + "}", r"\toprule",
           " & & " + " & ".join(_tex(c) for c in cols) + r" \\", r"\midrule"]
    last_group = None
    for i, (group, label) in enumerate(table.rows):
        if last_group is not None and group != last_group:
            out.append(r"\midrule")
        texts = table.line(i, marks, paper_marks)
        out.append(f"{_tex(group if group != last_group else '')} & {_tex(label)} & "
                   + " & ".join(_tex(t) for t in texts) + r" \\")
        last_group = group
    out += [r"\bottomrule", r"\end{tabular}"] + [f"% {_tex(n)}" for n in notes + table.notes]
    return "\n".join(out) + "\n"


CSV_FIELDS = ("table", "group", "row", "column", "metric", "n", "mean", "std", "seeds", "paper", "diff", "flags",
              "unfinished", "paper_note")


def csv_rows(table: Table, metric: str) -> list[dict[str, Any]]:
    out = []
    for (group, label), line in zip(table.rows, table.cells, strict=True):
        columns, cells = list(table.columns), list(line)
        if table.avg:
            columns.append("Avg.")
            cells.append(_avg(line))
        for column, cell in zip(columns, cells, strict=True):
            avg = isinstance(cell, AvgCell)
            out.append({"table": table.title, "group": group, "row": label, "column": column, "metric": metric,
                        "n": "" if avg or not table.seeds else cell.n, "mean": _num(cell.mean),
                        "std": _num(cell.std), "seeds": " ".join(map(str, cell.seeds)), "paper": _num(cell.paper),
                        "diff": _num(cell.diff), "flags": cell.coverage if avg else "; ".join(cell.flags),
                        "unfinished": cell.unfinished or "", "paper_note": cell.paper_note or ""})
    return out


def _num(v: float | None) -> str:
    return "" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.4f}"


def render(tables: list[Table], fmt: str, metric: str) -> str:
    if fmt == "csv":
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=CSV_FIELDS, lineterminator="\n")
        writer.writeheader()
        for t in tables:
            writer.writerows(csv_rows(t, metric))
        return buf.getvalue()
    render_one = render_md if fmt == "md" else render_latex
    return "\n".join(render_one(t, metric) for t in tables)


# ------------------------------------------------------------------------------------------------ other tables
def _groups(runs: list[RunRecord], extra: tuple[str, ...] = ()) -> list[tuple[str, str, list[RunRecord]]]:
    """``(dataset, row label, runs)`` of each group of ``runs``: (dataset, teacher, student, method) and, within
    it, one recipe (:data:`~figkd.experiments.paper.RECIPE_FIELDS`, and the config fields ``extra``): runs of
    different lengths or schedules are never averaged together. Each label names the epochs, the ``extra``
    fields, and the other recipe fields that set the row apart from the rows of the same (dataset, teacher,
    student, method)."""
    groups: dict[tuple, list[RunRecord]] = {}
    for r in runs:
        recipe = json.dumps({**_recipe(r), **{f: r.cfg.get(f) for f in extra}}, sort_keys=True)
        groups.setdefault((r.dataset, r.teacher or MISSING, r.student, r.method, recipe), []).append(r)
    siblings: dict[tuple, list[tuple]] = {}
    for key in groups:
        siblings.setdefault(key[:4], []).append(key)
    out = []
    for key, members in sorted(groups.items()):
        dataset, teacher, student, method, recipe = key
        role = "alone" if teacher == MISSING else f"from {teacher}"
        mine = json.loads(recipe)
        label = f"{student} {role}: {method} ({mine['epochs']} epochs" + "".join(f", {f} {mine[f]}" for f in extra)
        others = [k for k in siblings[key[:4]] if k != key]
        if others:
            differ = [f for f in RECIPE_FIELDS if f != "epochs" and any(json.loads(k[4])[f] != mine[f] for k in others)]
            label += "".join(f", {f} {mine[f]}" for f in differ)
        out.append((dataset, label + ")", members))
    return out


def _teacher_checkpoints(cell: Cell, members: list[RunRecord]) -> None:
    checkpoints = {str(r.cfg.get("teacher_ckpt")) for r in members if r.cfg.get("teacher_ckpt")}
    if len(checkpoints) > 1:
        cell.flags.append(f"its runs distil from {len(checkpoints)} different teacher checkpoints")


def other_table(runs: list[RunRecord], metric: str) -> Table:
    """Every group of runs in no paper table as one row (:func:`_groups`), without paper numbers. A row whose
    runs distil from different teacher checkpoints (one per seed, or a mix) is flagged with their number."""
    rows, cells = [], []
    for dataset, label, members in _groups(runs):
        rows.append((dataset, label))
        cell = Cell()
        _fill(cell, members, metric, None, compare_recipe=False)  # not paper cells: no paper recipe
        _teacher_checkpoints(cell, members)
        cells.append([cell])
    which = "last epoch" if metric == "last" else "best epoch"
    return Table("Runs of no paper table", [f"top-1 ({metric})"], rows, cells, avg=False,
                 header=f"top-1 (%), {which}: mean ± std over seeds (n when < 3); {MISSING} missing")


#: The note under the table of validation runs.
VALIDATION_NOTE = ("val top-1: on the validation split each run held out of its training split (val_fraction); "
                   "these runs trained on the rest of the training split and never read the test split, so their "
                   "numbers are not the test top-1 of the tables above and are never averaged with them. "
                   "test top-1 (test_at_end): the final weights evaluated once on the test split, where a run asked "
                   "for it (test_at_end: true).")


def validation_table(runs: list[RunRecord], metric: str) -> Table:
    """The runs with a validation split (:attr:`RunRecord.eval_split` ``"val"``: ``figkd tune``'s trials,
    ``val_fraction`` > 0), grouped as :func:`other_table` does and by ``val_fraction``, kept out of every other
    table: their validation top-1 at ``metric`` (a finished run is finished, not ``unfinished``: its summary
    holds ``val_last_top1``/``val_best_top1``) and the test top-1 of the final weights where ``test_at_end``
    measured it (``--metric last`` only)."""
    rows, cells = [], []
    for dataset, label, members in _groups(runs, ("val_fraction",)):
        rows.append((dataset, label))
        val, test = Cell(), Cell()
        _fill(val, members, metric, None, compare_recipe=False, value_of=lambda r: r.val_top1(metric))
        _teacher_checkpoints(val, members)
        measured = [r for r in members if r.top1("last") is not None] if metric == "last" else []
        _fill(test, measured, metric, None, compare_recipe=False, value_of=lambda r: r.top1("last"))
        cells.append([val, test])
    which = "last epoch" if metric == "last" else "best epoch"
    return Table("Runs with a validation split (validation top-1: these runs never read the test split)",
                 [f"val top-1 ({metric})", "test top-1 (test_at_end)"], rows, cells, avg=False, notes=[VALIDATION_NOTE],
                 header=f"top-1 (%), {which}: mean ± std over seeds (n when < 3); {MISSING} missing")


def table14(root: Path) -> Table:
    """Table 14 from the newest ``overhead.json`` under ``root`` (written by ``figkd analyze overhead``)."""
    found = sorted(root.rglob("overhead.json"), key=lambda p: p.stat().st_mtime)
    if not found:
        raise ConfigError(f"no overhead.json under {root}: Table 14 is timed, not collected from runs; run "
                          f"figkd analyze overhead --out {root}/overhead first")
    from ..paper import TABLE14 as PAPER_TABLE14

    data = json.loads(found[-1].read_text())
    rows, cells = [], []
    for r in data["results"]:
        paper = PAPER_TABLE14.get(r["label"])
        cells.append([Cell(values=[r["s_per_batch"]], paper=paper[0] if paper else None),
                      Cell(values=[r["overhead_pct"]] if r["overhead_pct"] is not None else [],
                           paper=paper[1] if paper else None)])
        rows.append(("", r["label"]))
    setting = data.get("setting", {})
    note = (f"ours: {setting.get('teacher')} -> {setting.get('student')}, {setting.get('dataset')} shapes, batch "
            f"{setting.get('batch_size')}, {data.get('device_name') or data.get('device')} ({found[-1]}); paper: "
            f"ResNet32x4 -> ResNet8x4, CIFAR-100, RTX 3090")
    return Table("Table 14: " + TITLES[14], ["s per batch", "overhead (%)"], rows, cells, notes=[note], avg=False,
                 seeds=False, header="ours on this machine / paper (ours - paper)")


def table15() -> Table:
    """Table 15: parameters and MACs of the paper's teacher-student pairs (figkd models --table15)."""
    from ..models.complexity import complexity
    from ..paper import TABLE15, TABLE15_INPUT_SIZE, TABLE15_NUM_CLASSES, TABLE15_PAIRS

    ours = {name: complexity(name, TABLE15_INPUT_SIZE, num_classes=TABLE15_NUM_CLASSES) for name in TABLE15}
    rows, cells = [], []
    for (t, s), (paper_params, paper_macs) in TABLE15_PAIRS.items():
        rows.append(("", f"{t} / {s}"))
        cells.append([Cell([ours[t].params_m], paper=TABLE15[t][0]), Cell([ours[t].macs_m], paper=TABLE15[t][1]),
                      Cell([ours[s].params_m], paper=TABLE15[s][0]), Cell([ours[s].macs_m], paper=TABLE15[s][1]),
                      Cell([ours[t].params / ours[s].params], paper=paper_params),
                      Cell([ours[t].macs / ours[s].macs], paper=paper_macs)])
    note = ("MACs of convolution and linear layers; the paper's counter also counts BatchNorm (docs/models.md). "
            "Same numbers: figkd models --table15")
    return Table("Table 15: " + TITLES[15], ["teacher params (M)", "teacher MACs (M)", "student params (M)",
                                             "student MACs (M)", "params ratio", "MACs ratio"],
                 rows, cells, notes=[note], avg=False, seeds=False, header="ours / paper (ours - paper)")


# ------------------------------------------------------------------------------------------------ entry point
def report(runs_dir: str | Path, tables: list[str] | None = None, fmt: str = "md", metric: str = "last",
           paper_dir: str | Path | None = None) -> str:
    """The report of ``runs_dir`` as text (see the module docstring).

    ``tables``: ``"1"``..``"16"``, ``"other"`` or ``"val"``; None: every paper table with at least one of our
    runs, Table 14 when an ``overhead.json`` exists, then ``other`` when some runs belong to no paper table, then
    ``val`` when some runs have a validation split.
    Raises :class:`ConfigError` for an unknown table, format or metric, a missing folder, or a folder
    without runs (unless only Table 15 is asked for).
    """
    if fmt not in FORMATS:
        raise ConfigError(f"--format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    if metric not in METRICS:
        raise ConfigError(f"--metric must be one of {', '.join(METRICS)}, got {metric!r}")
    valid = [str(n) for n in range(1, 17)] + ["other", "val"]
    for t in tables or []:
        if t not in valid:
            raise ConfigError(f"--table {t!r}: valid tables are 1-16, other and val")
    root = Path(runs_dir)
    if not root.is_dir():
        raise ConfigError(f"{root} is not a folder of run directories")
    runs = collect_runs(root)
    if not runs and (tables is None or set(tables) - {"14", "15"}):
        raise ConfigError(f"no run directories under {root} (a run directory holds config.yaml and summary.json)")
    validation = [r for r in runs if r.eval_split == "val"]  # their own table: never mixed with test numbers
    runs = [r for r in runs if r.eval_split != "val"]
    out: list[Table] = []
    used: set[int] = set()
    for number in range(1, 17):
        wanted = tables is not None and str(number) in tables
        if number in MAIN_TABLES or number in ABLATION_TABLES:
            table, mine = build_table(table_spec(number, paper_dir), runs, metric)
            used |= mine
            if wanted or (tables is None and mine):
                out.append(table)
        elif number == 14 and (wanted or (tables is None and any(root.rglob("overhead.json")))):
            out.append(table14(root))
        elif number == 15 and wanted:
            out.append(table15())
    rest = [r for i, r in enumerate(runs) if i not in used]
    if rest and (tables is None or "other" in tables):
        out.append(other_table(rest, metric))
    if validation and (tables is None or "val" in tables):
        out.append(validation_table(validation, metric))
    return render(out, fmt, metric)
