"""The command line under bad input, faults and interrupts (issue 15): each case ends in one line on
stderr and a known exit status, and deletes or leaves behind nothing it should not.

Runs use a tiny image folder (2 classes x 8 images, 32x32, batch 4: 4 steps an epoch) so that a
training run takes seconds. Most cases call ``figkd.cli.main`` in this process; Ctrl-C and a closed
stdout need a real process.
"""

import argparse
import errno
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

from figkd.cli import main

SRC = str(Path(__file__).resolve().parents[1] / "src")


def _images(root: Path, classes=("a", "b"), n_train=8, n_val=4, size=32, fmt="png") -> Path:
    rng = np.random.default_rng(0)
    for split, n in (("train", n_train), ("val", n_val)):
        for c in classes:
            d = root / split / c
            d.mkdir(parents=True, exist_ok=True)
            for i in range(n):
                Image.fromarray(rng.integers(0, 255, (size, size, 3), dtype=np.uint8)).save(d / f"{i}.{fmt}")
    return root


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> Path:
    return _images(tmp_path_factory.mktemp("images") / "tiny")


def _args(images: Path, *extra: str, epochs: int = 1) -> list[str]:
    return ["train", "--dataset", "imagefolder_32", "--data-root", str(images), "--model", "resnet8",
            "--device", "cpu", "--batch-size", "4", "--epochs", str(epochs), "--set", "progress=off",
            "--set", "tensorboard=false", "--set", "lr_milestones=[1]", *extra]


def _cli(capsys, *args: str) -> tuple[int, str, str]:
    try:
        code = main(list(args))
    except SystemExit as exit_:  # argparse's own errors
        code = exit_.code
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _one_line(code: int, err: str, pattern: str, status: int = 2) -> re.Match:
    lines = err.strip().splitlines()
    assert code == status, err
    assert len(lines) == 1, err
    match = re.search(pattern, lines[0])
    assert match, lines[0]
    return match


def _subprocess(*args: str, cwd=None, **kwargs) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": SRC + os.pathsep + os.environ.get("PYTHONPATH", ""),
           "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen([sys.executable, "-m", "figkd", *args], env=env, cwd=cwd, text=True, **kwargs)


