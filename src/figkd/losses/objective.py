"""Objectives: weighted sums of named loss terms, built from a preset name or a term list.

    objective = build_objective("figkd")                       # CE 1 + FiGKD 2 (Eq. 7)
    objective = build_objective([{"term": "ce", "weight": 1.0},
                                 {"term": "figkd", "weight": 2.0, "bands": "both"}])
    out = objective(student_logits=s, teacher_logits=t, target=y, epoch=e)
    out["total"].backward()

A term entry is ``{"term": <name>, "weight": w (default 1), "warmup": N epochs (default 0),
"name": <output key> (optional), **options of the term}``. The terms are those registered with
`figkd.losses.register_term` (``list_terms()``; ``term_defaults(name)`` gives their options),
``list_presets()`` / ``preset_spec(name)`` the presets.

Inputs are keyword arguments named from the vocabulary of `figkd.losses.inputs`; ``objective.needs``
(a `figkd.losses.inputs.Needs`) is the union of what the terms declare (plus ``epoch`` when a term
warms up), from which the engine derives which forwards return features and what the loader yields.
A term with trainable modules or buffers (FitNet's connector, ...) is part of the objective's
``parameters()`` / ``state_dict()``: the engine trains, synchronises, saves and resumes them with the
student (`figkd.engine.learner.Learner`). Terms that need facts about the run (feature shapes,
training-set size, the teacher) are built from a `figkd.losses.BuildContext`.

Warm-up: the weight of a term with ``"warmup": N`` is multiplied by ``min(epoch / N, 1)`` (clamped to
[0, 1]), the rule of mdistiller's DKD (`mdistiller/distillers/DKD.py`: ``min(kwargs["epoch"] /
self.warmup, 1.0)``). Epochs are counted from 1 as in mdistiller's trainer (`BaseTrainer.train`
starts at ``epoch = 1``): in the first epoch the factor is 1/N, from epoch N on it is 1.

A term may return a dict of named parts (MLKD: ce, kd, cc, bc): the output then holds each weighted
part as ``<key>/<part>`` and their sum as ``<key>``. Under DDP the inputs of a ``batch_coupled`` term
are gathered over the ranks (`figkd.losses._distributed`).

For the engine: the forward pass does no host synchronisation (no ``.item()``, no Python branch on
tensor values); ``epoch`` may be a Python number or a 0-dim tensor (then the ramp is computed with
torch ops, on the tensor's device - pass a tensor on the logits' device when capturing the step in a
CUDA graph).
"""

from __future__ import annotations

import copy
import math
import numbers
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn

from ._common import check_real
from ._distributed import gather_batch, world_size
from .context import BuildContext
from .inputs import NOT_PER_SAMPLE, VOCABULARY, Needs
from .registry import TermSpec, list_terms, term_spec

