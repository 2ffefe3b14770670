#!/usr/bin/env python
"""Write every config of ``configs/paper/`` from the paper's reported numbers and ablation definitions.

    python configs/paper/generate.py            # rewrites configs/paper/{teachers,students,table*}/
    python configs/paper/generate.py --out DIR  # writes the same tree under DIR (the test compares)

Deterministic and idempotent: the output depends only on ``reported_top1.csv`` (a copy of the paper's
Tables 1-9, ``paper/reported_top1.csv``) and the tables below (Tables 10-13 and 16, read from the
paper's text). Every generated directory is removed and written again, so a config that is no longer
generated disappears; only files carrying the generated header are removed, and a directory holding
anything else is refused. See docs/reproducing.md for how to run them.

Layout:
- ``teachers/<dataset>/<model>.yaml``: ``figkd train`` for every teacher of Tables 1-9;
- ``students/<dataset>/<model>.yaml``: ``figkd train`` for the "student alone" rows (a model that is
  also a teacher on that dataset is only under ``teachers/``);
- ``table<N>/<teacher>-<student>/<variant>.yaml`` (Table 5 and 10: ``table<N>/<dataset>/<pair>/``):
  ``figkd distill``, one file per method or ablation row.

Every distill config sets ``out`` to ``runs/distill/<dataset>/<teacher>-<student>/<variant>-s0``, named
by the variant the tables use (the default ``runs/distill/<dataset>/<teacher>-<student>-<objective>-s<seed>``
names a term-list objective by its terms and a digest: unique, not readable). One experiment has one run
directory whichever table lists it (the FiGKD cell of Table 1 and the J = 1 row of Table 11 are the same
file content and the same run), so a run already finished for one table is skipped for the next.
"""

from __future__ import annotations

import argparse
import csv
from collections import defaultdict
from pathlib import Path

HERE = Path(__file__).resolve().parent
CSV_PATH = HERE / "reported_top1.csv"

#: Where each dataset family is expected (docs/reproducing.md says what goes inside).
DATA_ROOT = {
    "cifar100": "data/cifar100",
    "tiny_imagenet": "data/tiny-imagenet-200",
    "cub200": "data/CUB_200_2011",
    "stanford_dogs": "data/stanford_dogs",
    "mit67": "data/mit67",
    "stanford40": "data/stanford40",
}
NUM_CLASSES = {"cifar100": 100, "tiny_imagenet": 200, "cub200": 200, "stanford_dogs": 120, "mit67": 67,
               "stanford40": 40}

#: Methods of Tables 1-9 this project implements: CSV method -> the config variants that reproduce it.
#: FiGKD has two readings (docs/method.md section 3): Eq. 7 (``figkd``) and Table 10's MLKD base
#: (``mlkd+figkd``; Table 10's "High only" row equals the FiGKD column of Tables 1-4).
METHODS = {"KD": ["kd"], "DKD": ["dkd"], "MLKD": ["mlkd"], "DIST": ["dist"], "FiGKD": ["figkd", "mlkd+figkd"]}
#: DIST is generated for every pair of these tables (CIFAR-style models, where its preset - the DIST
#: authors' CIFAR-100 recipe - applies), whether or not the paper reports it.
DIST_TABLES = ("table1", "table2", "table3", "table4", "table6", "table7", "table8", "table9")

#: mdistiller configs/cifar100/dkd/*.yaml: DKD's beta per CIFAR-100 pair (default 8).
DKD_BETA_CIFAR100 = {
    ("vgg13", "vgg8"): 6.0, ("vgg13", "mobilenetv2"): 6.0, ("wrn_40_2", "wrn_16_2"): 6.0,
    ("wrn_40_2", "wrn_40_1"): 6.0, ("resnet56", "resnet20"): 2.0, ("resnet110", "resnet32"): 2.0,
}

CE = {"term": "ce", "weight": 1.0}
MLKD = {"term": "mlkd", "weight": 1.0}


def _figkd(**options):
    return {"term": "figkd", "weight": 2.0, **options}


# --- Ablations (paper Section 5 and Appendix A; numbers from the paper's text tables) -------------------
R32x4_R8x4, V13_V8, W402_W162 = ("resnet32x4", "resnet8x4"), ("vgg13", "vgg8"), ("wrn_40_2", "wrn_16_2")
V13_MV2, W402_W401 = ("vgg13", "mobilenetv2"), ("wrn_40_2", "wrn_40_1")
W402_SV1, R32x4_SV1, R32x4_SV2 = ("wrn_40_2", "shufflenetv1"), ("resnet32x4", "shufflenetv1"), \
    ("resnet32x4", "shufflenetv2")

