"""figkd report: paper tables laid out from (synthetic) run directories - cells, paper numbers, differences,
missing cells, flags, the Avg. column, formats - and method names of objectives."""

from __future__ import annotations

import csv
import io
import json
import statistics
from pathlib import Path

import pytest
import yaml

from figkd.cli import main
from figkd.config import RunConfig
from figkd.experiments.paper import table_spec
from figkd.experiments.report import report
from figkd.experiments.runs import collect_runs, method_name

#: The paper's Tables 1-9, package data of figkd.paper (read here as a plain file).
PAPER_CSV = Path(__file__).resolve().parents[1] / "src" / "figkd" / "paper" / "reported_top1.csv"


def _paper(table, teacher, student, method):
    with open(PAPER_CSV, newline="") as fh:
        [row] = [r for r in csv.DictReader(fh) if (r["table"], r["teacher"], r["student"], r["method"])
                 == (table, teacher, student, method)]
    return float(row["top1"])


def _run(root: Path, name: str, last: float | None, seed: int = 0, **cfg) -> Path:
    """A run directory as the engine leaves it: config.yaml, and summary.json once finished."""
    d = root / name
    d.mkdir(parents=True)
    (d / "config.yaml").write_text(yaml.safe_dump(RunConfig(seed=seed, **cfg).to_dict(), sort_keys=False))
    (d / "metrics.jsonl").write_text("")
    if last is not None:
        (d / "summary.json").write_text(json.dumps({"last_top1": last, "best_top1": last + 1.0}))
    return d


R32x4 = {"dataset": "cifar100", "teacher": "resnet32x4", "teacher_ckpt": "t", "student": "resnet8x4"}


@pytest.fixture
def runs(tmp_path):
    for seed, v in enumerate([79.0, 79.4, 79.8]):
        _run(tmp_path, f"train/resnet32x4-s{seed}", v, seed, dataset="cifar100", model="resnet32x4",
             objective="vanilla")
    for seed, v in enumerate([78.0, 78.5]):
        _run(tmp_path, f"d/figkd-s{seed}", v, seed, objective="figkd", **R32x4)
    _run(tmp_path, "d/figkd-s2", None, 2, objective="figkd", **R32x4)  # still running
    _run(tmp_path, "d/kd-short-s0", 70.0, objective="kd", epochs=2, lr_milestones=[1], **R32x4)
    _run(tmp_path, "d/dkd-s0", 74.0, dataset="cifar100", teacher="resnet110", teacher_ckpt="t", student="resnet32",
         objective="dkd")  # the paper config of this pair uses beta 2
    _run(tmp_path, "d/level2-s0", 77.5, objective=[{"term": "ce", "weight": 1.0},
                                                 {"term": "figkd", "weight": 2.0, "level": 2}], **R32x4)
    _run(tmp_path, "d/digits-s0", 95.0, dataset="digits", teacher="resnet8", teacher_ckpt="t", student="resnet8",
         objective="kd", epochs=3)
    return tmp_path


def test_method_names():
    assert method_name("mlkd+figkd") == "mlkd+figkd"
    assert method_name([{"term": "ce", "weight": 1.0}, {"term": "figkd", "weight": 2.0, "wavelet": "haar"}]) == "figkd"
    assert method_name([{"term": "ce"}, {"term": "figkd", "weight": 2, "level": 3}]) == "ce + 2*figkd(level=3)"
    assert method_name([{"term": "mlkd"}, {"term": "figkd", "weight": 2.0, "bands": "low"}]) == \
        "mlkd + 2*figkd(bands=low)"
    assert method_name([{"term": "ce", "weight": 1.0}, {"term": "dkd", "beta": 6.0, "warmup": 20}]) == \
        "ce + dkd(beta=6, warmup=20)"


