"""``figkd analyze hf-accuracy``: top-1 from the high-frequency logits only (paper Section 1, Fig. 2).

For each model (run directory) on the test split: the top-1 of its full logits, and the top-1 of its
high-frequency logits - the logit grid reconstructed with the approximation cA_J set to zero
(:func:`figkd.analysis.frequency.decompose`), read back as C logits - overall and per class. The
paper's claim: a strong teacher (ResNet32x4) still predicts the right class from the high-frequency part
alone, a weak student (ResNet8x4) often does not.

Writes ``hf_accuracy.png`` (overall top-1 full vs high-only per model; per-class high-only top-1) and
``hf_accuracy.json``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from .common import class_names, load_runs, new_figure, output_dir, outputs, write_json, write_png
from .frequency import decompose

NAME = "hf_accuracy"


def per_class_top1(pred: torch.Tensor, targets: torch.Tensor, num_classes: int) -> list[float | None]:
    """Top-1 (%) of each class (None for a class without test images)."""
    out: list[float | None] = []
    for k in range(num_classes):
        mask = targets == k
        out.append(100.0 * float((pred[mask] == k).double().mean()) if bool(mask.any()) else None)
    return out


def hf_accuracy_of(logits: torch.Tensor, targets: torch.Tensor, *, wavelet: str = "haar", level: int = 1,
                   grid: str = "pad") -> dict[str, Any]:
    """Top-1 (%) of ``(N, C)`` logits and of their high-frequency part, overall and per class."""
    parts = decompose(logits, wavelet=wavelet, level=level, grid=grid)
    c = logits.shape[1]
    full, high = logits.argmax(1), parts["high_logits"].argmax(1)
    return {"top1_full": 100.0 * float((full == targets).double().mean()),
            "top1_high": 100.0 * float((high == targets).double().mean()),
            "per_class_full": per_class_top1(full, targets, c), "per_class_high": per_class_top1(high, targets, c),
            "n": int(targets.numel()), "grid": list(parts["grid"].shape[-2:])}


def hf_accuracy(run_dirs: list[str | Path], *, labels: list[str] | None = None, out: str | Path | None = None,
                which: str = "best", device: str = "cpu", wavelet: str = "haar", level: int = 1) -> dict[str, Any]:
    """Run the analysis (see the module docstring); returns what ``hf_accuracy.json`` holds, with the paths
    written under ``files``."""
    runs = load_runs(run_dirs, labels, which=which, device=device)
    models = []
    for run in runs:
        o = outputs(run)
        models.append({"label": run.label, "run_dir": run.run_dir, "weights": run.weights,
                       **hf_accuracy_of(o["logits"], o["targets"], wavelet=wavelet, level=level)})
    result = {"analysis": "hf-accuracy", "wavelet": wavelet, "level": level, "dataset": runs[0].dataset,
              "classes": class_names(runs[0]), "models": models}

    fig = new_figure(9, 3.4)
    left, right = fig.subplots(1, 2, width_ratios=[1, 2])
    x = torch.arange(len(models)).tolist()
    left.bar([i - 0.2 for i in x], [m["top1_full"] for m in models], 0.4, label="full logits")
    left.bar([i + 0.2 for i in x], [m["top1_high"] for m in models], 0.4, label="high frequency only")
    left.set_xticks(x, [m["label"] for m in models], rotation=15, fontsize=8)
    left.set_ylabel("test top-1 (%)")
    left.set_ylim(0, 100)
    left.legend(fontsize=7, loc="lower right")
    left.set_title(f"{result['dataset']}: top-1 ({wavelet}, J = {level})", fontsize=9)
    for m in models:
        per_class = sorted((v for v in m["per_class_high"] if v is not None), reverse=True)
        right.plot(range(1, len(per_class) + 1), per_class, marker=".", label=m["label"])
    right.set_xlabel("classes, sorted by high-frequency-only top-1")
    right.set_ylabel("per-class top-1 (%), high frequency only")
    right.set_ylim(0, 100)
    right.legend(fontsize=7)
    dest = output_dir(run_dirs, out)
    result["files"] = [write_png(dest / f"{NAME}.png", fig), dest / f"{NAME}.json"]
    write_json(dest / f"{NAME}.json", result)
    return result


def summary(result: dict[str, Any]) -> str:
    lines = [f"{'model':<28} {'top-1 full':>10} {'top-1 high only':>16}"]
    lines += [f"{m['label']:<28} {m['top1_full']:>10.2f} {m['top1_high']:>16.2f}" for m in result["models"]]
    return "\n".join(lines)