_ENTRY_KEYS = ("term", "weight", "warmup", "name")


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
    # FiGKD Eq. 7: CE weight 1, detail weight 2 (Section 5.1.2 / Fig. 4; docs/method.md §2), detail
    # loss with the defaults of Section 3.3 (Haar, J = 1, 2D, high-frequency subbands, MSE).
    "figkd": [{"term": "ce", "weight": 1.0}, {"term": "figkd", "weight": 2.0}],
    # Table 10's base ("Low x, High x" = MLKD's numbers) plus the detail term with Eq. 7's weight 2
    # (docs/method.md §3); the detail term is computed on the weak view (student_logits/teacher_logits).
    "mlkd+figkd": [{"term": "mlkd", "weight": 1.0, "temperature": 4.0, "ce_weight": 0.1, "kd_weight": 0.9},
                   {"term": "figkd", "weight": 2.0}],
    # mdistiller CIFAR-100 FitNet: CFG.FITNET.HINT_LAYER 2, LOSS.CE_WEIGHT 1, LOSS.FEAT_WEIGHT 100
    # (mdistiller/engine/cfg.py; mdistiller/distillers/FitNet.py).
    "fitnet": [{"term": "ce", "weight": 1.0}, {"term": "fitnet", "weight": 100.0, "hint_layer": 2}],
    # mdistiller CIFAR-100 AT: CFG.AT.P 2, LOSS.CE_WEIGHT 1, LOSS.FEAT_WEIGHT 1000
    # (mdistiller/engine/cfg.py; mdistiller/distillers/AT.py).
    "at": [{"term": "ce", "weight": 1.0}, {"term": "at", "weight": 1000.0, "p": 2.0}],
    # mdistiller CIFAR-100 PKT: CFG.PKT.LOSS.CE_WEIGHT 1, FEAT_WEIGHT 30000 (mdistiller/engine/cfg.py;
    # mdistiller/distillers/PKT.py, on the penultimate embeddings).
    "pkt": [{"term": "ce", "weight": 1.0}, {"term": "pkt", "weight": 30000.0}],
    # mdistiller CIFAR-100 RKD: CFG.RKD DISTANCE_WEIGHT 25, ANGLE_WEIGHT 50, LOSS.CE_WEIGHT 1, FEAT_WEIGHT 1,
    # PDIST.SQUARED False, PDIST.EPSILON 1e-12 (mdistiller/engine/cfg.py; mdistiller/distillers/RKD.py).
    "rkd": [{"term": "ce", "weight": 1.0},
            {"term": "rkd", "weight": 1.0, "distance_weight": 25.0, "angle_weight": 50.0}],
    # mdistiller CIFAR-100 SP: CFG.SP.LOSS.CE_WEIGHT 1, FEAT_WEIGHT 3000, last stage (mdistiller/engine/cfg.py;
    # mdistiller/distillers/SP.py).
    "sp": [{"term": "ce", "weight": 1.0}, {"term": "sp", "weight": 3000.0}],
    # VID: CFG.VID.LOSS.CE_WEIGHT 1, FEAT_WEIGHT 1, INIT_PRED_VAR 5, EPS 1e-5 (mdistiller/engine/cfg.py;
    # RepDistiller distiller_zoo/VID.py, whose variance is trained).
    "vid": [{"term": "ce", "weight": 1.0}, {"term": "vid", "weight": 1.0, "init_variance": 5.0, "eps": 1e-5}],
    # CRD: RepDistiller train_student.py (--feat_dim 128, --nce_k 16384, --nce_t 0.07, --nce_m 0.5, --mode exact)
    # and its README (-r 1 -a 0 -b 0.8: CE 1, CRD 0.8); mdistiller CFG.CRD has the same values.
    "crd": [{"term": "ce", "weight": 1.0},
            {"term": "crd", "weight": 0.8, "feat_dim": 128, "num_negatives": 16384, "temperature": 0.07,
             "momentum": 0.5}],
    # mdistiller CIFAR-100 OFD: CFG.OFD.LOSS.CE_WEIGHT 1, FEAT_WEIGHT 0.001, CONNECTOR.KERNEL_SIZE 1
    # (mdistiller/engine/cfg.py; mdistiller/distillers/OFD.py).
    "ofd": [{"term": "ce", "weight": 1.0}, {"term": "ofd", "weight": 0.001}],
    # mdistiller CIFAR-100 ReviewKD: configs/cifar100/reviewkd.yaml REVIEWKD_WEIGHT 5 over CFG.REVIEWKD
    # (CE_WEIGHT 1, WARMUP_EPOCHS 20 with min(epoch / 20, 1), STU_PREACT False; mdistiller/engine/cfg.py).
    "reviewkd": [{"term": "ce", "weight": 1.0},
                 {"term": "reviewkd", "weight": 5.0, "warmup": 20, "student_preact": False}],
    # CAT-KD, resnet32x4 -> resnet8x4: GzyAftermath/CAT-KD configs/cifar100/CAT_KD/res32x4_res8x4.yaml
    # (CAT_loss_weight 15, CAM_RESOLUTION 2, IF_NORMALIZE False, CE_WEIGHT 1); other pairs differ
    # (figkd.losses.catkd.CIFAR100_PAIRS).
    "cat_kd": [{"term": "ce", "weight": 1.0}, {"term": "cat_kd", "weight": 15.0, "pool_size": 2, "normalize": False}],
    # DiffKD: ori_loss_weight 1, kd_loss_weight 1, tau 1, use_ae (hunto/image_classification_sota
    # configs/strategies/distill/diffkd/diffkd_b1.yaml, ImageNet); CIFAR derivation in figkd.losses.diffkd.
    "diffkd": [{"term": "ce", "weight": 1.0}, {"term": "diffkd", "weight": 1.0}],
    # RLD: zju-SWJ/RLD CFG.RLD CE_WEIGHT 1, ALPHA 1, BETA 8, T 4, WARMUP 20 (mdistiller/engine/cfg.py; the warm-up
    # multiplies the RLD term only, RLD.forward_train) and its README's --same-t (ALPHA_T = T = 4; cfg.py: 1).
    "rld": [{"term": "ce", "weight": 1.0},
            {"term": "rld", "weight": 1.0, "alpha": 1.0, "beta": 8.0, "temperature": 4.0, "alpha_temperature": 4.0,
             "warmup": 20}],
    # TeKAP (logit level): mdimtiazh/TeKAP README command -r 0.1 -a 0.9 (--kd_T 4); Ours_TeKAP_L.py: 3 perturbed
    # teachers 0.9 t + 0.1 N(0, 1), weighted 0.8 each.
    "tekap": [{"term": "ce", "weight": 0.1},
              {"term": "tekap", "weight": 0.9, "temperature": 4.0, "num_teachers": 3, "teacher_weight": 0.9,
               "noise_weight": 0.1, "augmented_weight": 0.8}],
    # LDRLD: yema-web/LDRLD README command -r 1.0 -a 10.5 -b 7.0 --kd_T 4 (train_student.py --k 7); CE once
    # (the code applies -r twice to CE: gamma^2, = 1 here).
    "ldrld": [{"term": "ce", "weight": 1.0},
              {"term": "ldrld", "weight": 1.0, "alpha": 10.5, "beta": 7.0, "k": 7, "temperature": 4.0}],
    # EKD: lyxiang-casia/EKD configs/cifar100/ekd/model/resnet32x4_resnet8x4.yaml (LAMB -1.22, TEMPERATURE 1,
    # KD_WEIGHT 4.5, EKD_WEIGHT 4.5, WARMUP 30); the term holds its evidential CE. "ekd": the evidential terms
    # (the paper's); "ekd-code": the released code's effective loss (KD + MSE), which produced its numbers.
    # WARMUP ramps the Dirichlet term only: the term's dirichlet_warmup (an entry's "warmup" ramps the whole term).
    "ekd": [{"term": "ekd", "weight": 1.0, "variant": "paper", "lamb": -1.22, "temperature": 1.0, "kd_weight": 4.5,
             "ekd_weight": 4.5, "dirichlet_warmup": 30}],
    "ekd-code": [{"term": "ekd", "weight": 1.0, "variant": "code", "lamb": -1.22, "temperature": 1.0,
                  "kd_weight": 4.5, "ekd_weight": 4.5}],
    # DML: Zhang et al. CVPR 2018 Eq. 10: CE + the mean KL to the other peers at T = 1 (figkd distill --peers A B).
    "dml": [{"term": "ce", "weight": 1.0}, {"term": "dml", "weight": 1.0, "temperature": 1.0}],
    # Logit standardization (sunshangquan/logit-standardization-KD README: --logit-stand --base-temp 2
    # --kd-weight 9; tools/train.py: KD weight and T replaced; DKD alpha and beta multiplied by 9; MLKD kd_weight 9
    # and T 2, CE weights as configured: KD 0.1 (its cfg.py CFG.KD.LOSS.CE_WEIGHT), DKD 1, MLKD 0.1).
    "kd+ls": [{"term": "ce", "weight": 0.1}, {"term": "kd", "weight": 9.0, "temperature": 2.0, "standardize": True}],
    "dkd+ls": [{"term": "ce", "weight": 1.0},
               {"term": "dkd", "weight": 1.0, "alpha": 9.0, "beta": 72.0, "temperature": 2.0, "standardize": True,
                "warmup": 20}],
    "mlkd+ls": [{"term": "mlkd", "weight": 1.0, "temperature": 2.0, "ce_weight": 0.1, "kd_weight": 9.0,
                 "standardize": True}],
    # FiGKD on standardized logits (not measured by anyone before): Eq. 7's weights, untuned.
    "figkd+ls": [{"term": "ce", "weight": 1.0}, {"term": "figkd", "weight": 2.0, "standardize": True}],
}


