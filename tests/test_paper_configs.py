"""configs/paper/: the committed configs are the generator's output, load, build, and cover the paper's cells."""

from __future__ import annotations

import csv
import importlib.util
import json
from functools import cache
from pathlib import Path

import pytest
import torch

from figkd.config import RunConfig, apply_overrides, load_yaml
from figkd.data import list_datasets, recipe_for
from figkd.engine.learner import build_learner
from figkd.engine.run import default_run_dir, resolve
from figkd.models import build_model, list_models

PAPER = Path(__file__).resolve().parents[1] / "configs" / "paper"


def _load_generator():
    spec = importlib.util.spec_from_file_location("paper_generate", PAPER / "generate.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


gen = _load_generator()


def _all_yaml(root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): p.read_text() for p in sorted(root.rglob("*.yaml"))}


@cache
def _configs() -> dict[str, tuple[str, RunConfig]]:
    """rel path -> (command, resolved RunConfig)."""
    out = {}
    for rel in _all_yaml(PAPER):
        data = load_yaml(PAPER / rel)
        command = "train" if rel.split("/")[0] in ("teachers", "students") else "distill"
        out[rel] = (command, resolve(apply_overrides(RunConfig(), data), command))
    return out


def test_generator_output_equals_committed_files(tmp_path):
    gen.write(tmp_path)
    assert _all_yaml(tmp_path) == _all_yaml(PAPER)
    gen.write(tmp_path)  # idempotent, also over its own output
    assert _all_yaml(tmp_path) == _all_yaml(PAPER)


def test_every_config_loads_and_names_known_datasets_and_models():
    datasets = set(list_datasets())
    models = set(list_models(include_aliases=True))
    assert len(_configs()) > 500
    for rel, (command, cfg) in _configs().items():
        assert cfg.dataset in datasets, rel
        assert cfg.seed == 0, rel
        assert cfg.data_root == gen.DATA_ROOT[gen.family(cfg.dataset)], rel
        names = [cfg.model] if command == "train" else [cfg.teacher, cfg.student]
        for name in names:
            assert name in models, (rel, name)


@cache
def _needs(spec_json: str, dataset: str, teacher: str | None, student: str):
    """What the objective of a config needs, built as the engine builds it (models on the meta device:
    shapes only), so that terms sized from the models (FitNet's connector) are checked too."""
    num_classes = gen.NUM_CLASSES[gen.family(dataset)]
    size = recipe_for(dataset).size
    with torch.device("meta"):
        t = build_model(teacher, num_classes) if teacher else None
        learner = build_learner(build_model(student, num_classes), json.loads(spec_json), teacher=t,
                                num_classes=num_classes, input_size=(size, size))
    return learner.needs


def test_every_objective_builds_for_its_dataset_and_pair():
    for rel, (command, cfg) in _configs().items():
        student = cfg.model if command == "train" else cfg.student
        needs = _needs(json.dumps(cfg.objective, sort_keys=True), cfg.dataset, cfg.teacher, student)
        if command == "train":
            assert cfg.objective == "vanilla" and not needs.teacher, rel
        else:
            assert needs.teacher, rel


def test_models_build_with_the_class_count_of_their_dataset():
    torch.manual_seed(0)
    pairs = {(name, gen.NUM_CLASSES[gen.family(cfg.dataset)])
             for command, cfg in _configs().values()
             for name in ([cfg.model] if command == "train" else [cfg.teacher, cfg.student])}
    # building every model is a few seconds; one per architecture is enough to catch a bad name or size
    for name in sorted({n for n, _ in pairs}):
        num_classes = max(c for n, c in pairs if n == name)
        assert build_model(name, num_classes) is not None


def test_teacher_ckpt_is_the_run_dir_of_a_teacher_config():
    teacher_dirs = {default_run_dir(cfg, "train").as_posix(): rel
                    for rel, (command, cfg) in _configs().items() if rel.startswith("teachers/")}
    for rel, (command, cfg) in _configs().items():
        if command == "distill":
            assert cfg.teacher_ckpt in teacher_dirs, rel
            teacher_cfg = _configs()[teacher_dirs[cfg.teacher_ckpt]][1]
            assert (teacher_cfg.dataset, teacher_cfg.model) == (cfg.dataset, cfg.teacher), rel


def test_run_directories_identify_experiments():
    """Configs sharing a run directory are the same experiment (else the engine refuses the second)."""
    by_dir: dict[str, dict] = {}
    for rel, (command, cfg) in _configs().items():
        run_dir = cfg.out or default_run_dir(cfg, command).as_posix()
        if command == "distill":
            assert cfg.out and cfg.out.endswith("-s0"), rel
        d = cfg.to_dict()
        assert by_dir.setdefault(run_dir, d) == d, (rel, run_dir)
    # train configs: one per (dataset, model)
    trained = [(cfg.dataset, cfg.model) for command, cfg in _configs().values() if command == "train"]
    assert len(trained) == len(set(trained))


def test_cells_cover_the_paper_tables_for_the_implemented_methods():
    with open(PAPER / "reported_top1.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    variant_method = {v: m for m, vs in gen.METHODS.items() for v in vs}
    covered = set()
    for rel, (command, cfg) in _configs().items():
        table = rel.split("/")[0]
        if command == "distill" and table in {f"table{i}" for i in range(1, 10)}:
            variant = Path(rel).stem
            covered.add((table, cfg.dataset, cfg.teacher, cfg.student, variant_method[variant], variant))
    for method, variants in gen.METHODS.items():
        expected = {(r["table"], r["dataset"], r["teacher"], r["student"]) for r in rows if r["method"] == method}
        for variant in variants:
            got = {c[:4] for c in covered if c[5] == variant}
            if method == "DIST":  # an extra column: every reported cell, plus the pairs of DIST_TABLES
                assert expected <= got
                assert {c[0] for c in got} == set(gen.DIST_TABLES)
            else:
                assert got == expected, (method, variant)
    # models trained alone: every teacher and student row
    alone = {(cfg.dataset, cfg.model) for command, cfg in _configs().values() if command == "train"}
    wanted = {(r["dataset"], r["teacher"] if r["method"] == "teacher" else r["student"])
              for r in rows if r["method"] in ("teacher", "student")}
    assert alone == wanted


@pytest.mark.parametrize("path", ["table11/resnet32x4-resnet8x4/figkd-level3.yaml",
                                  "table16/vgg13-vgg8/mlkd+figkd-db2.yaml",
                                  "table13/wrn_40_2-wrn_40_1/figkd-1d.yaml"])
def test_ablation_options_reach_the_figkd_term(path):
    cfg = _configs()[path][1]
    figkd_terms = [t for t in cfg.objective if t["term"] == "figkd"]
    assert len(figkd_terms) == 1 and figkd_terms[0]["weight"] == 2.0
    assert set(figkd_terms[0]) - {"term", "weight"} in ({"level"}, {"wavelet"}, {"dims"})
