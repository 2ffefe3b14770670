"""figkd tune: the search space syntax, the validation split, and real studies on digits at 16x16 (resnet8,
2 epochs per trial): two worker processes killed with SIGKILL mid-trial and the command run again (the
study completes, nothing lost, the killed trials continue their run directories), a pruned trial, the test
split never read by the search and read once by --final, and bad input as one line with exit status 2.

The test split's reads are counted by a plugin (FIGKD_PLUGINS, loaded by every figkd process: the command
and its workers) that wraps the digits_16 loader of `figkd.data.registry` and appends a line per split built
to a file."""

from __future__ import annotations

import contextlib
import importlib
import io
import json
import math
import os
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

optuna = pytest.importorskip("optuna")

from figkd.cli import main  # noqa: E402
from figkd.config import ConfigError, RunConfig  # noqa: E402
from figkd.data import build_dataset  # noqa: E402
from figkd.data import registry as data_registry  # noqa: E402
from figkd.data.split import ValidationSplit, split_dataset, validation_indices  # noqa: E402
from figkd.engine.faults import FAULT_ENV  # noqa: E402
from figkd.engine.rundir import RunDir  # noqa: E402
from figkd.tune.space import apply_params, parse_param, parse_space  # noqa: E402

SRC = str(Path(__file__).resolve().parents[1] / "src")
#: One trial: resnet8 on a quarter of digits_16's 1,437 training images (5 steps of 64), validated on the rest,
#: 2 epochs.
TRIAL = {"dataset": "digits_16", "model": "resnet8", "epochs": 2, "batch_size": 64, "lr_milestones": [1],
         "device": "cpu", "progress": "off", "tensorboard": False, "val_fraction": 0.75}
SPY = '''
import os
from figkd.data import registry
_load = registry._FAMILIES["digits_16"]
def _spy(root, train, **kw):
    with open(os.environ["FIGKD_SPY"], "a") as f:
        f.write(("train" if train else "test") + "\\n")
    return _load(root, train, **kw)
registry._FAMILIES["digits_16"] = _spy
'''


def _write(path: Path, data) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(data))
    return path


def _main(*args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(args))
    return code, out.getvalue(), err.getvalue()


# ------------------------------------------------------------------------------------------------ the space
def test_param_syntax_sets_config_keys_and_term_options():
    base = RunConfig(dataset="digits_16", model="resnet8", student="resnet8", teacher="resnet8", teacher_ckpt="t",
                     objective="figkd")
    weight, criterion = (parse_param(t) for t in ("objective.figkd.weight=float:0.5:8:log",
                                                  "objective.figkd.criterion=categorical:mse,kl"))
    assert (weight.kind, weight.low, weight.high, weight.log) == ("float", 0.5, 8.0, True)
    assert criterion.choices == ("mse", "kl") and criterion.grid() == ["mse", "kl"]
    assert parse_param("batch_size=int:32:128:step=32").grid() == [32, 64, 96, 128]
    assert parse_param("lr=categorical:1e-3,0.1").choices == (0.001, 0.1)  # YAML 1.1's "1e-3" read as a number
    cfg = apply_params(base, {"objective.figkd.weight": 0.5, "objective.figkd.criterion": "kl", "lr": 0.2})
    assert cfg.lr == 0.2 and cfg.objective == [{"term": "ce"}, {"term": "figkd", "weight": 0.5, "criterion": "kl"}]
    kd = apply_params(base.replace(objective="kd"), {"objective.kd.temperature": 8})
    assert kd.objective[1] == {"term": "kd", "weight": 0.9, "temperature": 8}
    assert [p.key for p in parse_space(["objective.figkd.weight=float:0.5:8:log", "lr=float:0.01:0.1"], base)] == \
        ["objective.figkd.weight", "lr"]
    for bad, why in (("lr", "expected KEY=float"), ("lr=float:1", "expected KEY=float"), ("lr=float:2:1", "below"),
                     ("lr=float:0:1:log", "LOW > 0"), ("lr=real:0:1", "expected"), ("lr=categorical:1,,2", "empty"),
                     ("lr=int:1:2.5", "integer")):
        with pytest.raises(ConfigError, match=why):
            parse_param(bad)
    for bad, why in (("lx=float:0.1:1", "unknown config key 'lx'"), ("out=categorical:a,b", "sets out"),
                     ("objective.kd.temperature=categorical:1,2", "no term 'kd'"),
                     ("objective.figkd.temp=float:1:2", "no option 'temp'"),
                     ("objective.figkd.weight=float:-1:2", "refused"), ("objective.weight=float:1:2", "TERM.OPTION")):
        with pytest.raises(ConfigError, match=why):
            parse_space([bad], base)


