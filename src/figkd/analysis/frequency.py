"""Logits split by frequency: the grid, its low- and high-frequency reconstructions, and subband energies.

FiGKD (paper Section 3.3) reshapes a sample's C logits into an H x W grid (``figkd.grid``, zero-padded;
100 classes -> 10 x 10) and decomposes it with a J-level 2D DWT (``figkd.wavelets``, PyWavelets'
conventions). The paper's analyses (Section 1 and Fig. 2; Section 5.2.1 and Fig. 5) look at two
reconstructions of the grid:

- low frequency: the inverse transform with every detail subband set to zero (only cA_J kept);
- high frequency: the inverse transform with the approximation cA_J set to zero (every cH_j, cV_j, cD_j kept);

cropped back to H x W (the inverse of an odd-sized grid is one larger) and read back as C logits
(``figkd.grid.from_grid``). The transform is linear, so the two add up to the original grid.
"""

from __future__ import annotations

import torch

from .. import grid as _grid
from .. import wavelets as _wavelets


def decompose(logits: torch.Tensor, *, wavelet: str = "haar", level: int = 1, mode: str = "zero",
              grid: str = "pad") -> dict[str, torch.Tensor | list]:
    """``(N, C)`` logits -> ``grid``, ``low`` and ``high`` (each ``(N, H, W)``), ``low_logits`` and
    ``high_logits`` (each ``(N, C)``) and ``coeffs`` (``wavedec2``'s list). float64 throughout.

    Raises ValueError when ``level`` is too deep for the grid (``figkd.wavelets``' check).
    """
    x = logits.detach().to(torch.float64)
    c = x.shape[-1]
    g = _grid.to_grid(x, _grid.grid_shape(c, grid))
    h, w = g.shape[-2:]
    coeffs = _wavelets.wavedec2(g, wavelet=wavelet, mode=mode, level=level)
    zero = torch.zeros_like
    low_coeffs = [coeffs[0]] + [tuple(zero(b) for b in details) for details in coeffs[1:]]
    high_coeffs = [zero(coeffs[0])] + list(coeffs[1:])
    low = _wavelets.waverec2(low_coeffs, wavelet=wavelet, mode=mode)[..., :h, :w]
    high = _wavelets.waverec2(high_coeffs, wavelet=wavelet, mode=mode)[..., :h, :w]
    return {"grid": g, "low": low, "high": high, "low_logits": _grid.from_grid(low, c),
            "high_logits": _grid.from_grid(high, c), "coeffs": coeffs}


def subband_names(level: int) -> list[str]:
    """Names in ``wavedec2`` order: ``cA{J}``, then ``cH{j}``, ``cV{j}``, ``cD{j}`` for j = J..1."""
    names = [f"cA{level}"]
    for j in range(level, 0, -1):
        names += [f"cH{j}", f"cV{j}", f"cD{j}"]
    return names


def subband_energy(coeffs: list, level: int) -> dict[str, float]:
    """Mean energy (sum of squared coefficients) per sample of each subband of a ``wavedec2`` result."""
    bands = [coeffs[0]] + [b for details in coeffs[1:] for b in details]
    return {name: float(band.square().flatten(1).sum(1).mean()) for name, band in
            zip(subband_names(level), bands, strict=True)}
