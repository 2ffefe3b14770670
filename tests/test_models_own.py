"""A model class of the user's own, in a .py file outside figkd (FIGKD_PLUGINS), distilled through the command
line with feature methods whose features come through forward hooks (FitNet: stage maps; CRD: the pooled
embedding), resumed bit-identically after SIGKILL, and evaluated, reported and analysed from its run
directories; and the one-line errors of a model that breaks the contract, a hook naming a module the model
lacks, and an hf: folder that is not a model.

The runs of this module share one full run (a module fixture, in this process: the plugin is registered here
for the module and the registry restored after it); the killed and resumed runs are subprocesses.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file

from figkd.cli import main
from figkd.engine.faults import FAULT_ENV
from figkd.models import registry

SRC = str(Path(__file__).resolve().parents[1] / "src")

PLUGIN = '''
from torch import nn

from figkd.models import register_model


class Block(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU()

    def forward(self, x):
        return self.relu(self.bn(self.conv(x)))


@register_model("tinycnn", stages=["stem", "layer1", "layer2", "layer3"], default_lr=0.05)
class TinyCNN(nn.Module):
    """Knows nothing of figkd: (N, 3, H, W) in, (N, num_classes) logits out."""

    def __init__(self, num_classes: int, width: int = 8):
        super().__init__()
        self.stem = Block(3, width, 1)
        self.layer1 = Block(width, width, 1)
        self.layer2 = Block(width, 2 * width, 2)
        self.layer3 = Block(2 * width, 4 * width, 2)
        self.head = nn.Linear(4 * width, num_classes)

    def forward(self, x):
        x = self.layer3(self.layer2(self.layer1(self.stem(x))))
        return self.head(x.mean((2, 3)))


@register_model("wrongshape")
def wrongshape(num_classes):
    return TinyCNN(num_classes + 1)


@register_model("badhook", stages=["stem", "layer9"])
def badhook(num_classes):
    return TinyCNN(num_classes)


@register_model("nostages")
def nostages(num_classes):
    return TinyCNN(num_classes)
'''

OBJECTIVES = ("kd", "figkd", "fitnet", "crd")
ARGS = ["--dataset", "digits_16", "--teacher", "resnet8", "--student", "tinycnn", "--objective", *OBJECTIVES,
        "--epochs", "2", "--set", "lr_milestones=[1]", "--device", "cpu", "--set", "progress=off", "--set",
        "tensorboard=false"]


def _cli(*args, env):
    full = {**os.environ, "PYTHONPATH": SRC + os.pathsep + os.environ.get("PYTHONPATH", ""), **env}
    return subprocess.run([sys.executable, "-m", "figkd", *args], capture_output=True, text=True, env=full,
                          timeout=600)


@pytest.fixture(scope="module")
def own(tmp_path_factory):
    """The plugin file, a resnet8 teacher, and the full 2-epoch run of the four objectives (in this process,
    with the plugin loaded through FIGKD_PLUGINS as the command line loads it; the registry restored after)."""
    from figkd import plugins
    from figkd.models import build_model, save_weights

    root = tmp_path_factory.mktemp("own")
    plugin = root / "mynets.py"
    plugin.write_text(PLUGIN)
    torch.manual_seed(0)
    save_weights(build_model("resnet8", 10), root / "teacher.safetensors")
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(registry, "_MODELS", dict(registry._MODELS))
        mp.setattr(registry, "_ALIASES", dict(registry._ALIASES))
        mp.setattr(plugins, "_LOADED", dict(plugins._LOADED))
        mp.setenv("FIGKD_PLUGINS", str(plugin))
        modules = set(sys.modules)
        assert main(["distill", *ARGS, "--teacher-ckpt", str(root / "teacher.safetensors"),
                     "--out", str(root / "full")]) == 0
        yield root
        for name in set(sys.modules) - modules:
            if name.startswith("figkd_plugin_"):
                del sys.modules[name]


def test_an_own_model_distils_with_features_through_hooks(own):
    for objective in OBJECTIVES:
        run = own / "full" / f"tinycnn-{objective}"
        metrics = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
        assert [m["epoch"] for m in metrics] == [1, 2]
        assert metrics[0][f"train/loss/{objective}"] > 0
    cfg = yaml.safe_load((own / "full" / "tinycnn-fitnet" / "config.yaml").read_text())
    assert cfg["resolved"]["architecture"] == "tinycnn"
    assert cfg["resolved"]["models"]["architecture"]["hooks"] == {
        "stages": ["stem", "layer1", "layer2", "layer3"], "pooled": "input of head", "prepool": None,
        "classifier": "head"}
    # CRD's heads were sized from the pooled embedding the hook took (the classifier's input: 32 wide)
    state = torch.load(own / "full" / "tinycnn-crd" / "checkpoints" / "epoch_0002.state.pt", weights_only=True)
    assert state["objective"]["terms.1.embed_student.linear.weight"].shape == (128, 32)
    # the exported weights are the user's class's own state dict: they load into it without figkd
    weights = load_file(str(own / "full" / "tinycnn-fitnet" / "checkpoints" / "best.safetensors"))
    namespace: dict = {}
    exec(compile(PLUGIN.replace("@register_model", "# @register_model"), "mynets", "exec"), namespace)
    namespace["TinyCNN"](num_classes=10).load_state_dict(weights)


def test_it_resumes_bit_identically_after_a_kill(own):
    """The students whose features come through hooks (FitNet's connector, CRD's heads and memory banks in the
    objective's state), killed in epoch 2 and resumed: bit-identical to the full run's (the students of a run
    are independent: each starts from the seed, and every random draw of a step is keyed)."""
    env = {"FIGKD_PLUGINS": str(own / "mynets.py")}
    args = [*ARGS[:ARGS.index("--objective") + 1], "fitnet", "crd", *ARGS[ARGS.index("--epochs"):],
            "--teacher-ckpt", str(own / "teacher.safetensors"), "--out", str(own / "resumed")]
    killed = _cli("distill", *args, env={**env, FAULT_ENV: "2:2"})
    assert killed.returncode != 0
    assert json.loads((own / "resumed" / "tinycnn-crd" / "checkpoints" / "last.json").read_text())["epoch"] == 1
    resumed = _cli("distill", *args, "--resume", env=env)
    assert resumed.returncode == 0, resumed.stderr
    assert "[tinycnn-crd] resuming after epoch 1" in resumed.stdout
    for objective in ("fitnet", "crd"):
        full, again = (own / run / f"tinycnn-{objective}" / "checkpoints" for run in ("full", "resumed"))
        a, b = load_file(str(full / "epoch_0002.safetensors")), load_file(str(again / "epoch_0002.safetensors"))
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), objective
        sa = torch.load(full / "epoch_0002.state.pt", weights_only=True)
        sb = torch.load(again / "epoch_0002.state.pt", weights_only=True)
        assert all(torch.equal(sa["objective"][k], sb["objective"][k]) for k in sa["objective"]), objective


def test_it_is_evaluated_reported_and_analysed_from_its_run_directories(own, capsys, monkeypatch):
    monkeypatch.setenv("FIGKD_PLUGINS", str(own / "mynets.py"))
    fitnet, crd = own / "full" / "tinycnn-fitnet", own / "full" / "tinycnn-crd"
    capsys.readouterr()
    assert main(["eval", str(fitnet), "--device", "cpu"]) == 0
    result = json.loads(capsys.readouterr().out)
    summary = json.loads((fitnet / "summary.json").read_text())
    assert result["model"] == "tinycnn" and result["top1"] == pytest.approx(summary["best_top1"])
    assert main(["report", str(own / "full")]) == 0
    report = capsys.readouterr().out
    assert "tinycnn from resnet8: fitnet" in report and "tinycnn from resnet8: crd" in report
    assert main(["analyze", "hf-accuracy", str(fitnet), str(crd), "--device", "cpu"]) == 0
    numbers = json.loads((fitnet / "analysis" / "hf_accuracy.json").read_text())
    assert [m["label"] for m in numbers["models"]] == ["tinycnn FitNet", "tinycnn CRD"] or \
        [m["run_dir"] for m in numbers["models"]] == [str(fitnet), str(crd)]


@pytest.mark.parametrize("student, objective, message", [
    ("wrongshape", "kd", "model 'wrongshape' returns logits of shape (2, 11) for a (2, 3, 16, 16) batch; expected "
                         "(2, 10)"),
    ("badhook", "kd", "model 'badhook': stages[1] names the module 'layer9', which TinyCNN does not have"),
    ("nostages", "fitnet", "fitnet cannot distil with the student nostages: it needs the student's stage feature maps "
                           "(student_feats), and register_model('nostages', stages=[...]) names no stage modules"),
    ("hf:{root}", "kd", "is not a Hugging Face model folder (no config.json"),
])
def test_a_model_that_breaks_the_contract_is_a_one_line_error(own, student, objective, message, capsys, monkeypatch):
    monkeypatch.setenv("FIGKD_PLUGINS", str(own / "mynets.py"))
    out = own / f"bad-{student.split(':')[0]}"
    capsys.readouterr()
    code = main(["distill", "--dataset", "digits_16", "--teacher", "resnet8", "--teacher-ckpt",
                 str(own / "teacher.safetensors"), "--student", student.format(root=own), "--objective", objective,
                 "--epochs", "1", "--device", "cpu", "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("figkd: error: ") and err.count("\n") == 1, err
    assert message in err
    assert not out.exists()


def test_register_model_states_its_rules(monkeypatch):
    from torch import nn

    from figkd.models import build_model, register_model

    monkeypatch.setattr(registry, "_MODELS", dict(registry._MODELS))
    monkeypatch.setattr(registry, "_ALIASES", dict(registry._ALIASES))
    with pytest.raises(ValueError, match=r"the name 'resnet8' is already registered \(HobbitLong/RepDistiller"):
        register_model("resnet8")(lambda num_classes: nn.Linear(3, num_classes))
    with pytest.raises(TypeError, match=r"must take num_classes \(the contract"):
        register_model("noclasses")(lambda classes: nn.Linear(3, classes))
    with pytest.raises(ValueError, match=r"model name 'my/net' must be letters, digits"):
        register_model("my/net")(lambda num_classes: nn.Linear(3, num_classes))
    register_model("notamodule")(lambda num_classes: 3)
    with pytest.raises(ValueError, match=r"model 'notamodule': its builder returned a int, not a torch.nn.Module"):
        build_model("notamodule", 10)
    register_model("raises")(lambda num_classes: 1 / 0)
    with pytest.raises(ValueError, match=r"model 'raises': its builder \(.*\) raised ZeroDivisionError: division by"):
        build_model("raises", 10)
    assert "raises" in registry.list_models(style="custom")


def test_its_run_without_the_plugin_names_the_plugin_file(own):
    # without FIGKD_PLUGINS, eval/export/analyze of the run said "unknown model 'tinycnn'" and listed the zoo
    result = _cli("eval", str(own / "full" / "tinycnn-fitnet"), "--device", "cpu", env={"FIGKD_PLUGINS": ""})
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"figkd: error: {own / 'full' / 'tinycnn-fitnet'} trained tinycnn, a model registered by a plugin "
        f"(figkd_plugin_mynets_{result.stderr.split('figkd_plugin_mynets_')[1][:8]}.TinyCNN, from a file mynets.py) "
        "that is not loaded now: set FIGKD_PLUGINS=path/to/mynets.py as when it was trained"], result.stderr
