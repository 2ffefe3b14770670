"""The loss-term registry: a method registers itself where it is defined, as timm registers models.

    @register_term("kd", inputs=("student_logits", "teacher_logits"),
                   source="Hinton et al. 2015; mdistiller/distillers/KD.py")
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
- ``batch_coupled``: the term mixes samples (a batch mean is not a mean of per-sample losses, e.g.
  DIST's inter-class relation, MLKD's batch- and class-level terms): under DDP it receives its
  per-sample inputs gathered over every rank, so N processes of batch b compute what one process of
  batch N*b does.

A term whose construction needs facts about the run (feature shapes, training-set size, the
teacher) defines ``from_context(cls, context, **options)``; it receives a
`figkd.losses.context.BuildContext`. Otherwise the term is built as ``cls(**options)``.

``forward`` returns a scalar tensor, or a dict of named scalar parts (MLKD: ce, kd, cc, bc) whose
sum is the term: the objective reports each part (``mlkd/kd``) and their sum (``mlkd``).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from torch import nn

from .inputs import check_names


@dataclass(frozen=True)
class TermSpec:
    """A registered loss term (see the module docstring)."""

    name: str
    cls: type[nn.Module]
    inputs: tuple[str, ...]
    defaults: dict[str, Any]
    source: str
    batch_coupled: bool = False

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


_TERMS: dict[str, TermSpec] = {}


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


def register_term(name: str, *, inputs: Sequence[str], source: str, batch_coupled: bool = False,
                  defaults: Mapping[str, Any] | None = None) -> Callable[[type[nn.Module]], type[nn.Module]]:
    """Class decorator registering a loss term under ``name`` (see the module docstring).

    ``defaults``: the options and their defaults where they are not the keyword parameters of the
    constructor (a term whose ``from_context`` takes ``**options`` validated elsewhere, like FiGKD's).

    Raises ValueError for a name already registered or an input outside the vocabulary, and
    TypeError for an option without a default or a ``forward`` whose positional parameters do not
    match ``inputs`` in number.
    """
    declared = check_names(inputs, f"term {name!r}")

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
        _TERMS[name] = TermSpec(name, cls, declared, options, source, batch_coupled)
        return cls

    return decorate


def list_terms() -> list[str]:
    """Names of the registered loss terms, sorted."""
    return sorted(_TERMS)


def term_spec(name: Any) -> TermSpec:
    """The registration of term ``name``; ValueError naming the valid terms if there is none."""
    if not isinstance(name, str) or name not in _TERMS:
        raise ValueError(f"unknown loss term {name!r}; valid terms: {', '.join(list_terms())}")
    return _TERMS[name]


def term_defaults(name: str) -> dict[str, Any]:
    """The options of a term with their defaults (a copy)."""
    return dict(term_spec(name).defaults)
