"""Pretrained initialisation (``--init PATH``, `figkd.models.init_from`): weights of another class count load
with the head re-initialised and everything else bit-equal to the file; wrapper prefixes are stripped; a
torchvision ResNet state dict initialises the zoo's ``resnet18_imagenet``; another architecture is refused;
``figkd train --init`` fine-tunes from the file and says what it loaded."""

from __future__ import annotations

import pytest
import torch
import yaml
from safetensors.torch import save_file

from figkd.cli import main
from figkd.errors import CheckpointError
from figkd.models import build_model, init_from, save_weights


def _torchvision_resnet18_keys(num_classes: int = 1000) -> dict[str, tuple[int, ...]]:
    """The state-dict keys and shapes of torchvision's ``resnet18`` (``torchvision/models/resnet.py``: a 7x7
    ``conv1`` and ``bn1``, four ``layer<i>`` of two ``BasicBlock`` each - ``conv1``/``bn1``/``conv2``/``bn2``,
    a ``downsample`` of a 1x1 conv (``.0``) and a BatchNorm (``.1``) where the width or stride changes - and
    ``fc``), written from that file's structure, independently of figkd's model."""
    def bn(prefix: str, c: int) -> dict[str, tuple[int, ...]]:
        return {f"{prefix}.weight": (c,), f"{prefix}.bias": (c,), f"{prefix}.running_mean": (c,),
                f"{prefix}.running_var": (c,), f"{prefix}.num_batches_tracked": ()}

    keys = {"conv1.weight": (64, 3, 7, 7), **bn("bn1", 64)}
    inplanes = 64
    for i, planes in enumerate((64, 128, 256, 512), start=1):
        for j in range(2):
            p = f"layer{i}.{j}"
            cin = inplanes if j == 0 else planes
            keys.update({f"{p}.conv1.weight": (planes, cin, 3, 3), **bn(f"{p}.bn1", planes),
                         f"{p}.conv2.weight": (planes, planes, 3, 3), **bn(f"{p}.bn2", planes)})
            if j == 0 and (i > 1 or inplanes != planes):
                keys.update({f"{p}.downsample.0.weight": (planes, inplanes, 1, 1), **bn(f"{p}.downsample.1", planes)})
        inplanes = planes
    keys.update({"fc.weight": (num_classes, 512), "fc.bias": (num_classes,)})
    return keys


def _random_state(shapes: dict[str, tuple[int, ...]]) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    return {k: (torch.randint(0, 100, s, generator=g) if k.endswith("num_batches_tracked")
                else torch.randn(s, generator=g)) for k, s in shapes.items()}


def test_a_state_dict_of_another_class_count_loads_with_a_new_head(tmp_path):
    torch.manual_seed(0)
    source = build_model("resnet8", 100).state_dict()
    torch.save({"state_dict": {f"module.{k}": v for k, v in source.items()}}, tmp_path / "pretrained.pth")
    torch.manual_seed(1)
    model = build_model("resnet8", 10)
    fresh = {k: v.clone() for k, v in model.state_dict().items()}
    summary = init_from(model, tmp_path / "pretrained.pth")
    loaded = model.state_dict()
    assert [k for k, *_ in summary.reinitialised] == ["fc.weight", "fc.bias"]
    assert summary.missing == [] and summary.unexpected == []
    for key, value in loaded.items():
        expected = fresh[key] if key.startswith("fc.") else source[key]
        assert torch.equal(value, expected), key
    assert "re-initialised (another class count): fc.weight (100, 64) -> (10, 64), fc.bias (100,) -> (10,)" \
        in summary.line()


def test_a_torchvision_resnet_state_dict_initialises_the_zoo_resnet18(tmp_path):
    shapes = _torchvision_resnet18_keys()
    model = build_model("resnet18_imagenet", 10)
    own = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    assert own == {**shapes, "fc.weight": (10, 512), "fc.bias": (10,)}  # torchvision's names and shapes
    state = _random_state(shapes)
    save_file({f"model.{k}": v for k, v in state.items()}, tmp_path / "resnet18.safetensors")  # a wrapper's prefix
    summary = init_from(model, tmp_path / "resnet18.safetensors")
    assert len(summary.loaded) == len(shapes) - 2 and not summary.missing and not summary.unexpected
    loaded = model.state_dict()
    assert all(torch.equal(loaded[k], state[k]) for k in shapes if not k.startswith("fc."))


def test_another_architecture_is_refused(tmp_path):
    save_weights(build_model("resnet14", 10), tmp_path / "resnet14.safetensors")
    save_weights(build_model("vgg8", 10), tmp_path / "vgg8.safetensors")
    with pytest.raises(CheckpointError, match=r"shapes differ outside the classifier"):
        init_from(build_model("resnet8x4", 10), tmp_path / "resnet14.safetensors")
    with pytest.raises(CheckpointError, match=r"shares no tensor with model 'resnet8'"):
        init_from(build_model("resnet8", 10), tmp_path / "vgg8.safetensors")


def test_figkd_train_init_fine_tunes_from_the_file(tmp_path, capsys):
    torch.manual_seed(0)
    save_weights(build_model("resnet8", 100), tmp_path / "pretrained.safetensors")
    out = tmp_path / "run"
    assert main(["train", "--model", "resnet8", "--init", str(tmp_path / "pretrained.safetensors"), "--dataset",
                 "digits_16", "--epochs", "1", "--set", "lr_milestones=[]", "--device", "cpu", "--set",
                 "progress=off", "--set", "tensorboard=false", "--out", str(out)]) == 0
    log = capsys.readouterr().out
    assert (f"[resnet8] --init {tmp_path / 'pretrained.safetensors'}: loaded 54 of the model's 56 tensors; "
            "re-initialised (another class count): fc.weight (100, 64) -> (10, 64), fc.bias (100,) -> (10,)") in log
    assert yaml.safe_load((out / "config.yaml").read_text())["init"] == str(tmp_path / "pretrained.safetensors")
    # a missing file: one line, nothing written
    assert main(["train", "--model", "resnet8", "--init", str(tmp_path / "nothing.pth"), "--dataset", "digits_16",
                 "--device", "cpu", "--out", str(tmp_path / "other")]) == 2
    assert "--init" in capsys.readouterr().err and not (tmp_path / "other").exists()


def test_figkd_train_init_takes_a_run_directory_as_teacher_ckpt_does(tmp_path, capsys):
    # "--init RUN_DIR" said "no such file" of an existing run directory
    common = ["--dataset", "digits_16", "--epochs", "1", "--set", "lr_milestones=[]", "--device", "cpu", "--set",
              "progress=off", "--set", "tensorboard=false", "--set", "steps_per_epoch=2"]
    first, second = tmp_path / "first", tmp_path / "second"
    assert main(["train", "--model", "resnet8", *common, "--out", str(first)]) == 0
    capsys.readouterr()
    assert main(["train", "--model", "resnet8", "--init", str(first), *common, "--out", str(second)]) == 0
    assert f"--init {first / 'checkpoints' / 'best.safetensors'}: loaded 56 of the model's 56 tensors" in \
        capsys.readouterr().out
    assert main(["train", "--model", "resnet8", "--init", str(first / "checkpoints" / "nope"), *common,
                 "--out", str(tmp_path / "third")]) == 2
    assert "--init" in capsys.readouterr().err and not (tmp_path / "third").exists()
