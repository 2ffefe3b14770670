"""Differentiable discrete wavelet transforms (1D and 2D, single- and multi-level) in PyTorch.

FiGKD (paper Section 3.2-3.3) reshapes each logit vector into an H x W grid and distils the
high-frequency subbands of its 2D DWT; its ablations use other wavelets, levels, boundary modes and
the 1D transform (Tables 11, 13, 16).  This module provides those transforms as ordinary autograd
code that runs on any device and gives *the same numbers as PyWavelets* (``pywt``), whose
conventions are the reference:

* ``dwt(x)      -> (cA, cD)``                     (``pywt.dwt``,  last axis)
* ``dwt2(x)     -> (cA, (cH, cV, cD))``           (``pywt.dwt2``, last two axes)
* ``wavedec(x)  -> [cA_J, cD_J, ..., cD_1]``      (``pywt.wavedec``)
* ``wavedec2(x) -> [cA_J, (cH_J, cV_J, cD_J), ..., (cH_1, cV_1, cD_1)]`` (``pywt.wavedec2``)
* ``idwt``, ``idwt2``, ``waverec``, ``waverec2`` invert them as pywt does.

Conventions taken from pywt (``pywt/_extensions/c/convolution.template.c``, ``common.c``):

* Analysis: ``c[o] = sum_j h[j] * x_ext[2*o + 1 - j]`` with ``h`` = ``dec_lo`` / ``dec_hi``, i.e. the
  odd samples of the full convolution of the extended signal; output length
  ``floor((N + L - 1) / 2)`` for filter length ``L``.  In ``periodization`` mode an odd signal is
  first made even by repeating its last sample, the signal is treated as periodic, and
  ``c[o] = sum_j h[j] * x_ext[2*o + L/2 - j]``, output length ``ceil(N / 2)``.
* Signal extension per ``mode``: ``zero`` (zeros), ``constant`` (edge value repeated),
  ``symmetric`` (half-sample mirror: ``x1 x0 | x0 x1 ...``), ``reflect`` (whole-sample mirror:
  ``x2 x1 | x0 x1 ...``), ``periodic`` (period N), ``periodization`` (see above).  As in pywt, the
  extension keeps going (mirrors of mirrors, further periods) when the filter is longer than the
  signal.
* Synthesis: full convolution of the zero-upsampled coefficients with ``rec_lo`` / ``rec_hi``,
  keeping ``2*M - L + 2`` samples starting at ``L - 2`` (non-periodization modes, ``M`` coefficients),
  or the circular convolution of length ``2*M`` (periodization).  An odd-length signal therefore
  comes back one sample longer, and ``waverec``/``waverec2`` drop the last approximation coefficient
  when the next detail band is one shorter, exactly like pywt.
* 2D: the separable transform, filtering along the last axis and the second-to-last axis;
  ``cH`` is detail along axis -2 and approximation along axis -1 (pywt's key ``'da'``), ``cV`` the
  converse (``'ad'``), ``cD`` detail along both (``'dd'``).

Differences from pywt, all deliberate:

* The default mode is ``"zero"`` (pywt's is ``"symmetric"``): the logit grid is zero-padded, and the
  paper's Haar transform on an even grid does not depend on the mode.
* A ``level`` above ``dwt_max_level`` is a ``ValueError`` (pywt only warns that every coefficient
  then has boundary effects), except ``level=1``: one level is one ``dwt``/``dwt2``, which pywt
  computes on any size, so ``wavedec``/``wavedec2`` allow it on any size too.
* Only pywt's six classic modes are implemented (``smooth``, ``antisymmetric`` and ``antireflect``
  are not); only discrete wavelets (``pywt.wavelist(kind="discrete")`` or a ``pywt.Wavelet``).
* Inputs are tensors with any number of leading batch dimensions; the transform runs on the last
  (1D) or last two (2D) axes.  float32 and float64 are computed as given; float16 and bfloat16 are
  computed in, and returned as, float32.

Gradients are plain autograd through the extension (slicing, flipping, concatenation) and the
strided convolution, which is the exact adjoint in every mode.  (A hand-written backward that runs
the synthesis bank is the adjoint only for zero padding; pytorch_wavelets has that bug.)

Haar (and its aliases ``db1``, ``bior1.1``, ``rbio1.1``, which have the same filter bank) takes a
fast path: odd sizes are extended by one sample per mode, then strided slices are added and
subtracted and scaled by 1/sqrt(2).  It gives the same numbers as the filter-bank path, compiles
with ``torch.compile(fullgraph=True)``, and is simply *the* Haar implementation.

Filter coefficients come from pywt (``pywt.Wavelet(name).dec_lo`` etc.); the transform is ours.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Sequence
from dataclasses import dataclass

import pywt
import torch
import torch.nn.functional as F

__all__ = [
    "MODES",
    "dwt",
    "dwt2",
    "dwt_max_level",
    "idwt",
    "idwt2",
    "wavedec",
    "wavedec2",
    "waverec",
    "waverec2",
]

#: Signal extension modes implemented here (a subset of ``pywt.Modes.modes``).
MODES: tuple[str, ...] = ("zero", "constant", "symmetric", "reflect", "periodic", "periodization")


# --------------------------------------------------------------------------------------------
# Wavelets
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Bank:
    """The four filters of a discrete wavelet, as pywt stores them (``Wavelet.filter_bank``)."""

    name: str
    dec_lo: tuple[float, ...]
    dec_hi: tuple[float, ...]
    rec_lo: tuple[float, ...]
    rec_hi: tuple[float, ...]

    @property
    def length(self) -> int:
        return len(self.dec_lo)

    @property
    def is_haar(self) -> bool:
        return (self.dec_lo, self.dec_hi, self.rec_lo, self.rec_hi) == _HAAR_FILTERS


def _bank_from_pywt(w: pywt.Wavelet) -> _Bank:
    dec_lo, dec_hi, rec_lo, rec_hi = (tuple(float(v) for v in f) for f in w.filter_bank)
    lengths = {len(dec_lo), len(dec_hi), len(rec_lo), len(rec_hi)}
    if len(lengths) != 1 or len(dec_lo) < 2 or len(dec_lo) % 2:
        raise ValueError(
            f"wavelet {w.name!r} has filters of lengths {sorted(lengths)}; the DWT needs four filters "
            "of one even length >= 2 (as every pywt discrete wavelet has)"
        )
    return _Bank(str(w.name), dec_lo, dec_hi, rec_lo, rec_hi)


_HAAR_FILTERS = tuple(tuple(float(v) for v in f) for f in pywt.Wavelet("haar").filter_bank)
_DISCRETE = tuple(pywt.wavelist(kind="discrete"))
# Built once at import (~0.2 ms): a plain dict lookup by name is also what lets torch.compile trace
# through the wavelet argument without touching pywt.
_BANKS: dict[str, _Bank] = {name: _bank_from_pywt(pywt.Wavelet(name)) for name in _DISCRETE}


def _as_bank(wavelet: str | pywt.Wavelet) -> _Bank:
    if isinstance(wavelet, str):
        bank = _BANKS.get(wavelet)
        if bank is not None:
            return bank
        if wavelet in pywt.wavelist(kind="continuous"):
            raise ValueError(
                f"{wavelet!r} is a continuous wavelet; the DWT needs a discrete one: {', '.join(_DISCRETE)}"
            )
        raise ValueError(
            f"unknown wavelet {wavelet!r}; valid names (pywt.wavelist(kind='discrete')): "
            + ", ".join(_DISCRETE)
        )
    if isinstance(wavelet, pywt.Wavelet):
        return _bank_from_pywt(wavelet)
    raise TypeError(
        f"wavelet must be a name such as 'haar' or a pywt.Wavelet, got {type(wavelet).__name__}"
    )


def _check_mode(mode: str) -> None:
    if isinstance(mode, str) and mode in MODES:
        return
    if isinstance(mode, int) and not isinstance(mode, bool):
        raise TypeError(
            f"mode must be a string, got the integer {mode}; the argument order follows PyWavelets, "
            "e.g. wavedec2(x, wavelet, mode, level): pass level=... by keyword"
        )
    extra = ""
    if mode in pywt.Modes.modes:
        extra = f" ({mode!r} is a pywt mode that figkd does not implement)"
    raise ValueError(f"unknown mode {mode!r}{extra}; valid modes: {', '.join(MODES)}")


def dwt_max_level(data_len: int, filter_len: int) -> int:
    """The deepest useful level for a signal of ``data_len`` samples: ``pywt.dwt_max_level``.

    ``floor(log2(data_len / (filter_len - 1)))``, or 0 when the signal is shorter than
    ``filter_len - 1`` (pywt ``common.c``).  ``filter_len`` may also be a wavelet name or object.
    """
    if not isinstance(filter_len, int):
        filter_len = _as_bank(filter_len).length
    if filter_len < 2 or data_len < filter_len - 1:
        return 0
    return (data_len // (filter_len - 1)).bit_length() - 1


def _check_level(level: int | None, sizes: Sequence[int], bank: _Bank) -> int:
    max_level = min(dwt_max_level(s, bank.length) for s in sizes)
    if level is None:
        return max_level
    if not isinstance(level, int) or isinstance(level, bool):
        raise TypeError(f"level must be an int or None, got {level!r}")
    if level < 0:
        raise ValueError(f"level must be >= 0, got {level}")
    if level > max(max_level, 1):  # level 1 = one dwt, computed on any size (as pywt.dwt/dwt2 do)
        size = "x".join(str(s) for s in sizes)
        raise ValueError(
            f"level {level} is too high for size {size} with wavelet {bank.name!r} (filter length "
            f"{bank.length}): the maximum level is {max(max_level, 1)} (pywt.dwt_max_level; level 1 is "
            "always possible). PyWavelets only warns here and returns coefficients that are all boundary "
            "effects; figkd refuses."
        )
    return level


# --------------------------------------------------------------------------------------------
# Tensors: dtype, cached filters, signal extension
# --------------------------------------------------------------------------------------------


def _compute_dtype(*tensors: torch.Tensor) -> torch.dtype:
    dtype = tensors[0].dtype
    for t in tensors[1:]:
        dtype = torch.promote_types(dtype, t.dtype)
    if dtype in (torch.float16, torch.bfloat16):
        return torch.float32
    if dtype not in (torch.float32, torch.float64):
        raise TypeError(
            f"wavelet transforms take float32 or float64 tensors (float16/bfloat16 are computed in "
            f"float32), got {dtype}"
        )
    return dtype


def _as_input(x: torch.Tensor, ndim: int, fn: str) -> torch.Tensor:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{fn} takes a torch.Tensor, got {type(x).__name__}")
    if x.dim() < ndim:
        raise ValueError(f"{fn} transforms the last {ndim} axes; got a tensor of shape {tuple(x.shape)}")
    return x.to(_compute_dtype(x))


def _check_signal(sizes: Sequence[int], mode: str, fn: str) -> None:
    for n in sizes:
        if n < 1:
            raise ValueError(f"{fn}: cannot transform an axis of size {n}")
        if mode == "reflect" and n < 2:
            raise ValueError(f"{fn}: 'reflect' mode needs at least 2 samples per axis, got {n} (as in pywt)")


_FILTER_CACHE: dict[tuple, torch.Tensor] = {}


def _filters(bank: _Bank, kind: str, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """``(2, 1, L)``: [lo, hi] analysis filters reversed for ``conv1d`` (which correlates), or the
    synthesis filters as they are for ``conv_transpose1d``.  Cached per (filters, device, dtype)
    outside of torch.compile tracing; never created as inference tensors, so a first call under
    ``torch.inference_mode()`` cannot poison the cache for later calls that need gradients."""
    key = (bank, kind, device, dtype)
    if not torch.compiler.is_compiling():
        cached = _FILTER_CACHE.get(key)
        if cached is not None:
            return cached
    if kind == "dec":
        rows = [bank.dec_lo[::-1], bank.dec_hi[::-1]]
    else:
        rows = [bank.rec_lo, bank.rec_hi]
    with torch.inference_mode(False), torch.no_grad():
        w = torch.tensor(rows, dtype=dtype, device=device).unsqueeze(1)
    if not torch.compiler.is_compiling():
        _FILTER_CACHE[key] = w
    return w


def _autocast_off(device: torch.device):
    """Convolutions are on autocast's lower-precision list; the transform keeps its float32/float64
    promise (every loss is computed in float32 or wider, even under bf16 autocast)."""
    if torch.amp.is_autocast_available(device.type) and torch.is_autocast_enabled(device.type):
        return torch.autocast(device.type, enabled=False)
    return contextlib.nullcontext()  # e.g. "meta", which has no autocast to switch off


def _source_index(t: int, n: int, mode: str) -> int:
    """Which sample of an ``n``-sample signal sits at position ``t`` of its extension (pywt rules)."""
    if 0 <= t < n:
        return t
    if mode == "constant":
        return 0 if t < 0 else n - 1
    if mode == "symmetric":  # half-sample symmetric, period 2n
        u = t % (2 * n)
        return u if u < n else 2 * n - 1 - u
    if mode == "reflect":  # whole-sample symmetric, period 2n - 2
        p = 2 * n - 2
        u = t % p
        return u if u < n else p - u
    if mode == "periodic":
        return t % n
    if mode == "periodization":  # odd n: repeat the last sample, then period n + 1
        return min(t % (n + n % 2), n - 1)
    raise AssertionError(mode)


_RUNS_CACHE: dict[tuple, tuple[tuple[int, int, bool], ...]] = {}


def _runs(n: int, left: int, total: int, mode: str) -> tuple[tuple[int, int, bool], ...]:
    """The extension ``x_ext[-left : total - left]`` as runs ``(first, length, reversed)`` of ``x``."""
    key = (n, left, total, mode)
    if not torch.compiler.is_compiling():
        cached = _RUNS_CACHE.get(key)
        if cached is not None:
            return cached
    idx = [_source_index(t, n, mode) for t in range(-left, total - left)]
    runs: list[tuple[int, int, bool]] = []
    i = 0
    while i < len(idx):
        j = i + 1
        step = idx[j] - idx[i] if j < len(idx) else 1
        if step not in (1, -1):
            step = 1
        else:
            while j < len(idx) and idx[j] - idx[j - 1] == step:
                j += 1
        first = idx[i] if step == 1 else idx[j - 1]
        runs.append((first, j - i, step == -1))
        i = j
    result = tuple(runs)
    if not torch.compiler.is_compiling():
        _RUNS_CACHE[key] = result
    return result


def _extend(x: torch.Tensor, dim: int, left: int, total: int, mode: str) -> torch.Tensor:
    """Extend ``x`` along ``dim`` to ``total`` samples, ``left`` of them before ``x[0]`` (pywt modes).

    Built from slices, flips and one concatenation, so autograd gives the exact (deterministic)
    adjoint of the extension."""
    n = x.shape[dim]
    right = total - left - n
    if left == 0 and right == 0:
        return x
    if mode == "zero":
        pad = [0, 0] * (x.dim() - 1 - (dim % x.dim())) + [left, right]
        return F.pad(x, pad)
    pieces = []
    for first, length, rev in _runs(n, left, total, mode):
        piece = x.narrow(dim, first, length)
        pieces.append(piece.flip(dim) if rev else piece)
    return torch.cat(pieces, dim)


def _coeff_len(n: int, filter_len: int, mode: str) -> int:
    """pywt ``dwt_buffer_length`` (``pywt.dwt_coeff_len``)."""
    if mode == "periodization":
        return (n + 1) // 2
    return (n + filter_len - 1) // 2


def _analysis_extension(n: int, filter_len: int, mode: str) -> tuple[int, int]:
    """(left padding, extended length) such that a stride-2 correlation gives pywt's coefficients."""
    left = filter_len // 2 - 1 if mode == "periodization" else filter_len - 2
    return left, 2 * _coeff_len(n, filter_len, mode) + filter_len - 2


