"""A term's constraint that its build context decides (the class count) is checked when the objective is
built, not at the first training step: `figkd distill --objective ldrld` on a 5-class folder is one line,
exit status 2, before any run directory is written (issue 27, item 3)."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch
from PIL import Image

from figkd.cli import main
from figkd.losses import build_objective


@pytest.mark.parametrize("spec, num_classes, pattern", [
    ("ldrld", 5, r"ldrld: k = 7 needs more than 7 classes .* but there are 5: set k below 5, e\.g\. "
                 r"\{term: ldrld, k: 4\}"),
    ("ldrld", 7, r"k = 7 needs more than 7 classes"),
    ([{"term": "ldrld", "k": 2}], 2, r"ldrld needs at least 3 classes .* but there are 2"),
    ("dkd", 1, r"dkd needs at least 2 classes \(NCKD is over the non-target classes\), but there is 1"),
    ("rld", 1, r"rld needs at least 2 classes .* but there is 1"),
])
def test_class_count_constraints_are_checked_at_build_time(spec, num_classes, pattern):
    with pytest.raises(ValueError, match=pattern):
        build_objective(spec, num_classes=num_classes)


@pytest.mark.parametrize("spec, num_classes", [("ldrld", 8), ([{"term": "ldrld", "k": 4}], 5), ("dkd", 2),
                                               ("rld", 2), ("ldrld", None), ("dkd", None)])
def test_a_class_count_that_fits_or_is_unknown_builds_and_runs(spec, num_classes):
    objective = build_objective(spec, num_classes=num_classes)
    c = num_classes or 8
    s, t = torch.randn(4, c), torch.randn(4, c)
    out = objective(student_logits=s, teacher_logits=t, target=torch.arange(4) % c, epoch=torch.tensor(30.0))
    assert torch.isfinite(out["total"])


def test_distill_ldrld_on_five_classes_is_one_line_and_writes_nothing(tmp_path, capsys):
    from figkd.models import build_model, save_weights

    rng = np.random.default_rng(0)
    for split in ("train", "val"):
        for c in range(5):
            (tmp_path / "five" / split / f"c{c}").mkdir(parents=True)
            for i in range(2):
                Image.fromarray(rng.integers(0, 255, (8, 8, 3), dtype=np.uint8)).save(
                    tmp_path / "five" / split / f"c{c}" / f"{i}.png")
    torch.manual_seed(0)
    save_weights(build_model("resnet8", 5), tmp_path / "teacher.safetensors")
    code = main(["distill", "--dataset", "imagefolder_32", "--data-root", str(tmp_path / "five"), "--teacher",
                 "resnet8", "--teacher-ckpt", str(tmp_path / "teacher.safetensors"), "--student", "resnet8",
                 "--objective", "ldrld", "--epochs", "1", "--batch-size", "2", "--device", "cpu",
                 "--out", str(tmp_path / "run")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and re.search(r"k = 7 needs more than 7 classes.*set k below 5", err[0]), err
    assert not (tmp_path / "run").exists()
