"""The loss-term registry: a method registers itself where it is defined, as timm registers models.

    @register_term("kd", inputs=("student_logits", "teacher_logits"), function=kd_loss,
                   source="Hinton et al. 2015; mdistiller/distillers/KD.py",
                   help="knowledge distillation: KL between the softened class distributions",
                   presets={
                       # mdistiller CIFAR-100 KD: CE_WEIGHT 0.1, KD_WEIGHT 0.9 (T 4: the term's default)
                       "kd": [{"term": "ce", "weight": 0.1}, {"term": "kd", "weight": 0.9}],
                   })
    class KDLoss(nn.Module):
        def __init__(self, temperature: float = 4.0): ...
        def forward(self, student_logits, teacher_logits): ...

What registration states, once:

- ``name``: the term's name in objectives (``{"term": "kd", ...}``), presets and the CLI.
- ``inputs``: the names it needs, from the closed vocabulary of `figkd.losses.inputs`; the objective
  calls ``forward`` with them **positionally, in this order**.
- the options and their defaults: the keyword parameters of ``__init__`` (or of a ``from_context``
  classmethod, after its context parameter) - one declaration, read from the signature - or an
  explicit ``defaults`` mapping where the constructor takes ``**options``.
- ``source``: the paper and the official code the formula and defaults come from.
- ``help``: one line saying what the method does, shown by ``figkd distill --help``.
- ``function``: the method's pure function (``kd_loss``), exported beside the module by
  `figkd.losses` (its ``__all__`` is derived from the registrations). Where it repeats an option's
  default (so that ``kd_loss(s, t)`` works alone), the two must be equal (checked here).
- ``presets``: the method's objective presets, ``{name: term list}``. Each entry of a term list states
  only what differs from the defaults (weight 1, warm-up 0, the term's option defaults): the ``kd``
  preset is "ce weight 0.1 + kd weight 0.9", and its temperature is the ``kd`` term's default. A preset
  may combine terms of other methods (``mlkd+figkd``); it is registered by the method it is named after,
  with the source of each number in a comment beside it.
- ``batch_coupled``: the term mixes samples (a batch mean is not a mean of per-sample losses, e.g.
  DIST's inter-class relation, MLKD's batch- and class-level terms): under DDP it receives its
  per-sample inputs gathered over every rank, so N processes of batch b compute what one process of
  batch N*b does.

Presets are listed (`list_presets`, ``--help``, docs/method.md section 5) in the order they were
registered - figkd's methods in the order of the imports of `figkd.losses`, then plugins in the order
they were loaded - except that the presets on standardized logits (an entry with ``standardize: true``,
logit standardization) follow all the others, as a block of their own.

A term whose construction needs facts about the run (feature shapes, training-set size, the
teacher) defines ``from_context(cls, context, **options)``; it receives a
`figkd.losses.context.BuildContext`. Otherwise the term is built as ``cls(**options)``.

``forward`` returns a scalar tensor, or a dict of named scalar parts (MLKD: ce, kd, cc, bc) whose
sum is the term: the objective reports each part (``mlkd/kd``) and their sum (``mlkd``).
"""

from __future__ import annotations

import copy
import inspect
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from torch import nn

from ..checks import did_you_mean
from .inputs import check_names

#: The keys of a term entry that are not options of the term (``{"term": ..., "weight": ..., ...}``).
ENTRY_KEYS = ("term", "weight", "warmup", "warmup_start", "name")
#: A preset name: it names run directories (``<student>-<preset>-s<seed>``), so no path separator or space.
_PRESET_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.+-]*")


@dataclass(frozen=True)
class TermSpec:
    """A registered loss term (see the module docstring)."""

    name: str
    cls: type[nn.Module]
    inputs: tuple[str, ...]
    defaults: dict[str, Any]
    source: str
    batch_coupled: bool = False
    help: str = ""
    function: Callable[..., Any] | None = None
    #: the mode the term's official code runs the teacher in: "eval" (BatchNorm running statistics; the
    #: default, and mdistiller's `Distiller.train`) or "train" (batch statistics, and the teacher's running
    #: statistics move with the data: OFD, ReviewKD). `figkd.engine.teacher.resolve_teacher_mode` reads it.
    teacher_mode: str = "eval"

    def build(self, context, **options: Any) -> nn.Module:
        """The term module with ``options`` (already merged with the defaults)."""
        factory = getattr(self.cls, "from_context", None)
        if factory is not None:
            return factory(context, **options)
        return self.cls(**options)

    @property
    def summary(self) -> str:
        """One line for help texts: name, options with defaults, inputs."""
        opts = ", ".join(f"{k}={v!r}" for k, v in self.defaults.items())
        return f"{self.name}({opts}) <- {', '.join(self.inputs)}"