def test_every_choice_and_end_of_a_term_option_is_built_before_any_trial(tmp_path):
    """A choice or range end the term itself refuses when built (KD's temperature 0) is one line naming the
    --param and the value, exit 2, nothing run - it was found by the trial that drew it; a term built from the
    models (FitNet) is left to its trial."""
    base = RunConfig(dataset="digits_16", student="resnet8", teacher="resnet8", teacher_ckpt="t", objective="kd")
    assert parse_param("objective.kd.temperature=float:1:8:step=3").extremes() == [1.0, 7.0]
    for spec, value in (("categorical:4,0", "0"), ("float:0:4:step=4", "0.0"), ("int:-3:1:step=2", "-3")):
        with pytest.raises(ConfigError, match=rf"^--param objective.kd.temperature={spec}: the value {value} is "
                                              r"refused \(objective term 'kd': KDLoss: temperature must be > 0"):
            parse_space([f"objective.kd.temperature={spec}"], base)
    assert parse_space(["objective.kd.temperature=categorical:1,4"], base)[0].choices == (1, 4)
    fitnet = base.replace(objective=[{"term": "ce"}, {"term": "fitnet", "weight": 100}])
    assert parse_space(["objective.fitnet.weight=float:50:200"], fitnet)
    config = _write(tmp_path / "c.yaml", {**TRIAL, "model": None, "student": "resnet8", "teacher": "resnet8",
                                          "teacher_ckpt": str(tmp_path / "t.pt"), "objective": "kd"})
    code, _, err = _main("tune", str(config), "--param", "objective.kd.temperature=categorical:0,4", "--sampler",
                           "grid", "--study", str(tmp_path / "s"))
    assert code == 2 and err.count("\n") == 1 and "--param objective.kd.temperature=categorical:0,4: the value 0 " \
        "is refused (objective term 'kd'" in err, err
    assert not (tmp_path / "s").exists()


# ------------------------------------------------------------------------------------------------ the split
def test_validation_split_is_stratified_deterministic_and_disjoint():
    train = build_dataset("digits_16", None, train=True)
    targets = np.asarray(train.targets)
    split = ValidationSplit.draw(train.targets, 0.2, 3)
    assert split == ValidationSplit.draw(train.targets, 0.2, 3)  # a function of the seed
    assert split.indices != ValidationSplit.draw(train.targets, 0.2, 4).indices
    held = np.asarray(split.indices)
    assert len(held) == math.ceil(0.2 * len(train))  # scikit-learn's rounding
    for c in range(10):  # stratified: every class keeps its share, to within one sample
        assert abs((targets[held] == c).sum() - 0.2 * (targets == c).sum()) < 1
    kept, val = split_dataset(train, split)
    assert set(kept.parent_indices).isdisjoint(val.parent_indices)
    assert sorted(kept.parent_indices + val.parent_indices) == list(range(len(train)))
    assert val.targets == targets[held].tolist() and np.array_equal(val.images, train.images[held])
    assert ValidationSplit.from_dict(json.loads(json.dumps(split.to_dict()))) == split
    with pytest.raises(ValueError, match="sha256"):
        ValidationSplit.from_dict({**split.to_dict(), "indices": list(split.indices[1:])})
    assert validation_indices(train.targets, 0.2, 3) == list(split.indices)


