"""Checkpoints: safetensors round trip, mdistiller/RepDistiller .pth teachers, refusals and mismatches."""

from __future__ import annotations

import collections
import pickle

import pytest
import torch
from safetensors.torch import load_file

from figkd.models import (
    CheckpointError,
    build_model,
    load_state_dict_file,
    load_teacher,
    load_weights,
    save_weights,
)


class NotATensor:
    """A custom class: pickling it into a checkpoint makes torch.load(weights_only=True) refuse it."""


def trained_like(name: str = "resnet8", num_classes: int = 100, seed: int = 0):
    """A model whose weights and BN statistics differ from a fresh one."""
    torch.manual_seed(seed)
    model = build_model(name, num_classes)
    with torch.no_grad():
        for tensor in model.state_dict().values():
            if tensor.is_floating_point():
                tensor.add_(0.05 * torch.randn_like(tensor))
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_var.abs_().add_(0.5)
                module.num_batches_tracked.fill_(1234)
    return model.eval()


@pytest.fixture(scope="module")
def inputs():
    return torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(1))


def test_save_load_round_trip(tmp_path, inputs):
    model = trained_like()
    path = save_weights(model, tmp_path / "sub" / "resnet8.safetensors", metadata={"model": "resnet8"})
    assert path.is_file()
    assert [p.name for p in path.parent.iterdir()] == ["resnet8.safetensors"]  # no temporary file left
    restored = load_weights(build_model("resnet8", 100), path).eval()
    with torch.no_grad():
        torch.testing.assert_close(restored(inputs), model(inputs), rtol=0, atol=0)
    assert set(load_file(path)) == set(model.state_dict())
    assert restored.layer1[0].bn1.num_batches_tracked.item() == 1234


def test_save_overwrites_atomically(tmp_path):
    path = tmp_path / "w.safetensors"
    save_weights(build_model("resnet8", 10), path)
    save_weights(build_model("resnet8", 100), path)
    assert load_file(path)["fc.weight"].shape == (100, 64)
    assert [p.name for p in tmp_path.iterdir()] == ["w.safetensors"]


def test_save_unwraps_compile_and_dataparallel_and_channels_last(tmp_path):
    model = trained_like().to(memory_format=torch.channels_last)
    save_weights(torch.nn.DataParallel(model), tmp_path / "dp.safetensors")
    save_weights(torch.compile(model, backend="eager"), tmp_path / "compiled.safetensors")
    for name in ("dp", "compiled"):
        state = load_file(tmp_path / f"{name}.safetensors")
        assert set(state) == set(model.state_dict())
        torch.testing.assert_close(state["conv1.weight"], model.conv1.weight.detach(), rtol=0, atol=0)


def test_load_teacher_reads_a_fabricated_mdistiller_checkpoint(tmp_path, inputs):
    model = trained_like("resnet8x4")
    path = tmp_path / "resnet8x4_vanilla" / "ckpt_epoch_240.pth"
    path.parent.mkdir()
    torch.save({"model": model.state_dict(), "epoch": 240}, path)
    teacher = load_teacher("resnet8x4", path, 100)
    assert not teacher.training
    with torch.no_grad():
        torch.testing.assert_close(teacher(inputs), model(inputs), rtol=0, atol=0)


def test_load_teacher_reads_repdistiller_dataparallel_checkpoint_with_optimizer(tmp_path, inputs):
    # RepDistiller saves {'epoch', 'model', 'best_acc', 'optimizer'}; DataParallel adds "module.".
    model = trained_like("wrn_16_1")
    state = collections.OrderedDict(("module." + k, v) for k, v in model.state_dict().items())
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    path = tmp_path / "ckpt.pth"
    checkpoint = {
        "epoch": 240,
        "model": state,
        "best_acc": torch.tensor(75.6),
        "optimizer": optimizer.state_dict(),
    }
    torch.save(checkpoint, path)
    teacher = load_teacher("wrn_16_1", path, 100)
    with torch.no_grad():
        torch.testing.assert_close(teacher(inputs), model(inputs), rtol=0, atol=0)