def test_table1_cells_paper_numbers_and_flags(runs):
    rows = list(csv.DictReader(io.StringIO(report(runs, ["1"], fmt="csv"))))
    cell = {(r["row"], r["column"]): r for r in rows}
    teacher = cell[("Teacher", "resnet32x4->resnet8x4")]
    assert teacher["n"] == "3" and float(teacher["mean"]) == pytest.approx(79.4)
    assert float(teacher["std"]) == pytest.approx(statistics.stdev([79.0, 79.4, 79.8]), abs=1e-4)
    assert float(teacher["paper"]) == _paper("table1", "resnet32x4", "resnet8x4", "teacher")
    assert float(teacher["diff"]) == pytest.approx(79.4 - float(teacher["paper"]), abs=1e-4)
    figkd = cell[("FiGKD (figkd)", "resnet32x4->resnet8x4")]
    assert (figkd["n"], figkd["seeds"], figkd["unfinished"]) == ("2", "0 1", "1")
    assert float(figkd["paper"]) == _paper("table1", "resnet32x4", "resnet8x4", "FiGKD") and figkd["flags"] == ""
    # a cell with a shortened recipe is flagged with what differs
    kd = cell[("KD", "resnet32x4->resnet8x4")]
    assert "epochs 2 (paper 240)" in kd["flags"] and "lr_milestones [1]" in kd["flags"]
    # the DKD preset on a pair whose paper config sets beta 2 lands in the DKD row, flagged
    dkd = cell[("DKD", "resnet110->resnet32")]
    assert dkd["n"] == "1" and "paper config: ce + dkd(beta=2, warmup=20)" in dkd["flags"]
    # missing cells are there, with the paper's number and no value of ours
    missing = cell[("CRD", "vgg13->vgg8")]
    assert missing["n"] == "0" and missing["mean"] == "" and missing["paper"] != ""
    # every row of the paper's table is present, in the paper's groups
    assert [r["group"] for r in rows if r["column"] == "Avg." and r["row"] in ("FitNet", "KD", "FiGKD (figkd)")] == \
        ["Features", "Logits", "Ours"]
    avg = cell[("FiGKD (figkd)", "Avg.")]
    assert float(avg["mean"]) == pytest.approx(78.25) and avg["flags"] == "1/5"
    assert float(avg["diff"]) == pytest.approx(78.25 - float(figkd["paper"]), abs=1e-4)


def test_mlkd_runs_land_in_the_row_of_their_recipe(tmp_path):
    """MLKD's CIFAR-100 cells run on MLKD's own published recipe (its paper config: lr 0.025 for resnet32x4 ->
    resnet8x4) with a copy on FiGKD's (lr 0.05): the two kinds of run are two rows, never averaged together,
    and neither is flagged; a run on a third recipe lands in the row of its method, flagged."""
    _run(tmp_path, "d/mlkd-s0", 77.0, objective="mlkd", lr=0.025, **R32x4)
    _run(tmp_path, "d/mlkd-figkd-recipe-s0", 76.0, objective="mlkd", **R32x4)
    rows = list(csv.DictReader(io.StringIO(report(tmp_path, ["1"], fmt="csv"))))
    cell = {(r["row"], r["column"]): r for r in rows}
    own, copy = cell[("MLKD", "resnet32x4->resnet8x4")], cell[("MLKD (FiGKD's recipe)", "resnet32x4->resnet8x4")]
    assert (float(own["mean"]), own["n"], own["flags"]) == (77.0, "1", "")
    assert float(own["paper"]) == _paper("table1", "resnet32x4", "resnet8x4", "MLKD")
    assert (float(copy["mean"]), copy["n"], copy["flags"], copy["paper"]) == (76.0, "1", "", "")
    _run(tmp_path, "d/mlkd-short-s0", 50.0, objective="mlkd", lr=0.025, epochs=3, **R32x4)
    rows = list(csv.DictReader(io.StringIO(report(tmp_path, ["1"], fmt="csv"))))
    other = [r for r in rows if r["column"] == "resnet32x4->resnet8x4" and r["mean"] and float(r["mean"]) == 50.0]
    assert [r["row"] for r in other] == ["mlkd"] and "epochs 3 (paper 240)" in other[0]["flags"]


