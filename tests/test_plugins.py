"""A user's own loss term, outside the package (FIGKD_PLUGINS), named in an objective file (--objective
FILE.yaml) and run through the command line; and the errors of a plugin that cannot be imported. The
runs are subprocesses so the test process's term registry stays figkd's own."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from figkd.cli import main
from figkd.plugins import load_plugins

SRC = str(Path(__file__).resolve().parents[1] / "src")

PLUGIN = '''
import torch.nn.functional as F
from torch import nn

from figkd.losses import register_term


@register_term("mykd", inputs=("student_logits", "teacher_logits"), source="tests/test_plugins.py")
class MyKD(nn.Module):
    def __init__(self, temperature: float = 2.0):
        super().__init__()
        self.temperature = temperature

    def forward(self, student_logits, teacher_logits):
        t = self.temperature
        return F.kl_div(F.log_softmax(student_logits / t, 1), F.log_softmax(teacher_logits / t, 1),
                        reduction="batchmean", log_target=True) * t * t
'''


def _cli(*args, plugins: str):
    env = {**os.environ, "PYTHONPATH": SRC + os.pathsep + os.environ.get("PYTHONPATH", ""), "FIGKD_PLUGINS": plugins}
    return subprocess.run([sys.executable, "-m", "figkd", *args], capture_output=True, text=True, env=env, timeout=600)


def test_a_plugin_term_runs_from_an_objective_file(tmp_path):
    from figkd.models import build_model, save_weights

    (tmp_path / "mykd.py").write_text(PLUGIN)
    plugin = str(tmp_path / "mykd.py")
    torch.manual_seed(0)
    save_weights(build_model("resnet8", 10), tmp_path / "teacher.safetensors")
    (tmp_path / "mykd.yaml").write_text("- {term: ce, weight: 1.0}\n- {term: mykd, weight: 0.5, temperature: 3.0}\n")
    result = _cli("distill", "--dataset", "digits_16", "--teacher", "resnet8", "--teacher-ckpt",
                  str(tmp_path / "teacher.safetensors"), "--student", "resnet8", "--objective",
                  str(tmp_path / "mykd.yaml"), "--epochs", "1", "--set", "lr_milestones=[]", "--device", "cpu",
                  "--set", "progress=off", "--set", "tensorboard=false", "--out", str(tmp_path / "run"), plugins=plugin)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""  # no warning either (the milestones are set)
    [record] = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert record["train/loss/mykd"] > 0 and record["train/loss/ce"] > 0
    objective = yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())["objective"]
    assert objective == [{"term": "ce", "weight": 1.0}, {"term": "mykd", "weight": 0.5, "temperature": 3.0}]

    # without the plugin, the recorded run cannot be read back: the error names the term
    result = _cli("distill", "--config", str(tmp_path / "run" / "config.yaml"), "--resume", plugins="")
    assert result.returncode == 2 and result.stderr.count("\n") == 1 and "mykd" in result.stderr


@pytest.mark.parametrize("entry, message", [
    ("no_such_module_xyz", "cannot import 'no_such_module_xyz' (ModuleNotFoundError"),
    ("missing_plugin.py", "plugin file missing_plugin.py does not exist"),
])
def test_a_plugin_that_cannot_be_imported_is_a_one_line_error(entry, message, monkeypatch, capsys, tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("FIGKD_PLUGINS", entry)
    assert main(["models"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("figkd: error: FIGKD_PLUGINS: ") and message in err and err.count("\n") == 1


def test_a_plugin_that_raises_names_the_exception(tmp_path):
    (tmp_path / "broken.py").write_text("raise RuntimeError('boom')\n")
    with pytest.raises(Exception, match=r"cannot import '.*broken.py' \(RuntimeError: boom\)"):
        load_plugins(str(tmp_path / "broken.py"))


def test_a_term_named_as_a_preset_gets_the_way_to_use_it(monkeypatch):
    from figkd.losses import preset_spec, registry

    monkeypatch.setitem(registry._TERMS, "mykd", registry._TERMS["kd"])  # as a plugin would register it
    with pytest.raises(ValueError, match=r"'mykd' is a loss term, not an objective preset: give a term list, e.g. "
                                         r"--set 'objective=\[\{term: ce, weight: 1.0\}, \{term: mykd"):
        preset_spec("mykd")