def _synthesis_setup(m: int, filter_len: int, mode: str, fn: str) -> tuple[int, int, int]:
    """(periodic coefficient padding each side, first kept sample, kept length) for synthesis."""
    if mode == "periodization":
        a = filter_len // 4
        return a, filter_len // 2 - 1 + 2 * a, 2 * m
    if m < filter_len // 2:
        raise ValueError(
            f"{fn}: {m} coefficients are too few for a filter of length {filter_len} in mode {mode!r} "
            f"(at least {filter_len // 2} are needed); wavelet and mode must be those of the decomposition"
        )
    return 0, filter_len - 2, 2 * m - filter_len + 2


# --------------------------------------------------------------------------------------------
# Filter-bank implementation (every wavelet)
# --------------------------------------------------------------------------------------------


def _dwt_filter_bank(x: torch.Tensor, bank: _Bank, mode: str) -> tuple[torch.Tensor, torch.Tensor]:
    n, L = x.shape[-1], bank.length
    m = _coeff_len(n, L, mode)
    left, total = _analysis_extension(n, L, mode)
    xe = _extend(x, -1, left, total, mode)
    filt = _filters(bank, "dec", x.device, x.dtype)  # (2, 1, L): [lo, hi]
    with _autocast_off(x.device):
        y = F.conv1d(xe.reshape(math.prod(x.shape[:-1]), 1, total), filt, stride=2)
    y = y.reshape(*x.shape[:-1], 2, m)
    return y[..., 0, :], y[..., 1, :]