@dataclass(frozen=True)
class Preset:
    """An objective preset: its term list as registered (each entry only what differs from the defaults)
    and the term whose registration declares it."""

    name: str
    terms: tuple[Mapping[str, Any], ...]
    method: str

    @property
    def standardized(self) -> bool:
        """Whether a term of the preset works on standardized logits (listed after the other presets)."""
        return any(entry.get("standardize") is True for entry in self.terms)


_TERMS: dict[str, TermSpec] = {}
_PRESETS: dict[str, Preset] = {}


def _options_of(cls: type, name: str) -> dict[str, Any]:
    """The keyword options of a term class and their defaults, from its signature."""
    factory = getattr(cls, "from_context", None)
    if factory is not None:
        params = list(inspect.signature(factory).parameters.values())[1:]  # after the context
    else:
        params = list(inspect.signature(cls.__init__).parameters.values())[1:]  # after self
    out = {}
    for p in params:
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            continue
        if p.default is p.empty:
            raise TypeError(f"term {name!r}: option {p.name!r} of {cls.__name__} has no default; every "
                            "option of a registered term needs one (its default is the method's setting)")
        out[p.name] = p.default
    return out


def _check_function(name: str, function: Callable[..., Any] | None, options: Mapping[str, Any]) -> None:
    """A pure function that repeats an option's default (so that it can be called alone, ``kd_loss(s, t)``)
    must repeat it exactly: TypeError naming the option otherwise."""
    if function is None:
        return
    if not callable(function):
        raise TypeError(f"term {name!r}: function must be the method's pure function, got {function!r}")
    for p in inspect.signature(function).parameters.values():
        if p.name in options and p.default is not p.empty and p.default != options[p.name]:
            raise TypeError(f"term {name!r}: {function.__name__}'s default {p.name}={p.default!r} differs from the "
                            f"term's {options[p.name]!r}; declare each default once (or the same in both)")


def _presets_of(term: str, presets: Mapping[str, Any] | None) -> list[Preset]:
    """The presets a registration declares, checked for their shape (their terms and options are checked
    when they are built: a preset may name the terms of methods registered later)."""
    out = []
    for name, terms in (presets or {}).items():
        if not isinstance(name, str) or not _PRESET_NAME.fullmatch(name):
            raise ValueError(f"term {term!r}: preset name {name!r} must be letters, digits and _ . + - (it names "
                             "run directories)")
        if name in _PRESETS:
            raise ValueError(f"an objective preset named {name!r} is already registered (by the term "
                             f"{_PRESETS[name].method!r})")
        if (isinstance(terms, (str, bytes)) or not isinstance(terms, Sequence) or not terms
                or not all(isinstance(e, Mapping) and isinstance(e.get("term"), str) for e in terms)):
            raise ValueError(f"term {term!r}: preset {name!r} must be a non-empty list of term entries like "
                             f"{{'term': 'ce', 'weight': 0.1}}, got {terms!r}")
        out.append(Preset(name, tuple(copy.deepcopy(dict(e)) for e in terms), term))
    return out


