"""Objectives: weighted sums of named loss terms, built from a preset name or a term list.

    objective = build_objective("figkd")                       # CE 1 + FiGKD 2 (Eq. 7)
    objective = build_objective([{"term": "ce", "weight": 1.0},
                                 {"term": "figkd", "weight": 2.0, "bands": "both"}])
    out = objective(student_logits=s, teacher_logits=t, target=y, epoch=e)
    out["total"].backward()

A term entry is ``{"term": <name>, "weight": w (default 1), "warmup": N epochs (default 0),
"name": <output key> (optional), **options of the term}``. ``list_terms()`` names the terms,
``term_defaults(name)`` their options, ``list_presets()`` / ``preset_spec(name)`` the presets.

Warm-up: the weight of a term with ``"warmup": N`` is multiplied by ``min(epoch / N, 1)`` (clamped to
[0, 1]), the rule of mdistiller's DKD (`mdistiller/distillers/DKD.py`: ``min(kwargs["epoch"] /
self.warmup, 1.0)``). Epochs are counted from 1 as in mdistiller's trainer (`BaseTrainer.train`
starts at ``epoch = 1``): in the first epoch the factor is 1/N, from epoch N on it is 1.

For the engine: the forward pass does no host synchronisation (no ``.item()``, no Python branch on
tensor values); ``epoch`` may be a Python number or a 0-dim tensor (then the ramp is computed with
torch ops, on the tensor's device - pass a tensor on the logits' device when capturing the step in a
CUDA graph). ``required_inputs`` names the extra keyword inputs the terms need (MLKD's strong view),
``needs_teacher`` / ``needs_target`` say whether ``teacher_logits`` / ``target`` must be given.
"""

from __future__ import annotations

import copy
import math
import numbers
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from ._common import check_logits, check_real
from .ce import ce_loss
from .dist import DISTLoss
from .dkd import DKDLoss
from .figkd import DEFAULTS as FIGKD_DEFAULTS
from .figkd import _detail_loss, _grid_shape, validate_options
from .kd import KDLoss
from .mlkd import MLKDLoss

STRONG_INPUTS = frozenset({"student_logits_strong", "teacher_logits_strong"})
_ENTRY_KEYS = ("term", "weight", "warmup", "name")


# --------------------------------------------------------------------------- term modules
# Each takes the dict of inputs (student_logits, teacher_logits, target and the declared extras)
# and returns the unweighted scalar loss of the term.


class _CETerm(nn.Module):
    def forward(self, inputs: Mapping[str, Any]) -> torch.Tensor:
        return ce_loss(inputs["student_logits"], inputs["target"])


class _KDTerm(nn.Module):
    def __init__(self, temperature: float) -> None:
        super().__init__()
        self.loss = KDLoss(temperature)

    def forward(self, inputs: Mapping[str, Any]) -> torch.Tensor:
        return self.loss(inputs["student_logits"], inputs["teacher_logits"])


class _DKDTerm(nn.Module):
    def __init__(self, alpha: float, beta: float, temperature: float) -> None:
        super().__init__()
        self.loss = DKDLoss(alpha, beta, temperature)

    def forward(self, inputs: Mapping[str, Any]) -> torch.Tensor:
        return self.loss(inputs["student_logits"], inputs["teacher_logits"], inputs["target"])


class _MLKDTerm(nn.Module):
    """The MLKD objective (its own weighted CE included): ce + kd + cc + bc of `mlkd_loss`."""

    def __init__(self, temperature: float, ce_weight: float, kd_weight: float) -> None:
        super().__init__()
        self.loss = MLKDLoss(temperature, ce_weight, kd_weight)

    def forward(self, inputs: Mapping[str, Any]) -> torch.Tensor:
        parts = self.loss(inputs["student_logits"], inputs["teacher_logits"], inputs["student_logits_strong"],
                          inputs["teacher_logits_strong"], inputs["target"])
        return parts["ce"] + parts["kd"] + parts["cc"] + parts["bc"]


class _DISTTerm(nn.Module):
    def __init__(self, beta: float, gamma: float, temperature: float) -> None:
        super().__init__()
        self.loss = DISTLoss(beta, gamma, temperature)

    def forward(self, inputs: Mapping[str, Any]) -> torch.Tensor:
        return self.loss(inputs["student_logits"], inputs["teacher_logits"])