def _idwt_filter_bank(ca: torch.Tensor, cd: torch.Tensor, bank: _Bank, mode: str) -> torch.Tensor:
    m, L = ca.shape[-1], bank.length
    a, start, length = _synthesis_setup(m, L, mode, "idwt")
    c = torch.stack((ca, cd), dim=-2).reshape(math.prod(ca.shape[:-1]), 2, m)
    if a:
        c = _extend(c, -1, a, m + 2 * a, "periodic")
    with _autocast_off(ca.device):
        y = F.conv_transpose1d(c, _filters(bank, "rec", ca.device, ca.dtype), stride=2)
    return y[..., start : start + length].reshape(*ca.shape[:-1], length)


def _dwt2_filter_bank(x: torch.Tensor, bank: _Bank, mode: str):
    (h, w), L = x.shape[-2:], bank.length
    mh, mw = _coeff_len(h, L, mode), _coeff_len(w, L, mode)
    left_h, total_h = _analysis_extension(h, L, mode)
    left_w, total_w = _analysis_extension(w, L, mode)
    xe = _extend(_extend(x, -1, left_w, total_w, mode), -2, left_h, total_h, mode)
    filt = _filters(bank, "dec", x.device, x.dtype)  # (2, 1, L)
    y = xe.reshape(math.prod(x.shape[:-2]), 1, total_h, total_w)
    with _autocast_off(x.device):
        y = F.conv2d(y, filt.unsqueeze(2), stride=(1, 2))
        # channels [lo_w, hi_w] -> each filtered along H by [lo, hi]: [aa, da, ad, dd] = cA, cH, cV, cD
        y = F.conv2d(y, filt.repeat(2, 1, 1).unsqueeze(3), stride=(2, 1), groups=2)
    y = y.reshape(*x.shape[:-2], 4, mh, mw)
    return y[..., 0, :, :], (y[..., 1, :, :], y[..., 2, :, :], y[..., 3, :, :])