def list_presets() -> list[str]:
    """Names of the objective presets."""
    return list(PRESETS)


def preset_spec(name: str) -> list[dict[str, Any]]:
    """The term list of a preset (a copy: edit it and pass it to `build_objective`)."""
    if not isinstance(name, str) or name not in PRESETS:
        from .registry import list_terms
        if name == "ce":
            raise ValueError(f"'ce' is a loss term, not an objective preset: the preset 'vanilla' is cross-entropy "
                             f"alone; presets: {', '.join(PRESETS)}")
        if isinstance(name, str) and name in list_terms():
            raise ValueError(f"{name!r} is a loss term, not an objective preset: give a term list, e.g. "
                             f"--set 'objective=[{{term: ce, weight: 1.0}}, {{term: {name}, weight: 1.0}}]' or a "
                             f"YAML file of one (--objective FILE.yaml); presets: {', '.join(PRESETS)}")
        raise ValueError(f"unknown objective preset {name!r}; valid presets: {', '.join(PRESETS)}")
    return copy.deepcopy(PRESETS[name])


# --------------------------------------------------------------------------- objective


class Objective(nn.Module):
    """Weighted sum of loss terms; see the module docstring. Build with `build_objective`.

    Attributes: ``keys`` (output key of each term), ``terms`` (the term modules), ``specs`` (their
    registrations), ``weights``, ``warmups``, ``spec`` (the resolved term list: every weight and
    option, what a run directory records) and ``needs`` (the inputs the terms declare).
    """

    def __init__(self, keys: Sequence[str], terms: Sequence[nn.Module], specs: Sequence[TermSpec],
                 weights: Sequence[float], warmups: Sequence[int], spec: list[dict[str, Any]]) -> None:
        super().__init__()
        self.keys = tuple(keys)
        self.terms = nn.ModuleList(terms)
        self.specs = tuple(specs)
        self.weights = tuple(float(w) for w in weights)
        self.warmups = tuple(int(n) for n in warmups)
        self.spec = spec
        self.needs = Needs.of(*(s.inputs for s in self.specs), ["epoch"] if any(self.warmups) else [])

    def forward(self, **inputs: Any) -> dict[str, torch.Tensor]:
        """The weighted terms by key, their parts (``key/part``) and ``total``. Inputs are keyword
        arguments named from the vocabulary; names a term does not need are ignored. Raises TypeError
        naming unknown or missing inputs."""
        unknown = sorted(set(inputs) - set(VOCABULARY))
        if unknown:
            raise TypeError(f"objective got unknown inputs {unknown}; inputs are named from the vocabulary "
                            f"{', '.join(VOCABULARY)} (figkd.losses.inputs)")
        missing = sorted(n for n in self.needs.inputs if inputs.get(n) is None)
        if missing:
            raise TypeError(f"objective ({', '.join(self.keys)}) needs inputs {missing}")
        epoch = inputs.get("epoch")
        coupled = world_size() > 1
        out: dict[str, torch.Tensor] = {}
        total = None
        for key, term, spec, weight, warmup in zip(self.keys, self.terms, self.specs, self.weights, self.warmups,
                                                   strict=True):
            args = [gather_batch(inputs[n]) if coupled and spec.batch_coupled and n not in NOT_PER_SAMPLE
                    else inputs[n] for n in spec.inputs]
            value = term(*args)
            if isinstance(value, Mapping):
                value = _sum([out.setdefault(f"{key}/{part}", _scaled(v, weight, epoch, warmup))
                              for part, v in value.items()])
            else:
                value = _scaled(value, weight, epoch, warmup)
            out[key] = value
            total = value if total is None else total + value
        out["total"] = total
        return out

    def extra_repr(self) -> str:
        parts = []
        for key, w, n in zip(self.keys, self.weights, self.warmups, strict=True):
            parts.append(f"{key}: weight={w}" + (f", warmup={n}" if n else ""))
        return "\n".join(parts)


