"""``figkd analyze predictions``: where teacher, KD student and FiGKD student disagree (paper Section 1, Fig. 1).

For two or more models on the test split (in the paper's order: the teacher, the KD student, the FiGKD
student; the first is the reference, the second the baseline):

- each model's prediction on every test image (``predicted``, in test-split order beside ``targets``);
- the images where the models do not all agree, the ones the reference gets right and the baseline
  gets wrong first, drawn (up to ``--max-images``) with every model's top-3 classes and softmax
  probabilities above them;
- the pairs of classes the baseline confuses most (count of i predicted as j plus j as i, ``--pairs``)
  and, for every model, its count on the same pairs: how FiGKD changes the KD student's confusions.

Writes ``predictions.png`` (the disagreements), ``predictions_confusion.png`` (the pairs) and
``predictions.json``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from .common import class_names, eval_split, load_runs, new_figure, output_dir, outputs, write_json, write_png

NAME = "predictions"


def confusion(pred: torch.Tensor, targets: torch.Tensor, num_classes: int) -> torch.Tensor:
    """``(C, C)`` counts: row = true class, column = predicted class."""
    return torch.bincount(targets * num_classes + pred, minlength=num_classes ** 2).reshape(num_classes, num_classes)


def confused_pairs(matrix: torch.Tensor, top: int) -> list[tuple[int, int, int]]:
    """The ``top`` unordered class pairs (i < j) with the most confusions ``M[i, j] + M[j, i]`` (ties: by i, j)."""
    sym = matrix + matrix.T
    c = matrix.shape[0]
    pairs = [(int(sym[i, j]), i, j) for i in range(c) for j in range(i + 1, c) if sym[i, j] > 0]
    pairs.sort(key=lambda p: (-p[0], p[1], p[2]))
    return [(i, j, n) for n, i, j in pairs[:top]]


def predictions(run_dirs: list[str | Path], *, labels: list[str] | None = None, max_images: int = 8, pairs: int = 5,
                out: str | Path | None = None, which: str = "best", device: str = "cpu") -> dict[str, Any]:
    """Run the analysis (see the module docstring); returns what ``predictions.json`` holds."""
    if len(run_dirs) < 2:
        raise ValueError("predictions compares two or more models (teacher, KD student, FiGKD student)")
    for name, value in (("--max-images", max_images), ("--pairs", pairs)):
        if value < 0:
            raise ValueError(f"{name} must be >= 0 (0: none drawn), got {value}")
    runs = load_runs(run_dirs, labels, which=which, device=device)
    results = [(run, outputs(run)) for run in runs]
    targets = results[0][1]["targets"]
    num_classes = results[0][1]["logits"].shape[1]
    probs = [o["logits"].softmax(1) for _, o in results]
    preds = torch.stack([p.argmax(1) for p in probs])  # (models, N)
    top3 = [p.topk(min(3, num_classes), dim=1) for p in probs]
    disagree = (preds != preds[0]).any(0).nonzero().flatten().tolist()
    ref_right_base_wrong = [i for i in disagree if preds[0, i] == targets[i] and preds[1, i] != targets[i]]
    ordered = ref_right_base_wrong + [i for i in disagree if i not in set(ref_right_base_wrong)]

    def image_record(i: int) -> dict[str, Any]:
        return {"image": i, "target": int(targets[i]),
                "top3": [{"label": run.label, "classes": t.indices[i], "probs": t.values[i]}
                         for (run, _), t in zip(results, top3, strict=True)]}

    matrices = [confusion(preds[m], targets, num_classes) for m in range(len(runs))]
    base_pairs = confused_pairs(matrices[1], pairs)
    names = class_names(runs[0])
    result = {
        "analysis": "predictions", "dataset": runs[0].dataset, "classes": names, "n": int(targets.numel()),
        "targets": targets,
        "models": [{"label": run.label, "run_dir": run.run_dir,
                    "top1": 100.0 * float((preds[m] == targets).double().mean()), "predicted": preds[m]}
                   for m, (run, _) in enumerate(results)],
        "disagreements": len(disagree), "reference_right_baseline_wrong": len(ref_right_base_wrong),
        "images": [image_record(i) for i in ordered[:max_images]],
        "pairs": [{"classes": [names[i], names[j]], "ids": [i, j],
                   "confusions": [int(mat[i, j] + mat[j, i]) for mat in matrices]} for i, j, _ in base_pairs],
    }
    dest = output_dir(run_dirs, out)
    result["files"] = [write_png(dest / f"{NAME}.png", _images_figure(result, runs[0])),
                       write_png(dest / f"{NAME}_confusion.png", _pairs_figure(result)), dest / f"{NAME}.json"]
    write_json(dest / f"{NAME}.json", result)
    return result


def _images_figure(result: dict[str, Any], run):
    images = result["images"]
    names = result["classes"]
    cols = max(1, min(4, len(images)))
    rows = max(1, -(-len(images) // cols))
    fig = new_figure(2.6 * cols, 2.9 * rows)
    axes = fig.subplots(rows, cols, squeeze=False)
    split = eval_split(run.cfg) if images else None
    for ax in axes.flat:
        ax.axis("off")
    for ax, rec in zip(axes.flat, images, strict=False):
        image = split[rec["image"]][0]
        ax.imshow(image.permute(1, 2, 0).numpy() if image.shape[0] == 3 else image[0].numpy(), cmap="gray")
        lines = [f"#{rec['image']}, true: {names[rec['target']]}"]
        for t in rec["top3"]:
            mark = "+" if int(t["classes"][0]) == rec["target"] else "x"
            top = ", ".join(f"{names[int(k)]} {100 * float(p):.0f}%" for k, p in zip(t["classes"], t["probs"],
                                                                                      strict=True))
            lines.append(f"{mark} {t['label']}: {top}")
        ax.set_title("\n".join(lines), fontsize=6, loc="left")
    if not images:  # none drawn: because the models agree, or because --max-images 0 asked for none
        axes.flat[0].set_title("the models agree on every test image" if not result["disagreements"] else
                               f"{result['disagreements']} disagreeing images, none drawn (--max-images 0)",
                               fontsize=8)
    fig.suptitle(f"{result['dataset']}: {result['disagreements']} of {result['n']} test images where the models "
                 f"disagree (+ right, x wrong)", fontsize=9)
    return fig


def _pairs_figure(result: dict[str, Any]):
    pairs = result["pairs"]
    models = result["models"]
    fig = new_figure(6.5, 3.0)
    ax = fig.subplots()
    width = 0.8 / len(models)
    for k, m in enumerate(models):
        xs = [i + (k - (len(models) - 1) / 2) * width for i in range(len(pairs))]
        ax.bar(xs, [p["confusions"][k] for p in pairs], width, label=m["label"])
    ax.set_xticks(range(len(pairs)), [" / ".join(p["classes"]) for p in pairs], fontsize=7, rotation=15)
    ax.set_ylabel("test images confused (both ways)")
    base = models[1]["label"] if len(models) > 1 else ""
    ax.set_title(f"{result['dataset']}: the class pairs {base} confuses most", fontsize=9)
    ax.legend(fontsize=7)
    return fig


def summary(result: dict[str, Any]) -> str:
    lines = [f"{m['label']}: top-1 {m['top1']:.2f}" for m in result["models"]]
    lines.append(f"{result['disagreements']} test images with disagreeing predictions "
                 f"({result['reference_right_baseline_wrong']} right by the first model, wrong by the second)")
    for p in result["pairs"]:
        lines.append(f"  {' / '.join(p['classes'])}: " + ", ".join(
            f"{m['label']} {n}" for m, n in zip(result["models"], p["confusions"], strict=True)))
    return "\n".join(lines)
