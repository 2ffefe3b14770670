"""configs/paper/: the committed configs are the generator's output, load, build, and cover the paper's cells."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from functools import cache
from pathlib import Path

import pytest
import torch

from figkd.config import RunConfig, apply_overrides, load_yaml
from figkd.data import list_datasets, recipe_for
from figkd.engine.run import default_run_dir, resolve
from figkd.experiments import paper_configs as gen
from figkd.losses import build_objective
from figkd.losses.context import BuildContext
from figkd.models import build_model, list_models

ROOT = Path(__file__).resolve().parents[1]
PAPER = ROOT / "configs" / "paper"
#: The paper's Tables 1-9, package data of figkd.paper (read here as a plain file).
REPORTED_CSV = ROOT / "src" / "figkd" / "paper" / "reported_top1.csv"


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
    # the script of configs/paper (which imports the checkout's figkd whatever the environment's PYTHONPATH)
    done = subprocess.run([sys.executable, str(PAPER / "generate.py"), "--out", str(tmp_path)], capture_output=True,
                          text=True, env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"})
    assert done.returncode == 0, done.stderr
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
        for name in _models_of(command, cfg):
            assert name in models, (rel, name)


def _models_of(command: str, cfg: RunConfig) -> list[str]:
    """The architectures a config trains or reads: its model, its teacher and student, or its peers (DML)."""
    if command == "train":
        return [cfg.model]
    return list(cfg.peers) if cfg.peers else [cfg.teacher, cfg.student]


@cache
def _context(dataset: str, teacher: str | None, student: str) -> BuildContext:
    """The build context of a pair, probed as the engine probes it (models on the meta device: shapes only),
    once per pair."""
    num_classes = gen.NUM_CLASSES[gen.family(dataset)]
    size = recipe_for(dataset).size
    labels = [i % num_classes for i in range(2 * num_classes)]  # stand-in training labels (CRD's sampler)
    with torch.device("meta"):
        t = build_model(teacher, num_classes) if teacher else None
        return BuildContext.from_models(build_model(student, num_classes), t, input_size=(size, size),
                                        num_classes=num_classes,
                                        train_targets=labels)


@cache
def _needs(spec_json: str, dataset: str, teacher: str | None, student: str):
    """What the objective of a config needs, built from its pair's context as the engine builds it, so that
    terms sized from the models (FitNet's connector) are checked too."""
    with torch.device("meta"):
        return build_objective(json.loads(spec_json), context=_context(dataset, teacher, student)).needs


def test_every_objective_builds_for_its_dataset_and_pair():
    for rel, (command, cfg) in _configs().items():
        if cfg.peers:  # DML: each peer's objective reads the other peers' logits, no teacher
            for peer in cfg.peers:
                needs = _needs(json.dumps(cfg.objective, sort_keys=True), cfg.dataset, None, peer)
                assert needs.peers and not needs.teacher, rel
            continue
        student = cfg.model if command == "train" else cfg.student
        needs = _needs(json.dumps(cfg.objective, sort_keys=True), cfg.dataset, cfg.teacher, student)
        if command == "train":
            assert cfg.objective == "vanilla" and not needs.teacher, rel
        else:
            assert needs.teacher, rel


def test_models_build_with_the_class_count_of_their_dataset():
    torch.manual_seed(0)
    pairs = {(name, gen.NUM_CLASSES[gen.family(cfg.dataset)])
             for command, cfg in _configs().values() for name in _models_of(command, cfg)}
    # building every model is a few seconds; one per architecture is enough to catch a bad name or size
    for name in sorted({n for n, _ in pairs}):
        num_classes = max(c for n, c in pairs if n == name)
        assert build_model(name, num_classes) is not None


def test_teacher_ckpt_is_the_run_dir_of_a_teacher_config():
    """A student's teacher is a teacher config's run; TAKD's student's is its assistant's run (a distill config
    of the same folder, which a sweep must run first); DML's peers have none."""
    teacher_dirs = {default_run_dir(cfg, "train").as_posix(): rel
                    for rel, (command, cfg) in _configs().items() if rel.startswith("teachers/")}
    for rel, (command, cfg) in _configs().items():
        if command != "distill":
            continue
        if cfg.peers:
            assert cfg.teacher is None and cfg.teacher_ckpt is None, rel
            continue
        if Path(rel).stem == gen.TAKD_VARIANT:
            assistant_rel = str(Path(rel).with_name(f"{gen.TAKD_ASSISTANT_VARIANT}.yaml"))
            assistant = _configs()[assistant_rel][1]
            assert cfg.teacher_ckpt == assistant.out and cfg.teacher == assistant.student, rel
            assert assistant.teacher_ckpt in teacher_dirs, rel
            continue
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
    with open(REPORTED_CSV, newline="") as fh:
        rows = list(csv.DictReader(fh))
    variant_method = {v: m for m, vs in gen.METHODS.items() for v in vs}
    covered, figkd_recipe_copies = set(), set()
    for rel, (command, cfg) in _configs().items():
        table = rel.split("/")[0]
        if command == "distill" and table in {f"table{i}" for i in range(1, 10)}:
            variant = Path(rel).stem
            if variant.endswith(gen.FIGKD_RECIPE_SUFFIX):  # a baseline's copy on FiGKD's recipe
                figkd_recipe_copies.add((cfg.dataset, cfg.teacher, cfg.student, variant))
                continue
            if variant == gen.TAKD_ASSISTANT_VARIANT:  # checked with its student (test_takd_...)
                continue
            teacher, student = cfg.peers if cfg.peers else (cfg.teacher, cfg.student)
            if variant == gen.TAKD_VARIANT:  # its teacher is the assistant: the pair is the assistant's teacher's
                teacher = _configs()[str(Path(rel).with_name(f"{gen.TAKD_ASSISTANT_VARIANT}.yaml"))][1].teacher
            covered.add((table, cfg.dataset, teacher, student, variant_method[variant], variant))
    # the copies exist exactly where the baseline's own recipe differs: MLKD on its CIFAR-100 pairs
    assert figkd_recipe_copies == {("cifar100", t, s, "mlkd-figkd-recipe") for r in rows if r["method"] == "MLKD"
                                   for t, s in [(r["teacher"], r["student"])] if r["dataset"] == "cifar100"}
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


# ----------------------------------------------------------------------------------------- recipes (issue 14)

def _header(rel: str) -> list[str]:
    return [line[2:] for line in (PAPER / rel).read_text().splitlines() if line.startswith("#")]


#: MLKD's published CIFAR-100 recipe, typed here from Jin-Ying/Multi-Level-Logit-Distillation
#: configs/cifar100/ours/*.yaml (commit 5ee473f), independently of the generator's table: (lr, epochs).
MLKD_PUBLISHED = {
    "table1/resnet110-resnet32": (0.025, 240), "table1/resnet32x4-resnet8x4": (0.025, 240),
    "table1/vgg13-vgg8": (0.025, 240), "table1/wrn_40_2-wrn_16_2": (0.025, 240),
    "table1/wrn_40_2-wrn_40_1": (0.025, 240), "table2/resnet32x4-shufflenetv1": (0.01, 960),
    "table2/resnet32x4-shufflenetv2": (0.01, 960), "table2/resnet50-mobilenetv2": (0.01, 480),
    "table2/vgg13-mobilenetv2": (0.01, 480), "table2/wrn_40_2-shufflenetv1": (0.01, 480),
}


def test_mlkd_runs_on_its_own_published_recipe_with_a_figkd_recipe_copy():
    for pair, (lr, epochs) in MLKD_PUBLISHED.items():
        own = _configs()[f"{pair}/mlkd.yaml"][1]
        same = _configs()[f"{pair}/mlkd-figkd-recipe.yaml"][1]
        assert (own.lr, own.epochs, own.lr_milestones, own.batch_size, own.weight_decay) == \
            (lr, epochs, [150, 180, 210], 64, 5e-4), pair
        assert (same.lr, same.epochs) == (None, 240), pair
        assert own.replace(lr=None, epochs=240, out=same.out) == same, pair  # nothing else differs
        assert any(h.startswith("Recipe: MLKD's own") and f"lr {lr:g}, {epochs} epochs" in h
                   for h in _header(f"{pair}/mlkd.yaml")), pair
        assert any(h.startswith("Recipe: FiGKD's") for h in _header(f"{pair}/mlkd-figkd-recipe.yaml")), pair
    # every other config runs on FiGKD's recipe: lr from the model registry, 240 epochs
    for rel, (_, cfg) in _configs().items():
        if not (rel.endswith("/mlkd.yaml") and cfg.dataset == "cifar100"):
            assert cfg.lr is None and cfg.epochs == 240, rel


def test_every_header_states_its_recipe_with_the_models_learning_rate():
    from figkd.engine.recipe import initial_lr

    for rel, (command, cfg) in _configs().items():
        [recipe] = [h for h in _header(rel) if h.startswith("Recipe: ")]
        model = cfg.model if command == "train" else (cfg.peers[-1] if cfg.peers else cfg.student)
        assert f"SGD lr {initial_lr(cfg, model):g}, {cfg.epochs} epochs" in recipe, rel
    # issue 14, point 6: Table 5's MobileNetV1 teachers train at 0.05, MobileNetV2/ShuffleNet students at 0.01
    assert "SGD lr 0.05," in " ".join(_header("teachers/cub200_224/mobilenetv1_imagenet.yaml"))
    assert "SGD lr 0.01," in " ".join(_header("table2/vgg13-mobilenetv2/figkd.yaml"))


def _fp32_command(rel: str) -> list[str]:
    """The fp32 command of a config's header, as a shell would split it (continuation lines joined)."""
    import shlex

    lines = _header(rel)
    start = next(i for i, h in enumerate(lines) if h.strip().startswith("figkd ") and "amp=none" in h)
    text = lines[start].strip()
    while text.endswith("\\"):
        start += 1
        text = text[:-1] + lines[start].strip()
    return shlex.split(text.replace("<this file>", str(PAPER / rel)))


def test_every_header_says_how_to_run_in_fp32():
    from figkd.cli import build_configs, build_parser

    fp32_teachers, fp32_outs, takd, parser = {}, {}, [], build_parser()
    for rel, (command, cfg) in sorted(_configs().items(), key=lambda kv: kv[1][0] != "train"):
        argv = _fp32_command(rel)
        assert argv[:2] == ["figkd", command], rel
        [fp32] = [resolve(c, command) for c in build_configs(parser.parse_args(argv[1:]), command)]
        assert (fp32.amp, fp32.channels_last, fp32.cuda_graph) == ("none", "off", "off"), rel
        assert fp32.out and fp32.out != (cfg.out or default_run_dir(cfg, command).as_posix()), rel
        assert fp32.out.endswith("-fp32-s0"), rel
        same = {"amp": cfg.amp, "channels_last": cfg.channels_last, "cuda_graph": cfg.cuda_graph, "out": cfg.out,
                "teacher_ckpt": cfg.teacher_ckpt}
        assert fp32.replace(**same) == cfg, rel  # only precision, run directory and teacher differ
        if command == "train":
            fp32_teachers[(cfg.dataset, cfg.model)] = fp32.out
        elif cfg.peers:  # DML: no teacher
            assert fp32.teacher_ckpt is None, rel
        elif Path(rel).stem == gen.TAKD_VARIANT:  # reads the fp32 assistant (checked below)
            takd.append((rel, fp32.teacher_ckpt, cfg.teacher_ckpt))
        else:  # the fp32 student reads the fp32 teacher that its teacher config's fp32 line trains
            assert fp32.teacher_ckpt == fp32_teachers[(cfg.dataset, cfg.teacher)], rel
        if command == "distill":
            fp32_outs[cfg.out] = fp32.out
    assert takd
    for rel, fp32_ckpt, ckpt in takd:  # the fp32 TAKD student reads the assistant's fp32 run
        assert fp32_ckpt == fp32_outs[ckpt], rel


def test_table10_on_both_bases():
    pairs = {p.parent.relative_to(PAPER).as_posix() for p in (PAPER / "table10").rglob("*.yaml")}
    assert len(pairs) == 6
    for pair in pairs:
        variants = {p.stem for p in (PAPER / pair).glob("*.yaml")}
        assert {"figkd-low", "figkd", "figkd-both", "mlkd", "mlkd+figkd-low", "mlkd+figkd",
                "mlkd+figkd-both"} <= variants, pair
        low, both = _configs()[f"{pair}/figkd-low.yaml"][1], _configs()[f"{pair}/figkd-both.yaml"][1]
        assert low.objective == [{"term": "ce", "weight": 1.0}, {"term": "figkd", "weight": 2.0, "bands": "low"}]
        assert both.objective == [{"term": "ce", "weight": 1.0}, {"term": "figkd", "weight": 2.0, "bands": "both"}]
        assert _configs()[f"{pair}/figkd.yaml"][1].objective == "figkd"
        # this base's "Low x, High x" row is the student alone, named in the header
        [alone] = [h.split("student alone: configs/paper/")[1].rstrip(".") for h in _header(f"{pair}/figkd-low.yaml")
                   if "student alone" in h]
        assert _configs()[alone][1].model == low.student


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


# ----------------------------------------------------------------------------------------- issue 12

def _param_count(name: str) -> int:
    with torch.device("meta"):
        return sum(p.numel() for p in build_model(name, 100).parameters())


def test_takd_assistants_follow_the_stated_rule():
    """The assistant of each pair (gen.TAKD_ASSISTANTS): among the CIFAR models of the registry strictly between
    student and teacher in parameter count, the teacher's family first, then the student's, then any; the
    count closest in ratio to the geometric mean of theirs."""
    import math

    from figkd.models.registry import get_model_info

    cifar = [m for m in list_models() if get_model_info(m).style == "cifar"]
    counts = {m: _param_count(m) for m in cifar}
    for (teacher, student), (assistant, why) in gen.TAKD_ASSISTANTS.items():
        lo, hi = counts[student], counts[teacher]
        between = [m for m in cifar if lo < counts[m] < hi]
        for fam in (get_model_info(teacher).family, get_model_info(student).family, None):
            pool = [m for m in between if fam is None or get_model_info(m).family == fam]
            if pool:
                break
        target = math.sqrt(lo * hi)
        best = min(pool, key=lambda m: abs(math.log(counts[m] / target)))
        assert assistant == best, (teacher, student, assistant, best)
        assert f"{counts[assistant] / 1e6:.2f}M" in why, (teacher, student, why)


def test_takd_runs_the_assistant_first_and_dml_trains_the_pair_as_peers():
    for pair, (assistant, _) in gen.TAKD_ASSISTANTS.items():
        table = "table1" if (PAPER / "table1" / f"{pair[0]}-{pair[1]}").is_dir() else "table2"
        where = f"{table}/{pair[0]}-{pair[1]}"
        first, second = _configs()[f"{where}/takd-assistant.yaml"][1], _configs()[f"{where}/takd.yaml"][1]
        assert (first.teacher, first.student, first.objective) == (pair[0], assistant, "kd")
        assert (second.teacher, second.student, second.objective) == (assistant, pair[1], "kd")
        assert second.teacher_ckpt == first.out  # a sweep orders them by this link
        header = " ".join(_header(f"{where}/takd.yaml"))
        assert f"configs/paper/{where}/takd-assistant.yaml must have finished" in header
        dml = _configs()[f"{where}/dml.yaml"][1]
        assert dml.peers == list(pair) and dml.objective == "dml" and dml.teacher is None
        assert f"{dml.out}/peer1-{pair[1]} (the reported cell)" in " ".join(_header(f"{where}/dml.yaml"))


def test_logit_cells_of_tables_1_and_2_state_their_reported_number():
    """Every logit method's cell of Tables 1-2 has a config whose header gives the paper's number."""
    logit = ("KD", "DKD", "MLKD", "DIST", "FiGKD", "DML", "TAKD", "RLD", "TeKAP", "LDRLD", "EKD")
    with open(REPORTED_CSV, newline="") as fh:
        rows = [r for r in csv.DictReader(fh) if r["table"] in ("table1", "table2") and r["method"] in logit]
    assert len(rows) == 100  # KD, DKD, MLKD, FiGKD, DML, TAKD, TeKAP, LDRLD 10 each; RLD 7; EKD 8; DIST 5
    for r in rows:
        for variant in gen.METHODS[r["method"]]:
            rel = f"{r['table']}/{r['teacher']}-{r['student']}/{variant}.yaml"
            header = _header(rel)[0]
            assert f"{r['method']}: reported top-1 {float(r['top1']):.2f}" in header, rel


def test_ekd_configs_carry_each_pairs_published_setting():
    for (teacher, student), (file, lamb, kd_w, ekd_w, warmup) in gen.EKD_CIFAR100.items():
        table = "table1" if (PAPER / "table1" / f"{teacher}-{student}").is_dir() else "table2"
        code = _configs()[f"{table}/{teacher}-{student}/ekd-code.yaml"][1].objective
        paper = _configs()[f"{table}/{teacher}-{student}/ekd.yaml"][1].objective
        term = {"term": "ekd", "weight": 1.0, "variant": "code", "lamb": lamb, "temperature": 1.0,
                "kd_weight": kd_w, "ekd_weight": ekd_w}
        assert paper == [{**term, "variant": "paper", "dirichlet_warmup": warmup}]
        if (teacher, student) in gen.EKD_CAT_KD:  # EKD's CAT_KD distiller: the evidential terms + CAT on feats[-1]
            weight, pool, normalize = gen.EKD_CAT_KD[(teacher, student)]
            assert code == [paper[0], {"term": "cat_kd_feats", "weight": weight, "pool_size": pool,
                                       "normalize": normalize}]
        else:
            assert code == [term]
        assert f"configs/cifar100/ekd/model/{file}" in " ".join(_header(f"{table}/{teacher}-{student}/ekd-code.yaml"))
