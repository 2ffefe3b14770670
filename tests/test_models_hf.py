"""Hugging Face image classifiers as teachers and students (``hf:<folder>``): a tiny randomly initialised ViT
(with an image processor of its own mean/std) and ConvNeXt (without one), built from configs and written with
save_pretrained into a temporary folder, distilled with figkd's zoo resnet8 on digits at 16x16, in both roles;
the ViT's normalisation is applied (checked against its image processor) and recorded; a feature method the
ViT cannot serve, and a folder that is not a model, are one-line errors with nothing written."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

transformers = pytest.importorskip("transformers")

from figkd.cli import main  # noqa: E402
from figkd.models import build_model, save_weights, set_input_normalization  # noqa: E402

COMMON = ["--dataset", "digits_16", "--epochs", "1", "--set", "lr_milestones=[]", "--device", "cpu", "--set",
          "progress=off", "--set", "tensorboard=false"]
#: The ViT's own normalisation (its preprocessor_config.json), unlike digits' recipe.
VIT_MEAN, VIT_STD = [0.5, 0.4, 0.3], [0.2, 0.25, 0.3]


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    """``vit``: 10 classes, 32x32 input, an image processor; ``convnext``: 5 classes, no image processor;
    ``convnext10.safetensors``: a ConvNeXt of 10 classes' weights; ``resnet8.safetensors``: a zoo teacher."""
    root = tmp_path_factory.mktemp("hf")
    torch.manual_seed(0)
    vit = transformers.ViTForImageClassification(transformers.ViTConfig(
        image_size=32, patch_size=8, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
        intermediate_size=32, num_labels=10))
    vit.save_pretrained(root / "vit")
    transformers.ViTImageProcessor(size={"height": 32, "width": 32}, image_mean=VIT_MEAN,
                                   image_std=VIT_STD).save_pretrained(root / "vit")
    config = dict(num_stages=2, hidden_sizes=[8, 16], depths=[1, 1], image_size=32)
    transformers.ConvNextForImageClassification(transformers.ConvNextConfig(**config, num_labels=5)) \
        .save_pretrained(root / "convnext")
    convnext10 = transformers.ConvNextForImageClassification(transformers.ConvNextConfig(**config, num_labels=10))
    save_weights(convnext10, root / "convnext10.safetensors")
    save_weights(build_model("resnet8", 10), root / "resnet8.safetensors")
    return root


def _record(run: Path) -> dict:
    return yaml.safe_load((run / "config.yaml").read_text())["resolved"]


def test_a_vit_teacher_from_its_folder_distils_a_zoo_student(folders, capsys):
    out = folders / "vit-teacher"
    assert main(["distill", *COMMON, "--teacher", f"hf:{folders / 'vit'}", "--student", "resnet8",
                 "--objective", "kd", "--out", str(out)]) == 0
    log = capsys.readouterr().out
    assert f"hf:{folders / 'vit'}: input resized to 32x32, normalised with its image processor's mean" in log
    teacher = _record(out)["models"]["teacher"]
    assert teacher["source"] == f"hf:{folders / 'vit'}" and teacher["input_size"] == [32, 32]
    assert teacher["normalization"]["mean"] == VIT_MEAN and teacher["normalization"]["std"] == VIT_STD
    assert teacher["weights"] == {"kept": 24, "reinitialised": [], "missing": [], "pretrained_classes": 10}
    metrics = json.loads((out / "metrics.jsonl").read_text().splitlines()[0])
    assert metrics["train/loss/kd"] > 0


def test_a_convnext_teacher_gives_stage_maps_to_fitnet(folders, capsys):
    """A ConvNeXt's hidden states are (N, C, H, W) maps: FitNet's connector is sized from them. Its weights
    come from --teacher-ckpt (a head of 10 classes), its folder has no image processor (said, no resize)."""
    out = folders / "convnext-teacher"
    assert main(["distill", *COMMON, "--teacher", f"hf:{folders / 'convnext'}", "--teacher-ckpt",
                 str(folders / "convnext10.safetensors"), "--student", "resnet8", "--objective", "fitnet",
                 "--out", str(out)]) == 0
    log = capsys.readouterr().out
    assert "no image processor: it receives the run's normalised images, at 32x32" in log
    assert _record(out)["models"]["teacher"]["normalization"].startswith("none")
    metrics = json.loads((out / "metrics.jsonl").read_text().splitlines()[0])
    assert metrics["train/loss/fitnet"] > 0


