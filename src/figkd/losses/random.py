"""Random draws inside a loss term that keep ``--resume``, DDP and the captured step exact.

Some methods draw random numbers at every step: CRD its negative samples, TeKAP the noise of its
perturbed teachers, DiffKD its diffusion noise and timesteps. Drawn from torch's global generator,
they would differ between one process of batch N*b and N processes of batch b (each rank draws for
its own rows), and a captured CUDA graph would need the generator's offsets registered. Here every
draw is a pure function of a key and of *which sample* it is for:

    value = f(key, epoch, index, k)     (k = 0, 1, ... within the sample's draw)

where ``key`` is an integer fixed when the term is built (from the run's seed, `BuildContext.seed`,
and a name of the draw), ``epoch`` is the engine's 1-based epoch tensor and ``index`` the sample's
row in the training set (vocabulary names ``epoch`` and ``index``). A sample is visited once per
epoch, so (epoch, index) names the draw uniquely; whichever rank, batch position or restart
computes it gets the same bits. The function is a counter-based generator (SplitMix64's finaliser,
Steele, Lea and Flood, OOPSLA 2014, as in java.util.SplittableRandom) computed with int64 tensor ops
on the device: no host synchronisation, no generator state, capturable in a CUDA graph.

Uniform values use the top 53 bits of each 64-bit output (the float64 grid of [0, 1)); normal values
use the Box-Muller transform of two uniforms; integers in [0, high) take the output modulo ``high``
(a bias below high / 2^63, under 1e-13 for a 50,000-row memory bank).
"""

from __future__ import annotations

import hashlib

import torch

_MASK64 = (1 << 64) - 1


def _signed(value: int) -> int:
    """An unsigned 64-bit constant as the int64 torch stores."""
    value &= _MASK64
    return value - (1 << 64) if value >= 1 << 63 else value


_GOLDEN = _signed(0x9E3779B97F4A7C15)
_MUL1 = _signed(0xBF58476D1CE4E5B9)
_MUL2 = _signed(0x94D049BB133111EB)


def _shr(x: torch.Tensor, bits: int) -> torch.Tensor:
    """Logical right shift of int64 values (torch's ``>>`` is arithmetic on signed integers)."""
    return (x >> bits) & ((1 << (64 - bits)) - 1)


def _mix(x: torch.Tensor) -> torch.Tensor:
    """SplitMix64's output function of ``x + golden gamma`` (int64, wrapping arithmetic)."""
    z = x + _GOLDEN
    z = (z ^ _shr(z, 30)) * _MUL1
    z = (z ^ _shr(z, 27)) * _MUL2
    return z ^ _shr(z, 31)


def make_key(seed: int, name: str) -> int:
    """The key of one kind of draw of a run: from the run's seed and a name (e.g. ``"crd/negatives"``),
    so that two terms, or two draws of one term, never share a stream."""
    digest = hashlib.blake2b(f"{int(seed)}/{name}".encode(), digest_size=8).digest()
    return _signed(int.from_bytes(digest, "little"))


def random_bits(key: int, epoch: torch.Tensor, index: torch.Tensor, n: int) -> torch.Tensor:
    """(B, n) int64 pseudo-random words for the samples ``index`` (B,) at ``epoch`` (0-dim tensor)."""
    if index.dtype != torch.int64 or index.ndim != 1:
        raise ValueError(f"index must be a (B,) int64 tensor of sample rows, got {index.dtype} {tuple(index.shape)}")
    base = _mix(_mix(torch.full_like(index, key) ^ epoch.to(torch.int64)) ^ index)
    k = torch.arange(n, dtype=torch.int64, device=index.device)
    return _mix(base[:, None] + k[None, :] * _GOLDEN)


def uniform(key: int, epoch: torch.Tensor, index: torch.Tensor, n: int,
            dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """(B, n) values uniform in [0, 1), in ``dtype``."""
    bits = _shr(random_bits(key, epoch, index, n), 11)  # 53 bits
    return (bits.to(torch.float64) * 2.0 ** -53).to(dtype)


def normal(key: int, epoch: torch.Tensor, index: torch.Tensor, n: int,
           dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """(B, n) standard normal values (Box-Muller), in ``dtype``."""
    u = uniform(key, epoch, index, 2 * n, torch.float64)
    u1, u2 = 1.0 - u[:, :n], u[:, n:]  # u1 in (0, 1]: log is finite
    return (torch.sqrt(-2.0 * torch.log(u1)) * torch.cos(2.0 * torch.pi * u2)).to(dtype)


def randint(key: int, epoch: torch.Tensor, index: torch.Tensor, n: int, high: int) -> torch.Tensor:
    """(B, n) int64 values in [0, ``high``)."""
    if high < 1:
        raise ValueError(f"high must be >= 1, got {high}")
    return _shr(random_bits(key, epoch, index, n), 1) % high
