"""One description of an objective: its resolved term list, its label and its directory name.

An objective is given as a preset name (``"kd"``) or a term list (``[{"term": "ce", "weight": 0.1},
{"term": "kd", "weight": 0.9}]``). Everything figkd says about it comes from `describe`:

- ``terms``: the resolved term list - each term with its output key, weight, warm-up and every option
  (the term's defaults filled in). `figkd.losses.build_objective` builds the terms from it, and its
  recorded form (``Description.resolved``: ``{"term", "name", "weight", "warmup", **options}`` per term)
  is ``Objective.spec``, what a run directory records as ``resolved.objective``.
- ``label``: the method a run is grouped under in reports (`label`): a preset name is itself; a term
  list equal to a preset (defaults filled in, output keys ignored) is that preset's name; any other term
  list is ``weight*term(option=value, ...)`` joined by ``" + "``, the weight left out when 1 and only the
  options that differ from the term's defaults shown (``"ce + 2*figkd(level=2)"``,
  ``"ce + dkd(beta=6, warmup=20)"``, ``"0.5*ce + 2*figkd"``).
- ``dirname``: the objective's part of a run directory's name (`dirname`): a preset's name; for a term
  list, its terms joined by ``+`` and the first 6 hex digits of the SHA-1 of the list *as written*
  (``ce+figkd-1a858d``), so that two ablations of the same terms get different directories. A term list
  equal to a preset keeps its own name (not the preset's): the run's config records the list, which the
  engine compares with a run found in the directory, and ``figkd sweep`` finds finished runs by these
  names (docs/engine.md, "Run directories").

The weight and warm-up of a term follow `figkd.checks.TERM_WEIGHT` and `figkd.checks.TERM_WARMUP`, the
rules the config checks apply too.
"""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..checks import TERM_WARMUP, TERM_WARMUP_START, TERM_WEIGHT, did_you_mean
from .registry import ENTRY_KEYS, list_presets, list_terms, preset_spec, term_spec


@dataclass(frozen=True)
class ResolvedTerm:
    """One term of an objective with everything it resolved to."""

    term: str
    key: str
    weight: float
    warmup: int
    options: dict[str, Any]
    warmup_start: int = 0

    def entry(self) -> dict[str, Any]:
        """The recorded form: ``{"term", "name", "weight", "warmup", **options}``, with ``"warmup_start"``
        after ``"warmup"`` when it is not 0 (records made before it existed stay equal)."""
        start = {"warmup_start": self.warmup_start} if self.warmup_start else {}
        return {"term": self.term, "name": self.key, "weight": self.weight, "warmup": self.warmup, **start,
                **copy.deepcopy(self.options)}

    def setting(self) -> tuple[Any, ...]:
        """What the term computes: everything but its output key."""
        return self.term, self.weight, self.warmup, self.warmup_start, self.options


@dataclass(frozen=True)
class Description:
    """An objective described once (see the module docstring)."""

    spec: Any
    terms: tuple[ResolvedTerm, ...]
    label: str
    dirname: str

    @property
    def resolved(self) -> list[dict[str, Any]]:
        """The resolved term list as a run directory records it (``Objective.spec``)."""
        return [t.entry() for t in self.terms]


def describe(spec: str | Sequence[Mapping[str, Any]]) -> Description:
    """The description of a preset name or term list. Raises ValueError naming the valid presets, terms or
    options, for a weight or warm-up outside their rules, and for output keys that are not unique."""
    terms = tuple(resolve(spec))
    return Description(spec, terms, _label(spec, terms), dirname(spec))


