"""The result of a study (``figkd tune``'s end, or ``figkd tune --report STUDY``) and its final retraining.

:func:`write_report` writes into ``STUDY/report/``:

- ``report.md``: the trial counts, a table of the best trials (validation top-1, epochs, parameters, run
  directory) and the parameter importances - also printed;
- ``trials.csv``: every trial (number, state, value, epochs, seconds, parameters, run directory, error);
- ``best.yaml``: the best trial's configuration as a ready config file for the *full* training split
  (``val_fraction: 0``, no ``out``): ``figkd distill --config STUDY/report/best.yaml``;
- ``importances.json``: the parameter importances over the complete trials
  (``optuna.importance.get_param_importances`` with fANOVA, seeded); with fewer than two complete trials, or
  when every complete trial scored the same (fANOVA then has no variance to share out), the importances are
  undefined: no ``importances.json`` or ``importances.png``, and ``report.md`` says why in one line;
- figures as PNG, drawn by ``optuna.visualization.matplotlib``: ``history.png`` (optimisation history),
  ``importances.png``, ``slice.png`` (the objective against each of the two most important parameters),
  ``contour.png`` (the two most important parameters together, when there are two), ``intermediate.png``
  (validation top-1 per epoch of every trial: where the pruner stopped them).

:func:`final` (``--final N``) retrains configurations on the full training split with N seeds - the best
trial's (``tuned``) and each ``--against`` entry (``base``: the study's configuration as given; an objective
preset such as ``kd``; or an objective YAML file), all with the same recipe - as ordinary runs under
``STUDY/final/`` started by `figkd.experiments.sweep` (``--workers`` at a time), each evaluated on the
test split once, after its last epoch (``eval_every`` = ``epochs``): the only time a study reads the test
split. It reports the test top-1 of each as mean ± sample standard deviation over the seeds
(``report/final.md``, ``report/final.json``).
"""

from __future__ import annotations

import csv
import io
import json
import statistics
import warnings
from pathlib import Path

import optuna
from optuna.trial import FrozenTrial, TrialState

from ..atomic import atomic_write, atomic_write_text
from ..config import RunConfig, dump_yaml, is_objective_file, load_objective
from ..engine import rundir
from ..engine.rundir import RunDir
from ..errors import ConfigError
from .space import apply_params
from .study import Definition, StudyFolder, counted_trials

__all__ = ["best_config", "final", "importances", "no_importances", "write_report"]

STATES = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL, TrialState.RUNNING, TrialState.WAITING)


def _complete(study) -> list[FrozenTrial]:
    trials = [t for t in study.get_trials(deepcopy=False) if t.state == TrialState.COMPLETE]
    return sorted(trials, key=lambda t: (-t.value, t.number))


def best_config(study, definition: Definition) -> tuple[FrozenTrial, RunConfig]:
    """The best complete trial and its configuration for the full training split (``val_fraction`` 0, no
    ``out``). ConfigError when no trial is complete."""
    complete = _complete(study)
    if not complete:
        raise ConfigError(f"the study {study.study_name!r} has no complete trial yet: nothing to report as best")
    best = complete[0]
    cfg = apply_params(definition.base(), best.params).replace(out=None, val_fraction=0.0, test_at_end=False)
    return best, cfg


def _evaluator():
    """fANOVA (Hutter et al., ICML 2014; Optuna's ``FanovaImportanceEvaluator``), seeded: the same study gives
    the same importances."""
    return optuna.importance.FanovaImportanceEvaluator(seed=0)


def importances(study) -> dict[str, float]:
    """The importance of each parameter (fANOVA, normalised to sum 1) over the complete trials; empty when they
    are undefined (:func:`no_importances` says why)."""
    return _importances(study)[0]


def no_importances(study) -> str | None:
    """Why the parameter importances of ``study`` are undefined (one sentence), or None when they are defined:
    fewer than two complete trials; every complete trial scored the same (fANOVA's total variance is zero: Optuna
    raises ``RuntimeError: Encountered zero total variance in all trees``); or fANOVA refused the trials (its
    error quoted)."""
    return _importances(study)[1]


def _importances(study) -> tuple[dict[str, float], str | None]:
    complete = _complete(study)
    if len(complete) < 2:
        return {}, (f"parameter importances need at least 2 complete trials; the study has {len(complete)}, so "
                    "they are not computed")
    if len({t.value for t in complete}) == 1:
        return {}, (f"all {len(complete)} complete trials scored the same (val top-1 {complete[0].value:.2f}), so "
                    "parameter importances are undefined and not computed")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            values = optuna.importance.get_param_importances(study, evaluator=_evaluator())
        except (ValueError, RuntimeError) as error:
            return {}, f"fANOVA could not compute parameter importances over these trials ({error})"
    return {k: float(v) for k, v in values.items()}, None