def test_takd_and_dml_runs_land_in_their_cells(tmp_path):
    """TAKD's cell holds the student distilled from the assistant (resnet110 -> resnet32: resnet56, the
    generated takd.yaml's teacher); DML's holds the student's peer of a peers run (<out>/peer1-<student>),
    while the teacher-architecture peer belongs to no cell of the table."""
    _run(tmp_path, "d/takd-s0", 71.0, dataset="cifar100", teacher="resnet56", teacher_ckpt="a", student="resnet32",
         objective="kd")
    for i, arch in enumerate(("resnet110", "resnet32")):
        _run(tmp_path, f"d/dml-s0/peer{i}-{arch}", 70.0 + i, dataset="cifar100", peers=["resnet110", "resnet32"],
             objective="dml")
    rows = list(csv.DictReader(io.StringIO(report(tmp_path, ["1"], fmt="csv"))))
    cell = {(r["row"], r["column"]): r for r in rows}
    takd, dml = cell[("TAKD", "resnet110->resnet32")], cell[("DML", "resnet110->resnet32")]
    assert (float(takd["mean"]), takd["n"], takd["flags"]) == (71.0, "1", "")
    assert float(takd["paper"]) == _paper("table1", "resnet110", "resnet32", "TAKD")
    assert (float(dml["mean"]), dml["n"], dml["flags"]) == (71.0, "1", "")  # peer1: the student's architecture
    assert [r["row"] for r in rows if r["mean"] and float(r["mean"]) == 70.0] == []


def test_ablation_rows_and_best_metric(runs):
    rows = list(csv.DictReader(io.StringIO(report(runs, ["11"], fmt="csv", metric="best"))))
    cell = {(r["group"], r["row"], r["column"]): r for r in rows}
    j2 = cell[("Eq. 7 base (ce + figkd)", "J = 2", "resnet32x4->resnet8x4")]
    assert float(j2["mean"]) == pytest.approx(78.5) and float(j2["paper"]) == 78.05  # best = last + 1 here
    j1 = cell[("Eq. 7 base (ce + figkd)", "J = 1", "resnet32x4->resnet8x4")]
    assert j1["n"] == "2" and j1["metric"] == "best"
    assert cell[("MLKD base (mlkd + figkd)", "J = 2", "resnet32x4->resnet8x4")]["n"] == "0"


def test_default_report_lists_tables_with_runs_and_other_runs(runs):
    md = report(runs)
    for title in ("Table 1:", "Table 11:", "Table 12:", "Table 13:", "Table 16:", "Runs of no paper table"):
        assert title in md
    assert "Table 5:" not in md and "Table 10:" not in md  # no run of ours there
    assert "79.40 ± 0.40 / 79.42 (-0.02)" in md  # teacher cell: mean ± std / paper (difference)
    assert "78.25 ± 0.35 (n=2) +1 unfinished / 78.05 (+0.20)" in md
    assert "| digits | resnet8 from resnet8: kd (3 epochs) | 95.00 (n=1) |" in md
    assert "†1: epochs 2 (paper 240)" in md
    latex = report(runs, ["1"], fmt="latex")
    assert r"\begin{tabular}" in latex and r"79.40 $\pm$ 0.40" in latex and r"resnet32x4$\to$resnet8x4" in latex


def test_runs_of_no_paper_table_are_averaged_only_within_one_recipe(tmp_path):
    digits = {"dataset": "digits", "teacher": "resnet20", "student": "resnet8", "objective": "figkd"}
    _run(tmp_path, "a/s0", 50.0, 0, teacher_ckpt="t0", epochs=2, lr_milestones=[1], **digits)
    _run(tmp_path, "a/s1", 52.0, 1, teacher_ckpt="t1", epochs=2, lr_milestones=[1], **digits)
    _run(tmp_path, "b/s0", 90.0, 0, teacher_ckpt="t0", epochs=9, lr_milestones=[6, 7, 8], **digits)
    _run(tmp_path, "c/s0", 80.0, 0, teacher_ckpt="t0", epochs=9, lr_milestones=[6, 7, 8], lr=0.1, **digits)
    md = report(tmp_path)
    # each row: its epochs and the recipe fields in which it differs from another row of the group
    assert "| digits | resnet8 from resnet20: figkd (2 epochs, lr 0.05, lr_milestones [1]) | 51.00 ± 1.41 (n=2) †1 |" \
        in md
    assert "†1: its runs distil from 2 different teacher checkpoints" in md
    assert "|  | resnet8 from resnet20: figkd (9 epochs, lr 0.05, lr_milestones [6, 7, 8]) | 90.00 (n=1) |" in md
    assert "|  | resnet8 from resnet20: figkd (9 epochs, lr 0.1, lr_milestones [6, 7, 8]) | 80.00 (n=1) |" in md


