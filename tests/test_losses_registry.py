"""A method is one file: its registration carries its options, presets and help, and everything else - the
objective, the config checks, the command line's help, ``figkd.losses.__all__`` - reads the registry.

The new method of the first test is written into a temporary folder and imported as a plugin
(``FIGKD_PLUGINS``); `registries` puts the term and preset registries, the loaded plugins and the imported
modules back afterwards, so no other test sees it.
"""

import contextlib
import sys

import pytest
import torch

import figkd.losses
from figkd import plugins
from figkd.cli import main
from figkd.config import ConfigError, RunConfig
from figkd.losses import build_objective, describe, list_presets, preset_spec, register_term, registry, term_spec
from figkd.losses.description import label
from figkd.plugins import load_plugins

METHOD = '''"""MyKD: KD with a power on the KL (a complete method in one file)."""
import torch
import torch.nn.functional as F
from torch import nn

from figkd.losses import register_term


def mykd_loss(student_logits, teacher_logits, *, temperature, power):
    """T^2 * KL(softmax(t / T) || softmax(s / T)) ** power, batch mean; the teacher detached."""
    t = temperature
    log_s = F.log_softmax(student_logits.float() / t, dim=1)
    log_t = F.log_softmax(teacher_logits.detach().float() / t, dim=1)
    return F.kl_div(log_s, log_t, reduction="batchmean", log_target=True).pow(power) * t * t


@register_term("mykd", inputs=("student_logits", "teacher_logits"), function=mykd_loss,
               source="tests/test_losses_registry.py", help="my KD: the KL to a power",
               presets={
                   # CE 0.5 + MyKD 2 at T 3 (power: the term's default)
                   "mykd": [{"term": "ce", "weight": 0.5}, {"term": "mykd", "weight": 2.0, "temperature": 3.0}],
               })
class MyKD(nn.Module):
    def __init__(self, temperature: float = 2.0, power: float = 1.0):   # the options, declared once
        super().__init__()
        self.temperature, self.power = temperature, power

    def forward(self, student_logits, teacher_logits):
        return mykd_loss(student_logits, teacher_logits, temperature=self.temperature, power=self.power)
'''


@contextlib.contextmanager
def _restored():
    """Put the registries and the loaded plugins back as they were, and forget the plugin modules imported
    meanwhile (only those: a figkd module imported for the first time stays, there is one copy of each)."""
    terms, presets = dict(registry._TERMS), dict(registry._PRESETS)
    loaded, modules = dict(plugins._LOADED), {m for m in sys.modules if m.startswith("figkd_plugin_")}
    try:
        yield
    finally:
        registry._TERMS.clear()
        registry._TERMS.update(terms)
        registry._PRESETS.clear()
        registry._PRESETS.update(presets)
        plugins._LOADED.clear()
        plugins._LOADED.update(loaded)
        for name in {m for m in sys.modules if m.startswith("figkd_plugin_")} - modules:
            del sys.modules[name]


@pytest.fixture
def registries():
    with _restored():
        yield


def test_a_new_method_is_one_file(tmp_path, monkeypatch, capsys, registries):
    (tmp_path / "mykd.py").write_text(METHOD)
    monkeypatch.setenv("FIGKD_PLUGINS", str(tmp_path / "mykd.py"))

    # the command line imports it and lists its term (options, help) and its preset
    with pytest.raises(SystemExit) as exit_:
        main(["distill", "--help"])
    out = capsys.readouterr().out
    assert exit_.value.code == 0
    assert "  mykd(temperature=2.0, power=1.0) <- student_logits, teacher_logits\n      my KD: the KL to a power" in out
    assert "  mykd             ce 0.5 + mykd 2\n" in out
    assert list_presets()[-5:] == ["mykd", "kd+ls", "dkd+ls", "mlkd+ls", "figkd+ls"]  # after figkd's own

    # the objective: the preset resolves to every weight and option, and runs
    objective = build_objective("mykd", num_classes=10)
    assert objective.spec == [{"term": "ce", "name": "ce", "weight": 0.5, "warmup": 0},
                              {"term": "mykd", "name": "mykd", "weight": 2.0, "warmup": 0, "temperature": 3.0,
                               "power": 1.0}]
    torch.manual_seed(0)
    s, t, y = torch.randn(4, 10, requires_grad=True), torch.randn(4, 10), torch.randint(0, 10, (4,))
    out = objective(student_logits=s, teacher_logits=t, target=y)
    [module] = load_plugins(str(tmp_path / "mykd.py"))  # the module the command line imported
    expected = 2.0 * module.mykd_loss(s, t, temperature=3.0, power=1.0)
    assert torch.equal(out["mykd"], expected) and torch.isfinite(out["total"])
    out["total"].backward()
    assert s.grad is not None

    # the config checks: the preset and a term list with its options; its label and directory name
    assert RunConfig(objective="mykd").objective == "mykd"
    terms = [{"term": "ce"}, {"term": "mykd", "weight": 0.5, "power": 2.0}]
    assert RunConfig(objective=terms).objective == terms
    assert build_objective(terms).spec[1]["power"] == 2.0
    with pytest.raises(ConfigError, match=r"objective term #1 \(mykd\): weight must be a number >= 0, got -1"):
        RunConfig(objective=[{"term": "ce"}, {"term": "mykd", "weight": -1}])
    with pytest.raises(ValueError, match=r"objective term 'mykd': unknown option\(s\) \['tau'\]"):
        build_objective([{"term": "mykd", "tau": 2.0}])
    assert label(preset_spec("mykd")) == "mykd" and label(terms) == "ce + 0.5*mykd(power=2)"
    assert describe(terms).dirname.startswith("ce+mykd-")
    assert term_spec("mykd").function is module.mykd_loss


