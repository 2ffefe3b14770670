"""Search spaces: ``--param KEY=SPEC`` on any config key or on an option of an objective's term.

``KEY`` is a config field (``lr``, ``weight_decay``, ``batch_size``, ``objective`` ...) or
``objective.TERM.OPTION``: an option of one term of the configuration's objective, ``TERM`` being the
term's output key (its ``name``, else its ``term``: ``ce``, ``kd``, ``figkd``, ``dkd`` ...) and ``OPTION``
``weight``, ``warmup`` or any option of that term (``figkd distill --help`` lists them). ``SPEC`` is one of

- ``float:LOW:HIGH`` - a real number in [LOW, HIGH]; ``float:LOW:HIGH:log`` on a log scale;
  ``float:LOW:HIGH:step=S`` on the grid LOW, LOW + S, ...;
- ``int:LOW:HIGH`` - an integer in [LOW, HIGH] (``:log`` and ``:step=S`` as for float);
- ``categorical:A,B,C`` - one of the listed values, each read as YAML (``1``, ``0.5``, ``kl``, ``true``).

Examples: ``objective.figkd.weight=float:0.5:8:log``, ``objective.kd.temperature=categorical:1,2,4,8``,
``objective.figkd.criterion=categorical:mse,kl``, ``lr=float:0.01:0.2:log``, ``objective=categorical:kd,figkd``.

A parameter is checked against the configuration before any trial runs (:func:`parse_space`): an unknown
key, term or option, a malformed spec, or a value the configuration refuses (each end of a range, each choice;
an objective option's value as the term itself checks it when built, `figkd.losses.check_options`) is a
one-line ConfigError. The fields ``figkd tune`` sets itself (``out``, the validation split's
``val_fraction``/``val_seed``, ``test_at_end``) cannot be searched.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import yaml

from ..checks import _NUMBER
from ..config import RunConfig, _check_key
from ..errors import ConfigError

__all__ = ["METRICS", "OWN_FIELDS", "PRUNERS", "SAMPLERS", "Param", "apply_params", "parse_param", "parse_space"]

#: Fields figkd tune sets on every trial (a parameter may not name them).
OWN_FIELDS = ("out", "val_fraction", "val_seed", "test_at_end")
KINDS = ("float", "int", "categorical")
#: Samplers, pruners and metrics by their --sampler / --pruner / --metric names (here, not in `figkd.tune.study`:
#: the command line offers them without importing Optuna, the optional extra).
SAMPLERS = ("tpe", "random", "grid")
PRUNERS = ("median", "hyperband", "none")
METRICS = ("last", "best")


@dataclass(frozen=True)
class Param:
    """One searched parameter: its key and its distribution (see the module docstring)."""

    key: str
    kind: str  # "float", "int" or "categorical"
    low: float | int | None = None
    high: float | int | None = None
    log: bool = False
    step: float | int | None = None
    choices: tuple[Any, ...] = ()

    @property
    def spec(self) -> str:
        """The text of the parameter as ``--param`` takes it (canonical form)."""
        if self.kind == "categorical":
            return f"{self.key}=categorical:" + ",".join(_text(c) for c in self.choices)
        extra = ":log" if self.log else (f":step={self.step:g}" if self.step is not None else "")
        return f"{self.key}={self.kind}:{self.low:g}:{self.high:g}{extra}"

    @property
    def term(self) -> tuple[str, str] | None:
        """``(term key, option)`` of an ``objective.TERM.OPTION`` parameter, else None."""
        parts = self.key.split(".", 2)
        return (parts[1], parts[2]) if len(parts) == 3 and parts[0] == "objective" else None

    def suggest(self, trial) -> Any:
        """The value of this parameter in an Optuna ``trial`` (``trial.suggest_*``)."""
        if self.kind == "categorical":
            return trial.suggest_categorical(self.key, list(self.choices))
        if self.kind == "int":
            return trial.suggest_int(self.key, int(self.low), int(self.high), step=int(self.step or 1), log=self.log)
        return trial.suggest_float(self.key, float(self.low), float(self.high), step=self.step, log=self.log)

    def grid(self) -> list[Any]:
        """Every value of the parameter, for the grid sampler; ConfigError for a continuous range."""
        if self.kind == "categorical":
            return list(self.choices)
        if self.kind == "int" and not self.log:
            return list(range(int(self.low), int(self.high) + 1, int(self.step or 1)))
        if self.kind == "float" and self.step is not None:
            count = int(math.floor((self.high - self.low) / self.step + 1e-9)) + 1
            return [round(self.low + i * self.step, 12) for i in range(count)]
        raise ConfigError(f"--sampler grid needs a finite set of values: --param {self.spec} is a continuous range "
                          "(give it a step=S, or make it categorical)")

    def extremes(self) -> list[Any]:
        """The values checked against the configuration before the search: every choice, or both ends of the
        range (of a step range: LOW and its last step, the largest LOW + k*S <= HIGH, as Optuna draws it)."""
        if self.kind == "categorical":
            return list(self.choices)
        if self.step is not None:
            values = self.grid()
            return [values[0], values[-1]] if len(values) > 1 else values
        return [self.low, self.high]


def _text(value: Any) -> str:
    return yaml.safe_dump(value, default_flow_style=True).strip().removesuffix("...").strip()


def _number(text: str, kind: str, where: str) -> float | int:
    try:
        value = yaml.safe_load(text)
        if kind == "int":
            if isinstance(value, bool) or not isinstance(value, int | float) or int(value) != value:
                raise ValueError
            return int(value)
        if isinstance(value, bool):
            raise ValueError
        value = float(value)
        if not math.isfinite(value):
            raise ValueError
        return value
    except (ValueError, TypeError, yaml.YAMLError):
        raise ConfigError(f"--param {where}: {text!r} is not {'an integer' if kind == 'int' else 'a number'}") \
            from None


def parse_param(text: str) -> Param:
    """A :class:`Param` from ``KEY=SPEC`` (the syntax of the module docstring); ConfigError naming what is
    wrong and the syntax for a malformed one. The key is checked against the configuration by
    :func:`parse_space`."""
    usage = ("expected KEY=float:LOW:HIGH[:log|:step=S], KEY=int:LOW:HIGH[:log|:step=S] or "
             "KEY=categorical:A,B,...")
    if "=" not in text:
        raise ConfigError(f"--param {text!r}: {usage}")
    key, spec = (part.strip() for part in text.split("=", 1))
    kind, _, rest = spec.partition(":")
    if not key or kind not in KINDS or not rest:
        raise ConfigError(f"--param {text!r}: {usage}")
    if kind == "categorical":
        items = [item.strip() for item in rest.split(",")]
        if any(not item for item in items):
            raise ConfigError(f"--param {text!r}: an empty choice; {usage}")
        try:  # YAML 1.1 reads 1e-3 (no dot) as a string: a number here, as in the config (figkd.checks)
            choices = tuple(float(item) if _NUMBER.fullmatch(item) and isinstance(yaml.safe_load(item), str)
                            else yaml.safe_load(item) for item in items)
        except yaml.YAMLError:
            raise ConfigError(f"--param {text!r}: a choice is not a YAML value") from None
        bad = [c for c in choices if c is not None and not isinstance(c, str | int | float | bool)]
        if bad:
            raise ConfigError(f"--param {text!r}: choices must be numbers, strings, booleans or null, got {bad[0]!r}")
        if len(set(map(repr, choices))) != len(choices):
            raise ConfigError(f"--param {text!r}: a choice is listed twice")
        return Param(key, kind, choices=choices)
    parts = rest.split(":")
    if len(parts) not in (2, 3):
        raise ConfigError(f"--param {text!r}: {usage}")
    low, high = (_number(p, kind, text) for p in parts[:2])
    log, step = False, None
    if len(parts) == 3:
        if parts[2] == "log":
            log = True
        elif parts[2].startswith("step="):
            step = _number(parts[2][5:], kind, text)
            if step <= 0:
                raise ConfigError(f"--param {text!r}: the step must be positive")
        else:
            raise ConfigError(f"--param {text!r}: {parts[2]!r} is neither 'log' nor 'step=S'; {usage}")
    if not low < high:
        raise ConfigError(f"--param {text!r}: LOW must be below HIGH")
    if log and low <= 0:
        raise ConfigError(f"--param {text!r}: a log scale needs LOW > 0")
    return Param(key, kind, low, high, log, step)


def _term_list(objective: Any) -> list[dict[str, Any]]:
    """The objective as an editable term list (a preset written out as its terms)."""
    from ..losses import list_presets, preset_spec

    if isinstance(objective, str):
        if objective not in list_presets():
            raise ConfigError(f"objective {objective!r} is not a preset (presets: {', '.join(list_presets())})")
        return preset_spec(objective)
    return copy.deepcopy(list(objective))


def _term_keys(spec: Sequence[Mapping[str, Any]]) -> list[str]:
    from ..losses import describe

    try:
        return [t.key for t in describe(spec).terms]
    except ValueError as error:
        raise ConfigError(f"objective: {error}") from None


def apply_params(base: RunConfig, params: Mapping[str, Any]) -> RunConfig:
    """``base`` with the parameter values ``params`` (by key) set: config fields first, then each
    ``objective.TERM.OPTION`` in the (preset written out as a) term list. ConfigError for a value or key the
    configuration refuses."""
    fields = {k: v for k, v in params.items() if not k.startswith("objective.")}
    cfg = base.replace(**fields) if fields else base
    options = {k: v for k, v in params.items() if k.startswith("objective.")}
    if not options:
        return cfg
    spec = _term_list(cfg.objective)
    keys = _term_keys(spec)
    for key, value in options.items():
        _, term, option = key.split(".", 2)
        if term not in keys:
            raise ConfigError(f"--param {key}: the objective has no term {term!r} (its terms: {', '.join(keys)})")
        spec[keys.index(term)][option] = value
    _term_keys(spec)  # an unknown option or a bad value: ConfigError naming it
    return cfg.replace(objective=spec)


def _check_key_of(param: Param, base: RunConfig) -> None:
    if param.key.startswith("objective."):
        if param.term is None or not all(param.term):
            raise ConfigError(f"--param {param.key}: an objective option is written objective.TERM.OPTION "
                              "(e.g. objective.figkd.weight)")
        _check_term(param, base)
        return
    try:
        _check_key(param.key)
    except ConfigError as error:
        raise ConfigError(f"--param: {error}") from None
    if param.key in OWN_FIELDS:
        raise ConfigError(f"--param {param.key}: figkd tune sets {', '.join(OWN_FIELDS)} itself; it cannot be searched")


def _check_term(param: Param, base: RunConfig) -> None:
    """The term of an ``objective.TERM.OPTION`` parameter is in the objective and has the option."""
    from ..losses import describe, term_defaults

    term, option = param.term
    spec = _term_list(base.objective)
    keys = _term_keys(spec)
    if term not in keys:
        raise ConfigError(f"--param {param.key}: the objective has no term {term!r} (its terms: {', '.join(keys)})")
    name = describe(spec).terms[keys.index(term)].term
    options = ["weight", "warmup", *term_defaults(name)]
    if option not in options:
        raise ConfigError(f"--param {param.key}: the term {term!r} ({name}) has no option {option!r}; its options: "
                          f"{', '.join(options)}")


def parse_space(texts: Sequence[str], base: RunConfig) -> list[Param]:
    """The search space of ``--param`` texts, checked against ``base`` (its objective resolved): every key
    known, no key twice, ``objective`` not searched beside its own terms, and every bound or choice a value
    the configuration accepts. ConfigError (one line) otherwise."""
    if not texts:
        raise ConfigError("figkd tune needs at least one --param KEY=SPEC (e.g. --param lr=float:0.01:0.2:log)")
    params = [parse_param(t) for t in texts]
    seen: set[str] = set()
    for p in params:
        _check_key_of(p, base)
        if p.key in seen:
            raise ConfigError(f"--param {p.key} is given twice")
        seen.add(p.key)
    if "objective" in seen and any(p.term for p in params):
        raise ConfigError("--param objective (a choice of objectives) and --param objective.TERM.OPTION cannot be "
                          "searched together; search one objective's options at a time")
    for p in params:
        for value in p.extremes():
            try:
                _check_value(base, p.key, value)
            except ConfigError as error:
                raise ConfigError(f"--param {p.spec}: the value {value!r} is refused ({error})") from None
    return params


def _check_value(base: RunConfig, key: str, value: Any) -> None:
    """ConfigError when the configuration refuses ``key`` = ``value``: the config's own checks
    (:func:`apply_params`) and, for the objective or one of its options, each term's check of its option values
    (`figkd.losses.check_options`: the terms built without models or data - cheap, nothing loaded)."""
    from ..losses import check_options

    cfg = apply_params(base, {key: value})
    if cfg.objective is not None and (key == "objective" or key.startswith("objective.")):
        try:
            check_options(cfg.objective)
        except ValueError as error:
            raise ConfigError(str(error)) from None
