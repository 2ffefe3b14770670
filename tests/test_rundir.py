"""Run directories and the files in them: what may be reused or replaced, damaged files, permissions,
failed writes (issue 15, sections 1, 2 and 4). No model is trained here: see test_cli_robustness.py."""

import errno
import json
import os
import stat
from pathlib import Path

import pytest
import torch
import torch.nn as nn

from figkd.atomic import WriteError, atomic_write, atomic_write_text
from figkd.config import ConfigError, RunConfig
from figkd.engine import rundir
from figkd.engine.checkpoint import CheckpointManager, RunFileError
from figkd.engine.rundir import RunDir

CFG = {"epochs": 2, "seed": 0, "device": "cpu"}


def _run_dir(path: Path, cfg=CFG, *, epochs_done: int | None = 1, finished: bool = False) -> Path:
    """A run directory as figkd leaves it: config, metrics and (optionally) a checkpoint and a summary."""
    path.mkdir(parents=True, exist_ok=True)
    RunDir(path).write_config(cfg)
    if epochs_done:
        for e in range(1, epochs_done + 1):
            RunDir(path).append_metrics({"epoch": e})
        CheckpointManager(path).save(epochs_done, nn.Linear(2, 2), {"optimizer": {}})
    if finished:
        RunDir(path).write_summary({"best_top1": 1.0})
    return path


def _tree(path: Path) -> list[str]:
    return sorted(str(p.relative_to(path)) for p in path.rglob("*"))


def test_prepare_rules(tmp_path):
    run = tmp_path / "run"
    assert RunDir(run).prepare(CFG, resume=False, overwrite=False) == "fresh"
    _run_dir(run)
    with pytest.raises(ConfigError, match="unfinished run.*epoch 1.*--resume"):
        RunDir(run).prepare(CFG, resume=False, overwrite=False)
    assert RunDir(run).prepare(CFG, resume=True, overwrite=False) == "resume"
    # Runtime-only fields may differ on resume.
    assert RunDir(run).prepare({**CFG, "device": "cuda"}, resume=True, overwrite=False) == "resume"
    with pytest.raises(ConfigError, match="different configuration.*seed.*--overwrite"):
        RunDir(run).prepare({**CFG, "seed": 1}, resume=True, overwrite=False)
    RunDir(run).write_summary({"best_top1": 1.0})
    assert RunDir(run).prepare(CFG, resume=False, overwrite=False) == "done"
    assert RunDir(run).prepare({**CFG, "seed": 3}, resume=False, overwrite=True) == "fresh"
    assert run.is_dir() and not list(run.iterdir())  # cleared, the folder itself kept


def test_overwrite_refuses_a_folder_that_is_not_a_run_directory(tmp_path):
    # Issue 15 section 1: `--out mydata --overwrite` deleted a folder of the user's files.
    mydata = tmp_path / "mydata"
    mydata.mkdir()
    (mydata / "paper.tex").write_text("keep")
    (mydata / "config.yaml").write_text("my: own config\n")
    for overwrite in (False, True):
        with pytest.raises(ConfigError, match=r"mydata is not a figkd run directory \(it holds paper.tex\)"):
            RunDir(mydata).prepare(CFG, resume=False, overwrite=overwrite)
    assert _tree(mydata) == ["config.yaml", "paper.tex"]
    # A run directory with a file of the user's in it is not replaced either.
    run = _run_dir(tmp_path / "run", finished=True)
    (run / "notes.txt").write_text("keep")
    with pytest.raises(ConfigError, match="holds notes.txt"):
        RunDir(run).prepare({**CFG, "seed": 1}, resume=False, overwrite=True)
    assert (run / "notes.txt").read_text() == "keep" and (run / "summary.json").is_file()


@pytest.mark.parametrize("where", ["cwd", "parent", "home"])
def test_overwrite_refuses_the_current_directory_its_parents_and_home(tmp_path, monkeypatch, where):
    run = _run_dir(tmp_path / "a", finished=True)
    inner = run / "checkpoints"
    monkeypatch.chdir(run if where == "cwd" else inner)
    monkeypatch.setenv("HOME", str(run))
    target = {"cwd": Path("."), "parent": Path(".."), "home": run}[where]
    if where == "home":
        monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError, match="--overwrite refuses to clear .*: it (is the current directory|holds the "
                                          "current directory|is the home directory)"):
        RunDir(target).prepare({**CFG, "seed": 1}, resume=False, overwrite=True)
    assert (run / "summary.json").is_file()


