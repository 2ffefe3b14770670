"""FiGKD's detail loss (Kim, ESWA 2026, Section 3.3, Eq. 6) and the ablations of Section 5.

The C logits of each sample are zero-padded to an H x W grid (`figkd.grid`), decomposed with a
J-level 2D discrete wavelet transform (`figkd.wavelets.wavedec2`, PyWavelets' conventions) and the
student is pulled towards the teacher on the chosen subbands K:

- K (``bands``): ``"high"`` = the detail subbands (cH, cV, cD) (the paper's choice, Table 10
  "High"), ``"low"`` = the approximation cA_J, ``"both"`` = all of them. ``levels`` says which
  levels' detail subbands: ``"all"`` (default) = every level 1..J, ``"deepest"`` = level J only
  (the same at J = 1; Section 5.1.3's other reading of "high" at J > 1).
- crit (``criterion``), elementwise over the n_k coefficients of subband k of each of the B samples:
  ``"mse"`` (default): (S_k[b,i] - T_k[b,i])^2; ``"l1"``: |S_k[b,i] - T_k[b,i]|;
  ``"kl"``: T^2 KL(softmax(T_k[b]/T) || softmax(S_k[b]/T)) per sample, softmax over the subband's
  coefficients, T = ``temperature``.
- ``reduction`` of the elementwise criteria (mse, l1) to a scalar (Eq. 6's normalisation was lost
  with its formula; docs/method.md explains the default):
  ``"mean_per_band"`` (default): sum_k 1/(B n_k) sum_b sum_i crit;
  ``"sum_per_sample"``: 1/B sum_b sum_k sum_i crit (n_k times each band's mean);
  ``"mean_all"``: 1/(B sum_k n_k) sum_b sum_k sum_i crit (the mean over the stacked subbands).
  ``kl`` is already a per-sample sum over each subband; it takes ``"mean_per_band"``
  (sum_k 1/B sum_b) only.
- ``dims=1`` (Table 13): a 1D transform (`figkd.wavelets.wavedec`) of the unpadded logit vector;
  the bands are then cD_1..cD_J (high) and cA_J (low).
- ``noise_std`` (Table 12): Gaussian noise N(0, noise_std^2) added to the teacher's distilled
  *detail* subbands after the transform ("into the high-frequency subbands of the teacher's
  logits"); with ``bands="both"`` the approximation stays clean, with ``bands="low"`` it is an
  error (nothing to perturb). ``generator`` makes it reproducible.
- ``level`` J (Table 11): J = 1 is possible on every grid (a single DWT, which PyWavelets computes on
  any size); J > 1 must not exceed ``pywt.dwt_max_level`` of the grid (ValueError).
- ``wavelet`` (Appendix A, Table 16), ``mode`` (boundary extension) and ``grid`` (``"pad"``,
  ``"pad_floor"``, ``"factor"`` or an explicit ``(H, W)``; `figkd.grid.grid_shape`).
- ``standardize`` (not in the paper): z-score each sample's student and teacher logits before the
  grid and the transform (logit standardization, Sun et al. CVPR 2024; `figkd.losses.standardize`),
  so the detail subbands compare logit relations rather than magnitudes (the ``figkd+ls`` preset).

The option defaults (the paper's, Section 3.3, and docs/method.md for the open points) are declared
once, as the keyword parameters of `figkd_loss`; `DEFAULTS` reads them from its signature, and
`FiGKDLoss`, `validate_options` and the ``figkd`` objective term take theirs from `DEFAULTS`.

Eq. 7 with the paper's weights: ``F.cross_entropy(s, y) + 2.0 * FiGKDLoss(C)(s, t)``.
"""

from __future__ import annotations

import functools
import inspect
import warnings
from collections.abc import Sequence
from typing import Any

import pywt
import torch
import torch.nn.functional as F
from torch import nn

