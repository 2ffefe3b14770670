"""``figkd analyze spectrum``: logit grids and their low/high-frequency parts (paper Section 5.2.1, Fig. 5).

For chosen test images (``--images``; default: the first test image of each of the first two classes)
and each model (typically teacher, KD student, FiGKD student): the original logit grid, its
low-frequency reconstruction and its high-frequency reconstruction side by side, the true class's cell
outlined and the zero padding's cells hatched (:func:`figkd.analysis.frequency.decompose`). Over the
whole test split: the mean energy (sum of squared coefficients per image) of every subband, per model,
and the high-frequency share of the total.

Writes ``spectrum.png`` (rows = model x image; columns = original, low, high), ``spectrum_energy.png``
(energy per subband and model) and ``spectrum.json`` (the grids, predictions and energies).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from ..grid import grid_shape
from .common import class_names, load_runs, new_figure, output_dir, outputs, write_json, write_png
from .frequency import decompose, subband_energy, subband_names

NAME = "spectrum"


def default_images(targets: torch.Tensor, count: int = 2) -> list[int]:
    """The first test image of each of the first ``count`` classes present."""
    chosen: list[int] = []
    for k in torch.unique(targets).tolist()[:count]:
        chosen.append(int((targets == k).nonzero()[0]))
    return chosen


def spectrum(run_dirs: list[str | Path], *, labels: list[str] | None = None, images: list[int] | None = None,
             out: str | Path | None = None, which: str = "best", device: str = "cpu", wavelet: str = "haar",
             level: int = 1) -> dict[str, Any]:
    """Run the analysis (see the module docstring); returns what ``spectrum.json`` holds."""
    runs = load_runs(run_dirs, labels, which=which, device=device)
    results = [(run, outputs(run)) for run in runs]
    targets = results[0][1]["targets"]
    n = targets.numel()
    images = default_images(targets) if images is None else list(images)
    bad = [i for i in images if not 0 <= i < n]
    if bad:
        raise ValueError(f"--images {bad}: the test split has images 0..{n - 1}")
    names = class_names(runs[0])
    models = []
    for run, o in results:
        parts = decompose(o["logits"], wavelet=wavelet, level=level)
        energy = subband_energy(parts["coeffs"], level)
        total = sum(energy.values())
        per_image = []
        for i in images:
            per_image.append({"image": i, "target": int(targets[i]), "pred_full": int(o["logits"][i].argmax()),
                              "pred_high": int(parts["high_logits"][i].argmax()),
                              "grid": parts["grid"][i], "low": parts["low"][i], "high": parts["high"][i]})
        models.append({"label": run.label, "run_dir": run.run_dir, "energy": energy,
                       "high_share": (total - energy[f"cA{level}"]) / total if total else None, "images": per_image})
    result = {"analysis": "spectrum", "wavelet": wavelet, "level": level, "dataset": runs[0].dataset,
              "grid": list(grid_shape(results[0][1]["logits"].shape[1])),
              "classes": names, "models": models}
    dest = output_dir(run_dirs, out)
    result["files"] = [write_png(dest / f"{NAME}.png", _grids_figure(result)),
                       write_png(dest / f"{NAME}_energy.png", _energy_figure(result)), dest / f"{NAME}.json"]
    write_json(dest / f"{NAME}.json", result)
    return result


def _grids_figure(result: dict[str, Any]):
    from matplotlib.patches import Rectangle

    models = result["models"]
    rows = [(m, im) for m in models for im in m["images"]]
    h, w = result["grid"]
    padding = range(len(result["classes"]), h * w)
    fig = new_figure(7.5, 2.0 * len(rows))
    axes = fig.subplots(len(rows), 3, squeeze=False)
    names = result["classes"]
    for r, (m, im) in enumerate(rows):
        panels = [("original", im["grid"], im["pred_full"]), ("low frequency", im["low"], None),
                  ("high frequency", im["high"], im["pred_high"])]
        for c, (title, grid, pred) in enumerate(panels):
            ax = axes[r][c]
            shown = ax.imshow(grid.numpy(), cmap="viridis")
            fig.colorbar(shown, ax=ax, shrink=0.8)
            k = im["target"]
            ax.add_patch(Rectangle((k % w - 0.5, k // w - 0.5), 1, 1, fill=False, edgecolor="red", linewidth=2))
            for p in padding:
                ax.add_patch(Rectangle((p % w - 0.5, p // w - 0.5), 1, 1, fill=False, hatch="//", edgecolor="white",
                                       linewidth=0))
            ax.set_xticks([])
            ax.set_yticks([])
            head = f"{title}" + (f": argmax {names[pred]}" if pred is not None else "")
            ax.set_title(head, fontsize=8)
            if c == 0:
                ax.set_ylabel(f"{m['label']}\nimage {im['image']} ({names[k]})", fontsize=8)
    fig.suptitle(f"{result['dataset']}: logit grids (red: true class; hatched: padding), {result['wavelet']} "
                 f"J = {result['level']}", fontsize=9)
    return fig


def _energy_figure(result: dict[str, Any]):
    models = result["models"]
    bands = subband_names(result["level"])
    fig = new_figure(6.5, 3.2)
    ax = fig.subplots()
    width = 0.8 / len(models)
    for k, m in enumerate(models):
        xs = [i + (k - (len(models) - 1) / 2) * width for i in range(len(bands))]
        ax.bar(xs, [m["energy"][b] for b in bands], width,
               label=f"{m['label']} (high: {100 * (m['high_share'] or 0):.0f}%)")
    ax.set_xticks(range(len(bands)), bands)
    ax.set_yscale("log")
    ax.set_ylabel("mean energy per image")
    ax.set_title(f"{result['dataset']}: energy per subband over the test split", fontsize=9)
    ax.legend(fontsize=7)
    return fig


def summary(result: dict[str, Any]) -> str:
    lines = [f"{'model':<28} " + " ".join(f"{b:>10}" for b in subband_names(result["level"])) + "  high share"]
    for m in result["models"]:
        lines.append(f"{m['label']:<28} " + " ".join(f"{v:>10.3g}" for v in m["energy"].values())
                     + f"  {100 * (m['high_share'] or 0):>9.1f}%")
    return "\n".join(lines)
