"""'did you mean' for a mistyped name (issue 27, item 12): one helper (figkd.checks.did_you_mean, difflib as
config keys already did), used for config keys and dataset names, and ready for presets and term options."""

from __future__ import annotations

import pytest

from figkd.checks import did_you_mean
from figkd.config import ConfigError
from figkd.data import build_dataset, list_datasets
from figkd.losses import list_presets, term_defaults


@pytest.mark.parametrize("name, choices, hint", [
    ("fashionmnist", list_datasets(), " (did you mean 'fashion_mnist'?)"),
    ("CIFAR100", list_datasets(), " (did you mean 'cifar100'?)"),  # case is ignored
    ("figkdd", list_presets(), " (did you mean 'figkd'?)"),
    ("reducton", list(term_defaults("figkd")), " (did you mean 'reduction'?)"),
    ("epoch", ["epochs", "lr"], " (did you mean 'epochs'?)"),
    ("learning_rate", ["epochs", "lr"], ""),  # nothing close: no hint
    (3, ["epochs"], ""),  # not a string: no hint
])
def test_did_you_mean(name, choices, hint):
    assert did_you_mean(name, choices) == hint


def test_synonyms_win_over_spelling():
    assert did_you_mean("wd", ["weight_decay", "lr"], synonyms={"wd": "weight_decay"}) == \
        " (did you mean 'weight_decay'?)"


def test_a_mistyped_dataset_name_gets_a_suggestion():
    with pytest.raises(ConfigError, match=r"unknown dataset 'fashionmnist' \(did you mean 'fashion_mnist'\?\); "
                                          r"valid: cifar100, "):
        build_dataset("fashionmnist", None)


def test_eval_with_a_mistyped_dataset_is_one_line_with_a_suggestion(tmp_path, capsys):
    from figkd.cli import main
    from figkd.models import build_model, save_weights

    save_weights(build_model("resnet8", 10), tmp_path / "w.safetensors")
    code = main(["eval", str(tmp_path / "w.safetensors"), "--model", "resnet8", "--dataset", "digts"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "unknown dataset 'digts' (did you mean 'digits'?)" in err[0], err