#: Table 10 (frequency effect, MLKD base): row -> (variant, objective, {(dataset, pair): top-1}).
TABLE10 = [
    ("Low x, High x (baseline: MLKD)", "mlkd", "mlkd",
     {("cifar100", W402_W162): 76.63, ("cifar100", V13_V8): 75.18, ("cifar100", V13_MV2): 70.57,
      ("tiny_imagenet", R32x4_R8x4): 60.67, ("tiny_imagenet", V13_V8): 63.76,
      ("tiny_imagenet", R32x4_SV2): 68.63}),
    ("Low v, High x", "mlkd+figkd-low", [MLKD, _figkd(bands="low")],
     {("cifar100", W402_W162): 76.44, ("cifar100", V13_V8): 75.23, ("cifar100", V13_MV2): 70.65,
      ("tiny_imagenet", R32x4_R8x4): 60.45, ("tiny_imagenet", V13_V8): 63.99,
      ("tiny_imagenet", R32x4_SV2): 69.39}),
    ("Low x, High v (FiGKD)", "mlkd+figkd", "mlkd+figkd",
     {("cifar100", W402_W162): 77.06, ("cifar100", V13_V8): 76.17, ("cifar100", V13_MV2): 71.81,
      ("tiny_imagenet", R32x4_R8x4): 60.92, ("tiny_imagenet", V13_V8): 64.52,
      ("tiny_imagenet", R32x4_SV2): 70.10}),
    ("Low v, High v", "mlkd+figkd-both", [MLKD, _figkd(bands="both")],
     {("cifar100", W402_W162): 76.56, ("cifar100", V13_V8): 75.83, ("cifar100", V13_MV2): 71.18,
      ("tiny_imagenet", R32x4_R8x4): 60.71, ("tiny_imagenet", V13_V8): 64.19,
      ("tiny_imagenet", R32x4_SV2): 69.59}),
]


def _cifar_rows(pairs, rows):
    """(label, suffix, figkd options, reported top-1 per pair) rows -> Table-10-style rows on CIFAR-100."""
    return [(label, suffix, options, {("cifar100", p): v for p, v in zip(pairs, values, strict=True)})
            for label, suffix, options, values in rows]