def register_term(name: str, *, inputs: Sequence[str], source: str, help: str = "",
                  function: Callable[..., Any] | None = None, presets: Mapping[str, Sequence[Mapping[str, Any]]]
                  | None = None, batch_coupled: bool = False, defaults: Mapping[str, Any] | None = None,
                  teacher_mode: str = "eval") -> Callable[[type[nn.Module]], type[nn.Module]]:
    """Class decorator registering a loss term under ``name``, with its presets (see the module docstring).

    ``defaults``: the options and their defaults where they are not the keyword parameters of the
    constructor (a term whose ``from_context`` takes ``**options`` validated elsewhere, like FiGKD's).
    ``teacher_mode``: ``"train"`` when the method's official code runs the teacher in train mode (see
    `TermSpec.teacher_mode`); the engine then does too unless the run's ``teacher_mode`` says otherwise.

    Raises ValueError for a name or preset name already registered, an input outside the vocabulary or a
    preset that is not a list of term entries, and TypeError for an option without a default, a
    ``function`` whose default of an option differs from the term's, or a ``forward`` whose positional
    parameters do not match ``inputs`` in number. Nothing is registered when it raises.
    """
    declared = check_names(inputs, f"term {name!r}")
    if teacher_mode not in ("eval", "train"):
        raise ValueError(f"term {name!r}: teacher_mode must be 'eval' or 'train', got {teacher_mode!r}")

    def decorate(cls: type[nn.Module]) -> type[nn.Module]:
        if name in _TERMS:
            raise ValueError(f"a loss term named {name!r} is already registered ({_TERMS[name].cls.__name__})")
        params = [p for p in list(inspect.signature(cls.forward).parameters.values())[1:]
                  if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
        if len(params) != len(declared):
            raise TypeError(f"term {name!r}: {cls.__name__}.forward takes {len(params)} positional inputs "
                            f"({', '.join(p.name for p in params)}) but {len(declared)} are declared "
                            f"({', '.join(declared)}); they are passed in the declared order")
        options = dict(defaults) if defaults is not None else _options_of(cls, name)
        _check_function(name, function, options)
        declared_presets = _presets_of(name, presets)
        _TERMS[name] = TermSpec(name, cls, declared, options, source, batch_coupled, help, function, teacher_mode)
        _PRESETS.update((p.name, p) for p in declared_presets)
        return cls

    return decorate


def list_terms() -> list[str]:
    """Names of the registered loss terms, sorted."""
    return sorted(_TERMS)


def term_spec(name: Any) -> TermSpec:
    """The registration of term ``name``; ValueError naming the valid terms if there is none."""
    if not isinstance(name, str) or name not in _TERMS:
        raise ValueError(f"unknown loss term {name!r}{did_you_mean(name, list_terms())}; valid terms: "
                         f"{', '.join(list_terms())}")
    return _TERMS[name]


def term_defaults(name: str) -> dict[str, Any]:
    """The options of a term with their defaults (a copy)."""
    return dict(term_spec(name).defaults)


def list_presets() -> list[str]:
    """Names of the objective presets, in the order of the module docstring (registration order, the
    presets on standardized logits last)."""
    return ([n for n, p in _PRESETS.items() if not p.standardized]
            + [n for n, p in _PRESETS.items() if p.standardized])


def preset_spec(name: Any) -> list[dict[str, Any]]:
    """The term list of a preset as registered: each entry only what differs from the defaults (a copy: edit
    it and pass it to `build_objective`). ValueError naming the presets for an unknown name, and saying how
    to use a term for the name of a term."""
    if not isinstance(name, str) or name not in _PRESETS:
        presets = ", ".join(list_presets())
        if name == "ce":
            raise ValueError(f"'ce' is a loss term, not an objective preset: the preset 'vanilla' is cross-entropy "
                             f"alone; presets: {presets}")
        if isinstance(name, str) and name in _TERMS:
            raise ValueError(f"{name!r} is a loss term, not an objective preset: give a term list, e.g. "
                             f"--set 'objective=[{{term: ce, weight: 1.0}}, {{term: {name}, weight: 1.0}}]' or a "
                             f"YAML file of one (--objective FILE.yaml); presets: {presets}")
        raise ValueError(f"unknown objective preset {name!r}{did_you_mean(name, list_presets())}; valid presets: "
                         f"{presets}")
    return [copy.deepcopy(dict(entry)) for entry in _PRESETS[name].terms]


def public_names() -> list[str]:
    """The names `figkd.losses` exports for the registered terms: each term's module class and pure function."""
    out = []
    for spec in _TERMS.values():
        out.append(spec.cls.__name__)
        if spec.function is not None:
            out.append(spec.function.__name__)
    return out


def terms_overview() -> str:
    """The registered terms, one line each (name, module class, pure function, help), for docstrings."""
    lines = []
    for name in list_terms():
        spec = _TERMS[name]
        names = ", ".join(f"`{n}`" for n in (spec.cls.__name__, getattr(spec.function, "__name__", None)) if n)
        lines.append(f"- ``{name}`` ({names}): {spec.help}")
    return "\n".join(lines)