def test_hf_students_of_a_zoo_teacher(folders, capsys):
    """Both as students of one run (one teacher forward): the ConvNeXt's 5-class head re-initialised for digits'
    10 (said in the log), the run directories named after the folders; figkd eval reads them back."""
    out = folders / "students"
    assert main(["distill", *COMMON, "--teacher", "resnet8", "--teacher-ckpt", str(folders / "resnet8.safetensors"),
                 "--student", f"hf:{folders / 'vit'}", f"hf:{folders / 'convnext'}", "--objective", "kd",
                 "--out", str(out)]) == 0
    log = capsys.readouterr().out
    assert (f"hf:{folders / 'convnext'}: ConvNextForImageClassification, 28 tensors of its weights kept; "
            "re-initialised for 10 classes (the folder's head has 5): classifier.bias, classifier.weight") in log
    assert sorted(p.name for p in out.iterdir()) == ["hf-convnext-kd", "hf-vit-kd"]
    record = _record(out / "hf-convnext-kd")
    assert record["architecture"] == f"hf:{folders / 'convnext'}"
    assert record["models"]["architecture"]["weights"]["reinitialised"] == ["classifier.bias", "classifier.weight"]
    assert main(["eval", str(out / "hf-vit-kd"), "--device", "cpu"]) == 0
    result = json.loads(capsys.readouterr().out)
    summary = json.loads((out / "hf-vit-kd" / "summary.json").read_text())
    assert result["top1"] == pytest.approx(summary["best_top1"])


def test_the_vit_gets_its_own_normalisation_as_its_image_processor_makes_it(folders):
    """The run's normalised batch, converted by the wrapper, equals the pixel values of the model's own image
    processor on the same images (at its input size, so that no resize differs)."""
    model = build_model(f"hf:{folders / 'vit'}", 10)
    run_mean, run_std = (0.1, 0.2, 0.3), (0.3, 0.2, 0.1)
    set_input_normalization(model, run_mean, run_std)
    images = np.random.default_rng(0).integers(0, 256, (2, 32, 32, 3), dtype=np.uint8)
    x = torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255
    run_batch = (x - torch.tensor(run_mean).view(1, 3, 1, 1)) / torch.tensor(run_std).view(1, 3, 1, 1)
    processor = transformers.AutoImageProcessor.from_pretrained(folders / "vit", local_files_only=True)
    expected = processor(images=list(images), return_tensors="pt", do_resize=False)["pixel_values"]
    torch.testing.assert_close(model.pixel_values(run_batch), expected, rtol=0, atol=1e-5)


@pytest.mark.parametrize("teacher, objective, message", [
    ("vit", "fitnet", "fitnet cannot distil with the teacher hf:{root}/vit: it needs the teacher's stage feature "
                      "maps (teacher_feats), and ViTForImageClassification's hidden states are not (N, C, H, W) maps"),
    ("vit", "cat_kd", "it needs the teacher's class activation maps (teacher_cams)"),
    (".", "kd", "is not a Hugging Face model folder (no config.json"),
])
def test_what_cannot_apply_is_a_one_line_error_with_nothing_written(folders, teacher, objective, message, capsys):
    out = folders / f"refused-{objective}"
    code = main(["distill", *COMMON, "--teacher", f"hf:{folders / teacher}", "--student", "resnet8", "--objective",
                 objective, "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("figkd: error: ") and err.count("\n") == 1, err
    assert message.format(root=folders) in err
    assert not out.exists()


def test_an_hf_student_exports_to_onnx_under_its_short_name(folders, capsys):
    """figkd export of a Hugging Face student: its normalisation converted as in training, the fp32 parity
    check passed, the file named after the run (hf-vit.onnx: the name hf:<folder> made a folder path of it),
    and figkd eval of the ONNX file equals the run's recorded top-1."""
    for module in ("onnx", "onnxscript", "onnxruntime"):  # the deploy extra (CI installs it)
        pytest.importorskip(module)
    out = folders / "vit-run"
    assert main(["train", *COMMON, "--model", f"hf:{folders / 'vit'}", "--set", "steps_per_epoch=3",
                 "--out", str(out)]) == 0
    capsys.readouterr()
    assert main(["export", str(out)]) == 0
    assert "fp32 parity with PyTorch" in capsys.readouterr().out
    assert [p.name for p in (out / "deploy").iterdir()] == ["hf-vit.onnx"]
    assert main(["eval", str(out / "deploy" / "hf-vit.onnx")]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["top1"] == pytest.approx(json.loads((out / "summary.json").read_text())["best_top1"])
