"""figkd export / eval FILE.onnx / bench (figkd.deploy) on a resnet8 trained on the bundled digits at 16x16.

The student is trained once for the module (6 epochs: about 86 % test top-1 on the 360 test images) and
exported once with ``--int8``; the tests read that export. Timings are printed by ``figkd bench``, never
asserted.
"""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest
import torch

from figkd.cli import main
from figkd.config import RunConfig
from figkd.data import recipe_for
from figkd.deploy import ExportError, ModelCard, bench, check_parity, export_onnx, export_run, model_metadata, session
from figkd.engine import run
from figkd.engine.rundir import RunDir
from figkd.models import build_model, complexity

# The deploy extra (pip install figkd[deploy]); CI installs it (make test), a plain .[dev] install skips these.
onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxscript")
pytest.importorskip("onnxruntime")

#: How far the int8 model's test top-1 may fall from the fp32 model's, in points. The issue expects "about
#: one point" for static per-channel int8; the digits test split has 360 images, so one image is 0.28
#: points and a handful of images near the decision boundary flipping either way is quantisation noise:
#: 2 points is 7 images. A broken quantisation (wrong scales, no calibration, the wrong normalisation of
#: the calibration images) costs tens of points.
INT8_BOUND = 2.0


@pytest.fixture(scope="module")
def student_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("deploy") / "run"
    cfg = RunConfig(dataset="digits_16", model="resnet8", epochs=6, batch_size=64, lr_milestones=[5], device="cpu",
                    progress="off", tensorboard=False, out=str(out))
    [summary] = run(cfg, "train", log=lambda *a: None)
    assert summary["best_top1"] > 60.0  # trained: 10 classes, chance 10 %
    return out


@pytest.fixture(scope="module")
def exported(student_run):
    lines: list[str] = []
    result = export_run(student_run, int8=True, calibration=256, threads=1, log=lines.append)
    return result, lines


def _lines(captured: str) -> list[str]:
    return [line for line in captured.splitlines() if line.strip()]


def test_export_writes_fp32_and_int8_models_with_their_preprocessing(student_run, exported):
    result, _ = exported
    fp32, int8 = student_run / "deploy" / "resnet8.onnx", student_run / "deploy" / "resnet8.int8.onnx"
    assert result["files"]["fp32"]["path"] == str(fp32) and result["files"]["int8"]["path"] == str(int8)
    assert sorted(p.name for p in fp32.parent.iterdir()) == ["resnet8.int8.onnx", "resnet8.onnx"]  # no temporary file
    recipe = recipe_for("digits_16")
    for path, precision in ((fp32, "fp32"), (int8, "int8")):
        proto = onnx.load(str(path))
        card = ModelCard.from_metadata({p.key: p.value for p in proto.metadata_props})
        assert card.precision == precision and card.architecture == "resnet8"
        assert card.input_size == (16, 16) and card.in_channels == 3
        assert card.mean == pytest.approx(recipe.mean) and card.std == pytest.approx(recipe.std)
        assert card.classes == tuple(str(i) for i in range(10)) and card.num_classes == 10
        assert card.dataset == "digits_16" and card.source["weights"] == "best"
        assert card.source["recorded_split"] == "test" and card.source["recorded_top1"] > 60.0
        dims = proto.graph.input[0].type.tensor_type.shape.dim
        assert [d.dim_param or d.dim_value for d in dims] == ["batch", 3, 16, 16]  # the batch axis is dynamic
    q = onnx.load(str(int8))
    assert {"QuantizeLinear", "DequantizeLinear"} <= {n.op_type for n in q.graph.node}
    assert ModelCard.from_metadata({p.key: p.value for p in q.metadata_props}).quantization["calibration_images"] == 256
    assert result["files"]["int8"]["bytes"] < result["files"]["fp32"]["bytes"] / 2


def test_export_checks_parity_and_prints_top1_side_by_side(exported):
    result, lines = exported
    parity = result["parity"]
    assert parity["max_abs_diff"] <= parity["tolerance"] and parity["images"] == 64
    assert lines[0].startswith("exporting resnet8 of ") and "best weights (epoch 6, recorded test top-1" in lines[0]
    assert any("max |logit difference|" in line for line in lines)
    top1 = result["top1"]
    assert list(top1) == ["pytorch", "onnx fp32", "onnx int8"]
    assert top1["onnx fp32"] == top1["pytorch"]  # the same predictions on all 360 test images
    assert any(line.startswith("test top-1 on the 360 test images") for line in lines)