def _idwt2_filter_bank(ca, ch, cv, cd, bank: _Bank, mode: str) -> torch.Tensor:
    (mh, mw), L = ca.shape[-2:], bank.length
    a_h, start_h, len_h = _synthesis_setup(mh, L, mode, "idwt2")
    a_w, start_w, len_w = _synthesis_setup(mw, L, mode, "idwt2")
    c = torch.stack((ca, ch, cv, cd), dim=-3).reshape(math.prod(ca.shape[:-2]), 4, mh, mw)
    if a_h:
        c = _extend(_extend(c, -1, a_w, mw + 2 * a_w, "periodic"), -2, a_h, mh + 2 * a_h, "periodic")
    filt = _filters(bank, "rec", ca.device, ca.dtype)  # (2, 1, L)
    # along H: groups (cA, cH) -> approximation along W, (cV, cD) -> detail along W
    with _autocast_off(ca.device):
        y = F.conv_transpose2d(c, filt.repeat(2, 1, 1).unsqueeze(3), stride=(2, 1), groups=2)
        y = y[..., start_h : start_h + len_h, :]
        y = F.conv_transpose2d(y, filt.unsqueeze(2), stride=(1, 2))
    y = y[..., start_w : start_w + len_w]
    return y.reshape(*ca.shape[:-2], len_h, len_w)