class _FiGKDTerm(nn.Module):
    """FiGKD detail loss on (student_logits, teacher_logits); the grid follows the logits' width
    (checked against ``num_classes`` when the objective was built with one). Noise, if any, uses
    the global torch RNG (seeded by the engine)."""

    def __init__(self, num_classes: int | None, **options: Any) -> None:
        super().__init__()
        self.options = validate_options(**options)
        self.num_classes = num_classes
        # grid per number of classes; filled at build time when num_classes is known (then the
        # forward pass is a dict lookup, which torch.compile(fullgraph=True) traces)
        self._shapes: dict[int, tuple[int, int] | None] = {}
        if num_classes is not None:
            self._shapes[num_classes] = _grid_shape(num_classes, self.options)  # checks level/grid now

    def forward(self, inputs: Mapping[str, Any]) -> torch.Tensor:
        s, t = inputs["student_logits"], inputs["teacher_logits"]
        check_logits(s, t, name="figkd term")
        c = s.shape[1]
        if self.num_classes is not None and c != self.num_classes:
            raise ValueError(f"figkd term: objective built for num_classes={self.num_classes}, "
                             f"logits have {c} classes")
        if c not in self._shapes:
            self._shapes[c] = _grid_shape(c, self.options)
        return _detail_loss(s, t, self._shapes[c], self.options, None)


# --------------------------------------------------------------------------- registry


@dataclass(frozen=True)
class TermDef:
    """A registered loss term: its option defaults, what it needs, how to build it, its source."""

    name: str
    defaults: Mapping[str, Any]
    build: Callable[..., nn.Module]
    needs_teacher: bool = True
    needs_target: bool = False
    extra_inputs: frozenset[str] = field(default_factory=frozenset)
    source: str = ""


_TERMS: dict[str, TermDef] = {}


def register_term(term: TermDef) -> None:
    """Add a loss term to the registry (a new method = one function, one entry here, its tests)."""
    if term.name in _TERMS:
        raise ValueError(f"a loss term named {term.name!r} is already registered")
    _TERMS[term.name] = term


register_term(TermDef(
    "ce", {}, lambda num_classes, **o: _CETerm(), needs_teacher=False, needs_target=True,
    source="cross-entropy with the ground truth",
))
register_term(TermDef(
    "kd", {"temperature": 4.0}, lambda num_classes, **o: _KDTerm(**o),
    source="Hinton et al. 2015; mdistiller/distillers/KD.py (T = 4: mdistiller/engine/cfg.py CFG.KD)",
))
register_term(TermDef(
    "dkd", {"alpha": 1.0, "beta": 8.0, "temperature": 4.0}, lambda num_classes, **o: _DKDTerm(**o),
    needs_target=True,
    source="Zhao et al. CVPR 2022; mdistiller/distillers/DKD.py (defaults: mdistiller/engine/cfg.py CFG.DKD)",
))
register_term(TermDef(
    "mlkd", {"temperature": 4.0, "ce_weight": 0.1, "kd_weight": 0.9}, lambda num_classes, **o: _MLKDTerm(**o),
    needs_target=True, extra_inputs=STRONG_INPUTS,
    source="Jin et al. CVPR 2023; Jin-Ying/Multi-Level-Logit-Distillation mdistiller/distillers/KD_ours.py "
           "(defaults: its mdistiller/engine/cfg.py CFG.KD)",
))
register_term(TermDef(
    "dist", {"beta": 1.0, "gamma": 1.0, "temperature": 1.0}, lambda num_classes, **o: _DISTTerm(**o),
    source="Huang et al. NeurIPS 2022; hunto/DIST_KD (classification code: lib/models/losses/dist_kd.py)",
))
register_term(TermDef(
    "figkd", dict(FIGKD_DEFAULTS), lambda num_classes, **o: _FiGKDTerm(num_classes, **o),
    source="FiGKD (Kim, ESWA 2026) Eq. 6; defaults: paper Section 3.3 and paper/README.md",
))


def list_terms() -> list[str]:
    """Names of the registered loss terms."""
    return sorted(_TERMS)


def term_defaults(name: str) -> dict[str, Any]:
    """The options of a term with their defaults."""
    return dict(_term(name).defaults)


def _term(name: Any) -> TermDef:
    if not isinstance(name, str) or name not in _TERMS:
        raise ValueError(f"unknown loss term {name!r}; valid terms: {', '.join(list_terms())}")
    return _TERMS[name]


# --------------------------------------------------------------------------- presets
# Every number with its source; docs/method.md has the table.