def test_tables_14_15_and_errors(runs, tmp_path, capsys, monkeypatch):
    import sys

    cx = sys.modules["figkd.models.complexity"]  # the module (figkd.models.complexity is also a function)

    # Table 15's layout (the counts themselves are tested in test_models_complexity; counting every model
    # at 64x64 takes seconds): the paper's numbers from figkd.paper, ours beside them
    from figkd.paper import TABLE15

    def paper_counts(name, size, num_classes):
        params, macs = (round(v * 1e6) for v in TABLE15[name])
        return cx.Complexity(params, macs, (size, size), macs, 0)

    monkeypatch.setattr(cx, "complexity", paper_counts)
    t15 = report(runs, ["15"])
    assert "| resnet32x4 / resnet8x4 | 7.46 / 7.46 (+0.00) | 4352.82 / 4352.82 (+0.00) |" in t15
    (runs / "overhead").mkdir()
    (runs / "overhead" / "overhead.json").write_text(json.dumps({
        "setting": {"teacher": "resnet8", "student": "resnet8", "dataset": "cifar100", "batch_size": 8},
        "device": "cpu", "results": [{"label": "KD", "s_per_batch": 0.2, "overhead_pct": None},
                                     {"label": "FiGKD (J = 1)", "s_per_batch": 0.21, "overhead_pct": 5.0}]}))
    t14 = report(runs, ["14"])
    assert "0.21 / 0.11 (+0.10)" in t14 and "5.00 / 2.00 (+3.00)" in t14
    assert main(["report", str(tmp_path / "nothing-here")]) == 2
    assert "is not a folder" in capsys.readouterr().err
    assert main(["report", str(runs), "--table", "17"]) == 2
    assert "valid tables are 1-16, other and val" in capsys.readouterr().err
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["report", str(empty)]) == 2


def test_paper_dir_reads_another_copy_of_the_reported_numbers(runs, tmp_path, capsys):
    """--paper-dir: a folder with another reported_top1.csv (the installed one is the default); a folder
    without one is a one-line error."""
    other = tmp_path / "paper"
    other.mkdir()
    text = PAPER_CSV.read_text()
    line = "table1,cifar100,resnet32x4,resnet8x4,FiGKD,78.05\n"
    assert line in text
    (other / "reported_top1.csv").write_text(text.replace(line, line.replace("78.05", "80.00")))
    rows = list(csv.DictReader(io.StringIO(report(runs, ["1"], fmt="csv", paper_dir=other))))
    cell = {(r["row"], r["column"]): r for r in rows}
    assert float(cell[("FiGKD (figkd)", "resnet32x4->resnet8x4")]["paper"]) == 80.0
    assert main(["report", str(runs), "--paper-dir", str(runs)]) == 2
    assert "holds no reported_top1.csv" in capsys.readouterr().err


def test_table1_flags_the_six_numbers_the_paper_copied_from_another_pair(tmp_path, capsys):
    """Table 1's WRN-40-2 -> WRN-40-1 column prints ResNet32x4 -> ResNet8x4's FitNet, PKT, CRD, AT, VID and OFD
    numbers (issue 22): the report marks each (after the paper's number) and gives the published value under
    the table where a primary source states it (RepDistiller's README); a corrected copy (--paper-dir) has none."""
    _run(tmp_path, "d/fitnet-s0", 72.0, dataset="cifar100", teacher="wrn_40_2", teacher_ckpt="t", student="wrn_40_1",
         objective="fitnet")
    assert main(["report", str(tmp_path), "--table", "1"]) == 0
    text = capsys.readouterr().out
    [fitnet] = [line for line in text.splitlines() if line.startswith("| Features | FitNet |")]
    assert "72.00 (n=1) / 73.50‡1 (-1.50)" in fitnet.split(" | ")[5]  # the wrn_40_2->wrn_40_1 column
    notes = [line.strip() for line in text.splitlines() if line.startswith("‡")]
    assert notes[0] == ("‡1: the paper prints resnet32x4 -> resnet8x4's number here (a copy error of its Table 1); "
                        "published for this pair: 72.24 (HobbitLong/RepDistiller README.md:81, commit b84f547, the "
                        "WRN-40-2 -> WRN-40-1 column)")
    assert len(notes) == 6  # one per cell: each has its own published value (or none, OFD)
    rows = list(csv.DictReader(io.StringIO(report(tmp_path, ["1"], fmt="csv"))))
    flagged = {r["row"] for r in rows if r["paper_note"]}
    assert flagged == {"FitNet", "PKT", "CRD", "AT", "VID", "OFD"}
    assert all(r["column"] == "wrn_40_2->wrn_40_1" for r in rows if r["paper_note"])
    assert "not stated" in next(r["paper_note"] for r in rows if r["row"] == "OFD" and r["paper_note"])
    other = tmp_path / "paper"
    other.mkdir()
    wrong = "table1,cifar100,wrn_40_2,wrn_40_1,FitNet,73.50\n"
    (other / "reported_top1.csv").write_text(PAPER_CSV.read_text().replace(wrong, wrong.replace("73.50", "72.24")))
    rows = list(csv.DictReader(io.StringIO(report(tmp_path, ["1"], fmt="csv", paper_dir=other))))
    assert {r["row"] for r in rows if r["paper_note"]} == {"PKT", "CRD", "AT", "VID", "OFD"}