def test_a_run_with_a_validation_split_records_it_keeps_it_on_resume_and_never_reads_the_test_split(
        tmp_path, monkeypatch):
    from figkd.data import split as split_module

    engine_run = importlib.import_module("figkd.engine.run")  # the module (figkd.engine.run is also the function)

    expected = ValidationSplit.draw(build_dataset("digits_16").targets, 0.75, 0)
    built, loaded = [], []
    original, build_loader_of = data_registry._FAMILIES["digits_16"], engine_run.build_loader_of
    monkeypatch.setitem(data_registry._FAMILIES, "digits_16",
                        lambda root, train, **kw: built.append(train) or original(root, train, **kw))
    monkeypatch.setattr(engine_run, "build_loader_of",
                        lambda cfg, ds, train, *a, **k: loaded.append((train, ds)) or build_loader_of(cfg, ds, train,
                                                                                                       *a, **k))
    cfg = RunConfig(**{**TRIAL, "epochs": 1, "lr_milestones": [], "out": str(tmp_path / "run")})
    first = engine_run.run(cfg, "train", log=lambda *a: None)[0]
    assert built == [True]  # the test split was never built
    assert first["eval_split"] == "val" and first["last_top1"] is None and first["val_last_top1"] is not None
    recorded = RunDir(tmp_path / "run").validation()
    assert len(recorded.indices) == math.ceil(0.75 * 1437)
    assert recorded == expected
    (train_is, train_ds), (eval_is, val_ds) = loaded
    assert train_is and not eval_is and list(val_ds.parent_indices) == list(recorded.indices)
    assert set(train_ds.parent_indices).isdisjoint(recorded.indices)  # trained on the other samples only
    # extended by one epoch with a split drawn otherwise now: the recorded one is kept
    monkeypatch.setattr(split_module, "validation_indices", lambda targets, *a, **k: list(range(0, len(targets), 2)))
    loaded.clear()
    engine_run.run(cfg.replace(epochs=2), "train", resume=True, log=lambda *a: None)
    assert RunDir(tmp_path / "run").validation() == recorded
    assert list(loaded[1][1].parent_indices) == list(recorded.indices) and built == [True, True]
    lines = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [sorted(k for k in rec if "top1" in k) for rec in lines] == [["train/top1", "val/top1"]] * 2


# ------------------------------------------------------------------------------------------------ a study
@pytest.fixture(scope="module")
def searched(tmp_path_factory):
    """A study of 3 trials (lr searched) with 2 worker processes on the default journal storage, run twice:
    first with every worker killed by SIGKILL in epoch 2 of its first trial (FIGKD_FAULT_AT), then again.
    Returns the folder, the two results and the lines the spy wrote after the search."""
    root = tmp_path_factory.mktemp("tune")
    config = _write(root / "lr.yaml", TRIAL)
    (root / "spy.py").write_text(SPY)
    study = root / "study"
    command = ["tune", str(config), "--param", "lr=float:0.02:0.2:log", "--trials", "3", "--workers", "2",
               "--study", str(study), "--heartbeat", "1"]
    results = []
    with _spied(root, "spy.log") as mp:
        mp.setenv(FAULT_ENV, "2:1")
        results.append(_main(*command))
        mp.delenv(FAULT_ENV)
        results.append(_main(*command))
    return root, study, command, results, (root / "spy.log").read_text().split()