def _scaled(value: torch.Tensor, weight: float, epoch: float | torch.Tensor | None, warmup: int) -> torch.Tensor:
    """``value * weight``, times the warm-up ramp when ``warmup > 0``."""
    value = value * weight
    return value * _ramp(epoch, warmup, value) if warmup > 0 else value


def _sum(values: list[torch.Tensor]) -> torch.Tensor:
    total = values[0]
    for v in values[1:]:
        total = total + v
    return total


def _ramp(epoch: float | torch.Tensor, warmup: int, like: torch.Tensor) -> float | torch.Tensor:
    """min(epoch / warmup, 1), clamped at 0; torch ops for a tensor epoch (no host sync)."""
    if isinstance(epoch, torch.Tensor):
        return torch.clamp(epoch.to(like.dtype) / warmup, min=0.0, max=1.0)
    if isinstance(epoch, bool) or not isinstance(epoch, numbers.Real) or math.isnan(epoch):
        raise TypeError(f"epoch must be a number or a 0-dim tensor, got {epoch!r}")
    return min(max(float(epoch) / warmup, 0.0), 1.0)


def build_objective(spec: str | Sequence[Mapping[str, Any]], *, num_classes: int | None = None,
                    context: BuildContext | None = None) -> Objective:
    """Build an `Objective` from a preset name (`list_presets()`) or a list of term entries.

    Each entry: ``{"term": name, "weight": 1.0, "warmup": 0, "name": key, **options}``; unknown
    terms, presets or options and invalid values raise ValueError naming the valid ones. Output keys
    are the terms' names (``name`` overrides; a term used twice without names gets ``term_1``,
    ``term_2``, ...). ``context`` (`BuildContext`) gives the terms the facts they are built from;
    ``num_classes`` alone is the context of logit terms (it fixes the FiGKD grid, checked on every
    call). A term needing a fact the context lacks raises ValueError naming it.
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
    if context is None:
        context = BuildContext(num_classes=num_classes)
    elif num_classes is not None and context.num_classes not in (None, num_classes):
        raise ValueError(f"num_classes={num_classes} differs from the context's {context.num_classes}")

    names = [e.get("term") if isinstance(e, Mapping) else None for e in entries]
    counts = {n: names.count(n) for n in names}
    seen: dict[str, int] = {}
    keys, modules, specs, weights, warmups, resolved = [], [], [], [], [], []
    for i, entry in enumerate(entries):
        if not isinstance(entry, Mapping):
            raise ValueError(f"objective term #{i} must be a mapping like {{'term': 'kd', 'weight': 0.9}}, "
                             f"got {entry!r}")
        if "term" not in entry:
            raise ValueError(f"objective term #{i} has no 'term' key; valid terms: {', '.join(list_terms())}")
        d = term_spec(entry["term"])
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
        if not isinstance(key, str) or not key or key == "total" or "/" in key or key in keys:
            raise ValueError(f"objective term #{i}: output name {key!r} must be a non-empty string without '/', "
                             "unique, and not 'total'")
        opts = copy.deepcopy({**d.defaults, **options})
        try:
            module = d.build(context, **opts)
        except (ValueError, TypeError) as err:
            raise ValueError(f"objective term {d.name!r}: {err}") from None
        keys.append(key)
        modules.append(module)
        specs.append(d)
        weights.append(weight)
        warmups.append(warmup)
        resolved.append({"term": d.name, "name": key, "weight": weight, "warmup": warmup, **opts})
    return Objective(keys, modules, specs, weights, warmups, resolved)