def test_a_directory_without_a_finished_epoch_is_replaceable(tmp_path):
    # Issue 15 section 2: a failed start left config.yaml, and the corrected retry was refused.
    run = _run_dir(tmp_path / "run", {**CFG, "seed": 5}, epochs_done=None)
    (run / "tb").mkdir()
    (run / "tb" / "events.out").write_text("x")
    assert RunDir(run).prepare(CFG, resume=False, overwrite=False) == "fresh"
    assert not list(run.iterdir())


def test_extending_a_finished_run(tmp_path):
    run = _run_dir(tmp_path / "run", epochs_done=2, finished=True)
    with pytest.raises(ConfigError, match="epochs: 2 -> 4.*add --resume to extend"):
        RunDir(run).prepare({**CFG, "epochs": 4}, resume=False, overwrite=False)
    assert RunDir(run).prepare({**CFG, "epochs": 4}, resume=True, overwrite=False) == "resume"
    assert not (run / "summary.json").exists()  # the longer run is not finished yet
    with pytest.raises(ConfigError, match="already trained 2 epochs: --epochs 1 cannot shorten"):
        RunDir(run).prepare({**CFG, "epochs": 1}, resume=True, overwrite=False)
    with pytest.raises(ConfigError, match="different configuration"):
        RunDir(run).prepare({**CFG, "epochs": 4, "seed": 2}, resume=True, overwrite=False)


def test_location_that_cannot_be_written_is_refused_before_anything_is_written(tmp_path):
    afile = tmp_path / "afile"
    afile.write_text("x")
    with pytest.raises(ConfigError, match="afile is a file, not a folder; choose another --out"):
        RunDir(afile / "run").prepare(CFG, resume=False, overwrite=False)
    with pytest.raises(ConfigError, match="afile is a file, not a run directory"):
        RunDir(afile).prepare(CFG, resume=False, overwrite=False)
    assert afile.read_text() == "x"


@pytest.mark.parametrize("damage,message", [
    ("config", r"config.yaml is not valid YAML"),
    ("config-list", r"config.yaml does not hold a mapping"),
    ("last", r"last.json is not valid JSON"),
    ("last-fields", r"last.json does not name a checkpoint"),
    ("summary", r"summary.json is not valid JSON"),
])
def test_damaged_run_files_are_named_with_the_fix(tmp_path, damage, message):
    run = _run_dir(tmp_path / "run", finished=damage == "summary")
    path = {"config": run / "config.yaml", "config-list": run / "config.yaml", "summary": run / "summary.json",
            "last": run / "checkpoints" / "last.json", "last-fields": run / "checkpoints" / "last.json"}[damage]
    path.write_text({"config": "epochs: [2\n", "config-list": "- 1\n", "last-fields": "[1, 2]"}.get(damage, "{bad"))
    with pytest.raises(RunFileError, match=message + r".*restore it from a copy, or start the run again with "
                                                     r"--overwrite") as info:
        RunDir(run).prepare(CFG, resume=True, overwrite=False)
    assert "\n" not in str(info.value)


def test_truncated_checkpoint_files_are_named(tmp_path):
    run = _run_dir(tmp_path / "run")
    ckpt = CheckpointManager(run)
    state = run / "checkpoints" / "epoch_0001.state.pt"
    state.write_bytes(state.read_bytes()[:100])
    with pytest.raises(RunFileError, match=r"epoch_0001.state.pt is not a readable training state"):
        ckpt.load_last()
    _run_dir(run)
    weights = run / "checkpoints" / "epoch_0001.safetensors"
    weights.write_bytes(weights.read_bytes()[:50])
    with pytest.raises(RunFileError, match=r"epoch_0001.safetensors is not a readable safetensors file"):
        ckpt.load_last()
    weights.unlink()
    with pytest.raises(RunFileError, match=r"epoch_0001.safetensors is missing \(named by last.json\)"):
        ckpt.load_last()