from .. import grid as _grid
from .. import wavelets as _wavelets
from ._common import check_logits, check_positive, full_precision
from .registry import register_term
from .standardize import check_flag, standardize_logits

BANDS = ("high", "low", "both")
LEVELS = ("all", "deepest")
REDUCTIONS = ("mean_per_band", "sum_per_sample", "mean_all")
CRITERIA = ("mse", "l1", "kl")
DIMS = (1, 2)
GRID_POLICIES = _grid.POLICIES
#: Boundary modes; the transform (`figkd.wavelets`) supports these PyWavelets modes.
MODES = tuple(_wavelets.MODES)

@functools.lru_cache(maxsize=1)
def _discrete_wavelets() -> frozenset[str]:
    return frozenset(pywt.wavelist(kind="discrete"))


def _choice(value: Any, valid: Sequence[Any], what: str) -> Any:
    if isinstance(value, bool) or value not in valid:
        raise ValueError(f"figkd: unknown {what} {value!r}; valid: {', '.join(map(repr, valid))}")
    return value


def validate_options(**options: Any) -> dict[str, Any]:
    """Check FiGKD options without any logits; return all of them (`DEFAULTS` filling the ones not
    given), normalised (grid shape as a tuple).

    Raises ValueError naming the valid values, for an unknown option name too. Whether ``level``
    fits the number of classes is checked when the number of classes is known (`_grid_shape`).
    """
    unknown = sorted(set(options) - set(DEFAULTS))
    if unknown:
        raise ValueError(f"figkd: unknown option(s) {unknown}; valid: {sorted(DEFAULTS)}")
    o = {**DEFAULTS, **options}
    if not isinstance(o["wavelet"], str) or o["wavelet"] not in _discrete_wavelets():
        raise ValueError(
            f"figkd: unknown wavelet {o['wavelet']!r}; valid: any discrete wavelet of PyWavelets "
            f"(pywt.wavelist(kind='discrete')), e.g. 'haar', 'db2', 'bior1.3' (the paper's three)"
        )
    level = o["level"]
    if isinstance(level, bool) or not isinstance(level, int) or level < 1:
        raise ValueError(f"figkd: level must be an integer >= 1, got {level!r}")
    _choice(o["mode"], MODES, "mode")
    _choice(o["bands"], BANDS, "bands")
    _choice(o["levels"], LEVELS, "levels")
    _choice(o["dims"], DIMS, "dims")
    _choice(o["criterion"], CRITERIA, "criterion")
    _choice(o["reduction"], REDUCTIONS, "reduction")
    grid = o["grid"]
    if isinstance(grid, str):
        _choice(grid, GRID_POLICIES, "grid policy")
    else:
        if (isinstance(grid, (str, bytes)) or not isinstance(grid, Sequence) or len(grid) != 2
                or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in grid)):
            raise ValueError(f"figkd: grid must be one of {', '.join(map(repr, GRID_POLICIES))} or a shape "
                             f"(H, W) of positive ints, got {grid!r}")
        grid = (int(grid[0]), int(grid[1]))
    if o["dims"] == 1 and grid != "pad":
        raise ValueError("figkd: grid applies to dims=2 only (dims=1 transforms the unpadded logit vector); "
                         "leave grid at 'pad' with dims=1")
    if o["bands"] == "low" and o["levels"] != "all":
        raise ValueError("figkd: levels chooses the detail subbands, and bands='low' distils none "
                         "(only cA_J); leave levels at 'all' or use bands='high' or 'both'")
    if o["criterion"] == "kl" and o["reduction"] != "mean_per_band":
        raise ValueError("figkd: reduction applies to the elementwise criteria 'mse' and 'l1'; criterion='kl' is "
                         "already a per-sample sum over each subband: leave reduction at 'mean_per_band'")
    noise_std = check_positive(o["noise_std"], "figkd: noise_std", allow_zero=True)
    if noise_std > 0.0 and o["bands"] == "low":
        raise ValueError("figkd: noise_std perturbs the teacher's high-frequency (detail) subbands (Table 12), "
                         "and bands='low' distils none: use bands='high' or 'both', or noise_std=0")
    temperature = check_positive(o["temperature"], "figkd: temperature")
    check_flag(o["standardize"], "figkd: standardize")
    return {**o, "grid": grid, "noise_std": noise_std, "temperature": temperature}