# --------------------------------------------------------------------------------------------
# Haar implementation (strided slicing; compiles with fullgraph=True)
# --------------------------------------------------------------------------------------------

_S = _HAAR_FILTERS[0][0]  # 1/sqrt(2) exactly as pywt stores it


def _haar_even(x: torch.Tensor, dim: int, mode: str) -> torch.Tensor:
    """Make the size along ``dim`` even by the one extension sample the mode defines."""
    n = x.shape[dim]
    return _extend(x, dim, 0, n + 1, mode) if n % 2 else x


def _dwt_haar(x: torch.Tensor, mode: str) -> tuple[torch.Tensor, torch.Tensor]:
    x = _haar_even(x, -1, mode)
    even, odd = x[..., 0::2], x[..., 1::2]
    return (even + odd) * _S, (even - odd) * _S


def _idwt_haar(ca: torch.Tensor, cd: torch.Tensor) -> torch.Tensor:
    # The same in every mode: with L = 2 nothing is cropped and nothing wraps around.
    return torch.stack(((ca + cd) * _S, (ca - cd) * _S), dim=-1).flatten(-2)


def _dwt2_haar(x: torch.Tensor, mode: str):
    x = _haar_even(_haar_even(x, -1, mode), -2, mode)
    a, b = x[..., 0::2, 0::2], x[..., 0::2, 1::2]
    c, d = x[..., 1::2, 0::2], x[..., 1::2, 1::2]
    p, q, r, t = a + b, a - b, c + d, c - d  # along W: lo/hi of the even rows, lo/hi of the odd rows
    return (p + r) * 0.5, ((p - r) * 0.5, (q + t) * 0.5, (q - t) * 0.5)