#: Tables 11-13 and 16 (CIFAR-100): (label, variant suffix ("" = the default row), figkd options, top-1s).
#: Each is generated on both bases: Eq. 7 (ce + figkd, variant ``figkd...``) and MLKD
#: (mlkd + figkd, variant ``mlkd+figkd...``); the paper's default rows equal its FiGKD column.
ABLATIONS = {
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


# --- Writing -------------------------------------------------------------------------------------------
def family(dataset: str) -> str:
    for suffix in ("_224", "_32"):
        if dataset.endswith(suffix):
            return dataset[: -len(suffix)]
    return dataset


def _scalar(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        return repr(v)
    if isinstance(v, str) and (v[0].isdigit() or any(c in v for c in ":#{}[],&*!|>'\"%@`")):
        return f"'{v}'"
    return str(v)


def _objective_yaml(obj) -> str:
    if isinstance(obj, str):
        return f"objective: {_scalar(obj)}\n"
    lines = ["objective:"]
    for term in obj:
        lines.append("  - {" + ", ".join(f"{k}: {_scalar(v)}" for k, v in term.items()) + "}")
    return "\n".join(lines) + "\n"


def _fmt(v: float | None) -> str:
    return "not reported" if v is None else f"{v:.2f}"


def teacher_run_dir(dataset: str, model: str) -> str:
    """``figkd.engine.run.default_run_dir`` of the teacher's train config at seed 0."""
    return f"runs/train/{dataset}/{model}-s0"


def distill_out(dataset: str, teacher: str, student: str, variant: str) -> str:
    return f"runs/distill/{dataset}/{teacher}-{student}/{variant}-s0"


def train_yaml(dataset: str, model: str, header: list[str]) -> str:
    body = (f"dataset: {dataset}\ndata_root: {DATA_ROOT[family(dataset)]}\nmodel: {model}\n"
            "objective: vanilla\nseed: 0\n")
    return "".join(f"# {h}\n" if h else "#\n" for h in header) + body


def distill_yaml(dataset: str, teacher: str, student: str, variant: str, objective, header: list[str]) -> str:
    body = (f"dataset: {dataset}\ndata_root: {DATA_ROOT[family(dataset)]}\n"
            f"teacher: {teacher}\nteacher_ckpt: {teacher_run_dir(dataset, teacher)}\nstudent: {student}\n"
            + _objective_yaml(objective)
            + f"seed: 0\nout: {distill_out(dataset, teacher, student, variant)}\n")
    return "".join(f"# {h}\n" if h else "#\n" for h in header) + body


def read_csv(path: Path = CSV_PATH) -> list[dict]:
    with open(path, newline="") as fh:
        return [{**r, "top1": float(r["top1"])} for r in csv.DictReader(fh)]


def table_number(table: str) -> str:
    return table.removeprefix("table")


def pair_dir(table: str, dataset: str, teacher: str, student: str, multi_dataset: bool) -> str:
    pair = f"{teacher}-{student}"
    return f"{table}/{dataset}/{pair}" if multi_dataset else f"{table}/{pair}"


def dkd_objective(dataset: str, teacher: str, student: str):
    beta = DKD_BETA_CIFAR100.get((teacher, student)) if dataset == "cifar100" else None
    if beta is None:
        return "dkd"
    return [dict(CE), {"term": "dkd", "weight": 1.0, "alpha": 1.0, "beta": beta, "temperature": 4.0,
                       "warmup": 20}]


def _objective_for(variant: str, dataset: str, teacher: str, student: str):
    return dkd_objective(dataset, teacher, student) if variant == "dkd" else variant


_VARIANT_NOTE = {
    "figkd": "FiGKD as Eq. 7: ce 1 + figkd 2 (Haar, J = 1, high subbands, MSE)",
    "mlkd+figkd": "FiGKD on the MLKD base (Table 10's reading): mlkd 1 + figkd 2",
    "dist": "DIST (authors' CIFAR-100 recipe: ce 1 + dist 2, tau 4)",
}


def generate() -> dict[str, str]:
    """Every config as {relative path: file text}."""
    rows = read_csv()
    files: dict[str, str] = {}
    reported = {(r["table"], r["dataset"], r["teacher"], r["student"], r["method"]): r["top1"] for r in rows}
    tables_datasets: dict[str, set] = defaultdict(set)
    for r in rows:
        tables_datasets[r["table"]].add(r["dataset"])

    # Models trained alone: teachers first (a model that is a teacher on a dataset is not also a student).
    alone: dict[tuple[str, str, str], list[str]] = defaultdict(list)  # (role, dataset, model) -> cells
    for r in rows:
        if r["method"] not in ("teacher", "student"):
            continue
        model = r["teacher"] if r["method"] == "teacher" else r["student"]
        cell = (f"Table {table_number(r['table'])} ({r['dataset']}), {r['method']} {model} of pair "
                f"{r['teacher']} -> {r['student']}: top-1 {_fmt(r['top1'])}")
        alone[(r["method"], r["dataset"], model)].append(cell)
    teachers = {(d, m) for role, d, m in alone if role == "teacher"}
    merged: dict[tuple[str, str], tuple[str, list[str]]] = {}
    for (_role, dataset, model), cells in sorted(alone.items(), key=lambda kv: (kv[0][0] != "teacher", kv[0])):
        key = (dataset, model)
        kind = "teachers" if key in teachers else "students"
        prev = merged.get(key, (kind, []))
        merged[key] = (kind, prev[1] + cells)
    for (dataset, model), (kind, cells) in sorted(merged.items()):
        header = [f"figkd train: {model} alone on {dataset} (the paper's recipe: RunConfig defaults).",
                  "Run: figkd train --config <this file>   (seeds 1, 2: add --set seed=1 / --set seed=2)",
                  f"Run directory: {teacher_run_dir(dataset, model)} (ends in -s1, -s2 for the other seeds).",
                  "Paper, reported top-1 (%):"] + [f"  {c}" for c in cells]
        files[f"{kind}/{dataset}/{model}.yaml"] = train_yaml(dataset, model, header)

    # Tables 1-9: every distillation cell of an implemented method.
    cells = sorted({(r["table"], r["dataset"], r["teacher"], r["student"]) for r in rows},
                   key=lambda c: (int(table_number(c[0])), c[1], c[2], c[3]))
    for table, dataset, teacher, student in cells:
        multi = len(tables_datasets[table]) > 1
        for method, variants in METHODS.items():
            top1 = reported.get((table, dataset, teacher, student, method))
            if top1 is None and not (method == "DIST" and table in DIST_TABLES):
                continue
            for variant in variants:
                objective = _objective_for(variant, dataset, teacher, student)
                note = _VARIANT_NOTE.get(variant, f"{method} (preset {variant!r})")
                if variant == "dkd" and not isinstance(objective, str):
                    note = f"DKD with mdistiller's per-pair beta {objective[1]['beta']} (preset beta: 8)"
                header = [f"Paper Table {table_number(table)} ({dataset}), {teacher} -> {student}, {method}: "
                          f"reported top-1 {_fmt(top1)}",
                          f"Variant: {note}.",
                          f"Teacher: configs/paper/teachers/{dataset}/{teacher}.yaml must have finished.",
                          "Run: figkd distill --config <this file>"]
                path = f"{pair_dir(table, dataset, teacher, student, multi)}/{variant}.yaml"
                files[path] = distill_yaml(dataset, teacher, student, variant, objective, header)

    # Table 10: MLKD base.
    for label, variant, objective, values in TABLE10:
        for (dataset, (teacher, student)), top1 in values.items():
            header = [f"Paper Table 10 (frequency effect, {dataset}), {teacher} -> {student}, row "
                      f"'{label}': reported top-1 {_fmt(top1)}",
                      "Base: MLKD (the row without frequency terms equals MLKD's cells of Tables 1-4).",
                      f"Teacher: configs/paper/teachers/{dataset}/{teacher}.yaml must have finished.",
                      "Run: figkd distill --config <this file>"]
            path = f"table10/{dataset}/{teacher}-{student}/{variant}.yaml"
            files[path] = distill_yaml(dataset, teacher, student, variant, objective, header)

    # Tables 11-13 and 16, on both bases.
    for table, (what, table_rows) in ABLATIONS.items():
        for label, suffix, options, values in table_rows:
            for base_name, base in (("figkd", CE), ("mlkd+figkd", MLKD)):
                variant = base_name + suffix
                objective = [dict(base), _figkd(**options)] if options else base_name
                base_text = ("Eq. 7 (ce 1 + figkd 2)" if base is CE
                             else "MLKD (mlkd 1 + figkd 2, Table 10's reading)")
                for (dataset, (teacher, student)), top1 in values.items():
                    header = [f"Paper Table {table_number(table)} ({what}, {dataset}), {teacher} -> {student}, "
                              f"row '{label}': reported top-1 {_fmt(top1)}",
                              f"Base: {base_text}.",
                              f"Teacher: configs/paper/teachers/{dataset}/{teacher}.yaml must have finished.",
                              "Run: figkd distill --config <this file>"]
                    path = f"{table}/{teacher}-{student}/{variant}.yaml"
                    files[path] = distill_yaml(dataset, teacher, student, variant, objective, header)
    return files


def generated_dirs(files: dict[str, str]) -> list[str]:
    return sorted({p.split("/", 1)[0] for p in files})


#: The line every generated config has; only files with it are ever removed.
GENERATED_MARK = "# Run: figkd "


def _is_generated(path: Path) -> bool:
    return path.suffix == ".yaml" and any(line.startswith(GENERATED_MARK) for line in path.read_text().splitlines())


def _remove_generated(folder: Path) -> None:
    """Remove the configs this script wrote under ``folder`` (and folders left empty); refuse (SystemExit)
    when the folder holds anything else, which this script did not write and never deletes."""
    files = [p for p in folder.rglob("*") if not p.is_dir()]
    foreign = [p for p in files if not _is_generated(p)]
    if foreign:
        raise SystemExit(f"generate.py: {folder} holds files this script did not write (e.g. {foreign[0]}); "
                         "it deletes nothing it did not write: choose another --out")
    for p in files:
        p.unlink()
    for d in sorted((p for p in folder.rglob("*") if p.is_dir()), key=lambda p: len(p.parts), reverse=True):
        d.rmdir()
    folder.rmdir()


def write(out: Path) -> int:
    files = generate()
    for d in generated_dirs(files):
        if (out / d).is_dir():
            _remove_generated(out / d)
    for rel, text in sorted(files.items()):
        path = out / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return len(files)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, default=HERE, help="folder to write into (default: configs/paper)")
    args = p.parse_args(argv)
    n = write(args.out)
    print(f"wrote {n} configs under {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