@pytest.mark.parametrize("layout", ["net", "state_dict", "flat", "compiled"])
def test_other_checkpoint_layouts(tmp_path, layout):
    model = trained_like()
    state = model.state_dict()
    payload = {
        "net": {"net": state, "acc": 70.1},
        "state_dict": {"state_dict": state},
        "flat": state,
        "compiled": {"model": {"_orig_mod." + k: v for k, v in state.items()}},
    }[layout]
    torch.save(payload, tmp_path / "c.pth")
    loaded = load_state_dict_file(tmp_path / "c.pth")
    assert list(loaded) == list(state)


def test_checkpoint_without_num_batches_tracked_loads(tmp_path, inputs):
    # Checkpoints written before PyTorch 0.4.1 have no num_batches_tracked buffers.
    model = trained_like()
    state = {k: v for k, v in model.state_dict().items() if not k.endswith("num_batches_tracked")}
    torch.save({"model": state}, tmp_path / "old.pth")
    teacher = load_teacher("resnet8", tmp_path / "old.pth", 100)
    with torch.no_grad():
        torch.testing.assert_close(teacher(inputs), model(inputs), rtol=0, atol=0)


def test_pickled_custom_class_is_refused(tmp_path):
    path = tmp_path / "evil.pth"
    torch.save({"model": trained_like().state_dict(), "args": NotATensor()}, path)
    with pytest.raises(CheckpointError) as info:
        load_teacher("resnet8", path, 100)
    message = str(info.value)
    assert "refusing to load" in message and "weights_only=True" in message
    assert "NotATensor" in message  # names what it would have had to unpickle
    assert "arbitrary code" in message
    assert isinstance(info.value.__cause__, pickle.UnpicklingError)


def test_wrong_class_count_names_shapes_and_checkpoint_classes(tmp_path):
    torch.save({"model": trained_like().state_dict()}, tmp_path / "c.pth")
    with pytest.raises(CheckpointError) as info:
        load_teacher("resnet8", tmp_path / "c.pth", 200)
    message = str(info.value)
    assert "fc.weight: checkpoint (100, 64) vs model (200, 64)" in message
    assert "has 100 outputs" in message and "num_classes=200" in message
    assert "missing keys" not in message and "unexpected keys" not in message


def test_wrong_architecture_names_missing_and_unexpected_keys(tmp_path):
    torch.save({"model": trained_like("resnet8").state_dict()}, tmp_path / "c.pth")
    with pytest.raises(CheckpointError) as info:
        load_teacher("vgg8", tmp_path / "c.pth", 100)
    message = str(info.value)
    assert "missing keys" in message and "block0.0.weight" in message
    assert "unexpected keys (" in message and "bn1.running_mean" in message
    assert "another architecture" in message and "fc.weight" in message


def test_missing_file_says_where_teachers_are_published(tmp_path):
    path = tmp_path / "cifar_teachers" / "resnet32x4_vanilla" / "ckpt_epoch_240.pth"
    with pytest.raises(FileNotFoundError) as info:
        load_teacher("resnet32x4", path, 100)
    message = str(info.value)
    assert str(path) in message
    assert "cifar_teachers.tar" in message and "megvii-research/mdistiller/releases" in message


@pytest.mark.parametrize("content", [b"", b"not a checkpoint at all", b"\x80\x02garbage"])
def test_unreadable_files(tmp_path, content):
    (tmp_path / "bad.pth").write_bytes(content)
    with pytest.raises(CheckpointError, match="bad.pth"):
        load_state_dict_file(tmp_path / "bad.pth")


def test_file_without_weights(tmp_path):
    torch.save({"epoch": 3, "best_acc": 1.0}, tmp_path / "c.pth")
    with pytest.raises(CheckpointError, match="no weights found.*'epoch'"):
        load_state_dict_file(tmp_path / "c.pth")