def _save(path: Path, axes) -> None:
    import matplotlib.pyplot as plt
    import numpy as np

    figure = np.asarray(axes).ravel()[0].figure
    atomic_write(path, lambda f: figure.savefig(f, format="png", dpi=130, bbox_inches="tight"))
    plt.close(figure)


def figures(study, folder: StudyFolder, order: list[str]) -> list[Path]:
    """The PNGs of the module docstring (those the study has enough trials for; ``importances.png`` only when
    ``order``, the parameters by importance, is not empty); returns their paths."""
    import matplotlib

    matplotlib.use("Agg")
    from optuna.visualization import matplotlib as vis

    out = folder.report_dir
    written = []
    complete = _complete(study)
    params = order or sorted({k for t in complete for k in t.params})
    plots = [("history.png", lambda: vis.plot_optimization_history(study, target_name="val top-1"), 1),
             ("intermediate.png", lambda: vis.plot_intermediate_values(study), 1),
             ("importances.png", lambda: vis.plot_param_importances(study, evaluator=_evaluator(),
                                                                    target_name="val top-1"), 2),
             ("slice.png", lambda: vis.plot_slice(study, params=params[:2], target_name="val top-1"), 1),
             ("contour.png", lambda: vis.plot_contour(study, params=params[:2], target_name="val top-1"), 3)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Optuna's ExperimentalWarning for the matplotlib backend
        for name, draw, needed in plots:
            if len(complete) < needed or (name == "contour.png" and len(params) < 2) or not params:
                continue
            if name == "importances.png" and not order:
                (out / name).unlink(missing_ok=True)  # one an earlier report drew is no longer true
                continue
            _save(out / name, draw())
            written.append(out / name)
    return written


def _row_params(t: FrozenTrial) -> str:
    return ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in t.params.items())


def _trials_csv(study, keys: list[str]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["number", "state", "val_top1", "epochs", "seconds", *keys, "run_dir", "error"])
    for t in study.get_trials(deepcopy=False):
        seconds = ((t.datetime_complete - t.datetime_start).total_seconds()
                   if t.datetime_complete and t.datetime_start else "")
        writer.writerow([t.number, t.state.name.lower(), "" if t.value is None else f"{t.value:.4f}",
                         t.user_attrs.get("epochs", ""), f"{seconds:.1f}" if seconds != "" else "",
                         *[t.params.get(k, "") for k in keys], t.user_attrs.get("run_dir", ""),
                         t.user_attrs.get("error", "")])
    return buf.getvalue()


def write_report(folder: StudyFolder, study, definition: Definition, *, top: int = 10) -> str:
    """Write ``STUDY/report/`` (see the module docstring); returns the text of ``report.md``."""
    out = folder.report_dir
    out.mkdir(parents=True, exist_ok=True)
    trials = study.get_trials(deepcopy=False)
    counts = {s: sum(t.state == s for t in counted_trials(trials)) for s in STATES}
    requeued = len(trials) - len(counted_trials(trials))
    metric = "best epoch" if definition.metric == "best" else "last epoch"
    states = ", ".join(f"{n} {s.name.lower()}" for s, n in counts.items() if n)
    lines = [f"# figkd tune: {study.study_name}", "",
             f"{len(counted_trials(trials))} trials: {states}"
             + (f" (and {requeued} stopped and queued again)" if requeued else "")
             + f"; objective: validation top-1 at the {metric} (val_fraction {definition.config.get('val_fraction')}),"
             f" sampler {definition.sampler}, pruner {definition.pruner}.", ""]
    complete = _complete(study)
    keys = [p.key for p in definition.space()]
    if complete:
        lines += ["| rank | trial | val top-1 | epochs | parameters | run directory |", "|---:|---:|---:|---:|---|---|"]
        for rank, t in enumerate(complete[:top], start=1):
            lines.append(f"| {rank} | {t.number} | {t.value:.2f} | {t.user_attrs.get('epochs', '')} | {_row_params(t)} "
                         f"| {t.user_attrs.get('run_dir', '')} |")
        best, cfg = best_config(study, definition)
        header = (f"# figkd tune: the best trial ({best.number}, val top-1 {best.value:.2f}) of the study "
                  f"{study.study_name!r}, for the full training split (val_fraction 0).\n")
        atomic_write_text(out / "best.yaml", header + dump_yaml(cfg))
        lines += ["", f"best trial {best.number}: {_row_params(best)}; its configuration: {out / 'best.yaml'}"]
    else:
        lines.append("no complete trial yet")
    values, why = _importances(study)
    if why:
        (out / "importances.json").unlink(missing_ok=True)  # one an earlier report wrote is no longer true
        lines += ["", why + "."]
    if values:
        atomic_write_text(out / "importances.json", json.dumps({"evaluator": "fANOVA (optuna "
                                                                "FanovaImportanceEvaluator, seed 0)",
                                                                "importances": values}, indent=1) + "\n")
        lines += ["", f"parameter importances (fANOVA, {len(complete)} complete trials): "
                  + ", ".join(f"{k} {v:.2f}" for k, v in values.items())]
    atomic_write_text(out / "trials.csv", _trials_csv(study, keys))
    written = figures(study, folder, list(values))
    if written:
        lines += ["", "figures: " + ", ".join(str(p) for p in written)]
    text = "\n".join(lines) + "\n"
    atomic_write_text(out / "report.md", text)
    return text


