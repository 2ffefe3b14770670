"""A run's normalisation: the recipe's mean/std, values given in the configuration, or ``auto``.

The run configuration's ``mean`` and ``std`` fields each take ``null`` (the recipe's value,
`figkd.data.recipe_for`), a number (the same for the three channels), a list of 1 or 3 numbers, or
``auto``: the per-channel statistics of the training split as the loader holds it (after the resize
or padding of its recipe; `figkd.data.stats.dataset_mean_std`), in [0, 1] units, population std.

``auto`` is computed once per run and written to ``normalization.json`` in each run directory; a later
invocation on the same run directory (resume, a re-run, ``figkd eval``) reads it instead of recomputing,
so a model is always evaluated with the normalisation it was trained with.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..atomic import atomic_write_text
from ..checks import Triple, parse_value

__all__ = ["FILE", "Normalization", "load_for_run", "parse_value", "record", "resolve"]

FILE = "normalization.json"


@dataclass(frozen=True)
class Normalization:
    """Per-channel ``mean`` and ``std`` (three floats each, [0, 1] units) and where they came from."""

    mean: Triple
    std: Triple
    dataset: str
    train_count: int
    auto: tuple[str, ...]  # which of "mean", "std" were computed from the data

    def to_dict(self) -> dict[str, Any]:
        return {"dataset": self.dataset, "train_count": self.train_count, "mean": list(self.mean),
                "std": list(self.std), "auto": list(self.auto),
                "computed_by": "figkd.data.stats.dataset_mean_std (training split as the loader holds it)"}


def _read(run_dir: Path, dataset: str, train_count: int) -> Normalization | None:
    path = Path(run_dir) / FILE
    try:
        d = json.loads(path.read_text())
        norm = Normalization(tuple(map(float, d["mean"])), tuple(map(float, d["std"])), d["dataset"],
                             int(d["train_count"]), tuple(d["auto"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if (norm.dataset, norm.train_count) != (dataset, train_count) or len(norm.mean) != 3 or len(norm.std) != 3:
        return None
    return norm


def resolve(mean: Any, std: Any, name: str, train_dataset, *, run_dirs: Sequence[Path] = (), reuse: bool = True,
            cache_dir: str | None = None, log: Callable[..., object] = print) -> Normalization | None:
    """The normalisation of a run on dataset ``name`` (None: the recipe's, nothing to change).

    ``auto`` reads ``normalization.json`` from the first of ``run_dirs`` holding one for this dataset
    and training-split size (when ``reuse``), else computes it from ``train_dataset``.
    """
    from .registry import recipe_for
    from .stats import dataset_mean_std

    m, s = parse_value("mean", mean), parse_value("std", std)
    if m is None and s is None:
        return None
    recipe = recipe_for(name)
    auto = tuple(k for k, v in (("mean", m), ("std", s)) if v == "auto")
    count = len(train_dataset)
    stats = None
    if auto and reuse:
        stats = next((n for n in (_read(d, name, count) for d in run_dirs) if n is not None), None)
        if stats is not None:
            log(f"normalisation of {name}: mean {_fmt(stats.mean)}, std {_fmt(stats.std)} "
                f"(read from {FILE} of the run directory)")
    if auto and stats is None:
        log(f"computing the mean/std of the {name} training split ({count} images) for mean/std: auto")
        computed = dataset_mean_std(name, dataset=train_dataset, cache_dir=cache_dir)
        stats = Normalization(_three(computed[0]), _three(computed[1]), name, count, auto)
        log(f"normalisation of {name}: mean {_fmt(stats.mean)}, std {_fmt(stats.std)}")

    def pick(key: str, given: Any, from_recipe: Sequence[float]) -> Triple:
        if given == "auto":
            return getattr(stats, key)
        return tuple(given) if given is not None else tuple(float(v) for v in from_recipe)  # type: ignore

    return Normalization(pick("mean", m, recipe.mean), pick("std", s, recipe.std), name, count, auto)


def _three(values: Sequence[float]) -> Triple:
    v = tuple(float(x) for x in values)
    return v * 3 if len(v) == 1 else v  # type: ignore[return-value]


def _fmt(v: Sequence[float]) -> str:
    return "(" + ", ".join(f"{x:.4f}" for x in v) + ")"


def record(run_dir: Path, norm: Normalization | None) -> None:
    """Write ``normalization.json`` into ``run_dir`` (atomic) when the run's normalisation is not the recipe's."""
    if norm is not None:
        atomic_write_text(Path(run_dir) / FILE, json.dumps(norm.to_dict(), indent=1) + "\n")


def load_for_run(run_dir: Path, cfg: dict[str, Any]) -> Normalization | None:
    """The normalisation a finished or running run used (for evaluation): None when it used the recipe's.

    Raises ValueError when the run's configuration says ``auto`` but its ``normalization.json`` is missing.
    """
    m, s = parse_value("mean", cfg.get("mean")), parse_value("std", cfg.get("std"))
    if m is None and s is None:
        return None
    if "auto" not in (m, s):  # values given in the configuration: nothing was computed
        from .registry import recipe_for

        recipe = recipe_for(cfg["dataset"])
        return Normalization(m or tuple(recipe.mean), s or tuple(recipe.std), cfg["dataset"], 0, ())
    path = Path(run_dir) / FILE
    try:
        d = json.loads(path.read_text())
        return Normalization(_three(d["mean"]), _three(d["std"]), d["dataset"], int(d["train_count"]),
                             tuple(d["auto"]))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"{run_dir} was trained with mean={cfg.get('mean')!r}, std={cfg.get('std')!r} but its "
                         f"{FILE} is missing or unreadable ({exc}); evaluate with the run's normalisation by "
                         f"restoring that file") from None