PRESETS: dict[str, list[dict[str, Any]]] = {
    # Student trained alone: CE only (mdistiller "NONE"/vanilla distiller).
    "vanilla": [{"term": "ce", "weight": 1.0}],
    # mdistiller CIFAR-100 KD: CFG.KD.LOSS.CE_WEIGHT 0.1, KD_WEIGHT 0.9, CFG.KD.TEMPERATURE 4
    # (mdistiller/engine/cfg.py; mdistiller/distillers/KD.py).
    "kd": [{"term": "ce", "weight": 0.1}, {"term": "kd", "weight": 0.9, "temperature": 4.0}],
    # mdistiller CIFAR-100 DKD: CFG.DKD.CE_WEIGHT 1, ALPHA 1, BETA 8, T 4, WARMUP 20
    # (mdistiller/engine/cfg.py; warm-up rule in mdistiller/distillers/DKD.py). Some pairs override
    # BETA in configs/cifar100/dkd/*.yaml (6 or 2): use a term list for those.
    "dkd": [{"term": "ce", "weight": 1.0},
            {"term": "dkd", "weight": 1.0, "alpha": 1.0, "beta": 8.0, "temperature": 4.0, "warmup": 20}],
    # MLKD official code: KD_ours.py with CFG.KD TEMPERATURE 4, CE_WEIGHT 0.1, KD_WEIGHT 0.9
    # (Jin-Ying/Multi-Level-Logit-Distillation, mdistiller/engine/cfg.py); CE is part of the term.
    "mlkd": [{"term": "mlkd", "weight": 1.0, "temperature": 4.0, "ce_weight": 0.1, "kd_weight": 0.9}],
    # DIST CIFAR-100 recipe of the official code base: configs/strategies/distill/dist_cifar.yaml
    # (ori_loss_weight 1, kd_loss_weight 2, kd "dist_t4" = DIST(beta=1, gamma=1, tau=4) in
    # lib/models/losses/kd_loss.py).
    "dist": [{"term": "ce", "weight": 1.0},
             {"term": "dist", "weight": 2.0, "beta": 1.0, "gamma": 1.0, "temperature": 4.0}],
    # FiGKD Eq. 7: CE weight 1, detail weight 2 (Section 5.1.2 / Fig. 4; paper/README.md), detail
    # loss with the defaults of Section 3.3 (Haar, J = 1, 2D, high-frequency subbands, MSE).
    "figkd": [{"term": "ce", "weight": 1.0}, {"term": "figkd", "weight": 2.0}],
    # Table 10's base ("Low x, High x" = MLKD's numbers) plus the detail term with Eq. 7's weight 2
    # (paper/README.md); the detail term is computed on the weak view (student_logits/teacher_logits).
    "mlkd+figkd": [{"term": "mlkd", "weight": 1.0, "temperature": 4.0, "ce_weight": 0.1, "kd_weight": 0.9},
                   {"term": "figkd", "weight": 2.0}],
}


def list_presets() -> list[str]:
    """Names of the objective presets."""
    return list(PRESETS)


def preset_spec(name: str) -> list[dict[str, Any]]:
    """The term list of a preset (a copy: edit it and pass it to `build_objective`)."""
    if not isinstance(name, str) or name not in PRESETS:
        raise ValueError(f"unknown objective preset {name!r}; valid presets: {', '.join(PRESETS)}")
    return copy.deepcopy(PRESETS[name])


# --------------------------------------------------------------------------- objective


class Objective(nn.Module):
    """Weighted sum of loss terms; see the module docstring. Build with `build_objective`."""

    def __init__(self, keys: Sequence[str], terms: Sequence[nn.Module], weights: Sequence[float],
                 warmups: Sequence[int], defs: Sequence[TermDef], spec: list[dict[str, Any]]) -> None:
        super().__init__()
        self.keys = tuple(keys)
        self.terms = nn.ModuleList(terms)
        self.weights = tuple(float(w) for w in weights)
        self.warmups = tuple(int(n) for n in warmups)
        self.spec = spec
        self.required_inputs: frozenset[str] = frozenset().union(*(d.extra_inputs for d in defs))
        self.needs_teacher: bool = any(d.needs_teacher for d in defs)
        self.needs_target: bool = any(d.needs_target for d in defs)
        self.needs_epoch: bool = any(n > 0 for n in self.warmups)

    def forward(
        self,
        *,
        student_logits: torch.Tensor,
        teacher_logits: torch.Tensor | None = None,
        target: torch.Tensor | None = None,
        epoch: float | torch.Tensor | None = None,
        **extra: torch.Tensor,
    ) -> dict[str, torch.Tensor]:
        unexpected = set(extra) - self.required_inputs
        if unexpected:
            raise TypeError(f"objective got unexpected inputs {sorted(unexpected)}; its terms take "
                            f"{sorted(self.required_inputs) or 'no extra inputs'}")
        missing = sorted(self.required_inputs - set(extra))
        if self.needs_teacher and teacher_logits is None:
            missing.insert(0, "teacher_logits")
        if self.needs_target and target is None:
            missing.insert(0, "target")
        if self.needs_epoch and epoch is None:
            missing.append("epoch")
        if missing:
            raise TypeError(f"objective ({', '.join(self.keys)}) needs inputs {missing}")
        inputs = {"student_logits": student_logits, "teacher_logits": teacher_logits, "target": target,
                  **extra}
        out: dict[str, torch.Tensor] = {}
        total = None
        for key, term, weight, warmup in zip(self.keys, self.terms, self.weights, self.warmups, strict=True):
            value = term(inputs) * weight
            if warmup > 0:
                value = value * _ramp(epoch, warmup, value)
            out[key] = value
            total = value if total is None else total + value
        out["total"] = total
        return out

    def extra_repr(self) -> str:
        parts = []
        for key, w, n in zip(self.keys, self.weights, self.warmups, strict=True):
            parts.append(f"{key}: weight={w}" + (f", warmup={n}" if n else ""))
        return "\n".join(parts)


