"""``figkd analyze overhead``: time per training step of KD and of FiGKD at J = 1, 2, 3 (paper Section 5.3,
Table 14).

Each objective trains the same student with the same teacher and batch in the engine's own step
(:mod:`figkd.engine.timing`: synthetic uint8 images of the dataset's shape and class count): KD (preset
``kd``) and FiGKD as the term list of Eq. 7 (``ce`` 1 + ``figkd`` 2) with ``level`` J for each
``--levels`` entry. After untimed warm-up epochs, ``--repeats`` epochs of ``--steps`` steps are timed per
objective, in turns (objective 1, 2, ..., then again) so that a slow spell of the machine hits them
alike; the median is reported as seconds per batch and as percent over KD, with the fastest and slowest
epoch and the quartiles beside it (the spread of the timings). Without ``--levels``, the levels are those
of J = 1, 2, 3 that the dataset's class grid allows with the Haar wavelet (digits' 4 x 3 grid of 10
classes: J = 1 only; a note says which were left out).

Defaults are the paper's setting (ResNet32x4 -> ResNet8x4, CIFAR-100 shapes, batch 64); ``--run RUN_DIR``
takes teacher, student, dataset and batch size from a distill run's config instead. The paper measured an
RTX 3090 (KD 0.1040 s, FiGKD J = 1 0.1061 s (+2.0 %), J = 2 0.1243 s (+19.5 %), J = 3 0.1353 s (+30.1 %));
ours are this machine's. Writes ``overhead.png`` and ``overhead.json`` (which ``figkd report --table 14``
lays out).
"""

from __future__ import annotations

import statistics
import tempfile
from pathlib import Path
from typing import Any

import torch

from ..engine.rundir import RunDir
from ..errors import ConfigError
from ..paper import TABLE14
from .common import new_figure, resolve_device, write_json, write_png

NAME = "overhead"


def objectives(levels: list[int]) -> list[tuple[str, Any]]:
    """``("KD", "kd")`` and ``("FiGKD (J = j)", [ce 1, figkd 2 with level j])`` for each level."""
    from ..losses import preset_spec

    out: list[tuple[str, Any]] = [("KD", "kd")]
    for j in levels:
        spec = preset_spec("figkd")
        for term in spec:
            if term["term"] == "figkd":
                term["level"] = j
        out.append((f"FiGKD (J = {j})", spec))
    return out


def default_levels(num_classes: int, candidates: tuple[int, ...] = (1, 2, 3)) -> tuple[list[int], str | None]:
    """The ``candidates`` levels that the default grid of ``num_classes`` allows with the Haar wavelet (J = 1
    always: a single DWT works on any size), and a note naming those left out (None when none is)."""
    from ..grid import grid_shape
    from ..wavelets import dwt_max_level

    shape = grid_shape(num_classes)
    deepest = max(1, min(dwt_max_level(n, 2) for n in shape))  # 2: the Haar filter's length
    kept = [j for j in candidates if j <= deepest]
    left = [j for j in candidates if j > deepest]
    note = (f"FiGKD levels {', '.join(map(str, left))} left out: the {shape[0]} x {shape[1]} grid of {num_classes} "
            f"classes allows J <= {deepest} (Haar)") if left else None
    return kept, note