def test_the_registries_are_put_back(tmp_path):
    (tmp_path / "mykd.py").write_text(METHOD)
    with _restored():
        load_plugins(str(tmp_path / "mykd.py"))
        assert "mykd" in figkd.losses.list_terms() and "mykd" in list_presets()
    assert "mykd" not in figkd.losses.list_terms() and "mykd" not in list_presets()
    assert not [m for m in sys.modules if m.startswith("figkd_plugin_mykd")]


def test_all_is_derived_from_the_registry():
    names = set(figkd.losses.__all__)
    for name in figkd.losses.list_terms():
        spec = term_spec(name)
        assert spec.help and spec.function is not None, name
        assert {spec.cls.__name__, spec.function.__name__} <= names, name
        assert getattr(figkd.losses, spec.function.__name__) is spec.function
    assert all(hasattr(figkd.losses, n) for n in names)
    # the public API of DESIGN.md
    assert {"kd_loss", "KDLoss", "figkd_loss", "FiGKDLoss", "hcl_loss", "ReviewKD", "build_objective", "list_terms",
            "list_presets", "preset_spec", "register_term", "term_defaults", "term_spec"} <= names
    assert "``figkd`` (`FiGKDLoss`, `figkd_loss`): FiGKD" in figkd.losses.__doc__


def test_presets_state_only_what_differs_from_the_defaults():
    for name in list_presets():
        for entry in preset_spec(name):
            defaults = term_spec(entry["term"]).defaults
            assert entry.get("weight", 2.0) != 1.0 and entry.get("warmup", 1) != 0, (name, entry)
            same = [k for k, v in entry.items() if k in defaults and defaults[k] == v and k != "warmup"]
            assert not same, f"preset {name!r} repeats the defaults of {same}"


def test_registration_errors_register_nothing(registries):
    class Term(torch.nn.Module):
        def __init__(self, temperature: float = 4.0):
            super().__init__()

        def forward(self, student_logits, teacher_logits):
            return student_logits.sum()

    def loss(student_logits, teacher_logits, temperature=2.0):
        return student_logits.sum()

    inputs = ("student_logits", "teacher_logits")
    with pytest.raises(TypeError, match=r"loss's default temperature=2.0 differs from the term's 4.0"):
        register_term("t1", inputs=inputs, source="s", function=loss)(Term)
    with pytest.raises(ValueError, match="preset named 'kd' is already registered"):
        register_term("t2", inputs=inputs, source="s", presets={"kd": [{"term": "t2"}]})(Term)
    with pytest.raises(ValueError, match="preset name 'a/b' must be letters"):
        register_term("t3", inputs=inputs, source="s", presets={"a/b": [{"term": "t3"}]})(Term)
    with pytest.raises(ValueError, match="must be a non-empty list of term entries"):
        register_term("t4", inputs=inputs, source="s", presets={"t4": {"term": "t4"}})(Term)
    assert not {"t1", "t2", "t3", "t4"} & set(registry._TERMS) and "a/b" not in registry._PRESETS


def test_docs_table_of_terms_is_the_registry():
    """docs/method.md section 4: one row per registered term, naming its pure function and its module."""
    from pathlib import Path

    text = (Path(__file__).resolve().parents[1] / "docs" / "method.md").read_text()
    table = text[text.index("| term | function / module |"):]
    cells = [row.split(" | ") for row in table[:table.index("\n\n")].splitlines()[2:]]
    rows = {cell[0].strip("| `"): cell[1] for cell in cells}
    assert sorted(rows) == figkd.losses.list_terms()
    for name, names in rows.items():
        spec = term_spec(name)
        assert f"`{spec.function.__name__}`" in names and f"`{spec.cls.__name__}`" in names, name
