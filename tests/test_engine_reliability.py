"""Reliability of a run (issue 27, the engine's items): a student that diverges stops alone (7); an
unexpected error in a step is one line, its traceback in the run directory (3); one process writes a run
directory at a time, and a sweep's runs die with it (8); what the run directory and the data can tell is
not silently wrong (10); a capped epoch and progress lines for long work (11).

The runs are tiny (digits_16, batch 16, two steps per epoch: ``steps_per_epoch``) and run in this process
through ``figkd.cli.main``, except where a process must die."""

import itertools
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

from figkd.cli import build_configs, build_parser, main
from figkd.config import ConfigError, RunConfig
from figkd.data import build_dataset, build_loader
from figkd.engine import NonFiniteLossError, run
from figkd.engine.checkpoint import CheckpointManager
from figkd.engine.recipe import lr_warmup_warning, warmup_warning
from figkd.engine.run import resolve
from figkd.engine.rundir import RunDir
from figkd.engine.runlock import RunLock
from figkd.errors import DataError

SRC = str(Path(__file__).resolve().parents[1] / "src")
TINY = ["--dataset", "digits_16", "--batch-size", "16", "--device", "cpu", "--set", "steps_per_epoch=2",
        "--set", "lr_milestones=[]", "--set", "progress=off", "--set", "tensorboard=false"]
BASE = RunConfig(dataset="digits_16", batch_size=16, steps_per_epoch=2, lr_milestones=[], device="cpu",
                 progress="off", tensorboard=False, model="resnet8")


@pytest.fixture(scope="module")
def teacher(tmp_path_factory) -> str:
    from figkd.models import build_model, save_weights

    path = tmp_path_factory.mktemp("teacher") / "teacher.safetensors"
    torch.manual_seed(0)
    save_weights(build_model("resnet8", 10), path)
    return str(path)


