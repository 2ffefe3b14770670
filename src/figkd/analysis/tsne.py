"""``figkd analyze tsne``: t-SNE of the students' penultimate embeddings (paper Section 5.2.2, Fig. 6).

For two or more models (typically the KD and the FiGKD student of one teacher): the pooled embedding the
classifier receives (``features["pooled_feat"]``) of every test image of the chosen classes
(``--classes``; default the first ten), projected to 2D by scikit-learn's ``TSNE`` (PCA initialisation,
``--perplexity`` clipped to (n - 1) / 3, ``--seed``), one panel per model, coloured by class. The paper
reads tighter, better separated clusters for FiGKD; the silhouette score of the classes (scikit-learn,
Euclidean; in [-1, 1], higher = better separated) is reported both in the embedding space and in the 2D
projection, so the comparison does not rest on the picture alone.

Writes ``tsne.png`` and ``tsne.json`` (the 2D points, their classes and the scores).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from .common import class_names, load_runs, new_figure, output_dir, outputs, write_json, write_png

NAME = "tsne"


def tsne(run_dirs: list[str | Path], *, labels: list[str] | None = None, classes: list[int] | None = None,
         max_per_class: int | None = None, perplexity: float = 30.0, seed: int = 0, out: str | Path | None = None,
         which: str = "best", device: str = "cpu") -> dict[str, Any]:
    """Run the analysis (see the module docstring); returns what ``tsne.json`` holds."""
    from sklearn.manifold import TSNE
    from sklearn.metrics import silhouette_score

    if len(run_dirs) < 2:
        raise ValueError("t-SNE compares two or more models (e.g. the KD and the FiGKD student)")
    if max_per_class is not None and max_per_class < 1:
        raise ValueError(f"--max-per-class must be >= 1 (leave it out for every image), got {max_per_class}")
    if not perplexity > 0:
        raise ValueError(f"--perplexity must be > 0, got {perplexity}")
    runs = load_runs(run_dirs, labels, which=which, device=device)
    results = [(run, outputs(run)) for run in runs]
    without = [run.label for run, o in results if "pooled" not in o]
    if without:
        raise ValueError(f"t-SNE maps the pooled embedding, which {', '.join(without)} does not give (a model from "
                         "outside the zoo: name its classifier or pooled module in register_model)")
    targets = results[0][1]["targets"]
    num_classes = results[0][1]["logits"].shape[1]
    classes = list(range(min(10, num_classes))) if classes is None else sorted(set(classes))
    bad = [k for k in classes if not 0 <= k < num_classes]
    if bad:
        raise ValueError(f"--classes {bad}: the dataset has classes 0..{num_classes - 1}")
    keep: list[int] = []
    for k in classes:
        idx = (targets == k).nonzero().flatten().tolist()
        keep += idx[:max_per_class] if max_per_class is not None else idx
    keep.sort()
    if len(keep) < 5:
        raise ValueError(f"only {len(keep)} test images in classes {classes}: choose more classes")
    y = targets[keep].numpy()
    perplexity = min(perplexity, (len(keep) - 1) / 3)
    models = []
    for run, o in results:
        feats = o["pooled"][keep].double().numpy()
        points = TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=seed).fit_transform(feats)
        several = len(set(y.tolist())) > 1
        models.append({"label": run.label, "run_dir": run.run_dir, "points": points,
                       "silhouette_features": float(silhouette_score(feats, y)) if several else None,
                       "silhouette_2d": float(silhouette_score(points, y)) if several else None})
    names = class_names(runs[0])
    result = {"analysis": "tsne", "dataset": runs[0].dataset, "classes": [names[k] for k in classes],
              "class_ids": classes, "images": keep, "targets": y, "perplexity": perplexity, "seed": seed,
              "models": models}
    fig = new_figure(3.4 * len(models), 3.4)
    axes = np.atleast_1d(fig.subplots(1, len(models)))
    cmap = "tab10" if len(classes) <= 10 else "tab20"
    for ax, m in zip(axes, models, strict=True):
        p = np.asarray(m["points"])
        shown = ax.scatter(p[:, 0], p[:, 1], c=y, cmap=cmap, s=6, vmin=min(classes), vmax=max(classes))
        score = m["silhouette_features"]
        ax.set_title(m["label"] + (f"\nsilhouette {score:.3f}" if score is not None else ""), fontsize=8)
        ax.set_xticks([])
        ax.set_yticks([])
    if len(classes) <= 20:
        handles = shown.legend_elements(num=len(classes))[0]
        fig.legend(handles, [names[k] for k in classes], fontsize=6, loc="outside right center")
    fig.suptitle(f"{result['dataset']}: t-SNE of the penultimate embeddings ({len(keep)} test images)", fontsize=9)
    dest = output_dir(run_dirs, out)
    result["files"] = [write_png(dest / f"{NAME}.png", fig), dest / f"{NAME}.json"]
    write_json(dest / f"{NAME}.json", result)
    return result


def summary(result: dict[str, Any]) -> str:
    lines = [f"{'model':<28} {'silhouette (features)':>22} {'silhouette (2D)':>16}"]
    for m in result["models"]:
        f, t = m["silhouette_features"], m["silhouette_2d"]
        lines.append(f"{m['label']:<28} {f if f is None else f'{f:.3f}':>22} {t if t is None else f'{t:.3f}':>16}")
    return "\n".join(lines)