def overhead(*, teacher: str = "resnet32x4", student: str = "resnet8x4", dataset: str = "cifar100",
             batch_size: int = 64, levels: list[int] | None = None, steps: int = 20, repeats: int = 5,
             device: str = "auto", mode: str | None = None, run: str | Path | None = None,
             out: str | Path | None = None) -> dict[str, Any]:
    """Run the analysis (see the module docstring); returns what ``overhead.json`` holds."""
    from ..engine.timing import MODES, SHAPES, build_trainer, time_steps, warm_up

    if run is not None:
        cfg = RunDir(run).config()
        if not cfg.get("student"):
            raise ConfigError(f"--run {run}: a distill run directory (with a teacher and a student) is needed")
        teacher, student, dataset = cfg["teacher"], cfg["student"], cfg["dataset"]
        batch_size = int(cfg.get("batch_size", batch_size))
    if dataset not in SHAPES:
        raise ConfigError(f"overhead times synthetic batches of a known shape; dataset must be one of "
                          f"{', '.join(SHAPES)}, got {dataset!r}")
    if out is None and run is None:
        raise ConfigError("figkd analyze overhead needs --out FOLDER (or --run RUN_DIR: then RUN_DIR/analysis)")
    notes = []
    if levels is None:
        levels, note = default_levels(SHAPES[dataset][1])
        notes += [note] if note else []
    dev = resolve_device(device)
    mode = mode or ("graph" if dev.type == "cuda" else "fp32")
    if mode not in MODES:
        raise ConfigError(f"--mode must be one of {', '.join(MODES)}, got {mode!r}")
    specs = objectives(levels)
    with tempfile.TemporaryDirectory() as tmp:
        try:
            trainers = [build_trainer(teacher, student, [spec], dataset=dataset, batch_size=batch_size, steps=steps,
                                      device=dev, mode=mode, workdir=tmp) for spec in specs]
        except ValueError as exc:  # e.g. a level too deep for the class grid
            raise ConfigError(str(exc)) from exc
        first = [warm_up(t) for t in trainers]
        times: list[list[float]] = [[] for _ in trainers]
        for r in range(repeats):
            for k, t in enumerate(trainers):
                times[k] += time_steps(t, first[k] + r, 1)
    kd = statistics.median(times[0])
    results = []
    for (label, spec), ts in zip(specs, times, strict=True):
        s = statistics.median(ts)
        quartiles = statistics.quantiles(ts, n=4, method="inclusive") if len(ts) > 1 else [s, s, s]
        results.append({"label": label, "objective": spec, "s_per_batch": s, "s_per_batch_all": ts,
                        "s_per_batch_min": min(ts), "s_per_batch_max": max(ts), "s_per_batch_quartiles": quartiles,
                        "overhead_pct": None if label == "KD" else 100.0 * (s / kd - 1.0)})
    result = {"analysis": "overhead", "setting": {"teacher": teacher, "student": student, "dataset": dataset,
                                                  "batch_size": batch_size, "steps": steps, "repeats": repeats,
                                                  "mode": mode, "levels": list(levels)},
              "notes": notes,
              "device": str(dev), "device_name": torch.cuda.get_device_name(dev) if dev.type == "cuda" else None,
              "threads": torch.get_num_threads(), "results": results, "paper": TABLE14}
    dest = Path(out) if out is not None else Path(run) / "analysis"
    dest.mkdir(parents=True, exist_ok=True)
    result["files"] = [write_png(dest / f"{NAME}.png", _figure(result)), dest / f"{NAME}.json"]
    write_json(dest / f"{NAME}.json", result)
    return result


def _figure(result: dict[str, Any]):
    rows = result["results"]
    fig = new_figure(5.5, 3.0)
    ax = fig.subplots()
    ax.bar(range(len(rows)), [1000 * r["s_per_batch"] for r in rows], color="tab:blue")
    for i, r in enumerate(rows):
        paper = TABLE14.get(r["label"], (None, None))[1]
        text = "" if r["overhead_pct"] is None else f"{r['overhead_pct']:+.1f}%"
        if paper is not None:
            text += f"\n(paper {paper:+.1f}%)"
        ax.annotate(text, (i, 1000 * r["s_per_batch"]), ha="center", va="bottom", fontsize=7)
    ax.set_xticks(range(len(rows)), [r["label"] for r in rows], fontsize=8)
    ax.set_ylabel("ms per training step")
    s = result["setting"]
    where = result["device_name"] or f"{result['device']}, {result['threads']} threads"
    ax.set_title(f"{s['teacher']} -> {s['student']}, {s['dataset']} shapes, batch {s['batch_size']} ({where})",
                 fontsize=8)
    ax.margins(y=0.25)
    return fig


def summary(result: dict[str, Any]) -> str:
    lines = [f"Table 14 on {result['device_name'] or result['device']}: {result['setting']['teacher']} -> "
             f"{result['setting']['student']}, batch {result['setting']['batch_size']}",
             f"{'method':<16} {'s/batch':>9} {'(min - max)':>19} {'overhead':>9}   paper (RTX 3090)"]
    for r in result["results"]:
        over = "-" if r["overhead_pct"] is None else f"{r['overhead_pct']:+.1f}%"
        paper = TABLE14.get(r["label"])
        ref = "" if paper is None else f"{paper[0]:.4f} s" + ("" if paper[1] is None else f" {paper[1]:+.1f}%")
        spread = f"({r['s_per_batch_min']:.4f} - {r['s_per_batch_max']:.4f})"
        lines.append(f"{r['label']:<16} {r['s_per_batch']:>9.4f} {spread:>19} {over:>9}   {ref}")
    lines += result.get("notes", [])
    return "\n".join(lines)
