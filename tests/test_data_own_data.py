"""Your own data (issue 17, section 3): small images warned about, empty class folders refused, a run's
own mean/std (`mean`/`std` in the run configuration, `auto` computed once and kept in the run
directory, used by `figkd eval`), and `python -m figkd.data.stats` without runpy's warning."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from figkd.config import ConfigError, RunConfig
from figkd.data import SplitFileError, build_dataset, build_loader, dataset_mean_std, recipe_for
from figkd.data.normalization import FILE, parse_value
from figkd.engine import run
from figkd.engine.rundir import RunDir
from fixtures_data import make_imagefolder

SRC = str(Path(__file__).resolve().parents[1] / "src")


def _python(*args):
    env = {**os.environ, "PYTHONPATH": SRC + os.pathsep + os.environ.get("PYTHONPATH", "")}
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, env=env, timeout=300)


# ------------------------------------------------------------------------------------ imagefolder
def test_imagefolder_warns_when_images_are_much_smaller_than_the_crop(tmp_path):
    small = make_imagefolder(str(tmp_path / "small"), train_per_class=2, val_per_class=1, size=(28, 28))
    with pytest.warns(UserWarning, match=r"much smaller than the 224x224 crop .* use imagefolder_32"):
        build_loader("imagefolder", small, True, 2, num_workers=0)
    large = make_imagefolder(str(tmp_path / "large"), train_per_class=2, val_per_class=1, size=(300, 260))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        build_loader("imagefolder", large, True, 2, num_workers=0)
        build_loader("imagefolder_32", small, True, 2, num_workers=0)  # the small-image name: no warning


def test_imagefolder_class_folder_without_images_is_an_error(tmp_path):
    root = make_imagefolder(str(tmp_path), classes=("cat", "dog"), train_per_class=2, val_per_class=1)
    empty = os.path.join(root, "train", "bird")
    os.makedirs(os.path.join(empty, "sub"))
    with open(os.path.join(empty, "README.txt"), "w") as f:
        f.write("no images here\n")
    for train in (True, False):  # the classes come from train/ for both splits
        with pytest.raises(SplitFileError, match=f"class folder {empty} holds no image files"):
            build_dataset("imagefolder", root, train=train)
    os.rmdir(os.path.join(empty, "sub"))
    os.remove(os.path.join(empty, "README.txt"))
    os.rmdir(empty)
    assert build_dataset("imagefolder", root).classes == ["cat", "dog"]


# ----------------------------------------------------------------------------------------- stats
def test_stats_module_runs_without_the_runpy_warning():
    result = _python("-W", "error::RuntimeWarning", "-m", "figkd.data.stats", "digits")
    assert result.returncode == 0 and "RuntimeWarning" not in result.stderr, result.stderr
    assert json.loads(result.stdout) == {"dataset": "digits", "split": "train", "mean": [0.3054] * 3,
                                         "std": [0.376] * 3}


# -------------------------------------------------------------------------------------- mean / std
@pytest.mark.parametrize("value,expected", [
    (None, None), ("auto", "auto"), (0.5, (0.5,) * 3), ([0.5], (0.5,) * 3), ([0.1, 0.2, 0.3], (0.1, 0.2, 0.3)),
])
def test_mean_std_values(value, expected):
    assert parse_value("mean", value) == expected
    assert RunConfig().replace(mean=value, std=value).mean == value


@pytest.mark.parametrize("key,value,message", [
    ("mean", "mean", "mean must be null"), ("mean", [0.1, 0.2], "list of 1 or 3"), ("std", 0, "> 0"),
    ("std", [0.2, -1, 0.2], "> 0"), ("mean", True, "mean must be null"), ("mean", float("nan"), "finite"),
])
def test_bad_mean_std_are_config_errors(key, value, message):
    with pytest.raises(ConfigError, match=message):
        RunConfig().replace(**{key: value})


def test_loader_normalises_with_given_mean_std():
    ev = build_loader("digits", None, False, 400, mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))
    x = next(iter(ev)).images
    raw = torch.from_numpy(ev.dataset.images).float() / 255
    assert torch.allclose(x, (raw - 0.5) / 0.25, atol=1e-6)
    assert ev.recipe.mean == (0.5, 0.5, 0.5) and recipe_for("digits").mean == (0.3054, 0.3054, 0.3054)
    with pytest.raises(ValueError, match="3 per-channel values"):
        build_loader("digits", None, False, 400, mean=(0.5,))


def test_run_with_auto_std_keeps_it_in_the_run_directory_and_eval_uses_it(tmp_path, capsys):
    out = tmp_path / "run"
    cfg = RunConfig(dataset="digits", model="resnet8", epochs=1, lr_milestones=[1], device="cpu", progress="off",
                    tensorboard=False, mean=[0.5], std="auto", out=str(out))
    logged = []
    [summary] = run(cfg, "train", log=logged.append)
    saved = json.loads((out / FILE).read_text())
    _, std = dataset_mean_std("digits")
    assert saved["mean"] == [0.5] * 3 and saved["std"] == pytest.approx(list(std) * 3 if len(std) == 1 else std)
    assert saved["auto"] == ["std"] and saved["train_count"] == 1437
    assert any("computing the mean/std" in str(m) for m in logged)
    # the same run again: finished, and the statistics are read, not recomputed
    logged.clear()
    run(cfg, "train", log=logged.append)
    assert any(f"read from {FILE}" in str(m) for m in logged)
    assert not any("computing the mean/std" in str(m) for m in logged)
    # figkd eval of the run directory normalises as the run did: the same top-1 as its last evaluation
    norm = RunDir(out).normalization()
    assert norm.mean == (0.5, 0.5, 0.5) and norm.std == pytest.approx(tuple(saved["std"]))
    from figkd.engine.evaluate_cli import run_eval

    args = argparse.Namespace(ckpt=str(out), model=None, dataset=None, data_root=None, which="last", device="cpu",
                              split="test", batch_size=512)
    assert run_eval(args) == 0
    assert json.loads(capsys.readouterr().out)["top1"] == pytest.approx(summary["last_top1"])
    os.remove(out / FILE)
    with pytest.raises(ConfigError, match=f"{FILE} is missing"):
        run_eval(args)


def test_auto_mean_std_of_a_padded_dataset_is_what_the_loader_holds(tmp_path):
    from fixtures_data import make_idx

    root, content = make_idx(str(tmp_path), n_train=30)
    from figkd.data.normalization import resolve

    ds = build_dataset("mnist_32", root)
    norm = resolve("auto", "auto", "mnist_32", ds, log=lambda *a: None)
    padded = np.pad(content["train"][0], ((0, 0), (2, 2), (2, 2))).astype(np.float64) / 255
    assert norm.mean == pytest.approx((padded.mean(),) * 3) and norm.std == pytest.approx((padded.std(),) * 3)