# ------------------------------------------------------------------------------------------------ --final
def _against(name: str, base: RunConfig) -> tuple[str, RunConfig]:
    """The label and configuration of one ``--against`` entry."""
    if name == "base":
        return "base", base
    if is_objective_file(name):
        objective, label = load_objective(name), Path(name).stem
    else:
        objective, label = name, name
    try:
        rundir.resolved_terms(objective)
    except ValueError as error:
        raise ConfigError(f"--against {name}: {error}") from None
    return label, base.replace(objective=objective)


def final(folder: StudyFolder, study, definition: Definition, seeds: int, against: list[str], *, jobs: int = 1,
          gpus: list[str] | None = None, threads: int | None = None, log=print) -> str:
    """Retrain the best configuration (and each ``against`` entry) on the full training split with ``seeds``
    seeds (see the module docstring); returns the text of ``report/final.md``."""
    from ..experiments.sweep import execute, plan, summarize

    if seeds < 1:
        raise ConfigError(f"--final must be >= 1 seeds, got {seeds}")
    best, tuned = best_config(study, definition)
    base = definition.base().replace(out=None, val_fraction=0.0, test_at_end=False)
    entries = [("tuned", tuned)] + [_against(name, base) for name in against]
    if len({label for label, _ in entries}) != len(entries):
        raise ConfigError("--against names a configuration twice")
    first = base.seed
    files = []
    for label, cfg in entries:
        cfg = cfg.replace(eval_every=cfg.epochs, out=str(folder.final_dir / f"{label}-s{first}"))
        path = folder.final_dir / "configs" / f"{label}.yaml"
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(path, dump_yaml(cfg))
        files.append(path)
    runs = plan(files, seeds=list(range(first, first + seeds)))
    outcomes = execute(runs, jobs, gpus, threads=threads, progress=False, echo=log)
    log(summarize(outcomes))
    rows, results = [], {}
    for (label, cfg), path in zip(entries, files, strict=True):
        mine = [r for r in runs if r.config == path]
        top1 = [(RunDir(r.run_dir).summary() or {}).get("last_top1") for r in mine]
        done = [float(v) for v in top1 if v is not None]
        mean = statistics.fmean(done) if done else None
        std = statistics.stdev(done) if len(done) > 1 else None
        results[label] = {"objective": rundir.resolved_terms(cfg.objective), "seeds": [r.seed for r in mine],
                          "test_top1": top1, "mean": mean, "std": std,
                          "run_dirs": [str(r.run_dir) for r in mine]}
        shown = ", ".join("-" if v is None else f"{v:.2f}" for v in top1)
        summary = "-" if mean is None else f"{mean:.2f}" + (f" ± {std:.2f}" if std is not None else "")
        rows.append(f"| {label} | {shown} | {summary} |")
    text = "\n".join([
        f"# figkd tune --final: {study.study_name}", "",
        f"Test top-1 (%) after the last epoch on the full training split, seeds {first}..{first + seeds - 1}; "
        f"tuned = trial {best.number} ({_row_params(best)}; val top-1 {best.value:.2f}). Mean ± sample std.", "",
        "| configuration | test top-1 per seed | mean ± std |", "|---|---|---:|", *rows]) + "\n"
    folder.report_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(folder.report_dir / "final.md", text)
    atomic_write_text(folder.report_dir / "final.json", json.dumps({"best_trial": best.number,
                                                                    "params": best.params, "results": results},
                                                                   indent=1) + "\n")
    return text