def _select(coeffs: list, opts: dict[str, Any]) -> list[tuple[torch.Tensor, bool]]:
    """The distilled subbands of a `wavedec2` / `wavedec` result as (band, is_detail) pairs, in
    PyWavelets order: [cA_J] then the details of levels J..1 (of level J only for levels="deepest")."""
    details = coeffs[1:2] if opts["levels"] == "deepest" else coeffs[1:]
    if opts["dims"] == 2:
        high = [(band, True) for level in details for band in level]
    else:
        high = [(band, True) for band in details]
    low = [(coeffs[0], False)]
    bands = opts["bands"]
    if bands == "high":
        return high
    if bands == "low":
        return low
    return low + high


def _kl(s: torch.Tensor, t: torch.Tensor, temperature: float) -> torch.Tensor:
    """T^2 * batch mean of KL(softmax(t/T) || softmax(s/T)) over a subband's coefficients."""
    s = s.reshape(s.shape[0], -1)
    t = t.reshape(t.shape[0], -1)
    log_s = F.log_softmax(s / temperature, dim=1)
    log_t = F.log_softmax(t / temperature, dim=1)
    kl = F.kl_div(log_s, log_t, reduction="none", log_target=True).sum(1).mean()
    return kl * (temperature * temperature)


def _transform(x: torch.Tensor, shape: tuple[int, int] | None,
               opts: dict[str, Any]) -> list[tuple[torch.Tensor, bool]]:
    if opts["dims"] == 2:
        coeffs = _wavelets.wavedec2(_grid.to_grid(x, shape), wavelet=opts["wavelet"], mode=opts["mode"],
                                    level=opts["level"])
    else:
        coeffs = _wavelets.wavedec(x, wavelet=opts["wavelet"], mode=opts["mode"], level=opts["level"])
    return _select(coeffs, opts)


def _noise(like: torch.Tensor, std: float, generator: torch.Generator | None) -> torch.Tensor:
    return std * torch.randn(like.shape, generator=generator, device=like.device, dtype=like.dtype)


def _sum(terms: list[torch.Tensor]) -> torch.Tensor:
    total = terms[0]
    for term in terms[1:]:
        total = total + term
    return total


def _reduce(errors: list[torch.Tensor], reduction: str) -> torch.Tensor:
    """Elementwise errors of each subband, shape (B, ...) -> the scalar loss (see the module docstring)."""
    if reduction == "mean_per_band":
        return _sum([e.mean() for e in errors])
    total = _sum([e.sum() for e in errors])
    if reduction == "sum_per_sample":
        return total / errors[0].shape[0]
    return total / sum(e.numel() for e in errors)  # mean_all


@full_precision
def _detail_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, shape: tuple[int, int] | None,
                 opts: dict[str, Any], generator: torch.Generator | None) -> torch.Tensor:
    teacher_logits = teacher_logits.detach()  # gradients reach the student only
    if opts["standardize"]:
        student_logits, teacher_logits = standardize_logits(student_logits), standardize_logits(teacher_logits)
    noise_std = opts["noise_std"]
    if opts["criterion"] in ("mse", "l1"):
        # The zero padding and the DWT are linear in every boundary mode, so the subbands of the
        # difference are the differences of the subbands: one transform of s - t instead of two.
        errors = []
        for band, detail in _transform(student_logits - teacher_logits, shape, opts):
            if noise_std > 0.0 and detail:  # noise on the teacher's detail subband: S - (T + n)
                band = band - _noise(band, noise_std, generator)
            errors.append(band.square() if opts["criterion"] == "mse" else band.abs())
        return _reduce(errors, opts["reduction"])
    b = student_logits.shape[0]
    terms = []
    for band, detail in _transform(torch.cat([student_logits, teacher_logits], dim=0), shape, opts):
        s_k, t_k = band[:b], band[b:]
        if noise_std > 0.0 and detail:
            t_k = t_k + _noise(t_k, noise_std, generator)
        terms.append(_kl(s_k, t_k, opts["temperature"]))
    return _sum(terms)