@contextlib.contextmanager
def _spied(root: Path, log: str):
    """In ``root``, figkd processes started from here run our sources and count the splits they build into
    ``root/log`` (the spy plugin; the registry entry it replaces in this process is put back afterwards)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(root)
        mp.setenv("PYTHONPATH", SRC + os.pathsep + os.environ.get("PYTHONPATH", ""))  # the workers' figkd is ours
        mp.setenv("FIGKD_PLUGINS", str(root / "spy.py"))
        mp.setenv("FIGKD_SPY", str(root / log))
        mp.setitem(data_registry._FAMILIES, "digits_16", data_registry._FAMILIES["digits_16"])
        yield mp


def _trials(study: Path):
    from figkd.tune.study import StudyFolder, open_study

    return open_study(StudyFolder(study))[0].get_trials(deepcopy=False)


def test_two_workers_finish_the_study_and_every_trial_is_a_run_directory(searched):
    _, study, _, (killed, again), _ = searched
    assert killed[0] == 1 and killed[1].count("exited with status -9") == 2, killed
    assert again[0] == 0, again
    from figkd.tune.study import counted_trials

    trials = _trials(study)
    counted = counted_trials(trials)
    assert len(counted) == 3 and all(t.state.name == "COMPLETE" for t in counted)
    assert len({t.number for t in trials}) == len(trials)
    for t in counted:
        run_dir = RunDir(study / t.user_attrs["run_dir"])
        assert run_dir.summary()["val_last_top1"] == pytest.approx(t.value)
        assert run_dir.config()["lr"] == pytest.approx(t.params["lr"]) and run_dir.validation() is not None
    report = (study / "report" / "report.md").read_text()
    assert "3 trials: 3 complete (and 2 stopped and queued again)" in report
    best = yaml.safe_load((study / "report" / "best.yaml").read_text())
    assert best["val_fraction"] == 0.0 and best["lr"] == pytest.approx(max(counted, key=lambda t: t.value).params["lr"])
    for name in ("history.png", "importances.png", "slice.png", "intermediate.png", "trials.csv",
                 "importances.json"):
        assert (study / "report" / name).is_file(), name


def test_a_killed_workers_trials_are_queued_again_and_continue_their_run_directories(searched):
    _, study, _, _, _ = searched
    trials = _trials(study)
    failed = [t for t in trials if t.state.name == "FAIL"]
    assert len(failed) == 2
    for t in failed:  # nothing lost: each has a complete copy with its parameters, in its run directory
        copy = next(c for c in trials if c.system_attrs.get("failed_trial") == t.number)
        assert copy.state.name == "COMPLETE" and copy.params == t.params
        assert copy.user_attrs["run_dir"] == t.user_attrs["run_dir"] == f"trials/trial-{t.number:04d}"
        epochs = [json.loads(x)["epoch"] for x in (study / t.user_attrs["run_dir"] / "metrics.jsonl").read_text()
                  .splitlines()]
        assert epochs == [1, 2]  # epoch 1 of the killed worker, epoch 2 resumed from its checkpoint
    logs = "".join(p.read_text() for p in (study / "logs").glob("worker-*.log"))
    assert logs.count("resuming after epoch 1") == 2


def test_the_search_never_reads_the_test_split_and_final_reads_it_once(searched):
    root, study, _, _, spied = searched
    assert spied and set(spied) == {"train"}
    with _spied(root, "final-spy.log"):
        code, out, err = _main("tune", "--report", str(study), "--final", "1")
    assert code == 0, out + err
    assert sorted((root / "final-spy.log").read_text().split()) == ["test", "train"]
    final = json.loads((study / "report" / "final.json").read_text())
    tuned = final["results"]["tuned"]
    summary = RunDir(study / "final" / "tuned-s0").summary()
    assert tuned["test_top1"] == [summary["last_top1"]] and summary["eval_split"] == "test"
    assert RunDir(study / "final" / "tuned-s0").config()["val_fraction"] == 0.0  # the full training split
    assert "| tuned |" in (study / "report" / "final.md").read_text()


def test_running_the_command_again_repeats_nothing_and_another_space_is_refused(searched):
    root, study, command, _, _ = searched
    before = len(_trials(study))
    with _spied(root, "again-spy.log"):
        code, out, err = _main(*command)
        assert code == 0 and len(_trials(study)) == before and "nothing to run" in out, out + err
        code, out, err = _main(*[c.replace("0.02:0.2", "0.01:0.2") for c in command])
    assert code == 2 and err.count("\n") == 1 and "was made with another search (--param: lr=float:0.02:0.2:log" in err


def test_a_report_of_equal_trials_has_no_importances_and_says_why(tmp_path):
    """Three complete trials with the same value (a tiny budget's 10.07 each): fANOVA's total variance is zero
    (Optuna raised "Encountered zero total variance in all trees" from the report): the report is written
    without importances, saying why in one line; one complete trial, the same."""
    from figkd.tune.results import write_report
    from figkd.tune.study import Definition, StudyFolder

    definition = Definition("train", dict(TRIAL), ("lr=float:0.01:0.1",))
    lr = optuna.distributions.FloatDistribution(0.01, 0.1)
    for values, says in (([10.07] * 3, "all 3 complete trials scored the same (val top-1 10.07), so parameter "
                                       "importances are undefined"),
                         ([10.07], "need at least 2 complete trials; the study has 1")):
        study = optuna.create_study(direction="maximize", study_name="s")
        for i, value in enumerate(values):
            study.add_trial(optuna.trial.create_trial(params={"lr": 0.01 * (i + 1)}, distributions={"lr": lr},
                                                      value=value))
        folder = StudyFolder(tmp_path / f"s{len(values)}")
        text = write_report(folder, study, definition)
        assert text.count(says) == 1 and "parameter importances (fANOVA" not in text, text
        assert not (folder.report_dir / "importances.json").exists()
        assert not (folder.report_dir / "importances.png").exists()
        assert (folder.report_dir / "best.yaml").is_file() and (folder.report_dir / "history.png").is_file()


def test_bad_input_is_one_line_and_exit_2(tmp_path):
    config = _write(tmp_path / "c.yaml", TRIAL)
    no_val = _write(tmp_path / "n.yaml", {**TRIAL, "val_fraction": 0.0})
    common = ["--trials", "2", "--study", str(tmp_path / "s")]
    for args, says in ((["--param", "lx=float:0.1:1"], "unknown config key 'lx'"),
                       (["--param", "lr=float:0.1"], "expected KEY=float"),
                       (["--param", "lr=float:0.01:0.1", "--storage", "nosuchdb://x"], "Optuna cannot open it"),
                       (["--param", "lr=float:0.01:0.1", "--sampler", "grid"], "continuous range")):
        code, _, err = _main("tune", str(config), *args, *common)
        assert code == 2 and err.count("\n") == 1 and says in err, (args, err)
    code, _, err = _main("tune", str(no_val), "--param", "lr=float:0.01:0.1", *common)
    assert code == 2 and err.count("\n") == 1 and "selects on a validation split" in err
    assert not (tmp_path / "s").exists()  # nothing written


def test_a_pruned_trial_says_so_and_is_not_failed(tmp_path, monkeypatch):
    """A median pruner after one trial, on a grid whose first point (seed 1) is the good learning rate: the
    next two, far too small to learn, are below its epoch-1 validation top-1 and pruned after epoch 1."""
    from figkd.tune.study import Definition, StudyFolder, open_study, work

    monkeypatch.chdir(tmp_path)
    config = _write(tmp_path / "c.yaml", TRIAL)
    code, _, err = _main("tune", str(config), "--param", "lr=categorical:0.1,1e-5,2e-5", "--sampler", "grid",
                         "--seed", "1", "--pruner-startup", "1", "--study", "s", "--slurm", "s.sh")
    assert code == 0, err  # the study made and a job array written: run its worker here, in this process
    script = (tmp_path / "s.sh").read_text()
    assert "#SBATCH --array=0-0" in script and "-m figkd tune --worker s --trials 3 --index" in script
    work(StudyFolder("s"), 3, log=lambda *a: None)
    study, definition = open_study(StudyFolder("s"))
    assert isinstance(definition, Definition)
    states = {t.params["lr"]: t.state.name for t in study.get_trials(deepcopy=False)}
    assert states == {0.1: "COMPLETE", 1e-5: "PRUNED", 2e-5: "PRUNED"}
    pruned = [t for t in study.get_trials(deepcopy=False) if t.state.name == "PRUNED"]
    for t in pruned:
        run_dir = RunDir(Path("s") / t.user_attrs["run_dir"])
        assert run_dir.stopped()["epoch"] == 1 and "pruned by Optuna's median pruner" in run_dir.stopped()["reason"]
        assert len(run_dir.metrics()) == 1 and run_dir.state(run_dir.config()) == "resume"  # trainable on


def test_without_optuna_the_command_names_the_pip_command(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "optuna", None)  # what an environment without the tune extra imports
    code, _, err = _main("tune", "--report", str(tmp_path))
    assert code == 2 and err.count("\n") == 1 and "pip install 'figkd[tune]'" in err


def test_an_interrupted_trial_is_failed_and_queued_again(tmp_path, monkeypatch):
    """Ctrl-C (or SIGTERM) in a trial: the trial is failed, a copy with its parameters queued (what the next run
    of the command continues), and the interrupt goes on to the command line."""
    from figkd.tune.study import StudyFolder, counted_trials, open_study, work

    engine_run = importlib.import_module("figkd.engine.run")
    monkeypatch.chdir(tmp_path)
    code, _, err = _main("tune", str(_write(tmp_path / "c.yaml", TRIAL)), "--param", "lr=float:0.01:0.1",
                         "--trials", "2", "--study", "s", "--slurm", "s.sh")
    assert code == 0, err

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(engine_run, "run", interrupted)
    with pytest.raises(KeyboardInterrupt):
        work(StudyFolder("s"), 2, log=lambda *a: None)
    trials = open_study(StudyFolder("s"))[0].get_trials(deepcopy=False)
    assert [t.state.name for t in trials] == ["FAIL", "WAITING"] and trials[0].params == trials[1].params
    assert [t.number for t in counted_trials(trials)] == [1]
