"""Types and ranges of configuration values: what each field of :class:`figkd.config.RunConfig` declares.

Each check is a small immutable object with ``check(name, value) -> value`` (raising ``ValueError``
with a one-line message that names the field, the value and what is accepted) and ``describe()`` (the
accepted values in words). Values come from YAML (``--config``, ``--set key=value``), from flags or
from Python; the checks accept exactly what the field means and normalise only what YAML 1.1 reads
differently from what a user typed:

- a number field accepts ints and floats, and a string that is a decimal number (PyYAML reads
  ``1e-3``, without a dot, as a string); it returns a float; ``nan`` and ``inf`` are refused;
- an integer field refuses floats and booleans (``True`` is an ``int`` in Python);
- a choice field of ``on``/``off`` values maps YAML's booleans back (YAML reads ``off`` as false).

``Optional(check)`` also accepts ``None`` (YAML ``null``).
"""

from __future__ import annotations

import difflib
import math
import numbers
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["Bool", "Check", "Choice", "Device", "Float", "Int", "IntList", "Normalisation", "Objective", "Optional",
           "Peers", "Str", "TERM_WARMUP", "TERM_WARMUP_START", "TERM_WEIGHT", "Triple", "did_you_mean",
           "parse_value"]

Triple = tuple[float, float, float]

_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")


def did_you_mean(name: Any, choices: Iterable[str], *, synonyms: Mapping[str, str] | None = None) -> str:
    """`` (did you mean 'x'?)`` for a mistyped ``name``: its entry in ``synonyms`` (another toolkit's word for
    it), else the closest of ``choices`` by `difflib.get_close_matches` (case ignored, its default cutoff 0.6);
    ``""`` when nothing is close or ``name`` is not a string. For the error of an unknown name (a config key,
    a dataset, a preset, a term option): ``f"unknown dataset {name!r}{did_you_mean(name, names)}; valid: ..."``.
    """
    if not isinstance(name, str):
        return ""
    if synonyms and name in synonyms:
        return f" (did you mean {synonyms[name]!r}?)"
    lowered: dict[str, str] = {}
    for choice in choices:
        lowered.setdefault(choice.lower(), choice)
    close = difflib.get_close_matches(name.lower(), list(lowered), n=1)
    return f" (did you mean {lowered[close[0]]!r}?)" if close else ""


class Check:
    """Base class: ``check(name, value)`` returns the (normalised) value or raises ValueError."""

    def check(self, name: str, value: Any) -> Any:  # pragma: no cover - abstract
        raise NotImplementedError

    def describe(self) -> str:  # pragma: no cover - abstract
        raise NotImplementedError

    def fail(self, name: str, value: Any) -> ValueError:
        return ValueError(f"{name} must be {self.describe()}, got {value!r}")


def _num(x: float) -> str:
    if isinstance(x, int) and x >= 2**20:
        return f"2**{x.bit_length()} - 1" if x == 2**x.bit_length() - 1 else str(x)
    return f"{x:g}"


def _bounds(lo: float | None, hi: float | None, lo_open: bool, hi_open: bool) -> str:
    if lo is not None and hi is not None:
        return f"in {'(' if lo_open else '['}{_num(lo)}, {_num(hi)}{')' if hi_open else ']'}"
    if lo is not None:
        return f"{'>' if lo_open else '>='} {_num(lo)}"
    if hi is not None:
        return f"{'<' if hi_open else '<='} {_num(hi)}"
    return ""


def _in_range(v: float, lo: float | None, hi: float | None, lo_open: bool, hi_open: bool) -> bool:
    if lo is not None and (v < lo or (lo_open and v == lo)):
        return False
    return not (hi is not None and (v > hi or (hi_open and v == hi)))