def _cli(capsys, *args: str) -> tuple[int, str, list[str]]:
    code = main(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err.strip().splitlines()


def _failing(monkeypatch, cls, after: int, failure):
    """``cls.forward`` returning ``failure(value)`` from its call number ``after`` on (0-based; calls on the
    meta device, where a build may probe shapes, not counted)."""
    original, calls = cls.forward, itertools.count()

    def forward(self, *args, **kwargs):
        value = original(self, *args, **kwargs)
        return failure(value) if value.device.type != "meta" and next(calls) >= after else value

    monkeypatch.setattr(cls, "forward", forward)


# ------------------------------------------------------------------------------ 7: one student diverges
def test_a_diverging_student_stops_alone_and_the_others_finish(teacher, tmp_path, monkeypatch, capsys):
    from figkd.losses.dkd import DKDLoss

    _failing(monkeypatch, DKDLoss, 2, lambda v: v * float("nan"))  # epoch 2, step 0 (two steps per epoch)
    out = tmp_path / "side"
    code, stdout, err = _cli(capsys, "distill", *TINY, "--teacher", "resnet8", "--teacher-ckpt", teacher,
                             "--student", "resnet8", "--objective", "kd", "dkd", "--epochs", "2", "--out", str(out))
    assert code == 1, err
    [error] = [line for line in err if line.startswith("figkd: error:")]
    assert re.fullmatch(r"figkd: error: \[resnet8-dkd\] loss term 'dkd' is not finite at epoch 2, step 0; this "
                        r"student stopped, the others go on: its last good checkpoint \(epoch 1\) is kept in .*; "
                        r"1 other student\(s\) finished", error), error
    # 10: DKD's warm-up of 20 epochs in a 2-epoch run is said
    assert any("warning: resnet8-dkd: loss term(s) warm up 'dkd' over 20 epochs (at most 10% of its weight"
               in line for line in err), err
    kd, dkd = out / "resnet8-kd", out / "resnet8-dkd"
    [summary] = json.loads(stdout[stdout.index("[\n"):])  # after the log lines
    assert summary == json.loads((kd / "summary.json").read_text()) and summary["objective"] == "kd"
    assert [r["epoch"] for r in RunDir(kd).metrics()] == [1, 2]
    assert not (dkd / "summary.json").exists() and RunDir(dkd).last_epoch() == 1
    assert [r["epoch"] for r in RunDir(dkd).metrics()] == [1]
    assert RunDir(dkd).error_log() == error.removeprefix("figkd: error: ").split("; 1 other")[0]
    assert not (kd / "run.lock").exists() and not (dkd / "run.lock").exists()  # released


def test_a_dropped_student_leaves_the_captured_step_of_the_others_bit_identical(tmp_path):
    """The step is captured (CPU recording backend), a student diverges in epoch 2 and is dropped, the step
    is captured again without it: the healthy student ends bit-identical to its run alone."""
    from figkd.engine.graph import RecordingBackend
    from figkd.losses import build_objective
    from test_engine_graph import CLASSES, _trainer

    holder = {}
    objective = build_objective("kd", num_classes=CLASSES)
    forward = objective.forward

    nan, one = torch.tensor(float("nan")), torch.tensor(1.0)  # made once: a captured step reads them

    def nan_from_epoch_2(**inputs):  # no host read: the step stays capturable
        terms = dict(forward(**inputs))
        bad = torch.where((holder["epoch"] >= 2) & (holder["step"] >= 1), nan, one)
        terms["kd"], terms["total"] = terms["kd"] * bad, terms["total"] * bad
        return terms

    objective.forward = nan_from_epoch_2
    backend = RecordingBackend()
    both = _trainer(tmp_path / "both", ["kd", "custom"], backend=backend, epochs=3,
                    objective_modules=[build_objective("kd", num_classes=CLASSES), objective])
    holder.update(epoch=both.step.epoch, step=both.step.count)
    alone = _trainer(tmp_path / "alone", ["kd"], cuda_graph="off", epochs=3)
    for m in both.members + alone.members:
        m.run_dir.path.mkdir(parents=True)  # (RunDir.prepare's part, which these trainers skip)
    with pytest.raises(NonFiniteLossError, match=r"\[custom\] loss term 'kd' is not finite at epoch 2, step 1; this "
                                                 r"student stopped, the others go on: its last good checkpoint "
                                                 r"\(epoch 1\)") as info:
        both.fit()
    [summary] = info.value.summaries
    [solo] = alone.fit()
    assert summary["name"] == "kd" and {**summary, "run_dir": None} == {**solo, "run_dir": None}
    assert backend.warmups == 6 and both.graph.captured  # captured again after the drop
    for a, b in zip(both.members[0].learner.state_dict().values(), alone.members[0].learner.state_dict().values(),
                    strict=True):
        assert torch.equal(a, b)
    assert RunDir(tmp_path / "both" / "custom").error_log().startswith("[custom] loss term 'kd'")


# --------------------------------------------------------------------------- 3: an unexpected error
def test_an_unexpected_error_in_a_step_is_one_line_and_its_traceback_is_in_error_log(teacher, tmp_path,
                                                                                     monkeypatch, capsys):
    from figkd.losses.kd import KDLoss

    def boom(value):
        raise RuntimeError("boom\nsecond line")

    _failing(monkeypatch, KDLoss, 1, boom)
    out = tmp_path / "boom"
    code, _, err = _cli(capsys, "distill", *TINY, "--teacher", "resnet8", "--teacher-ckpt", teacher,
                        "--student", "resnet8", "--objective", "kd", "--epochs", "1", "--out", str(out))
    assert code == 3 and len(err) == 1, err
    assert err[0] == (f"figkd: error: [resnet8-kd] unexpected error in epoch 1, step 1, loss term 'kd': RuntimeError: "
                      f"boom second line; the run stopped: no epoch had finished, so there is no checkpoint (the run "
                      f"starts again from epoch 1); the full traceback is in {out / 'error.log'}")
    log = (out / "error.log").read_text()
    assert log.startswith("[resnet8-kd] unexpected error") and "Traceback (most recent call last)" in log
    assert "in forward" in log and "RuntimeError: boom" in log
    assert not (out / "run.lock").exists()


# ------------------------------------------------------------------------------------ 8: one writer
HOLDER = """
import fcntl, os, sys, time
fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT)
fcntl.flock(fd, fcntl.LOCK_EX)  # what figkd.engine.runlock does, in a process that starts in milliseconds
os.write(fd, f"pid {os.getpid()} on here since now\\n".encode())
print("locked", flush=True)
time.sleep(120)
"""


def test_a_run_directory_written_by_another_process_is_refused_until_that_process_dies(tmp_path, capsys):
    out = tmp_path / "run"
    out.mkdir()
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(out / "run.lock")], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline() == "locked\n"
        code, _, err = _cli(capsys, "train", *TINY, "--model", "resnet8", "--epochs", "1", "--out", str(out))
    finally:
        holder.kill()  # SIGKILL: no clean-up of its own runs
        holder.wait()
    assert code == 2 and len(err) == 1, err
    assert err[0] == (f"figkd: error: {out} is being written by another figkd process (pid {holder.pid} on here since "
                      "now): wait for it to finish or stop it, or choose another --out")
    assert sorted(p.name for p in out.iterdir()) == ["run.lock"]  # nothing written
    rd = RunDir(out)  # the killed holder's lock went with it; its file is taken over
    assert rd.prepare({"epochs": 1}, resume=False, overwrite=False) == "fresh"
    assert (out / "run.lock").read_text().startswith(f"pid {os.getpid()} ")
    rd.unlock()
    assert not (out / "run.lock").exists()


