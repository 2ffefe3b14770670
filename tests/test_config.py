"""Run configuration: defaults are the paper's, overrides are validated, errors name the fix."""

import pytest

from figkd.config import ConfigError, RunConfig, apply_overrides, load_yaml, parse_set
from figkd.models import default_lr


def test_defaults_are_the_paper_recipe():
    # Paper Section 4.2: SGD momentum 0.9, weight decay 5e-4, 240 epochs, batch 64, decay 0.1 at 150/180/210.
    cfg = RunConfig()
    assert (cfg.epochs, cfg.batch_size, cfg.momentum, cfg.weight_decay) == (240, 64, 0.9, 5e-4)
    assert cfg.lr_milestones == [150, 180, 210] and cfg.lr_decay == 0.1


@pytest.mark.parametrize("name,lr", [("resnet8x4", 0.05), ("ShuffleV1", 0.01), ("shufflenetv2", 0.01),
                                     ("mobilenetv2", 0.01), ("MobileNetV2", 0.01), ("mobile_half", 0.01),
                                     ("vgg8", 0.05), ("mobilenetv1_imagenet", 0.05)])
def test_default_lr_follows_the_paper(name, lr):
    assert default_lr(name) == lr


def test_set_parses_yaml_values():
    out = parse_set(["epochs=3", "lr_milestones=[1, 2]", "objective=kd", "data_root=null"])
    assert out == {"epochs": 3, "lr_milestones": [1, 2], "objective": "kd", "data_root": None}


def test_unknown_key_is_named_with_a_suggestion():
    with pytest.raises(ConfigError, match="unknown config key 'epoch'.*did you mean 'epochs'"):
        parse_set(["epoch=3"])
    with pytest.raises(ConfigError, match="valid keys"):
        apply_overrides(RunConfig(), {"nope": 1})


@pytest.mark.parametrize("key,value", [("epochs", 0), ("batch_size", -1), ("amp", "fp8"), ("lr", -0.1),
                                       ("lr_milestones", "150")])
def test_bad_values_are_refused(key, value):
    with pytest.raises(ConfigError, match=key):
        apply_overrides(RunConfig(), {key: value})


def test_yaml_file(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("epochs: 5\nobjective:\n  - {term: ce, weight: 1.0}\n  - {term: figkd, weight: 2.0}\n")
    data = load_yaml(p)
    cfg = apply_overrides(RunConfig(), data)
    assert cfg.epochs == 5 and cfg.objective[1] == {"term": "figkd", "weight": 2.0}
    (tmp_path / "bad.yaml").write_text("epocs: 5\n")
    with pytest.raises(ConfigError, match="epocs"):
        load_yaml(tmp_path / "bad.yaml")
    with pytest.raises(ConfigError, match="does not exist"):
        load_yaml(tmp_path / "missing.yaml")


def test_list_defaults_are_not_shared():
    a, b = RunConfig(), RunConfig()
    a.lr_milestones.append(1)
    assert b.lr_milestones == [150, 180, 210]


def test_help_table_lists_every_field():
    table = RunConfig.help_table()
    for name in RunConfig.field_names():
        assert f"  {name} " in table


def test_names_must_be_strings():
    with pytest.raises(ConfigError, match="student must be a single name.*--student A B"):
        apply_overrides(RunConfig(), {"student": ["resnet8", "resnet14"]})