def resolve(spec: str | Sequence[Mapping[str, Any]], *, strict: bool = True) -> list[ResolvedTerm]:
    """The resolved terms of a preset name or term list (see `describe` for the errors).

    ``strict=False`` reads a recorded objective without judging it (for labels): a term this process does
    not know (a plugin not loaded) keeps the options as written, and nothing is refused.
    """
    if isinstance(spec, str):
        entries: Sequence[Any] = preset_spec(spec)
    elif isinstance(spec, Sequence) and not isinstance(spec, (bytes, bytearray)):
        entries = spec
    else:
        raise ValueError(f"objective spec must be a preset name ({', '.join(list_presets())}) or a list of term "
                         f"entries like [{{'term': 'ce', 'weight': 1.0}}], got {spec!r}")
    if strict and len(entries) == 0:
        raise ValueError("objective spec has no terms")
    names = [e.get("term") if isinstance(e, Mapping) else None for e in entries]
    seen: list[Any] = []
    out: list[ResolvedTerm] = []
    for i, entry in enumerate(entries):
        if strict and not isinstance(entry, Mapping):
            raise ValueError(f"objective term #{i} must be a mapping like {{'term': 'kd', 'weight': 0.9}}, "
                             f"got {entry!r}")
        if strict and "term" not in entry:
            raise ValueError(f"objective term #{i} has no 'term' key; valid terms: {', '.join(list_terms())}")
        term = entry.get("term")
        options = {k: v for k, v in entry.items() if k not in ENTRY_KEYS}
        if strict:
            defaults = term_spec(term).defaults
            unknown = sorted(set(options) - set(defaults))
            if unknown:
                valid = sorted([*ENTRY_KEYS, *defaults])
                raise ValueError(f"objective term {term!r}: unknown option(s) {unknown}"
                                 f"{did_you_mean(unknown[0], valid)}; valid: {valid}")
            weight = TERM_WEIGHT.check(f"objective term {term!r}: weight", entry.get("weight", 1.0))
            warmup = TERM_WARMUP.check(f"objective term {term!r}: warmup (epochs)", entry.get("warmup", 0))
            start = TERM_WARMUP_START.check(f"objective term {term!r}: warmup_start (epoch)",
                                            entry.get("warmup_start", 0))
        else:
            try:
                defaults = term_spec(term).defaults
            except ValueError:  # a term this process does not know: its options as written
                defaults = {}
            weight, warmup = _number(entry.get("weight", 1.0), float), _number(entry.get("warmup", 0), int)
            start = _number(entry.get("warmup_start", 0), int)
        key = entry.get("name")
        if key is None:  # the term's name; a term used twice without names: term_1, term_2, ...
            seen.append(term)
            key = term if names.count(term) == 1 else f"{term}_{seen.count(term)}"
        if strict and (not isinstance(key, str) or not key or key == "total" or "/" in key
                       or key in [t.key for t in out]):
            raise ValueError(f"objective term #{i}: output name {key!r} must be a non-empty string without '/', "
                             "unique, and not 'total'")
        out.append(ResolvedTerm(term, key, weight, warmup, copy.deepcopy({**defaults, **options}), start))
    return out


def label(objective: Any) -> str:
    """The label of an objective as a run records it (see the module docstring); never raises: ``None`` is
    ``"default"``, a value that is neither a name nor a term list its ``str``."""
    if isinstance(objective, str):
        return objective
    if objective is None:
        return "default"
    if (not isinstance(objective, Sequence) or isinstance(objective, (bytes, bytearray))
            or not all(isinstance(e, Mapping) for e in objective)):
        return str(objective)
    return _label(objective, resolve(objective, strict=False))


def _label(spec: Any, terms: Sequence[ResolvedTerm]) -> str:
    if isinstance(spec, str):
        return spec
    setting = [t.setting() for t in terms]
    for preset in list_presets():
        if [t.setting() for t in resolve(preset, strict=False)] == setting:
            return preset
    parts = []
    for t in terms:
        try:
            defaults = term_spec(t.term).defaults
        except ValueError:
            defaults = {}
        shown = {k: v for k, v in t.options.items() if k not in defaults or defaults[k] != v}
        if t.warmup:
            shown["warmup"] = t.warmup
        if t.warmup_start:
            shown["warmup_start"] = t.warmup_start
        opts = ", ".join(f"{k}={_num(v)}" for k, v in sorted(shown.items()))
        parts.append(("" if t.weight == 1.0 else f"{_num(t.weight)}*") + str(t.term) + (f"({opts})" if opts else ""))
    return " + ".join(parts)


def _number(value: Any, cast: type) -> Any:
    """``cast(value)``, or the value as written where it is not a number (a label shows it as it is)."""
    try:
        return cast(value)
    except (TypeError, ValueError):
        return value


def _num(v: Any) -> str:
    return f"{v:g}" if isinstance(v, float) else str(v)


def dirname(spec: Any) -> str:
    """The objective's part of a run directory's name (see the module docstring)."""
    if isinstance(spec, str):
        return spec
    terms = "+".join(str(entry.get("term")) for entry in spec)
    digest = hashlib.sha1(json.dumps(spec, sort_keys=True, default=str).encode()).hexdigest()[:6]
    return f"{terms}-{digest}"
