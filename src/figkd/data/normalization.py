"""A run's normalisation: the recipe's mean/std, values given in the configuration, or ``auto``.

The run configuration's ``mean`` and ``std`` fields each take ``null`` (the recipe's value,
`figkd.data.recipe_for`), a number (the same for the three channels), a list of 1 or 3 numbers, or
``auto``: the per-channel statistics of the training split as the loader holds it (after the resize
or padding of its recipe; `figkd.data.stats.dataset_mean_std`), in [0, 1] units, population std.

``auto`` is computed once per run and written to ``normalization.json`` in each run directory (by the
run directory's owner, `figkd.engine.rundir.RunDir`, with :meth:`Normalization.to_dict`); a later invocation
on the same run directory (resume, a re-run, ``figkd eval``) reads it instead of recomputing, so a model is
always evaluated with the normalisation it was trained with. This module holds the values and their rules;
it reads and writes no file.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from ..checks import Triple, parse_value

__all__ = ["FILE", "Normalization", "for_evaluation", "parse_value", "resolve"]

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

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Normalization:
        """The inverse of :meth:`to_dict` (KeyError, TypeError or ValueError for a malformed mapping)."""
        return cls(_three(d["mean"]), _three(d["std"]), str(d["dataset"]), int(d["train_count"]), tuple(d["auto"]))


def resolve(mean: Any, std: Any, name: str, train_dataset, *, stored: Sequence[Normalization | None] = (),
            cache_dir: str | None = None, log: Callable[..., object] = print) -> Normalization | None:
    """The normalisation of a run on dataset ``name`` (None: the recipe's, nothing to change).

    ``auto`` takes the first of ``stored`` (what the run's directories hold, `RunDir.stored_normalization`)
    computed for this dataset and training-split size, else computes it from ``train_dataset``.
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
    if auto:
        stats = next((n for n in stored if n is not None and (n.dataset, n.train_count) == (name, count)), None)
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


def for_evaluation(cfg: dict[str, Any], stored: Normalization | None) -> Normalization | None:
    """The normalisation a run recorded as ``cfg`` used (for evaluation): None when it used its recipe's;
    ``stored`` is what its directory holds (``normalization.json``, or None).

    Raises ValueError when ``cfg`` says ``auto`` but nothing is stored.
    """
    m, s = parse_value("mean", cfg.get("mean")), parse_value("std", cfg.get("std"))
    if m is None and s is None:
        return None
    if "auto" not in (m, s):  # values given in the configuration: nothing was computed
        from .registry import recipe_for

        recipe = recipe_for(cfg["dataset"])
        return Normalization(m or tuple(recipe.mean), s or tuple(recipe.std), cfg["dataset"], 0, ())
    if stored is None:
        raise ValueError(f"it was trained with mean={cfg.get('mean')!r}, std={cfg.get('std')!r} but its {FILE} is "
                         "missing or unreadable; evaluate with the run's normalisation by restoring that file")
    return stored