def _idwt2_haar(ca, ch, cv, cd) -> torch.Tensor:
    p, r = ca + ch, ca - ch
    q, t = cv + cd, cv - cd
    a, b, c, d = (p + q) * 0.5, (p - q) * 0.5, (r + t) * 0.5, (r - t) * 0.5
    top = torch.stack((a, b), dim=-1).flatten(-2)
    bottom = torch.stack((c, d), dim=-1).flatten(-2)
    return torch.stack((top, bottom), dim=-2).flatten(-3, -2)


# --------------------------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------------------------


def dwt(x: torch.Tensor, wavelet: str | pywt.Wavelet = "haar", mode: str = "zero"):
    """Single-level 1D DWT along the last axis: ``(cA, cD)``, as ``pywt.dwt(x, wavelet, mode)``.

    ``x`` has shape ``(..., N)``; ``cA`` and ``cD`` have shape ``(..., floor((N + L - 1) / 2))`` for a
    filter of length ``L`` (``ceil(N / 2)`` in ``periodization`` mode).
    """
    bank = _as_bank(wavelet)
    _check_mode(mode)
    x = _as_input(x, 1, "dwt")
    _check_signal(x.shape[-1:], mode, "dwt")
    if bank.is_haar:
        return _dwt_haar(x, mode)
    return _dwt_filter_bank(x, bank, mode)