def test_metrics_torn_last_line_is_dropped_and_a_damaged_line_named(tmp_path):
    for e in (1, 2):
        RunDir(tmp_path).append_metrics({"epoch": e})
    with open(tmp_path / "metrics.jsonl", "a") as fh:
        fh.write('{"epoch": 3, "train/lo')  # killed while appending
    assert [r["epoch"] for r in RunDir(tmp_path).metrics()] == [1, 2]
    RunDir(tmp_path).truncate_metrics(2)
    assert (tmp_path / "metrics.jsonl").read_text() == '{"epoch": 1}\n{"epoch": 2}\n'
    (tmp_path / "metrics.jsonl").write_text('{"epoch": 1}\n{bad\n{"epoch": 3}\n')
    with pytest.raises(RunFileError, match="metrics.jsonl line 2 is not valid JSON"):
        RunDir(tmp_path).metrics()


def test_checkpoint_save_removes_only_its_own_epoch_files(tmp_path):
    ckpt = CheckpointManager(tmp_path)
    ckpt.save(1, nn.Linear(2, 2), {})
    (tmp_path / "checkpoints" / "epoch_notes.txt").write_text("keep")
    ckpt.save(2, nn.Linear(2, 2), {})
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == [
        "epoch_0002.safetensors", "epoch_0002.state.pt", "epoch_notes.txt", "last.json"]


@pytest.mark.parametrize("umask", [0o022, 0o077, 0o002])
def test_written_files_honour_the_umask(tmp_path, umask):
    old = os.umask(umask)
    try:
        path = atomic_write_text(tmp_path / "config.yaml", "x")
        CheckpointManager(tmp_path).save(1, nn.Linear(2, 2), {})
    finally:
        os.umask(old)
    for p in (path, tmp_path / "checkpoints" / "epoch_0001.state.pt", tmp_path / "checkpoints" / "last.json",
              tmp_path / "checkpoints" / "epoch_0001.safetensors"):
        assert stat.S_IMODE(p.stat().st_mode) == 0o666 & ~umask, p