def test_every_paper_table_has_its_cells():
    for number, columns in ((1, 5), (2, 5), (3, 5), (4, 5), (5, 8), (6, 8), (10, 6), (11, 4), (12, 4), (13, 8),
                            (16, 6)):
        spec = table_spec(number)
        assert len(spec.columns) == columns, number
    t10 = table_spec(10)
    assert [r.label for r in t10.rows][0].startswith("Low x, High x")
    assert {m for r in t10.rows for ms in r.methods.values() for m in ms} == {
        "mlkd", "mlkd + 2*figkd(bands=low)", "mlkd+figkd", "mlkd + 2*figkd(bands=both)"}


def test_collect_runs_ignores_folders_that_are_not_runs(runs):
    (runs / "notes").mkdir()
    (runs / "notes" / "config.yaml").write_text("dataset: x\n")  # a config, not a run directory
    assert all(r.run_dir.name != "notes" for r in collect_runs(runs))


def test_a_run_of_a_model_not_registered_here(tmp_path, capsys):
    """A run of a model this process does not know (a plugin's, another version's): listed among the runs of
    no paper table when its config.yaml records its learning rate; one line and exit 2 when the learning
    rate has to be the model's default, which only its registration knows (issue 27, item 9)."""
    _run(tmp_path / "known", "mine/s0", 61.0, dataset="digits", model="mynet", lr=0.05)
    assert "| digits | mynet alone: default (240 epochs) | 61.00 (n=1) |" in report(tmp_path / "known")
    _run(tmp_path / "unknown", "mine/s0", 61.0, dataset="digits", model="mynet")
    assert main(["report", str(tmp_path / "unknown")]) == 2
    [line] = capsys.readouterr().err.strip().splitlines()
    assert "mine/s0" in line and "'mynet' is not registered in this process" in line and "FIGKD_PLUGINS" in line


def test_a_finished_validation_run_is_finished_and_its_top1_is_labelled_validation(tmp_path, capsys):
    """A run with a validation split (1 epoch of resnet8 on digits_16) never read the test split: its summary's
    test top-1 is null. It was shown as "— +1 unfinished"; it is finished, and its validation top-1 is in a table
    of its own, labelled as such - never beside, nor averaged with, the test top-1 of an ordinary run."""
    from figkd.engine import run

    val_dir = tmp_path / "val-run"
    cfg = RunConfig(dataset="digits_16", model="resnet8", epochs=1, steps_per_epoch=2, batch_size=64, device="cpu",
                    progress="off", tensorboard=False, val_fraction=0.2, out=str(val_dir))
    [summary] = run(cfg, "train", log=lambda *a: None)
    _run(tmp_path, "test-run", 50.0, dataset="digits_16", model="resnet8", objective="vanilla", epochs=1)
    assert main(["report", str(tmp_path)]) == 0
    md = capsys.readouterr().out
    assert "unfinished" not in md
    others, validation = md.split("### Runs with a validation split (validation top-1: these runs never read the "
                                  "test split)")
    assert "| digits_16 | resnet8 alone: vanilla (1 epochs) | 50.00 (n=1) |" in others
    assert "| val top-1 (last) | test top-1 (test_at_end) |" in validation
    assert (f"| digits_16 | resnet8 alone: vanilla (1 epochs, val_fraction 0.2) | {summary['val_last_top1']:.2f} "
            "(n=1) | — |") in validation
    assert "never read the test split" in validation.split("\n\n")[-1]  # the note under the table
    assert main(["report", str(tmp_path), "--table", "other"]) == 0 and "validation" not in capsys.readouterr().out
