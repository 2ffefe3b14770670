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
from figkd.data import list_datasets
from figkd.engine.run import default_run_dir, resolve
from figkd.losses import build_objective
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
def _objective(spec_json: str, num_classes: int):
    return build_objective(json.loads(spec_json), num_classes=num_classes)


def test_every_objective_builds_for_its_dataset():
    for rel, (command, cfg) in _configs().items():
        num_classes = gen.NUM_CLASSES[gen.family(cfg.dataset)]
        objective = _objective(json.dumps(cfg.objective, sort_keys=True), num_classes)
        if command == "train":
            assert cfg.objective == "vanilla" and not objective.needs_teacher, rel
        else:
            assert objective.needs_teacher, rel


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


def test_fig4_grid_is_eq7_with_other_weights():
    """Fig. 4: alpha in {0.5, 1, 2, 4} at beta 2 and beta in {0.5, 1, 2, 4, 8} at alpha 1 (figkd's grid: the
    paper's values were lost), ResNet32x4 -> ResNet8x4 on both datasets; the default point is the figkd cell."""
    from figkd.analysis.sensitivity import eq7_weights

    for dataset in ("cifar100", "tiny_imagenet"):
        cfgs = {rel: cfg for rel, (_, cfg) in _configs().items() if rel.startswith(f"fig4/{dataset}/")}
        weights = {eq7_weights(cfg.objective) for cfg in cfgs.values()}
        assert weights == {(a, 2.0) for a in (0.5, 1.0, 2.0, 4.0)} | {(1.0, b) for b in (0.5, 1.0, 2.0, 4.0, 8.0)}
        assert len(cfgs) == 8
        assert {(c.teacher, c.student) for c in cfgs.values()} == {("resnet32x4", "resnet8x4")}
        default = cfgs[f"fig4/{dataset}/resnet32x4-resnet8x4/figkd.yaml"]
        table = "table1/resnet32x4-resnet8x4" if dataset == "cifar100" else "table3/resnet32x4-resnet8x4"
        assert default.to_dict() == _configs()[f"{table}/figkd.yaml"][1].to_dict()
        assert "lost in the text extraction" in (PAPER / f"fig4/{dataset}/resnet32x4-resnet8x4/figkd-beta8.yaml"
                                                 ).read_text()