def test_int8_top1_within_the_bound_of_fp32(exported):
    top1 = exported[0]["top1"]
    assert abs(top1["onnx int8"] - top1["onnx fp32"]) <= INT8_BOUND, top1


def test_eval_of_the_onnx_file_equals_the_recorded_top1(student_run, exported, capsys):
    recorded = json.loads((student_run / "summary.json").read_text())["best_top1"]
    assert main(["eval", str(student_run / "deploy" / "resnet8.onnx")]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["top1"] == pytest.approx(recorded, abs=1e-9) and result["count"] == 360
    assert result["precision"] == "fp32" and result["dataset"] == "digits_16"
    assert main(["eval", str(student_run / "deploy" / "resnet8.int8.onnx"), "--dataset", "digits_16"]) == 0
    assert json.loads(capsys.readouterr().out)["top1"] == pytest.approx(exported[0]["top1"]["onnx int8"])
    assert main(["eval", str(student_run / "deploy" / "resnet8.onnx"), "--dataset", "digits"]) == 2  # 32x32 images
    assert _lines(capsys.readouterr().err) == ["figkd: error: dataset digits gives 32x32 images but the model takes "
                                               "16x16: evaluate it on a dataset of its input size"]


def test_bench_of_a_run_times_eager_fp32_and_int8(student_run, tmp_path):
    out = tmp_path / "bench.json"
    lines: list[str] = []
    record = bench(student_run, batches=[1, 3], threads=1, warmup=1, repeats=3, calibration=32, device="cpu",
                   out=out, log=lines.append)
    assert json.loads(out.read_text()) == json.loads(json.dumps(record))
    rows = record["rows"]
    assert [(r["runtime"], r["batch"]) for r in rows] == [(rt, b) for b in (1, 3) for rt in
                                                          ("pytorch eager", "onnxruntime fp32", "onnxruntime int8")]
    for r in rows:
        assert 0 < r["median_ms"] <= r["p90_ms"]
        assert r["images_per_s"] == pytest.approx(r["batch"] / r["median_ms"] * 1e3)
        assert r["device"] == "cpu" and r["repeats"] == 3 and r["file_bytes"] > 0
    expected = complexity(build_model("resnet8", 10), (16, 16))
    assert (record["model"]["params"], record["model"]["macs"]) == (expected.params, expected.macs)
    assert record["machine"]["threads"] == 1 and record["machine"]["date"]
    assert "| runtime | device | batch | median ms |" in "\n".join(lines)


def test_bench_of_an_onnx_file_from_the_command_line(student_run, exported, tmp_path, capsys):
    out = tmp_path / "b.json"
    model = student_run / "deploy" / "resnet8.int8.onnx"
    assert main(["bench", str(model), "--batch", "2", "--repeats", "2", "--warmup", "0", "--threads", "1",
                 "--device", "cpu", "--json", str(out)]) == 0
    rows = json.loads(out.read_text())["rows"]
    assert [(r["runtime"], r["batch"], r["file_bytes"]) for r in rows] == [("onnxruntime int8", 2,
                                                                           model.stat().st_size)]
    assert f"wrote {out}" in capsys.readouterr().out


# ---------------------------------------------------------------------------------------- bad input
def test_a_validation_runs_recorded_top1_is_called_val_and_its_metadata_says_so(tmp_path, capsys):
    """A run with a validation split never read the test split: its recorded top-1 is a validation top-1 (it was
    printed as "recorded test top-1"), in the export line and the ONNX metadata's source."""
    out = tmp_path / "val-run"
    cfg = RunConfig(dataset="digits_16", model="resnet8", epochs=1, steps_per_epoch=2, batch_size=64, device="cpu",
                    progress="off", tensorboard=False, val_fraction=0.2, out=str(out))
    [summary] = run(cfg, "train", log=lambda *a: None)
    assert summary["eval_split"] == "val" and summary["best_top1"] is None
    model = tmp_path / "val.onnx"
    assert main(["export", str(out), "--out", str(model)]) == 0
    printed = capsys.readouterr().out
    assert f"best weights (epoch 1, recorded val top-1 {summary['val_best_top1']:.2f})" in printed, printed
    assert "recorded test top-1" not in printed
    card = ModelCard.from_metadata({p.key: p.value for p in onnx.load(str(model)).metadata_props})
    assert card.source["recorded_split"] == "val" and card.source["recorded_top1"] == summary["val_best_top1"]
    last = RunDir(out).weights_record("last")  # the last epoch's val/top1 (it looked for test/top1: none)
    assert (last["split"], last["top1"]) == ("val", summary["val_last_top1"])


def test_a_run_without_weights_is_one_line(student_run, tmp_path, capsys):
    bare = tmp_path / "bare"
    bare.mkdir()
    (bare / "config.yaml").write_text((student_run / "config.yaml").read_text())
    assert main(["export", str(bare)]) == 2
    [line] = _lines(capsys.readouterr().err)
    assert line.startswith("figkd: error: ") and "best.safetensors does not exist" in line
    assert not (bare / "deploy").exists()


def test_an_unwritable_output_is_refused_before_any_work(student_run, tmp_path, capsys):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    for out, says in ((blocker / "m.onnx", "is a file, not a folder"), (tmp_path, "is a folder"),
                      (tmp_path / "m.txt", "ends in .onnx")):
        assert main(["export", str(student_run), "--out", str(out)]) == 2
        [line] = _lines(capsys.readouterr().err)
        assert says in line, line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a-file"]


def test_a_missing_extra_names_the_install_command(student_run, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # what an environment without it gives: ImportError
    for argv in (["export", str(student_run)], ["bench", str(student_run)], ["eval", "model.onnx"]):
        assert main(argv) == 2
        [line] = _lines(capsys.readouterr().err)
        assert line.endswith("(onnxruntime cannot be imported): pip install figkd[deploy]"), line


class _KthValue(torch.nn.Module):
    """A classifier with an operator ONNX has no translation for (aten.kthvalue)."""

    def __init__(self):
        super().__init__()
        self.fc = torch.nn.Linear(3, 4)

    def forward(self, x):
        pooled = x.mean((2, 3))
        return self.fc(pooled - torch.kthvalue(pooled, 2, dim=1, keepdim=True).values)


class _DataDependent(torch.nn.Module):
    """A classifier whose control flow depends on the values of its input: torch.export cannot trace it."""

    def __init__(self):
        super().__init__()
        self.fc = torch.nn.Linear(3, 4)

    def forward(self, x):
        pooled = x.mean((2, 3))
        return self.fc(pooled if pooled.sum() > 0 else -pooled)


def test_an_untraceable_model_names_the_operator_or_the_line():
    with pytest.raises(ExportError, match=r"cannot export kth to ONNX: operator aten\.kthvalue\.default has no ONNX "
                                          r"translation in torch\.onnx \(No ONNX function found"):
        export_onnx(_KthValue(), (8, 8), name="kth")
    with pytest.raises(ExportError, match=r"torch\.export cannot trace it: .*data-dependent.*test_deploy\.py:\d+"):
        export_onnx(_DataDependent(), (8, 8), name="branchy")


def test_a_parity_mismatch_is_an_error(student_run, exported):
    sess = session(str(student_run / "deploy" / "resnet8.onnx"), threads=1)
    assert model_metadata(sess)["figkd.architecture"] == "resnet8"
    torch.manual_seed(123)
    other = build_model("resnet8", 10).eval()  # other weights than the exported model's
    images = torch.from_numpy(np.random.default_rng(0).standard_normal((4, 3, 16, 16), dtype=np.float32))
    with pytest.raises(ExportError, match=r"does not match PyTorch: max \|logit difference\| .* above the tolerance"):
        check_parity(other, sess, images, "resnet8")


def test_a_model_with_its_own_input_convention_is_told_the_runs_normalisation(student_run, monkeypatch):
    # A Hugging Face student converts the run's normalisation to its image processor's (figkd.models.hf); the
    # engine tells it in training, and export must too, or the ONNX model sees wrongly scaled images
    import figkd.models
    from figkd.deploy import load_student

    real, told = figkd.models.load_teacher, []

    def load(*args, **kwargs):
        model = real(*args, **kwargs)
        model.set_input_normalization = lambda mean, std: told.append((tuple(mean), tuple(std)))
        return model

    monkeypatch.setattr(figkd.models, "load_teacher", load)
    student = load_student(student_run)
    assert told == [(student.card.mean, student.card.std)]
