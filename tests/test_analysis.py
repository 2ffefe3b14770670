"""figkd analyze: each analysis runs on digits run directories and writes its PNG and JSON; the numbers are
checked against independent computations (PyWavelets for the frequency split, scikit-learn's confusion
matrix, Parseval for the subband energies).

The run directories hold resnet8 weights saved through the engine's CheckpointManager without training
(what is analysed is the model's outputs, whatever the weights); the sweep test trains real runs.
"""

from __future__ import annotations

import functools
import json
import math
import statistics
from pathlib import Path

import numpy as np
import pytest
import pywt
import torch
import yaml

from figkd.analysis import decompose, hf_accuracy, overhead, predictions, sensitivity, spectrum, tsne
from figkd.cli import main
from figkd.config import ConfigError, RunConfig
from figkd.data import build_dataset, build_loader
from figkd.engine.checkpoint import CheckpointManager
from figkd.models import build_model, load_teacher

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _run_dir(path: Path, seed: int, **cfg) -> Path:
    path.mkdir(parents=True)
    config = RunConfig(dataset="digits", seed=seed, epochs=1, **cfg).to_dict()
    (path / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    torch.manual_seed(seed)
    CheckpointManager(path).save_best(1, build_model(cfg.get("model") or cfg["student"], 10), 10.0)
    return path


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("analysis")
    teacher = _run_dir(root / "teacher", 0, model="resnet8", objective="vanilla")
    kd = _run_dir(root / "kd", 1, teacher="resnet8", teacher_ckpt=str(teacher), student="resnet8", objective="kd")
    fig = _run_dir(root / "figkd", 2, teacher="resnet8", teacher_ckpt=str(teacher), student="resnet8",
                   objective="figkd")
    return [teacher, kd, fig]


def _written(result, *names):
    files = {Path(f).name: Path(f) for f in result["files"]}
    for name in names:
        assert name in files, name
        data = files[name].read_bytes()
        if name.endswith(".png"):
            assert data.startswith(PNG_MAGIC) and len(data) > 1000
        else:
            json.loads(data)
    return files


@functools.cache
def _logits(run_dir: Path) -> tuple[torch.Tensor, torch.Tensor]:
    """The model's test logits, computed here without figkd.analysis."""
    model = load_teacher("resnet8", str(run_dir / "checkpoints" / "best.safetensors"), 10).eval()
    loader = build_loader("digits", None, False, 512, dataset=build_dataset("digits", None, train=False))
    with torch.no_grad():
        batches = [(model(b.images), b.target) for b in loader]
    return torch.cat([b[0] for b in batches]).double(), torch.cat([b[1] for b in batches])


def _high_logits_pywt(logits: np.ndarray, wavelet: str, level: int) -> np.ndarray:
    """High-frequency logits with PyWavelets: pad to H = ceil(sqrt C), W = ceil(C / H), wavedec2, zero the
    approximation, waverec2, crop, first C cells."""
    n, c = logits.shape
    h = math.ceil(math.sqrt(c))
    w = math.ceil(c / h)
    out = np.empty_like(logits)
    for i in range(n):
        grid = np.zeros(h * w)
        grid[:c] = logits[i]
        coeffs = pywt.wavedec2(grid.reshape(h, w), wavelet, mode="zero", level=level)
        coeffs[0] = np.zeros_like(coeffs[0])
        out[i] = pywt.waverec2(coeffs, wavelet, mode="zero")[:h, :w].reshape(-1)[:c]
    return out


def test_hf_accuracy_equals_pywt(runs, tmp_path):
    result = hf_accuracy(runs[:2], out=tmp_path)
    _written(result, "hf_accuracy.png", "hf_accuracy.json")
    saved = json.loads((tmp_path / "hf_accuracy.json").read_text())
    for run_dir, model in zip(runs[:2], saved["models"], strict=True):
        logits, y = _logits(run_dir)
        high = _high_logits_pywt(logits.numpy(), "haar", 1).argmax(1)
        full = logits.numpy().argmax(1)
        assert model["top1_high"] == pytest.approx(100.0 * np.mean(high == y.numpy()), abs=1e-6)
        assert model["top1_full"] == pytest.approx(100.0 * np.mean(full == y.numpy()), abs=1e-6)
        for k in range(10):
            mask = y.numpy() == k
            assert model["per_class_high"][k] == pytest.approx(100.0 * np.mean(high[mask] == k), abs=1e-5)
        assert model["n"] == 360 and saved["models"][0]["label"] == "resnet8 (alone)"


@pytest.mark.parametrize(("classes", "wavelet", "level"), [(100, "haar", 2), (67, "db2", 1), (10, "haar", 1)])
def test_decompose_equals_pywt(classes, wavelet, level):
    logits = torch.randn(6, classes, generator=torch.Generator().manual_seed(classes), dtype=torch.float64)
    parts = decompose(logits, wavelet=wavelet, level=level)
    expected = _high_logits_pywt(logits.numpy(), wavelet, level)
    np.testing.assert_allclose(parts["high_logits"].numpy(), expected, rtol=1e-10, atol=1e-10)
    # the transform is linear: low + high is the original grid
    torch.testing.assert_close(parts["low"] + parts["high"], parts["grid"], rtol=1e-10, atol=1e-10)


def test_spectrum_energies_and_grids(runs, tmp_path):
    result = spectrum(runs, images=[0, 5], out=tmp_path)
    _written(result, "spectrum.png", "spectrum_energy.png", "spectrum.json")
    assert result["grid"] == [4, 3]
    logits, _ = _logits(runs[0])
    teacher = result["models"][0]
    # Haar is orthonormal: the subband energies add up to the energy of the (zero-padded) logits
    assert sum(teacher["energy"].values()) == pytest.approx(float(logits.square().sum(1).mean()), rel=1e-9)
    assert [im["image"] for im in teacher["images"]] == [0, 5]
    torch.testing.assert_close(teacher["images"][1]["grid"].flatten()[:10], logits[5])
    assert 0.0 <= teacher["high_share"] <= 1.0


def test_tsne_projects_the_chosen_classes(runs, tmp_path):
    result = tsne(runs[1:], classes=[0, 1, 2], out=tmp_path, perplexity=10)
    _written(result, "tsne.png", "tsne.json")
    _, y = _logits(runs[1])
    n = int(sum((y == k).sum() for k in (0, 1, 2)))
    assert len(result["images"]) == n and result["classes"] == ["0", "1", "2"]
    for m in result["models"]:
        assert np.asarray(m["points"]).shape == (n, 2)
        assert -1.0 <= m["silhouette_features"] <= 1.0
    with pytest.raises(ValueError, match="two or more"):
        tsne(runs[1:2], out=tmp_path)


def test_predictions_disagreements_and_confusions(runs, tmp_path):
    from sklearn.metrics import confusion_matrix

    result = predictions(runs, max_images=4, pairs=3, out=tmp_path)
    _written(result, "predictions.png", "predictions_confusion.png", "predictions.json")
    preds = []
    for run_dir, m in zip(runs, result["models"], strict=True):
        logits, y = _logits(run_dir)
        preds.append(logits.argmax(1).numpy())
        assert m["predicted"].tolist() == preds[-1].tolist()
        assert m["top1"] == pytest.approx(100.0 * np.mean(preds[-1] == y.numpy()), abs=1e-6)
    disagree = [i for i in range(len(y)) if len({int(p[i]) for p in preds}) > 1]
    assert result["disagreements"] == len(disagree) and len(result["images"]) == min(4, len(disagree))
    assert all(im["image"] in disagree and len(im["top3"]) == 3 for im in result["images"])
    for pair in result["pairs"]:
        i, j = pair["ids"]
        for p, count in zip(preds, pair["confusions"], strict=True):
            cm = confusion_matrix(y.numpy(), p, labels=range(10))
            assert count == cm[i, j] + cm[j, i]


def test_overhead_times_kd_and_figkd_levels(tmp_path):
    result = overhead(teacher="resnet8", student="resnet8", dataset="cifar100", batch_size=8, steps=2, repeats=1,
                      device="cpu", out=tmp_path)
    _written(result, "overhead.png", "overhead.json")
    rows = result["results"]
    assert [r["label"] for r in rows] == ["KD", "FiGKD (J = 1)", "FiGKD (J = 2)", "FiGKD (J = 3)"]
    assert [t["level"] for r in rows[1:] for t in r["objective"] if t["term"] == "figkd"] == [1, 2, 3]
    kd = rows[0]["s_per_batch"]
    for r in rows[1:]:
        assert r["overhead_pct"] == pytest.approx(100.0 * (r["s_per_batch"] / kd - 1.0))
    from figkd.experiments.report import report
    assert "FiGKD (J = 3)" in report(tmp_path, ["14"])


def test_sensitivity_draws_both_weights(tmp_path):
    def finished(name, seed, top1, objective, dataset="cifar100"):
        d = tmp_path / "runs" / name
        d.mkdir(parents=True)
        cfg = RunConfig(dataset=dataset, teacher="resnet32x4", teacher_ckpt="t", student="resnet8x4",
                        objective=objective, seed=seed).to_dict()
        (d / "config.yaml").write_text(yaml.safe_dump(cfg))
        (d / "summary.json").write_text(json.dumps({"last_top1": top1, "best_top1": top1}))

    def eq7(alpha, beta):
        return [{"term": "ce", "weight": alpha}, {"term": "figkd", "weight": beta}]

    finished("figkd-s0", 0, 78.0, "figkd")
    finished("figkd-s1", 1, 78.4, "figkd")
    finished("alpha4-s0", 0, 76.0, eq7(4.0, 2.0))
    finished("beta8-s0", 0, 77.0, eq7(1.0, 8.0))
    finished("level2-s0", 0, 70.0, [{"term": "ce"}, {"term": "figkd", "weight": 2.0, "level": 2}])  # not Fig. 4
    finished("mlkd-s0", 0, 77.5, "mlkd")
    result = sensitivity(tmp_path / "runs")
    files = _written(result, "sensitivity.png", "sensitivity.json")
    assert files["sensitivity.png"].parent == tmp_path / "runs" / "analysis"
    [d] = result["datasets"]
    assert [(p["x"], p["mean"]) for p in d["beta_at_alpha_1"]] == [(2.0, pytest.approx(78.2)), (8.0, 77.0)]
    assert [(p["x"], p["mean"]) for p in d["alpha_at_beta_2"]] == [(1.0, pytest.approx(78.2)), (4.0, 76.0)]
    assert d["mlkd"] == 77.5 and d["mlkd_paper"] == 77.08  # Table 1, MLKD, resnet32x4 -> resnet8x4
    # another pair: the error names the pairs the folder holds
    with pytest.raises(ConfigError, match="it holds Eq. 7 runs of --teacher resnet32x4 --student resnet8x4"):
        sensitivity(tmp_path / "runs", teacher="resnet20", student="resnet8")


def test_analyze_command_line(runs, tmp_path, capsys):
    assert main(["analyze", "hf-accuracy", str(runs[0]), str(runs[1]), "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    assert "top-1 high only" in out and (runs[0] / "analysis" / "hf_accuracy.png").is_file()  # default: RUN_DIR
    assert main(["analyze", "spectrum", str(runs[0]), "--images", "9999", "--out", str(tmp_path)]) == 2
    assert "--images [9999]" in capsys.readouterr().err
    assert main(["analyze", "hf-accuracy", str(tmp_path)]) == 2
    assert "not a figkd run directory" in capsys.readouterr().err
    assert main(["analyze", "overhead", "--teacher", "resnet8", "--student", "resnet8"]) == 2
    assert "needs --out" in capsys.readouterr().err


def test_overhead_on_digits_times_the_levels_its_grid_allows_with_their_spread(tmp_path, capsys):
    """figkd analyze overhead --dataset digits without --levels: the 4 x 3 grid of 10 classes allows J = 1
    only, so the default levels are [1] (said in a note), not an error; each time has its spread beside the
    median (issue 27, item 12)."""
    assert main(["analyze", "overhead", "--dataset", "digits", "--teacher", "resnet8", "--student", "resnet8",
                 "--batch-size", "8", "--steps", "1", "--repeats", "3", "--device", "cpu", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    result = json.loads((tmp_path / "overhead.json").read_text())
    assert [r["label"] for r in result["results"]] == ["KD", "FiGKD (J = 1)"]
    assert result["setting"]["levels"] == [1]
    assert result["notes"] == ["FiGKD levels 2, 3 left out: the 4 x 3 grid of 10 classes allows J <= 1 (Haar)"]
    for r in result["results"]:
        ts = r["s_per_batch_all"]
        q1, median, q3 = r["s_per_batch_quartiles"]  # overhead.json holds 6 significant digits
        assert len(ts) == 3 and r["s_per_batch"] == median == pytest.approx(statistics.median(ts), rel=1e-5)
        assert (r["s_per_batch_min"], r["s_per_batch_max"]) == (min(ts), max(ts))
        lo, mid, hi = sorted(ts)
        assert [q1, q3] == pytest.approx([(lo + mid) / 2, (mid + hi) / 2], rel=1e-5)  # "inclusive" quartiles
    assert "min - max" in out and "levels 2, 3 left out" in out