def _coeffs_in(coeffs: Sequence[torch.Tensor | None], fn: str) -> list[torch.Tensor]:
    """pywt semantics: ``None`` bands are zeros; all bands one shape; dtypes promoted."""
    given = [c for c in coeffs if c is not None]
    if not given:
        raise ValueError(f"{fn}: at least one coefficient band must be given (not None)")
    for c in given:
        if not isinstance(c, torch.Tensor):
            raise TypeError(f"{fn} takes torch.Tensor coefficients (or None), got {type(c).__name__}")
    shapes = {tuple(c.shape) for c in given}
    if len(shapes) != 1:
        raise ValueError(f"{fn}: coefficient bands must all have the same shape, got {sorted(shapes)}")
    dtype = _compute_dtype(*given)
    ref = given[0].to(dtype)
    return [torch.zeros_like(ref) if c is None else c.to(dtype) for c in coeffs]


def idwt(
    cA: torch.Tensor | None,
    cD: torch.Tensor | None,
    wavelet: str | pywt.Wavelet = "haar",
    mode: str = "zero",
) -> torch.Tensor:
    """Single-level inverse 1D DWT along the last axis, as ``pywt.idwt(cA, cD, wavelet, mode)``.

    ``cA`` and ``cD`` must have the same shape ``(..., M)``; either may be ``None`` (zeros).  The
    result has ``2*M - L + 2`` samples (``2*M`` in ``periodization`` mode), which is one more than
    the original signal when that was odd, as in pywt.
    """
    bank = _as_bank(wavelet)
    _check_mode(mode)
    ca, cd = _coeffs_in((cA, cD), "idwt")
    if ca.dim() < 1:
        raise ValueError("idwt: coefficients must have at least one axis")
    if bank.is_haar:
        return _idwt_haar(ca, cd)
    return _idwt_filter_bank(ca, cd, bank, mode)


def dwt2(x: torch.Tensor, wavelet: str | pywt.Wavelet = "haar", mode: str = "zero"):
    """Single-level 2D DWT over the last two axes: ``(cA, (cH, cV, cD))``, as ``pywt.dwt2``.

    ``cH`` holds the detail along axis -2 (horizontal edges), ``cV`` the detail along axis -1
    (vertical edges), ``cD`` the diagonal detail; each axis shrinks as in :func:`dwt`.
    """
    bank = _as_bank(wavelet)
    _check_mode(mode)
    x = _as_input(x, 2, "dwt2")
    _check_signal(x.shape[-2:], mode, "dwt2")
    if bank.is_haar:
        return _dwt2_haar(x, mode)
    return _dwt2_filter_bank(x, bank, mode)


def idwt2(coeffs, wavelet: str | pywt.Wavelet = "haar", mode: str = "zero") -> torch.Tensor:
    """Single-level inverse 2D DWT, as ``pywt.idwt2((cA, (cH, cV, cD)), wavelet, mode)``.

    All four bands must have one shape; any of them may be ``None`` (zeros).
    """
    bank = _as_bank(wavelet)
    _check_mode(mode)
    try:
        ca, (ch, cv, cd) = coeffs
    except (TypeError, ValueError):
        raise ValueError("idwt2 expects coeffs = (cA, (cH, cV, cD)), as returned by dwt2") from None
    ca, ch, cv, cd = _coeffs_in((ca, ch, cv, cd), "idwt2")
    if ca.dim() < 2:
        raise ValueError(f"idwt2: coefficients must have at least two axes, got shape {tuple(ca.shape)}")
    if bank.is_haar:
        return _idwt2_haar(ca, ch, cv, cd)
    return _idwt2_filter_bank(ca, ch, cv, cd, bank, mode)