def test_full_disk_is_named_and_leaves_the_old_file(tmp_path, monkeypatch):
    path = atomic_write_text(tmp_path / "last.json", "old")

    def no_space(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr("figkd.atomic.os.fsync", no_space)
    with pytest.raises(WriteError, match=r"no space left on the file system mounted at /.* \(\d+\.\d MB free\) "
                                         r"while writing .*last.json: free some space") as info:
        atomic_write(path, lambda f: f.write(b"new"))
    assert info.value.errno == errno.ENOSPC and isinstance(info.value, OSError)
    assert path.read_text() == "old" and os.listdir(tmp_path) == ["last.json"]


def test_recorded_config_has_absolute_paths_and_the_lr_used(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cfg = RunConfig(dataset="cifar100", data_root="data/c100", teacher="resnet8", teacher_ckpt="t.pth",
                    student="mobilenetv2", objective="kd")
    kd = rundir.resolved_terms("kd")
    recorded = rundir.record(cfg, "distill", architecture="mobilenetv2", objective=kd)
    assert recorded["data_root"] == str(tmp_path / "data" / "c100")
    assert recorded["teacher_ckpt"] == str(tmp_path / "t.pth")
    assert recorded["lr"] == 0.01  # the paper's rate for MobileNet students (Section 4.2)
    assert rundir.record(cfg.replace(lr=0.2), "distill", architecture="mobilenetv2", objective=kd)["lr"] == 0.2
    assert recorded["resolved"] == {"objective": kd, "architecture": "mobilenetv2", "world_size": 1,
                                    "global_batch": 64}
    # A run recorded before (relative path, lr null, no resolved section) is the same configuration.
    old = {**cfg.to_dict()}
    assert rundir.differences(old, recorded) == []


def test_resolved_terms_equal_what_build_objective_records():
    """The sweep resolves objectives without building them; the engine records Objective.spec: one answer."""
    from figkd.losses import build_objective, list_presets

    for preset in list_presets():
        try:
            built = build_objective(preset, num_classes=10).spec
        except ValueError:  # a term that needs feature shapes: its spec is the entries with defaults filled in
            continue
        assert rundir.resolved_terms(preset) == json.loads(json.dumps(built)), preset
    twice = [{"term": "kd", "weight": 0.5}, {"term": "kd", "temperature": 2}]
    assert [t["name"] for t in rundir.resolved_terms(twice)] == \
        [t["name"] for t in build_objective(twice, num_classes=10).spec] == ["kd_1", "kd_2"]


def _record(world_size, batch_size=32, **changes):
    cfg = RunConfig(model="resnet8", batch_size=batch_size, epochs=2, **changes)
    return rundir.record(cfg, "train", architecture="resnet8", objective=rundir.resolved_terms("vanilla"),
                         world_size=world_size)


def test_another_world_size_with_the_same_global_batch_is_the_same_run(tmp_path):
    run = RunDir(tmp_path / "run")
    _run_dir(tmp_path / "run", _record(2), epochs_done=1)
    same = _record(1, batch_size=64)
    assert rundir.differences(run.config(), same) == []
    assert run.state(same) == "resume" and run.prepare(same, resume=True, overwrite=False) == "resume"
    assert run.world_size_note(same) == (f"{run.path} was trained by 2 processes x 32 and continues with "
                                         "1 process x 64: the same global batch of 64")
    assert run.world_size_note(_record(2)) is None


def test_another_world_size_with_another_global_batch_names_both_sizes_and_the_fix(tmp_path):
    _run_dir(tmp_path / "run", _record(2), epochs_done=1)
    with pytest.raises(ConfigError, match=r"was trained by 2 processes x 32 \(global batch 64\) and this is 1 process "
                                          r"x 32: run it with 2 processes \(torchrun --nproc_per_node 2\), or with "
                                          r"--batch-size 64 in 1 process \(the same global batch\)"):
        RunDir(tmp_path / "run").prepare(_record(1), resume=True, overwrite=False)


def test_a_changed_preset_is_a_different_run_for_the_engine_and_the_sweep_alike(tmp_path):
    """A finished run recorded with a preset's old defaults: the sweep does not skip it as finished, and the
    engine refuses it as different (issue 21: they disagreed)."""
    from figkd.experiments.sweep import run_state

    cfg = RunConfig(dataset="digits", teacher="resnet8", teacher_ckpt=str(tmp_path), student="resnet8",
                    objective="figkd", epochs=1, out=str(tmp_path / "run"))
    rec = rundir.record(cfg, "distill", architecture="resnet8", objective=rundir.resolved_terms("figkd"))
    old = json.loads(json.dumps(rec))
    old["resolved"]["objective"][1]["weight"] = 3.0  # the preset's weight when the run was made
    _run_dir(tmp_path / "run", old, epochs_done=1, finished=True)
    run = RunDir(tmp_path / "run")
    assert run.state(rec) == "different"
    with pytest.raises(ConfigError, match=r"objective term 'figkd' weight: 3.0 -> 2.0"):
        run.prepare(rec, resume=True, overwrite=False)

    class Planned:
        records = [(tmp_path / "run", rec)]

    state, why = run_state(Planned)
    assert state == "different" and "objective term 'figkd' weight: 3.0 -> 2.0" in why
    old["resolved"]["objective"][1]["weight"] = 2.0
    run.write_config(old)
    assert run.state(rec) == "done" and run_state(Planned)[0] == "done"


def test_a_peer_directory_knows_its_architecture(tmp_path):
    cfg = RunConfig(peers=["resnet8", "resnet14"], epochs=1, objective="dml")
    recorded = rundir.record(cfg, "distill", architecture="resnet14", objective=rundir.resolved_terms("dml"), peer=1)
    _run_dir(tmp_path / "peer1-resnet14", recorded, epochs_done=1)
    assert RunDir(tmp_path / "peer1-resnet14").architecture == "resnet14"
    assert RunDir(tmp_path / "peer1-resnet14").peer == 1
    # recorded before figkd wrote resolved.architecture: the peer<i>-<arch> folder name says which peer it is
    _run_dir(tmp_path / "old" / "peer0-resnet8", cfg.to_dict(), epochs_done=1)
    assert RunDir(tmp_path / "old" / "peer0-resnet8").architecture == "resnet8"


def test_default_run_directory_names_tell_teachers_and_ablations_apart():
    base = RunConfig(dataset="cifar100", teacher="resnet32x4", teacher_ckpt="t", student="resnet8x4", seed=0)
    assert str(rundir.default_run_dir(base.replace(objective="figkd"), "distill")) == \
        "runs/distill/cifar100/resnet32x4-resnet8x4-figkd-s0"
    assert rundir.default_run_dir(base.replace(objective="kd", teacher="wrn_40_2"), "distill") != \
        rundir.default_run_dir(base.replace(objective="kd"), "distill")
    a = [{"term": "ce", "weight": 1.0}, {"term": "figkd", "weight": 2.0, "bands": "high"}]
    b = [{"term": "ce", "weight": 1.0}, {"term": "figkd", "weight": 2.0, "bands": "both"}]
    name_a, name_b = rundir.objective_name(a), rundir.objective_name(b)
    assert name_a.startswith("ce+figkd-") and name_b.startswith("ce+figkd-") and name_a != name_b
    assert rundir.objective_name(json.loads(json.dumps(a))) == name_a  # stable
    assert str(rundir.default_run_dir(RunConfig(model="resnet8"), "train")) == "runs/train/digits/resnet8-s0"


def test_state_file_is_written_through_memory(tmp_path, monkeypatch):
    """torch.save never writes to the disk itself: a failing write is an OSError, not a torch error."""
    calls = []
    monkeypatch.setattr("figkd.engine.checkpoint.torch.save", lambda obj, f: calls.append(type(f).__name__)
                        or torch.serialization.save(obj, f))
    CheckpointManager(tmp_path).save(1, nn.Linear(2, 2), {})
    assert calls == ["BytesIO"]


def test_paper_config_generator_deletes_only_what_it_wrote(tmp_path):
    from figkd.experiments import paper_configs as gen
    (tmp_path / "students").mkdir()
    (tmp_path / "students" / "mine.txt").write_text("keep")
    with pytest.raises(SystemExit, match="holds files this script did not write"):
        gen.write(tmp_path)
    assert (tmp_path / "students" / "mine.txt").read_text() == "keep"


def test_a_peer_directory_is_read_by_eval_analyze_and_as_a_teacher(tmp_path, capsys):
    """Issue 21: after `figkd distill --peers resnet8 resnet14`, the peer's directory (whose config names the
    peer set, not a student) works with `figkd eval`, `figkd analyze` and as `--teacher-ckpt` alone."""
    from figkd.analysis.common import load_run
    from figkd.cli import main
    from figkd.engine.run import resolve
    from figkd.models import build_model

    cfg = RunConfig(dataset="digits", peers=["resnet8", "resnet14"], epochs=1, objective="dml", device="cpu")
    peer = tmp_path / "R" / "peer1-resnet14"
    _run_dir(peer, rundir.record(cfg, "distill", architecture="resnet14", objective=rundir.resolved_terms("dml"),
                                 peer=1), epochs_done=1, finished=True)
    CheckpointManager(peer).save_best(1, build_model("resnet14", 10), 12.5)
    assert main(["eval", str(peer), "--device", "cpu"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["model"] == "resnet14" and result["dataset"] == "digits" and 0 <= result["top1"] <= 100
    loaded = load_run(peer)
    assert loaded.label == "resnet14 DML" and loaded.model.fc.out_features == 10
    distill = resolve(RunConfig(dataset="digits", teacher_ckpt=str(peer), student="resnet8"), "distill")
    assert distill.teacher == "resnet14"


def test_class_names_input_size_and_weights_record(tmp_path):
    run = RunDir(_run_dir(tmp_path / "run", {**CFG, "dataset": "digits_16"}, epochs_done=2))
    assert run.classes() is None  # a run recorded before figkd kept them
    run.write_classes(["zero", "one"])
    assert run.classes() == ["zero", "one"] and run.foreign_entries() == []  # classes.json is figkd's
    (run / "deploy").mkdir()  # figkd export's folder is figkd's too
    assert run.foreign_entries() == [] and run.state({**CFG, "dataset": "digits_16"}) == "resume"
    assert run.input_size == (16, 16)
    assert RunDir(_run_dir(tmp_path / "cifar", {**CFG, "dataset": "cifar100"})).input_size == (32, 32)
    last = run.weights_record("last")
    assert last["which"] == "last" and last["epoch"] == 2 and last["path"].name == "epoch_0002.safetensors"
    CheckpointManager(run.path).save_best(1, nn.Linear(2, 2), 42.5)
    assert {k: v for k, v in run.weights_record("best").items() if k != "path"} == {
        "which": "best", "epoch": 1, "top1": 42.5, "split": "test"}
    (run / "classes.json").write_text('{"0": "zero"}')
    with pytest.raises(RunFileError, match="classes.json is not a JSON list of class names"):
        run.classes()