def _gone(pid: int) -> bool:
    """Whether process ``pid`` has ended (a zombie nobody reaps has ended too)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return True
    return "\nState:\tZ" in status


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")
def test_a_sweep_killed_with_sigkill_takes_its_runs_with_it(tmp_path):
    import yaml

    out = tmp_path / "run"
    images = _image_folder(tmp_path / "images")  # a dataset that loads without scikit-learn: a faster start
    config = {"dataset": "imagefolder_32", "data_root": str(images), "model": "resnet8", "epochs": 10000,
              "batch_size": 2, "lr_milestones": [], "device": "cpu", "progress": "off", "tensorboard": False,
              "out": str(out)}
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(config))
    env = {**os.environ, "PYTHONPATH": SRC + os.pathsep + os.environ.get("PYTHONPATH", "")}
    with open(tmp_path / "sweep.out", "w") as stdout:
        sweep = subprocess.Popen([sys.executable, "-m", "figkd", "sweep", str(tmp_path / "c.yaml"), "--progress",
                                  "off"], stdout=stdout, stderr=subprocess.STDOUT, env=env)
    try:
        deadline, holder = time.monotonic() + 120, None
        while holder is None and time.monotonic() < deadline and sweep.poll() is None:
            text = (out / "run.lock").read_text() if (out / "config.yaml").exists() else ""  # the run started
            holder = int(text.split()[1]) if text.startswith("pid ") else None
            time.sleep(0.1)
        assert holder is not None and holder != sweep.pid, (tmp_path / "sweep.out").read_text()
    finally:
        sweep.kill()
        sweep.wait()
    deadline = time.monotonic() + 60
    while not _gone(holder) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _gone(holder)
    RunLock(out / "run.lock", out).acquire()  # released: a sweep started again may run it
    assert re.search(r"figkd: terminated \(SIGTERM\) in epoch \d+", (out / "sweep.log").read_text())  # a clean stop
    printed = (tmp_path / "sweep.out").read_text()
    assert f"sweep 0/1, 1 running: [started] {out} (starts; log: {out / 'sweep.log'})" in printed, printed


# ------------------------------------------------------------------------- 10: silent wrong results
def _teacher_run(path: Path, dataset: str, data_root: str | None = None) -> str:
    RunDir(path).write_config({**RunConfig(dataset=dataset, data_root=data_root, model="resnet8").to_dict(),
                               "resolved": {"architecture": "resnet8"}})
    return str(path)


def test_a_teacher_of_another_dataset_is_refused_and_another_size_folder_or_an_unfinished_one_is_said(tmp_path):
    cfg = RunConfig(dataset="digits_16", student="resnet8")
    with pytest.raises(ConfigError, match=r"was trained on digits \(its config.yaml\) and this run is on digits_16: "
                                          r".*--dataset digits, or, .* --teacher-ckpt .*best.safetensors"):
        resolve(cfg.replace(teacher_ckpt=_teacher_run(tmp_path / "a", "digits")), "distill")
    with pytest.warns(UserWarning, match=r"trained on fashion_mnist \(28x28 images\) and this run is on "
                                         r"fashion_mnist_32 \(32x32\)"):
        resolve(cfg.replace(dataset="fashion_mnist_32", teacher_ckpt=_teacher_run(tmp_path / "b", "fashion_mnist")),
                "distill")
    with pytest.warns(UserWarning, match=r"trained on imagefolder in .*/one, and this run reads .*/two"):
        resolve(cfg.replace(dataset="imagefolder", data_root=str(tmp_path / "two"),
                            teacher_ckpt=_teacher_run(tmp_path / "c", "imagefolder", str(tmp_path / "one"))), "distill")
    unfinished = _teacher_run(tmp_path / "d", "digits_16")  # stopped after epoch 1 of 240, diverged
    CheckpointManager(unfinished).save(1, torch.nn.Linear(2, 2), {"optimizer": {}})
    RunDir(unfinished).write_error_log("[resnet8] loss term 'ce' is not finite at epoch 2, step 5; ...")
    with pytest.warns(UserWarning, match=r"the teacher run .*/d has not finished \(its last checkpoint is epoch 1 of "
                                         r"240; it stopped: \[resnet8\] loss term 'ce' is not finite .*\): its best"):
        resolve(cfg.replace(teacher_ckpt=unfinished), "distill")


def _image_folder(root: Path, classes=("a", "b")) -> Path:
    rng = np.random.default_rng(0)
    for split in ("train", "val"):
        for c in classes:
            (root / split / c).mkdir(parents=True)
            for i in range(2):
                Image.fromarray(rng.integers(0, 255, (8, 8, 3), dtype=np.uint8)).save(root / split / c / f"{i}.png")
    return root


def test_an_image_folder_of_one_class_is_refused(tmp_path):
    root = _image_folder(tmp_path / "one", classes=("cats",))
    with pytest.raises(DataError, match=r"holds one class folder \(cats\); a classifier needs two or more classes"):
        build_dataset("imagefolder", str(root), train=True)


def test_a_symlink_loop_in_an_image_folder_is_not_followed(tmp_path):
    root = _image_folder(tmp_path / "loop")
    os.symlink("..", root / "train" / "a" / "up")  # a/up -> train: a loop through every class
    os.symlink(".", root / "train" / "b" / "self")
    with pytest.warns(UserWarning, match=r"2 symbolic link\(s\) .* lead back to a folder above them \(a loop\) .* not "
                                         r"followed, e\.g\. .*train/a/up -> .*train"):
        ds = build_dataset("imagefolder", str(root), train=True)
    assert ds.targets == [0, 0, 1, 1]  # each class's own images, once


def test_a_warmup_longer_than_the_run_is_said():
    dkd = [{"term": "ce", "name": "ce", "weight": 1.0, "warmup": 0},
           {"term": "dkd", "name": "dkd", "weight": 1.0, "warmup": 20}]
    assert warmup_warning(20, dkd) is None
    assert "'dkd' over 20 epochs (at most 10% of its weight 1)" in warmup_warning(2, dkd)
    assert lr_warmup_warning(RunConfig(epochs=20, lr_warmup_epochs=20)) is None
    assert lr_warmup_warning(RunConfig(epochs=2, lr_warmup_epochs=20)).startswith(
        "lr_warmup_epochs 20 is longer than this run of 2 epochs: the learning rate reaches only 10% of its value")


@pytest.mark.parametrize("argv,field,value", [
    (["distill", "--student", "resnet8", "--set", "student=wrn_16_2"], "student", "wrn_16_2"),
    (["distill", "--student", "resnet8", "wrn_16_2", "--set", "student=vgg8"], "student", "vgg8"),
    (["distill", "--objective", "kd", "--set", "objective=figkd"], "objective", "figkd"),
    (["train", "--model", "resnet8", "--objective", "kd", "--set", "objective=vanilla"], "objective", "vanilla"),
    (["distill", "--peers", "resnet8", "resnet8", "--set", "peers=[vgg8, vgg8]"], "peers", ["vgg8", "vgg8"]),
    (["train", "--model", "resnet8", "--epochs", "5", "--set", "epochs=3"], "epochs", 3),
])
def test_set_wins_over_every_flag_as_documented(argv, field, value):
    # Issue 27 item 10: --student and --objective beat --set student= / objective=, the opposite of the docs.
    [cfg] = build_configs(build_parser().parse_args(argv), argv[0])
    assert getattr(cfg, field) == value


# ------------------------------------------------------------------------------ 11: long work
def test_steps_per_epoch_keeps_the_first_batches_of_each_epoch():
    split = build_dataset("digits_16", None, train=True)
    full = build_loader("digits_16", None, True, 16, dataset=split, seed=3)
    capped = build_loader("digits_16", None, True, 16, dataset=split, seed=3, max_steps=2)
    assert len(capped) == 2 and len(full) == len(split) // 16
    for epoch in (1, 2):
        full.set_epoch(epoch), capped.set_epoch(epoch)
        got = list(capped.iter_from(0))
        assert len(got) == 2
        for a, b in zip(got, itertools.islice(full.iter_from(0), 2), strict=True):
            assert torch.equal(a.images, b.images) and torch.equal(a.target, b.target)
    with pytest.raises(ConfigError, match="steps_per_epoch"):
        RunConfig(steps_per_epoch=0)


def test_a_capped_run_extended_with_resume_is_the_uninterrupted_run(tmp_path):
    run(BASE.replace(epochs=1, out=str(tmp_path / "a")), "train", log=lambda *a: None)
    run(BASE.replace(epochs=2, out=str(tmp_path / "a")), "train", resume=True, log=lambda *a: None)
    run(BASE.replace(epochs=2, out=str(tmp_path / "b")), "train", log=lambda *a: None)
    a, b = (load_file(str(tmp_path / d / "checkpoints" / "epoch_0002.safetensors")) for d in "ab")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_progress_lines_when_output_is_not_a_terminal(tmp_path, monkeypatch):
    from figkd.engine import progress
    from test_engine_graph import _trainer

    monkeypatch.setattr(progress, "LINE_EVERY_S", 0.0)
    lines: list[str] = []
    trainer = _trainer(tmp_path, ["kd"], cuda_graph="off", progress="auto", log=lines.append)
    assert not sys.stderr.isatty()
    trainer.train_epoch(1)
    assert len(lines) == 4  # steps 1-4 of 5 (the epoch's own line follows at its end)
    assert re.fullmatch(r"epoch 1/2: step 1/5 \(20%\), loss \d+\.\d{4}, \d+ img/s, \d+ s left", lines[0]), lines