def wavedec(
    x: torch.Tensor, wavelet: str | pywt.Wavelet = "haar", mode: str = "zero", level: int | None = None
) -> list[torch.Tensor]:
    """Multi-level 1D DWT along the last axis: ``[cA_J, cD_J, ..., cD_1]``, as ``pywt.wavedec``.

    ``level=None`` is :func:`dwt_max_level`; a higher level is a ``ValueError`` (pywt warns).
    Argument order is pywt's: ``wavedec(x, wavelet, mode, level)``.
    """
    bank = _as_bank(wavelet)
    _check_mode(mode)
    x = _as_input(x, 1, "wavedec")
    _check_signal(x.shape[-1:], mode, "wavedec")
    level = _check_level(level, x.shape[-1:], bank)
    details = []
    a = x
    for _ in range(level):
        a, d = dwt(a, wavelet, mode)
        details.append(d)
    return [a, *reversed(details)]


def wavedec2(
    x: torch.Tensor, wavelet: str | pywt.Wavelet = "haar", mode: str = "zero", level: int | None = None
) -> list:
    """Multi-level 2D DWT: ``[cA_J, (cH_J, cV_J, cD_J), ..., (cH_1, cV_1, cD_1)]``, as ``pywt.wavedec2``.

    ``level=None`` is the smaller of the two axes' :func:`dwt_max_level` (as in pywt); a higher
    level is a ``ValueError``.  Argument order is pywt's: ``wavedec2(x, wavelet, mode, level)``.
    """
    bank = _as_bank(wavelet)
    _check_mode(mode)
    x = _as_input(x, 2, "wavedec2")
    _check_signal(x.shape[-2:], mode, "wavedec2")
    level = _check_level(level, x.shape[-2:], bank)
    details = []
    a = x
    for _ in range(level):
        a, d = dwt2(a, wavelet, mode)
        details.append(d)
    return [a, *reversed(details)]


def waverec(coeffs: Sequence[torch.Tensor], wavelet: str | pywt.Wavelet = "haar", mode: str = "zero"):
    """Multi-level inverse of :func:`wavedec`, as ``pywt.waverec(coeffs, wavelet, mode)``.

    When an approximation is one coefficient longer than the next detail band (the signal at that
    level had odd length), its last coefficient is dropped first, as pywt does.
    """
    if not isinstance(coeffs, (list, tuple)) or len(coeffs) < 1:
        raise ValueError("waverec expects a non-empty list [cA_J, cD_J, ..., cD_1] as returned by wavedec")
    a = coeffs[0]
    for d in coeffs[1:]:
        if isinstance(d, (list, tuple)):
            raise ValueError("waverec expects single detail arrays; use waverec2 for wavedec2 output")
        if a is not None and d is not None:
            if a.shape[-1] == d.shape[-1] + 1:
                a = a[..., :-1]
            elif a.shape[-1] != d.shape[-1]:
                raise ValueError(
                    f"waverec: coefficient shape mismatch, approximation {tuple(a.shape)} vs detail "
                    f"{tuple(d.shape)}"
                )
        a = idwt(a, d, wavelet, mode)
    return a


def waverec2(coeffs: Sequence, wavelet: str | pywt.Wavelet = "haar", mode: str = "zero") -> torch.Tensor:
    """Multi-level inverse of :func:`wavedec2`, as ``pywt.waverec2(coeffs, wavelet, mode)``.

    Along each axis where the approximation is one coefficient longer than the next detail bands,
    its last coefficient is dropped first, as pywt does.
    """
    if not isinstance(coeffs, (list, tuple)) or len(coeffs) < 1:
        raise ValueError(
            "waverec2 expects a non-empty list [cA_J, (cH_J, cV_J, cD_J), ...] as returned by wavedec2"
        )
    a = coeffs[0]
    for d in coeffs[1:]:
        if not isinstance(d, (list, tuple)) or len(d) != 3:
            raise ValueError(
                f"waverec2: each detail level must be a 3-tuple (cH, cV, cD), got {type(d).__name__}"
            )
        shape = next((tuple(c.shape) for c in d if c is not None), None)
        if a is not None and shape is not None:
            for axis in (-2, -1):
                if a.shape[axis] == shape[axis] + 1:
                    a = a.narrow(axis, 0, shape[axis])
        a = idwt2((a, tuple(d)), wavelet, mode)
    return a