def figkd_loss(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    *,
    # The option defaults, declared once (`DEFAULTS` reads them from here): the paper's (Section 3.3:
    # Haar, J = 1, 2D, high-frequency subbands) and this project's decisions on its open points
    # (docs/method.md section 3: MSE, mean per band, zero padding to the grid).
    wavelet: str = "haar",
    level: int = 1,
    mode: str = "zero",
    bands: str = "high",
    levels: str = "all",
    dims: int = 2,
    criterion: str = "mse",
    reduction: str = "mean_per_band",
    grid: str | Sequence[int] = "pad",
    noise_std: float = 0.0,
    temperature: float = 4.0,
    standardize: bool = False,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """FiGKD detail loss between (B, C) student and teacher logits (see the module docstring).

    Returns a 0-dim tensor. Computed in float32 or wider (float64 inputs stay float64; bf16/fp16 are
    cast up, autocast is off inside); the teacher is detached. ``generator`` seeds the teacher noise
    (``noise_std > 0``); the other keyword parameters are the options, whose defaults are declared here
    (`DEFAULTS`). Raises ValueError for an invalid option, a ``level`` > 1 deeper than the grid allows,
    or logits of different shapes.
    """
    opts = validate_options(wavelet=wavelet, level=level, mode=mode, bands=bands, levels=levels, dims=dims,
                            criterion=criterion, reduction=reduction, grid=grid, noise_std=noise_std,
                            temperature=temperature, standardize=standardize)
    check_logits(student_logits, teacher_logits, name="figkd_loss")
    shape = _grid_shape(student_logits.shape[1], opts)
    return _detail_loss(student_logits, teacher_logits, shape, opts, generator)


#: The option defaults: the keyword parameters of `figkd_loss` (their one declaration) but ``generator``.
DEFAULTS: dict[str, Any] = {name: p.default for name, p in inspect.signature(figkd_loss).parameters.items()
                            if p.kind is p.KEYWORD_ONLY and name != "generator"}


def _grid_shape(num_classes: int, opts: dict[str, Any]) -> tuple[int, int] | None:
    """The grid of ``num_classes`` logits (None for dims=1), after checking that ``level`` fits it."""
    return _plan(num_classes, opts["wavelet"], opts["level"], opts["mode"], opts["dims"], opts["grid"])


@functools.lru_cache(maxsize=256)
def _plan(num_classes: int, wavelet: str, level: int, mode: str, dims: int, grid: str | tuple[int, int]):
    shape = tuple(_grid.grid_shape(num_classes, grid)) if dims == 2 else None
    sizes = shape if dims == 2 else (num_classes,)
    where = (f"the {shape[0]} x {shape[1]} grid of {num_classes} classes (grid={grid!r})" if dims == 2
             else f"the {num_classes} logits (dims=1)")
    filter_len = pywt.Wavelet(wavelet).dec_len
    max_level = min(_wavelets.dwt_max_level(n, filter_len) for n in sizes)
    # Level 1 is a single DWT, which PyWavelets computes on any size (pywt.dwt2; boundary effects
    # included): always allowed. Deeper levels must not exceed pywt.dwt_max_level.
    if level > max(max_level, 1):
        raise ValueError(
            f"figkd: level {level} is too high for {where} with wavelet {wavelet!r} (filter length "
            f"{filter_len}): the maximum is {max(max_level, 1)} (pywt.dwt_max_level; level 1 is always possible)"
        )
    if mode == "reflect" and min(sizes) < 2:
        raise ValueError(f"figkd: mode 'reflect' needs at least 2 samples per axis, and {where} has an axis of 1 "
                         f"(as in pywt): use another mode, e.g. the default 'zero'")
    return shape


#: Class counts at which the paper's default detail term (MSE, ``mean_per_band``, Eq. 7's weight 2) failed in
#: measurements (benchmarks/figkd_scale.py, docs/method.md §8): the student diverged, collapsed or ended at
#: least a point below the student alone at every measured count up to 25 (synthetic task: 2-25; digits:
#: 2, 3, 5, 10; Fashion-MNIST: 10), and within a point of it or above from 32 on.
FEW_CLASSES = 25
#: Up to 4 classes the grid is at most 2 x 2 and each detail subband holds one coefficient: the KL criterion
#: is then identically 0, and the MSE collapsed or diverged with either reduction (2-4 classes, measured).
ONE_COEFFICIENT_CLASSES = 4


class FewClassesWarning(UserWarning):
    """FiGKD with so few classes that its detail term, as configured, failed in measurements (see
    `warn_if_few_classes`)."""


_WARNED: set[int] = set()


def warn_if_few_classes(num_classes: int, opts: dict[str, Any]) -> None:
    """Warn (:class:`FewClassesWarning`), once per process and class count, when the 2D detail term at
    ``num_classes`` is one that failed in the measurements of docs/method.md §8: any option at
    ``ONE_COEFFICIENT_CLASSES`` or fewer; the default MSE reductions (``mean_per_band``, and
    ``sum_per_sample``, larger still) on raw logits up to ``FEW_CLASSES``. The message names the options
    that worked there."""
    if opts["dims"] != 2 or num_classes in _WARNED:
        return
    shape = _grid.grid_shape(num_classes, opts["grid"])
    if num_classes <= ONE_COEFFICIENT_CLASSES:
        text = (f"FiGKD with {num_classes} classes: their {shape[0]} x {shape[1]} logit grid gives detail subbands of "
                "one coefficient each, so criterion kl distils nothing (identically 0), and with the MSE the "
                "students collapsed or diverged in every measurement at 2-4 classes (docs/method.md §8); FiGKD is "
                "not meant for so few classes: distil with kd instead")
    elif (opts["criterion"] == "mse" and opts["reduction"] != "mean_all" and not opts["standardize"]
          and num_classes <= FEW_CLASSES):
        text = (f"FiGKD with {num_classes} classes: the default detail term (criterion mse, reduction "
                f"{opts['reduction']}, on the {shape[0]} x {shape[1]} grid) outweighs the cross-entropy, and with "
                "Eq. 7's weight 2 the students diverged or fell below the student alone at every class count "
                f"measured up to {FEW_CLASSES} (docs/method.md §8); set criterion: kl (or reduction: mean_all), e.g. "
                "--set 'objective=[{term: ce}, {term: figkd, weight: 2.0, criterion: kl}]' (Python: "
                "FiGKDLoss(C, criterion=\"kl\"))")
    else:
        return
    _WARNED.add(num_classes)
    warnings.warn(text, FewClassesWarning, stacklevel=3)


@register_term("figkd", inputs=("student_logits", "teacher_logits"), defaults=DEFAULTS, function=figkd_loss,
               source="FiGKD (Kim, ESWA 2026) Eq. 6; defaults: paper Section 3.3 and docs/method.md §3",
               help="FiGKD: the logits on a grid, matched on their high-frequency wavelet subbands (Eq. 6)",
               presets={
                   # FiGKD Eq. 7: CE weight 1, detail weight 2 (Section 5.1.2 / Fig. 4; docs/method.md §2), detail
                   # loss with the defaults of Section 3.3 (Haar, J = 1, 2D, high-frequency subbands, MSE).
                   "figkd": [{"term": "ce"}, {"term": "figkd", "weight": 2.0}],
                   # Table 10's base ("Low x, High x" = MLKD's numbers, the mlkd term's defaults) plus the detail
                   # term with Eq. 7's weight 2 (docs/method.md §3); the detail term is computed on the weak view
                   # (student_logits/teacher_logits).
                   "mlkd+figkd": [{"term": "mlkd"}, {"term": "figkd", "weight": 2.0}],
                   # FiGKD on standardized logits (not measured by anyone before): Eq. 7's weights, untuned.
                   "figkd+ls": [{"term": "ce"}, {"term": "figkd", "weight": 2.0, "standardize": True}],
               })
class FiGKDLoss(nn.Module):
    """Drop-in FiGKD detail loss for any training loop.

    ``loss = F.cross_entropy(s, y) + 2.0 * FiGKDLoss(100)(s, t)`` is the paper's Eq. 7 with its
    default weights (CE 1, detail 2; Section 5.1.2). ``num_classes`` fixes the logit grid once
    (e.g. 100 -> 10 x 10, 200 -> 15 x 14 with the default ``grid="pad"``) and is checked against
    the logits of every call; ``None`` lets the grid follow the width of the logits (computed and
    checked once per width). ``options``: those of `figkd_loss`, by keyword (defaults: `DEFAULTS`);
    ``generator`` seeds the teacher noise (without it, the global torch RNG, which the engine seeds
    and checkpoints). Raises ValueError for an unknown or invalid option or a level the grid cannot
    take (at construction) and for logits of another class count (at the call).
    """

    @classmethod
    def from_context(cls, context, **options: Any) -> FiGKDLoss:
        """The ``figkd`` objective term: the grid of the context's ``num_classes`` (if known)."""
        return cls(context.num_classes, **options)

    def __init__(self, num_classes: int | None, *, generator: torch.Generator | None = None, **options: Any) -> None:
        super().__init__()
        if num_classes is not None and (isinstance(num_classes, bool) or not isinstance(num_classes, int)
                                        or num_classes < 1):
            raise ValueError(f"FiGKDLoss: num_classes must be a positive integer or None, got {num_classes!r}")
        self.num_classes = num_classes
        self.options = validate_options(**options)
        # grid per number of classes, filled at build time when num_classes is known (the forward pass
        # is then a dict lookup, which torch.compile(fullgraph=True) traces)
        self._shapes: dict[int, tuple[int, int] | None] = {}
        if num_classes is not None:
            self._shapes[num_classes] = _grid_shape(num_classes, self.options)  # checks level/grid now
            warn_if_few_classes(num_classes, self.options)
        self.generator = generator

    @property
    def grid_shape(self) -> tuple[int, int] | None:
        """The (H, W) grid of ``num_classes`` (None for ``dims=1`` or when ``num_classes`` is None)."""
        return self._shapes.get(self.num_classes) if self.num_classes is not None else None

    def forward(self, student_logits: torch.Tensor, teacher_logits: torch.Tensor) -> torch.Tensor:
        check_logits(student_logits, teacher_logits, name="FiGKDLoss")
        c = student_logits.shape[1]
        if self.num_classes is not None and c != self.num_classes:
            raise ValueError(
                f"FiGKDLoss was built for num_classes={self.num_classes} but got logits with "
                f"{c} classes (shape {tuple(student_logits.shape)})"
            )
        if c not in self._shapes:
            self._shapes[c] = _grid_shape(c, self.options)
            warn_if_few_classes(c, self.options)
        return _detail_loss(student_logits, teacher_logits, self._shapes[c], self.options, self.generator)

    def extra_repr(self) -> str:
        opts = ", ".join(f"{k}={v!r}" for k, v in self.options.items())
        return f"num_classes={self.num_classes}, grid_shape={self.grid_shape}, {opts}"