@pytest.fixture(scope="module")
def finished_run(images, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("finished") / "run"
    assert main(_args(images, "--out", str(out))) == 0
    return out


# ------------------------------------------------------------------------ 1. destructive operations
def test_overwrite_of_the_current_directory_deletes_nothing(images, tmp_path, monkeypatch, capsys):
    proj = tmp_path / "proj"
    proj.mkdir()
    (proj / "paper.tex").write_text("keep")
    monkeypatch.chdir(proj)
    code, _, err = _cli(capsys, *_args(images, "--out", ".", "--overwrite"))
    _one_line(code, err, r"^figkd: error: .*proj is not a figkd run directory \(it holds paper.tex\).*choose "
                         r"another --out")
    assert sorted(os.listdir(proj)) == ["paper.tex"] and (proj / "paper.tex").read_text() == "keep"


def test_overwrite_of_a_folder_of_user_files_deletes_nothing(images, tmp_path, capsys):
    mydata = tmp_path / "mydata"
    (mydata / "sub").mkdir(parents=True)
    (mydata / "notes.txt").write_text("keep")
    for extra in (["--overwrite"], []):
        code, _, err = _cli(capsys, *_args(images, "--out", str(mydata), *extra))
        _one_line(code, err, r"mydata is not a figkd run directory \(it holds notes.txt, sub\)")
    assert sorted(p.name for p in mydata.rglob("*")) == ["notes.txt", "sub"]


def test_overwrite_replaces_a_figkd_run_directory(images, finished_run, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(finished_run, run)
    code, _, err = _cli(capsys, *_args(images, "--out", str(run), "--overwrite", "--seed", "1"))
    assert code == 0, err
    assert json.loads((run / "summary.json").read_text())["seed"] == 1


# ------------------------------------------------------------------------------------- 2. data
@pytest.mark.parametrize("case,pattern", [
    ("empty", r"imagefolder: .*empty/train holds no class folders"),
    ("class without images", r"class folder .*train/c holds no image files .*add (its )?images or remove the folder"),
    ("val class not in train", r"val has class folder\(s\) absent from .*train: z; every class of val/ needs"),
    ("truncated png", r"cannot decode image .*1\.png: .*--set skip_corrupt=true"),
])
def test_data_errors_are_one_line_before_anything_is_written(tmp_path, capsys, case, pattern):
    root = tmp_path / "empty"
    if case == "empty":
        (root / "train").mkdir(parents=True)
        (root / "val").mkdir()
    else:
        _images(root, n_train=2, n_val=1)
    if case == "class without images":
        (root / "train" / "c").mkdir()
    elif case == "val class not in train":
        _images(tmp_path / "other", classes=("z",), n_train=1, n_val=1)
        shutil.move(str(tmp_path / "other" / "val" / "z"), str(root / "val" / "z"))
    elif case == "truncated png":
        path = root / "train" / "a" / "1.png"
        path.write_bytes(path.read_bytes()[:200])
    out = tmp_path / "run"
    code, _, err = _cli(capsys, *_args(root, "--out", str(out)))
    _one_line(code, err, pattern)
    assert not out.exists()


def test_batch_larger_than_the_dataset(tmp_path, capsys):
    out = tmp_path / "run"
    code, _, err = _cli(capsys, "train", "--model", "resnet8", "--device", "cpu", "--batch-size", "5000",
                        "--out", str(out))
    _one_line(code, err, r"the training split has 1437 images, fewer than one global batch of 5000 .*lower "
                         r"--batch-size to at most 1437")
    assert not out.exists()


def test_corrupt_jpeg_in_a_worker_mid_epoch_then_skip_corrupt_as_advised(tmp_path, capsys):
    # Issue 15: the worker's error came with its traceback; following its advice (skip_corrupt) was refused
    # as "a different configuration" because the failed start had left config.yaml behind.
    root = _images(tmp_path / "jpegs", n_train=3, n_val=1, size=40, fmt="jpg")
    bad = root / "train" / "b" / "2.jpg"
    bad.write_bytes(bad.read_bytes()[:300])
    out = tmp_path / "run"
    args = ["train", "--dataset", "imagefolder", "--data-root", str(root), "--model", "resnet8", "--device", "cpu",
            "--batch-size", "2", "--epochs", "1", "--out", str(out), "--set", "num_workers=1",
            "--set", "progress=off", "--set", "tensorboard=false", "--set", "eval_batch_size=2"]
    code, _, err = _cli(capsys, *args)
    # 40-pixel images for a 224 crop: figkd says so first, on one line of its own
    warning, err = err.split("\n", 1)
    assert warning.startswith("figkd: warning: imagefolder: the images are much smaller")
    assert "imagefolder_32" in warning
    _one_line(code, err, r"^figkd: error: cannot decode image .*2\.jpg: OSError: .*Replace the file, or skip such "
                         r"files: figkd train/distill --set skip_corrupt=true")
    code, out_text, err = _cli(capsys, *args, "--set", "skip_corrupt=true")
    assert code == 0, err
    assert "skipped 1 unreadable images" in out_text and (out / "summary.json").is_file()


@pytest.mark.parametrize("args,pattern", [
    (["--device", "cuda:7"] if torch.cuda.device_count() < 8 else ["--device", "cuda:99"],
     r"device cuda(:7|:99)? was asked for but (torch.cuda.is_available\(\) is False|there are \d+ CUDA device)"),
    (["--device", "tpu"], r"device must be auto, cpu, cuda, cuda:N or mps, got 'tpu'"),
    (["--set", "momentum=fast"], r"momentum must be a number in \[0, 1\), got 'fast'"),
    (["--set", "momentum=1.5"], r"momentum must be a number in \[0, 1\), got 1.5"),
    (["--set", "weight_decay=-1"], r"weight_decay must be a number >= 0, got -1"),
    (["--set", "seed=abc"], r"seed must be an integer in \[0, 2\*\*63 - 1\], got 'abc'"),
    (["--set", "lr_decay=[1]"], r"lr_decay must be a number in \(0, 1\], got \[1\]"),
    (["--set", "num_workers=-3"], r"num_workers must be an integer >= 0, got -3"),
    (["--set", "tensorboard=maybe"], r"tensorboard must be true or false, got 'maybe'"),
    (["--set", "objective=[{term: ce, weight: -1}]"], r"objective term #0 \(ce\): weight must be a number >= 0"),
    (["--batch-size", "abc"], r"figkd train: error: argument --batch-size: invalid int value: 'abc'"),
])
def test_config_values_are_checked_before_a_run_directory_exists(tmp_path, capsys, args, pattern):
    out = tmp_path / "run"
    code, _, err = _cli(capsys, "train", "--model", "resnet8", "--out", str(out), *args)
    _one_line(code, err, pattern)
    assert not out.exists()


def test_the_corrected_command_runs_after_a_refused_value(images, tmp_path, capsys):
    out = tmp_path / "run"
    code, _, err = _cli(capsys, *_args(images, "--out", str(out), "--set", "weight_decay=-1"))
    _one_line(code, err, "weight_decay must be")
    code, _, err = _cli(capsys, *_args(images, "--out", str(out)))
    assert code == 0, err


@pytest.mark.parametrize("args,pattern", [
    (["eval", "RUN", "--batch-size", "0"], r"figkd eval: error: argument --batch-size: must be a positive "
                                           r"integer, got 0"),
    (["eval", "RUN", "--device", "tpu"], r"argument --device: must be auto, cpu"),
    (["models", "--input-size", "0"], r"figkd models: error: argument --input-size: must be a positive integer"),
    (["models", "--num-classes", "-1"], r"argument --num-classes: must be a positive integer"),
    (["models", "--pair", "vgg13", "vgg8", "--input-size", "1"], r"figkd models: error: vgg13 cannot take a 1x1 "
                                                                  r"input \(.*\); use a larger --input-size"),
    (["eval", "nope"], r"^figkd: error: nope does not exist: pass a figkd run directory"),
])
def test_eval_and_models_flags_are_checked(finished_run, capsys, args, pattern):
    args = [str(finished_run) if a == "RUN" else a for a in args]
    code, _, err = _cli(capsys, *args)
    _one_line(code, err, pattern)


def test_out_under_a_file(images, tmp_path, capsys):
    (tmp_path / "afile").write_text("x")
    code, _, err = _cli(capsys, *_args(images, "--out", str(tmp_path / "afile" / "run")))
    _one_line(code, err, r"cannot create run directory .*afile/run: .*afile is a file, not a folder")
    assert (tmp_path / "afile").read_text() == "x"


def test_out_on_a_read_only_location(images, tmp_path, capsys, monkeypatch):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    if os.geteuid() == 0:  # root writes anywhere: make the file system say no, as a read-only mount does
        real_access = os.access
        monkeypatch.setattr("figkd.engine.rundir.os.access",
                            lambda p, mode: False if Path(p) == ro else real_access(p, mode))
    try:
        code, _, err = _cli(capsys, *_args(images, "--out", str(ro / "run")))
    finally:
        ro.chmod(0o755)
    _one_line(code, err, r"cannot create run directory .*ro/run: .*ro is not writable .*choose another --out")
    assert os.listdir(ro) == []


def test_full_disk_names_the_file_system_and_the_checkpoint_to_resume(images, tmp_path, capsys, monkeypatch):
    real_fsync = os.fsync

    def fsync(fd):  # the disk fills up while the state file of epoch 2 is written
        if "epoch_0002.state.pt" in os.readlink(f"/proc/self/fd/{fd}"):
            raise OSError(errno.ENOSPC, "No space left on device")
        real_fsync(fd)

    if not os.path.isdir("/proc/self/fd"):
        pytest.skip("needs /proc/self/fd to name the file being written")
    monkeypatch.setattr("figkd.atomic.os.fsync", fsync)
    out = tmp_path / "run"
    code, _, err = _cli(capsys, *_args(images, "--out", str(out), epochs=3))
    _one_line(code, err, r"^figkd: error: no space left on the file system mounted at /.* \(\d+\.\d MB free\) "
                         r"while writing .*epoch_0002.state.pt: free some space there or write elsewhere; the run "
                         r"stopped in epoch 2; the last checkpoint is epoch 1; continue with --resume$")
    ckpt = out / "checkpoints"
    assert json.loads((ckpt / "last.json").read_text())["epoch"] == 1
    assert not [p for p in ckpt.iterdir() if p.name.endswith(".tmp")]
    monkeypatch.setattr("figkd.atomic.os.fsync", real_fsync)
    code, _, err = _cli(capsys, *_args(images, "--out", str(out), "--resume", epochs=3))
    assert code == 0, err


@pytest.mark.parametrize("damage,pattern", [
    ("state", r"run file .*epoch_0001.state.pt is not a readable training state"),
    ("last", r"run file .*last.json is not valid JSON"),
    ("config", r"run file .*config.yaml is not valid YAML"),
])
def test_damaged_run_files_under_resume(images, finished_run, tmp_path, capsys, damage, pattern):
    run = tmp_path / "run"
    shutil.copytree(finished_run, run)
    (run / "summary.json").unlink()  # an unfinished run: --resume continues it
    path = {"state": run / "checkpoints" / "epoch_0001.state.pt", "last": run / "checkpoints" / "last.json",
            "config": run / "config.yaml"}[damage]
    content = path.read_bytes()
    path.write_bytes(content[: len(content) // 2] if damage == "state" else
                     b"{bad" if damage == "last" else b"epochs: [1\n")
    before = sorted(p.name for p in run.rglob("*"))
    code, _, err = _cli(capsys, *_args(images, "--out", str(run), "--resume", epochs=2))
    _one_line(code, err, pattern + r".*restore it from a copy, or start the run again with --overwrite")
    assert sorted(p.name for p in run.rglob("*")) == before


@pytest.mark.parametrize("sent, word, status", [(signal.SIGINT, "interrupted", 130),
                                                (signal.SIGTERM, r"terminated \(SIGTERM\)", 143)])
def test_ctrl_c_is_one_line_with_the_epoch_and_the_checkpoint(sent, word, status, images, tmp_path, capsys):
    # SIGTERM (kill, a scheduler's pre-emption) stops as cleanly as Ctrl-C, with its own exit status
    out = tmp_path / "run"
    proc = _subprocess(*_args(images, "--out", str(out), epochs=200), stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE)
    for line in proc.stdout:  # wait for the end of epoch 1: the run is then in epoch 2 or later
        if line.startswith("epoch 1/200"):
            break
    proc.send_signal(sent)
    _, err = proc.communicate(timeout=300)
    match = _one_line(proc.returncode, err, rf"^figkd: {word} in epoch (\d+); the last checkpoint is epoch "
                                            r"(\d+); continue with --resume$", status=status)
    interrupted, last = int(match.group(1)), int(match.group(2))
    assert interrupted == last + 1 and last >= 1
    assert json.loads((out / "checkpoints" / "last.json").read_text())["epoch"] == last
    code, out_text, err = _cli(capsys, *_args(images, "--out", str(out), "--resume", epochs=last + 1))
    assert code == 0, err
    assert f"resuming after epoch {last}" in out_text


def test_closed_stdout_exits_quietly(finished_run):
    proc = _subprocess("eval", str(finished_run), "--device", "cpu", stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdout.close()  # `figkd eval RUN | head -0`: the reader is gone before anything is printed
    err = proc.stderr.read()
    proc.wait(timeout=300)
    proc.stderr.close()
    assert proc.returncode == 141 and err == ""


# -------------------------------------------------------------------------------------- 3. messages
def test_missing_data_root_says_pass_data_root(tmp_path, capsys):
    code, _, err = _cli(capsys, "train", "--model", "resnet8", "--dataset", "cifar100", "--out", str(tmp_path / "r"))
    _one_line(code, err, r"cifar100: no dataset folder was given: pass --data-root DIR")
    assert "None" not in err


def test_missing_own_image_folder_does_not_claim_a_publisher(tmp_path, capsys):
    code, _, err = _cli(capsys, "train", "--model", "resnet8", "--dataset", "imagefolder_32", "--data-root",
                        str(tmp_path / "nope"), "--out", str(tmp_path / "r"))
    _one_line(code, err, r"imagefolder: .*nope not found\. Expected there: root/train/<class>")
    assert "published" not in err


@pytest.mark.parametrize("content", [np.random.default_rng(1).bytes(1000), b"\x80\x05garbage that looks like a pickle"],
                         ids=["random bytes", "pickle protocol 5 header"])
def test_a_file_that_is_not_a_checkpoint_is_said_to_be_one(images, tmp_path, capsys, recwarn, content):
    path = tmp_path / "teacher.pth"
    path.write_bytes(content)
    code, _, err = _cli(capsys, "distill", "--dataset", "imagefolder_32", "--data-root", str(images), "--teacher",
                        "resnet8", "--teacher-ckpt", str(path), "--student", "resnet8", "--objective", "kd",
                        "--device", "cpu", "--batch-size", "4", "--out", str(tmp_path / "r"))
    _one_line(code, err, r"teacher\.pth is not a checkpoint: it is neither a safetensors file nor a PyTorch file")
    assert "re-save" not in err
    assert not [w for w in recwarn if "pickle" in str(w.message)]  # no torch warning beside the error


def test_multi_line_errors_are_joined_without_colon_semicolon(images, tmp_path, capsys):
    from figkd.models import build_model, save_weights
    path = tmp_path / "t100.safetensors"
    save_weights(build_model("resnet8", 100), path)
    code, _, err = _cli(capsys, "distill", "--dataset", "imagefolder_32", "--data-root", str(images), "--teacher",
                        "resnet8", "--teacher-ckpt", str(path), "--student", "resnet8", "--objective", "kd",
                        "--device", "cpu", "--batch-size", "4", "--out", str(tmp_path / "r"))
    _one_line(code, err, r"does not fit the model \(ResNet\): shapes differ")
    assert ":;" not in err


def test_nonfinite_loss_in_the_first_epoch_says_there_is_no_checkpoint(images, tmp_path, capsys):
    code, _, err = _cli(capsys, *_args(images, "--out", str(tmp_path / "nan"), "--lr", "1e12"))
    _one_line(code, err, r"is not finite at epoch 1, step \d+.*; the run stopped: no epoch had finished, so "
                         r"there is no checkpoint", status=1)
    assert "None" not in err


def test_repdistiller_last_checkpoint_with_its_options_loads(tmp_path):
    from figkd.models import build_model, load_teacher
    model = build_model("resnet8", 10)
    opt = argparse.Namespace(model="resnet8", dataset="cifar100", epochs=240, learning_rate=0.05,
                             lr_decay_epochs=[150, 180, 210], save_folder="./save/models/resnet8_cifar100")
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    path = tmp_path / "resnet8_last.pth"
    torch.save({"opt": opt, "model": model.state_dict(), "optimizer": optimizer.state_dict()}, path)  # train_teacher.py
    loaded = load_teacher("resnet8", path, 10)
    for key, value in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value)


def test_integer_logits_are_reported_by_dtype():
    from figkd import FiGKDLoss
    with pytest.raises(TypeError, match=r"student_logits must be a floating-point tensor, got a torch.int64 tensor "
                                        r"of shape \(2, 10\)"):
        FiGKDLoss(num_classes=10)(torch.zeros(2, 10, dtype=torch.long), torch.zeros(2, 10))


# ------------------------------------------------------------------------------ 4. the run directory
def test_config_yaml_records_absolute_paths_and_the_lr_used(finished_run, images):
    import yaml
    cfg = yaml.safe_load((finished_run / "config.yaml").read_text())
    assert cfg["data_root"] == str(images) and os.path.isabs(cfg["data_root"])
    assert cfg["lr"] == 0.05


def test_eval_of_a_run_directory_from_another_directory(images, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(images.parent)
    out = tmp_path / "run"
    assert main(_args(Path(images.name), "--out", str(out))) == 0  # a relative --data-root
    capsys.readouterr()
    monkeypatch.chdir(tmp_path)
    code, out_text, err = _cli(capsys, "eval", str(out), "--device", "cpu")
    assert code == 0, err
    assert json.loads(out_text)["count"] == 8


def test_a_finished_run_is_extended_as_if_it_had_had_more_epochs(images, tmp_path, capsys):
    short, full = tmp_path / "short", tmp_path / "full"
    assert main(_args(images, "--out", str(short), epochs=1)) == 0
    assert main(_args(images, "--out", str(full), epochs=2)) == 0
    code, _, err = _cli(capsys, *_args(images, "--out", str(short), epochs=2))
    _one_line(code, err, r"different configuration \(epochs: 1 -> 2\); add --resume to extend")
    code, _, err = _cli(capsys, *_args(images, "--out", str(short), "--resume", epochs=2))
    assert code == 0, err
    a = load_file(str(short / "checkpoints" / "epoch_0002.safetensors"))
    b = load_file(str(full / "checkpoints" / "epoch_0002.safetensors"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert json.loads((short / "summary.json").read_text())["epochs"] == 2
    assert [json.loads(x)["epoch"] for x in (short / "metrics.jsonl").read_text().splitlines()] == [1, 2]


# ------------------------------------------------------------------------ 7. what a new user tripped over
def test_a_short_run_on_the_papers_milestones_is_warned_once(images, tmp_path, capsys):
    args = ["train", "--dataset", "imagefolder_32", "--data-root", str(images), "--model", "resnet8", "--device",
            "cpu", "--batch-size", "4", "--epochs", "2", "--set", "progress=off", "--set", "tensorboard=false",
            "--out", str(tmp_path / "run")]
    code, _, err = _cli(capsys, *args)
    assert code == 0, err
    _one_line(0, err, r"^figkd: warning: lr_milestones \[150, 180, 210\] are all at or after the last epoch \(2\): the "
                      r"learning rate never decays in this run; .*--set lr_milestones=\[1\] ", status=0)
    # (the advice was [1,2]: a milestone at the last epoch does nothing, as the same line says)


def test_a_teacher_run_directory_names_the_teachers_architecture(images, finished_run, tmp_path, capsys):
    distill = ["distill", "--dataset", "imagefolder_32", "--data-root", str(images), "--teacher-ckpt",
               str(finished_run), "--student", "resnet8", "--device", "cpu", "--batch-size", "4", "--epochs", "1",
               "--set", "progress=off", "--set", "tensorboard=false", "--objective", "kd"]
    code, _, err = _cli(capsys, *distill, "--teacher", "resnet20", "--out", str(tmp_path / "wrong"))
    _one_line(code, err, r"^figkd: error: --teacher resnet20, but .*run holds a resnet8 \(its config.yaml\): pass "
                         r"--teacher resnet8 or leave --teacher out$")
    assert not (tmp_path / "wrong").exists()
    code, _, err = _cli(capsys, *distill, "--out", str(tmp_path / "kd"))  # no --teacher: the run directory's
    assert code == 0, err
    import yaml
    assert yaml.safe_load((tmp_path / "kd" / "config.yaml").read_text())["teacher"] == "resnet8"


@pytest.mark.parametrize("args, pattern", [
    (["--objective", "ce"], r"'ce' is a loss term, not an objective preset: the preset 'vanilla' is cross-entropy"),
    (["--objective", "no_such.yaml"], r"objective file no_such.yaml does not exist"),
    (["--objective", "number.yaml"], r"objective file number.yaml must hold a term list .*got int"),
    (["--set", "learning_rate=0.1"], r"unknown config key 'learning_rate' \(did you mean 'lr'\?\)"),
    (["--dataset", "fashion_mnist", "--set", "data_root=null"],
     r"fashion_mnist: no dataset folder was given: pass --data-root"),
])
def test_new_user_mistakes_get_a_pointed_one_line_error(args, pattern, images, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "number.yaml").write_text("3\n")
    code, _, err = _cli(capsys, *_args(images, "--out", str(tmp_path / "run"), *args))
    _one_line(code, err, pattern)
    assert not (tmp_path / "run").exists()


def test_version(capsys):
    code, out, _ = _cli(capsys, "--version")
    assert code == 0 and re.fullmatch(r"figkd \d+\.\d+\.\d+\S*\n", out)


def test_a_second_sigterm_does_not_cut_short_the_clean_stop():
    # A scheduler signals a sweep and each of its runs, and the sweep then signals its runs again: the second
    # SIGTERM arrived while the first was being turned into the line that says where the run stands, and
    # the line was lost ("figkd: terminated (SIGTERM)" alone; seen in CI under load)
    from figkd.cli import Terminated, _terminate_like_ctrl_c

    previous = _terminate_like_ctrl_c()
    try:
        with pytest.raises(Terminated):
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(1)  # the handler runs in the main thread between two bytecodes
        os.kill(os.getpid(), signal.SIGTERM)  # ignored: the stop under way finishes
        time.sleep(0.2)
    finally:
        signal.signal(signal.SIGTERM, previous)


def test_eval_names_the_runs_of_a_folder_of_runs_refuses_another_size_and_asks_only_for_what_is_missing(
        finished_run, tmp_path, capsys):
    # the --out of several students holds their run directories: evaluating it (the natural first try) named
    # no run; --dataset of another image size evaluated the model at that size without a word
    several = tmp_path / "several"
    for member in ("resnet8-kd", "resnet8-figkd"):
        shutil.copytree(finished_run, several / member)
    code, _, err = _cli(capsys, "eval", str(several), "--device", "cpu")
    _one_line(code, err, r"is not one run but holds 2 run directories \(the --out of several students, peers or a "
                         r"sweep\): pass one of them: \S+resnet8-figkd, \S+resnet8-kd$")
    code, _, err = _cli(capsys, "eval", str(finished_run), "--dataset", "digits_16", "--device", "cpu")
    _one_line(code, err, r"was trained on imagefolder_32 \(32x32 images\) and --dataset digits_16 gives 16x16: ")
    code, _, err = _cli(capsys, "eval", str(finished_run / "checkpoints" / "best.safetensors"), "--model", "resnet8")
    _one_line(code, err, r"figkd eval of the file \S+ needs --dataset \(a run directory records them\)$")


def test_a_teacher_checkpoint_that_cannot_name_its_architecture_says_why(finished_run, tmp_path, capsys):
    # without --teacher, each of these said "figkd distill needs --teacher", naming neither the path nor why
    base = ["distill", "--dataset", "digits", "--student", "resnet8", "--out", str(tmp_path / "s"), "--teacher-ckpt"]
    for ckpt, pattern in ((tmp_path / "teacher", r"teacher does not exist \(yet\), so the teacher's architecture "
                                                 r"cannot be read from it: .*a sweep that trains the teacher first"),
                          (finished_run / "checkpoints", r"checkpoints is not a figkd run directory \(no config.yaml\)"
                                                         r": pass the teacher's run directory"),
                          (finished_run / "checkpoints" / "best.safetensors",
                           r"is a weights file, which does not say its architecture: name it with --teacher ARCH")):
        code, _, err = _cli(capsys, *base, str(ckpt))
        _one_line(code, err, pattern)
    assert not (tmp_path / "s").exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="the message of a machine without CUDA")
def test_device_cuda_without_a_gpu_names_the_fix(capsys):
    code, _, err = _cli(capsys, "train", "--model", "resnet8", "--dataset", "digits", "--device", "cuda")
    _one_line(code, err, r"device cuda was asked for but torch.cuda.is_available\(\) is False .*: use --device cpu, or "
                         r"--device auto")


def test_an_objective_refused_for_the_command_is_not_warned_about_first(capsys):
    # figkd train --objective figkd printed FiGKD's long few-classes warning, then refused the objective
    code, _, err = _cli(capsys, "train", "--model", "resnet8", "--dataset", "digits", "--objective", "figkd",
                        "--device", "cpu")
    _one_line(code, err, r"figkd train trains a model alone: its objective must not need a teacher")
