"""FiGKD at few classes says so (issue 27, item 6): `FiGKDLoss`, the `figkd` preset and the command line warn
once per process and class count, at build time, when the detail term as configured failed in the
measurements of docs/method.md §8 (benchmarks/figkd_scale.py), naming the options that worked."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import pytest

import figkd.losses.figkd as figkd_module
from figkd.cli import main
from figkd.losses import FiGKDLoss, build_objective
from figkd.losses.figkd import FEW_CLASSES, ONE_COEFFICIENT_CLASSES, FewClassesWarning

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def fresh_process(monkeypatch):
    """Each test as a fresh process: no class count warned about yet."""
    monkeypatch.setattr(figkd_module, "_WARNED", set())


def test_the_defaults_at_few_classes_warn_once_naming_the_fix():
    with pytest.warns(FewClassesWarning, match=r"FiGKD with 10 classes: the default detail term \(criterion mse, "
                                               r"reduction mean_per_band, on the 4 x 3 grid\) outweighs the "
                                               r"cross-entropy.*set criterion: kl \(or reduction: mean_all\)"):
        FiGKDLoss(10)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        FiGKDLoss(10)  # once per process and class count
        build_objective("figkd", num_classes=10)
    with pytest.warns(FewClassesWarning, match="FiGKD with 25 classes"):
        build_objective("figkd", num_classes=FEW_CLASSES)  # the preset, through the term's build


@pytest.mark.parametrize("num_classes, options", [
    (FEW_CLASSES + 1, {}), (100, {}),  # the paper's setting
    (10, {"criterion": "kl"}), (10, {"reduction": "mean_all"}), (10, {"standardize": True}),
    (10, {"dims": 1}),  # not measured: no claim
])
def test_no_warning_where_nothing_failed(num_classes, options):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        FiGKDLoss(num_classes, **options)


@pytest.mark.parametrize("options", [{}, {"criterion": "kl"}, {"reduction": "mean_all"}])
def test_up_to_four_classes_every_variant_warns(options):
    with pytest.warns(FewClassesWarning, match=r"FiGKD with 4 classes: their 2 x 2 logit grid gives detail subbands "
                                               r"of one coefficient each, so criterion kl distils nothing"):
        FiGKDLoss(ONE_COEFFICIENT_CLASSES, **options)


def test_a_grid_that_follows_the_logits_warns_at_its_first_call():
    import torch

    loss = FiGKDLoss(None)
    with pytest.warns(FewClassesWarning, match="FiGKD with 10 classes"):
        loss(torch.randn(2, 10), torch.randn(2, 10))


def test_the_threshold_is_the_measured_one():
    """FEW_CLASSES is the largest class count at which the default term failed in benchmarks/figkd_scale.py's
    recorded run (diverged, or a seed-mean top-1 a point or more below the student alone), and it did not fail
    at the next count measured."""
    data = json.loads((ROOT / "benchmarks" / "results" / "figkd_scale_cpu.json").read_text())

    def failed(row):
        tops = [(s["runs"]["default"]["top1"], s["runs"]["ce_alone"]["top1"]) for s in row["seeds"]]
        if any(d != d for d, _ in tops):  # nan: diverged
            return True
        return sum(a - d for d, a in tops) / len(tops) >= 1.0

    rows = data["synthetic"] + data["digits"]
    assert max(r["classes"] for r in rows if failed(r)) == FEW_CLASSES
    assert not any(failed(r) for r in rows if r["classes"] > FEW_CLASSES)


def test_the_command_line_says_it_on_one_line(tmp_path, capsys):
    from figkd.models import build_model, save_weights

    save_weights(build_model("resnet8", 10), tmp_path / "t.safetensors")
    code = main(["distill", "--dataset", "digits_16", "--teacher", "resnet8", "--teacher-ckpt",
                 str(tmp_path / "t.safetensors"), "--student", "resnet8", "--objective", "figkd", "--epochs", "1",
                 "--batch-size", "200000", "--device", "cpu", "--out", str(tmp_path / "run")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2  # stopped by the batch size, after the objective was built
    assert err[0].startswith("figkd: warning: FiGKD with 10 classes: the default detail term") and len(err) == 2