@dataclass(frozen=True)
class Int(Check):
    """An integer in ``[min, max]`` (either bound optional)."""

    min: int | None = None
    max: int | None = None

    def check(self, name: str, value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or not _in_range(value, self.min, self.max,
                                                                                    False, False):
            raise self.fail(name, value)
        return value

    def describe(self) -> str:
        if self.min == 1 and self.max is None:
            return "a positive integer"
        bounds = _bounds(self.min, self.max, False, False)
        return "an integer" + (f" {bounds}" if bounds else "")


@dataclass(frozen=True)
class Float(Check):
    """A finite real number within the bounds; ``min_open``/``max_open`` exclude the bound itself."""

    min: float | None = None
    max: float | None = None
    min_open: bool = False
    max_open: bool = False

    def check(self, name: str, value: Any) -> float:
        if isinstance(value, str) and _NUMBER.fullmatch(value.strip()):
            value = float(value)  # YAML 1.1 reads 1e-3 (no dot) as a string
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self.fail(name, value)
        v = float(value)
        if not math.isfinite(v) or not _in_range(v, self.min, self.max, self.min_open, self.max_open):
            raise self.fail(name, value)
        return v

    def describe(self) -> str:
        if self.min == 0 and self.min_open and self.max is None:
            return "a positive number"
        bounds = _bounds(self.min, self.max, self.min_open, self.max_open)
        return "a number" + (f" {bounds}" if bounds else "")


@dataclass(frozen=True)
class Bool(Check):
    def check(self, name: str, value: Any) -> bool:
        if not isinstance(value, bool):
            raise self.fail(name, value)
        return value

    def describe(self) -> str:
        return "true or false"


@dataclass(frozen=True)
class Str(Check):
    """A non-empty string (a name or a path); ``hint`` is appended to the error."""

    hint: str = ""

    def check(self, name: str, value: Any) -> str:
        if not isinstance(value, str) or not value.strip():
            error = self.fail(name, value)
            raise ValueError(f"{error}{self.hint}") if self.hint else error
        return value

    def describe(self) -> str:
        return "a single name or path"


@dataclass(frozen=True)
class Choice(Check):
    """One of ``choices``; with ``on_off``, YAML's true/false (how YAML reads on/off) map to "on"/"off"."""

    choices: tuple[str, ...]
    on_off: bool = False

    def check(self, name: str, value: Any) -> str:
        if self.on_off and isinstance(value, bool):
            value = "on" if value else "off"
        if value not in self.choices:
            raise ValueError(f"{name} must be one of {', '.join(self.choices)}, got {value!r}")
        return value

    def describe(self) -> str:
        return "one of " + ", ".join(self.choices)


@dataclass(frozen=True)
class IntList(Check):
    """A list of integers, each ``>= min``."""

    min: int = 1

    def check(self, name: str, value: Any) -> list[int]:
        if not isinstance(value, list) or not all(isinstance(v, int) and not isinstance(v, bool)
                                                  and v >= self.min for v in value):
            raise self.fail(name, value)
        return value

    def describe(self) -> str:
        return f"a list of integers >= {self.min} (YAML: [150, 180, 210])"


_DEVICE = re.compile(r"auto|cpu|mps|cuda(:\d+)?")


@dataclass(frozen=True)
class Device(Check):
    def check(self, name: str, value: Any) -> str:
        if not isinstance(value, str) or not _DEVICE.fullmatch(value):
            raise self.fail(name, value)
        return value

    def describe(self) -> str:
        return "auto, cpu, cuda, cuda:N or mps"


#: The weight of an objective term: a finite number >= 0 (a term is added, never subtracted). The one rule
#: for config files (`Objective`) and for code (``figkd.losses.build_objective``).
TERM_WEIGHT = Float(min=0)
#: The warm-up of an objective term: a whole number of epochs >= 0 (0: none), for both as well.
TERM_WARMUP = Int(min=0)
#: The epoch at which a term's warm-up ramp is 0 (``warmup_start``): 0 (mdistiller's rule, epochs counted
#: from 1) or later, e.g. 1 for a trainer that counts epochs from 0 (dvlab-research/ReviewKD).
TERM_WARMUP_START = Int(min=0)


@dataclass(frozen=True)
class Objective(Check):
    """A preset name, or a non-empty list of term mappings ``{term: NAME, weight: W >= 0, ...}``.

    Only the shape, the weights (`TERM_WEIGHT`) and the warm-ups (`TERM_WARMUP`) are checked here; the
    terms and their options are checked when the objective is built (``figkd.losses.build_objective``),
    also before any run directory exists."""

    def check(self, name: str, value: Any) -> Any:
        if isinstance(value, str) and value.strip():
            return value
        if not isinstance(value, Sequence) or isinstance(value, str) or not value:
            raise self.fail(name, value)
        for i, entry in enumerate(value):
            if not isinstance(entry, Mapping) or not isinstance(entry.get("term"), str):
                raise ValueError(f"{name} term #{i} must be a mapping with a 'term' name, like "
                                 f"{{term: kd, weight: 0.9}}, got {entry!r}")
            if "weight" in entry:
                TERM_WEIGHT.check(f"{name} term #{i} ({entry['term']}): weight", entry["weight"])
            if "warmup" in entry:
                TERM_WARMUP.check(f"{name} term #{i} ({entry['term']}): warmup (epochs)", entry["warmup"])
            if "warmup_start" in entry:
                TERM_WARMUP_START.check(f"{name} term #{i} ({entry['term']}): warmup_start (epoch)",
                                        entry["warmup_start"])
        return value

    def describe(self) -> str:
        return "a preset name or a list of terms like [{term: ce, weight: 1.0}, {term: kd, weight: 0.9}]"


class Peers(Check):
    """Two or more architecture names (deep mutual learning: ``figkd distill --peers A B``)."""

    def check(self, name: str, value: Any) -> list[str]:
        if (isinstance(value, str) or not isinstance(value, Sequence) or len(value) < 2
                or not all(isinstance(p, str) and p for p in value)):
            raise self.fail(name, value)
        return list(value)

    def describe(self) -> str:
        return "a list of two or more architectures (--peers A B)"


class Normalisation(Check):
    """A ``mean`` / ``std`` value: null (the dataset recipe's), ``auto``, a number or a list of 1 or 3
    numbers (std > 0). The one definition of these forms is :func:`parse_value`; the
    value is kept as written (the run directory's config records what the user asked for)."""

    def check(self, name: str, value: Any) -> Any:
        parse_value(name, value)
        return value

    def describe(self) -> str:
        return "null, auto, a number or a list of 1 or 3 numbers"


@dataclass(frozen=True)
class Optional(Check):
    """``inner`` or None (YAML ``null``)."""

    inner: Check

    def check(self, name: str, value: Any) -> Any:
        if value is None:
            return None
        return self.inner.check(name, value)

    def describe(self) -> str:
        return "null or " + self.inner.describe()


def parse_value(name: str, value: Any) -> None | str | Triple:
    """Check a ``mean`` / ``std`` configuration value; returns None, ``"auto"`` or three floats.

    Raises ValueError naming the field and the accepted forms.
    """
    accepted = (f"{name} must be null (the recipe's), auto (computed from the training split), a number or a "
                f"list of 1 or 3 numbers")
    if value is None or value == "auto":
        return value
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        value = [value]
    if (isinstance(value, (str, bytes)) or not isinstance(value, Sequence) or len(value) not in (1, 3)
            or not all(isinstance(v, numbers.Real) and not isinstance(v, bool) for v in value)):
        raise ValueError(f"{accepted}, got {value!r}")
    out = tuple(float(v) for v in value) * (3 if len(value) == 1 else 1)
    if not all(math.isfinite(v) for v in out) or (name == "std" and min(out) <= 0):
        raise ValueError(f"{name} values must be finite{' and > 0' if name == 'std' else ''}, got {value!r}")
    return out  # type: ignore[return-value]