def _ramp(epoch: float | torch.Tensor, warmup: int, like: torch.Tensor) -> float | torch.Tensor:
    """min(epoch / warmup, 1), clamped at 0; torch ops for a tensor epoch (no host sync)."""
    if isinstance(epoch, torch.Tensor):
        return torch.clamp(epoch.to(like.dtype) / warmup, min=0.0, max=1.0)
    if isinstance(epoch, bool) or not isinstance(epoch, numbers.Real) or math.isnan(epoch):
        raise TypeError(f"epoch must be a number or a 0-dim tensor, got {epoch!r}")
    return min(max(float(epoch) / warmup, 0.0), 1.0)


def build_objective(spec: str | Sequence[Mapping[str, Any]], *, num_classes: int | None = None) -> Objective:
    """Build an `Objective` from a preset name (`list_presets()`) or a list of term entries.

    Each entry: ``{"term": name, "weight": 1.0, "warmup": 0, "name": key, **options}``; unknown
    terms, presets or options and invalid values raise ValueError naming the valid ones. Output keys
    are the terms' names (``name`` overrides; a term used twice without names gets ``term_1``,
    ``term_2``, ...). ``num_classes``, if given, fixes the FiGKD grid and is checked on every call.
    """
    if isinstance(spec, str):
        entries: Sequence[Mapping[str, Any]] = preset_spec(spec)
    elif isinstance(spec, Sequence) and not isinstance(spec, (bytes, bytearray)):
        entries = spec
    else:
        raise ValueError(f"objective spec must be a preset name ({', '.join(PRESETS)}) or a list of term "
                         f"entries like [{{'term': 'ce', 'weight': 1.0}}], got {spec!r}")
    if len(entries) == 0:
        raise ValueError("objective spec has no terms")
    if num_classes is not None and (isinstance(num_classes, bool) or not isinstance(num_classes, int)
                                    or num_classes < 1):
        raise ValueError(f"num_classes must be a positive integer, got {num_classes!r}")

    names = [e.get("term") if isinstance(e, Mapping) else None for e in entries]
    counts = {n: names.count(n) for n in names}
    seen: dict[str, int] = {}
    keys, modules, weights, warmups, defs, resolved = [], [], [], [], [], []
    for i, entry in enumerate(entries):
        if not isinstance(entry, Mapping):
            raise ValueError(f"objective term #{i} must be a mapping like {{'term': 'kd', 'weight': 0.9}}, "
                             f"got {entry!r}")
        if "term" not in entry:
            raise ValueError(f"objective term #{i} has no 'term' key; valid terms: {', '.join(list_terms())}")
        d = _term(entry["term"])
        options = {k: v for k, v in entry.items() if k not in _ENTRY_KEYS}
        unknown = sorted(set(options) - set(d.defaults))
        if unknown:
            valid = sorted([*_ENTRY_KEYS, *d.defaults])
            raise ValueError(f"objective term {d.name!r}: unknown option(s) {unknown}; valid: {valid}")
        weight = check_real(entry.get("weight", 1.0), f"objective term {d.name!r}: weight")
        warmup = entry.get("warmup", 0)
        if isinstance(warmup, bool) or not isinstance(warmup, int) or warmup < 0:
            raise ValueError(f"objective term {d.name!r}: warmup must be an integer number of epochs >= 0, "
                             f"got {warmup!r}")
        key = entry.get("name")
        if key is None:
            seen[d.name] = seen.get(d.name, 0) + 1
            key = d.name if counts[d.name] == 1 else f"{d.name}_{seen[d.name]}"
        if not isinstance(key, str) or not key or key == "total" or key in keys:
            raise ValueError(f"objective term #{i}: output name {key!r} must be a non-empty string, unique, "
                             f"and not 'total'")
        opts = {**d.defaults, **options}
        try:
            module = d.build(num_classes, **opts)
        except ValueError as err:
            raise ValueError(f"objective term {d.name!r}: {err}") from None
        keys.append(key)
        modules.append(module)
        weights.append(weight)
        warmups.append(warmup)
        defs.append(d)
        resolved.append({"term": d.name, "name": key, "weight": weight, "warmup": warmup, **opts})
    return Objective(keys, modules, weights, warmups, defs, resolved)
