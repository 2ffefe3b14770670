"""``figkd analyze sensitivity``: top-1 against the loss weights of Eq. 7 (paper Section 5.1.2, Fig. 4).

Collects the finished distill runs of one teacher-student pair (default ResNet32x4 -> ResNet8x4, the
paper's) under RUNS_DIR whose objective is Eq. 7, ``alpha * ce + beta * figkd`` with the detail term's
default options (the ``figkd`` preset is alpha 1, beta 2; ``configs/paper/fig4`` sweeps the rest), and
per dataset draws, as the paper does, top-1 against beta at alpha = 1 and against alpha at beta = 2
(mean ± std over seeds), with MLKD's top-1 - ours where RUNS_DIR has MLKD runs of the pair, and the
paper's (Tables 1-4) - as reference lines. The paper's grid values were lost in the text extraction;
any weights found are drawn.

Writes ``sensitivity.png`` and ``sensitivity.json`` into ``--out`` (default ``RUNS_DIR/analysis``).
"""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ..experiments.runs import collect_runs, method_name
from .common import new_figure, output_dir, write_json, write_png

NAME = "sensitivity"


def eq7_weights(objective: Any) -> tuple[float, float] | None:
    """``(alpha, beta)`` of an Eq. 7 objective (``ce`` and ``figkd`` with default options), else None."""
    from ..losses import preset_spec

    spec = preset_spec(objective) if objective == "figkd" else objective
    if not isinstance(spec, list) or len(spec) != 2:
        return None
    by_term = {e.get("term"): e for e in spec if isinstance(e, dict)}
    if set(by_term) != {"ce", "figkd"}:
        return None
    alpha, beta = float(by_term["ce"].get("weight", 1.0)), float(by_term["figkd"].get("weight", 1.0))
    unit = [{"term": "ce", "weight": 1.0}, {**by_term["figkd"], "weight": 2.0}]
    if method_name(unit) != "figkd" or any(e.get("warmup") for e in spec):
        return None  # other detail-term options: not a point of Fig. 4
    return alpha, beta


def _series(points: dict[tuple[float, float], list[float]], fixed: str) -> list[dict[str, Any]]:
    """Points with alpha = 1 (``fixed="alpha"``: x = beta) or beta = 2 (x = alpha), sorted by x."""
    out = []
    for (alpha, beta), values in sorted(points.items()):
        if (fixed == "alpha" and alpha == 1.0) or (fixed == "beta" and beta == 2.0):
            out.append({"x": beta if fixed == "alpha" else alpha, "mean": statistics.fmean(values),
                        "std": statistics.stdev(values) if len(values) > 1 else None, "n": len(values)})
    return sorted(out, key=lambda p: p["x"])


def sensitivity(runs_dir: str | Path, *, teacher: str = "resnet32x4", student: str = "resnet8x4",
                metric: str = "last", out: str | Path | None = None,
                paper_dir: str | Path | None = None) -> dict[str, Any]:
    """Run the analysis (see the module docstring); returns what ``sensitivity.json`` holds."""
    from ..experiments.paper import reported_top1

    finished = [r for r in collect_runs(runs_dir) if r.finished and r.command == "distill"]
    runs = [r for r in finished if (r.teacher, r.student) == (teacher, student)]
    datasets: dict[str, dict[str, Any]] = {}
    for r in runs:
        weights = eq7_weights(r.cfg.get("objective"))
        entry = datasets.setdefault(r.dataset, {"points": {}, "mlkd": []})
        if weights is not None:
            entry["points"].setdefault(weights, []).append(r.top1(metric))
        elif r.method == "mlkd":
            entry["mlkd"].append(r.top1(metric))
    datasets = {d: e for d, e in datasets.items() if e["points"]}
    if not datasets:
        pairs = sorted({(r.teacher, r.student) for r in finished if eq7_weights(r.cfg.get("objective")) is not None}
                       - {(teacher, student)})
        other = (f"; it holds Eq. 7 runs of {', '.join(f'--teacher {t} --student {s}' for t, s in pairs)}"
                 if pairs else "; run the configs of configs/paper/fig4 (figkd sweep)")
        raise ConfigError(f"no finished {teacher} -> {student} runs with an Eq. 7 objective (ce + figkd) under "
                          f"{runs_dir}{other}")
    result: dict[str, Any] = {"analysis": "sensitivity", "teacher": teacher, "student": student, "metric": metric,
                              "datasets": []}
    for dataset, e in sorted(datasets.items()):
        result["datasets"].append({
            "dataset": dataset,
            "beta_at_alpha_1": _series(e["points"], "alpha"), "alpha_at_beta_2": _series(e["points"], "beta"),
            "points": [{"alpha": a, "beta": b, "values": v} for (a, b), v in sorted(e["points"].items())],
            "mlkd": statistics.fmean(e["mlkd"]) if e["mlkd"] else None,
            "mlkd_paper": reported_top1(dataset, teacher, student, "MLKD", paper_dir)})
    fig = new_figure(4.2 * len(result["datasets"]), 3.2)
    axes = fig.subplots(1, len(result["datasets"]), squeeze=False)[0]
    for ax, d in zip(axes, result["datasets"], strict=True):
        for key, label, color in (("beta_at_alpha_1", "detail weight beta (alpha = 1)", "tab:blue"),
                                  ("alpha_at_beta_2", "CE weight alpha (beta = 2)", "tab:orange")):
            s = d[key]
            if s:
                ax.errorbar([p["x"] for p in s], [p["mean"] for p in s], yerr=[p["std"] or 0.0 for p in s],
                            marker="o", capsize=3, label=label, color=color)
        if d["mlkd"] is not None:
            ax.axhline(d["mlkd"], color="gray", linestyle="--", label="MLKD (ours)")
        if d["mlkd_paper"] is not None:
            ax.axhline(d["mlkd_paper"], color="gray", linestyle=":", label="MLKD (paper)")
        ax.set_xscale("log", base=2)
        ax.set_xlabel("loss weight")
        ax.set_ylabel(f"test top-1 (%), {metric} epoch")
        ax.set_title(f"{d['dataset']}: {teacher} -> {student}", fontsize=9)
        ax.legend(fontsize=7)
    dest = output_dir([runs_dir], out)
    result["files"] = [write_png(dest / f"{NAME}.png", fig), dest / f"{NAME}.json"]
    write_json(dest / f"{NAME}.json", result)
    return result


def summary(result: dict[str, Any]) -> str:
    lines = []
    for d in result["datasets"]:
        lines.append(f"{d['dataset']} ({result['teacher']} -> {result['student']}):")
        for key, what in (("beta_at_alpha_1", "beta (alpha = 1)"), ("alpha_at_beta_2", "alpha (beta = 2)")):
            points = ", ".join(f"{p['x']:g}: {p['mean']:.2f}" + (f" ± {p['std']:.2f}" if p["std"] else "")
                               for p in d[key])
            lines.append(f"  {what}: {points or '-'}")
    return "\n".join(lines)
