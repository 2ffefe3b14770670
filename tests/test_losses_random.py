"""Counter-based random draws of loss terms (figkd.losses.random): exact under any batch split and
restart, on the device, and statistically sound. The reference is SplitMix64 written with Python's
unbounded integers (masking to 64 bits), independent of the tensor implementation."""

import math

import pytest
import torch

from figkd.losses import random as rnd

MASK = (1 << 64) - 1


def _mix_ref(x: int) -> int:
    z = (x + 0x9E3779B97F4A7C15) & MASK
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK
    return z ^ (z >> 31)


def _bits_ref(key: int, epoch: int, index: int, k: int) -> int:
    base = _mix_ref(_mix_ref((key & MASK) ^ epoch) ^ index)
    return _mix_ref((base + k * 0x9E3779B97F4A7C15) & MASK)


def test_bits_equal_the_python_reference():
    key = rnd.make_key(7, "test/draw")
    index = torch.tensor([0, 1, 49_999, 123_456_789])
    got = rnd.random_bits(key, torch.tensor(3.0), index, 5)
    for i, row in enumerate(index.tolist()):
        want = [_bits_ref(key, 3, row, k) for k in range(5)]
        assert [v & MASK for v in got[i].tolist()] == want


def test_draws_depend_on_the_sample_not_on_the_batch_it_is_in():
    key, epoch = rnd.make_key(0, "x"), torch.tensor(2.0)
    index = torch.randperm(1000)[:64]
    whole = rnd.normal(key, epoch, index, 16)
    halves = torch.cat([rnd.normal(key, epoch, index[:32], 16), rnd.normal(key, epoch, index[32:], 16)])
    assert torch.equal(whole, halves)  # two DDP ranks of 32 = one process of 64, bit for bit
    assert not torch.equal(whole, rnd.normal(key, torch.tensor(3.0), index, 16))  # a new epoch: new draws
    assert not torch.equal(whole, rnd.normal(rnd.make_key(1, "x"), epoch, index, 16))  # another seed
    assert rnd.make_key(0, "x") != rnd.make_key(0, "y")


def test_distributions():
    key, epoch = rnd.make_key(3, "stats"), torch.tensor(1.0)
    index = torch.arange(2000)
    u = rnd.uniform(key, epoch, index, 100, torch.float64)
    assert 0.0 <= u.min() and u.max() < 1.0
    n = u.numel()  # 200,000 values: the mean is within 5 standard errors
    assert abs(u.mean().item() - 0.5) < 5 * math.sqrt(1 / 12 / n)
    assert abs(u.var().item() - 1 / 12) < 0.002
    z = rnd.normal(key, epoch, index, 100, torch.float64)
    assert abs(z.mean().item()) < 5 / math.sqrt(n) and abs(z.std().item() - 1.0) < 0.01
    assert torch.isfinite(z).all()
    r = rnd.randint(key, epoch, index, 100, 7)
    counts = torch.bincount(r.flatten(), minlength=7).double()
    chi2 = (((counts - n / 7) ** 2) / (n / 7)).sum().item()
    assert r.min() >= 0 and r.max() < 7 and chi2 < 30  # 6 degrees of freedom: P(chi2 > 30) < 1e-4
    # consecutive words of one sample and the same word of neighbouring samples are uncorrelated
    assert abs(torch.corrcoef(torch.stack([u[:, 0], u[:, 1]]))[0, 1].item()) < 0.1
    assert abs(torch.corrcoef(torch.stack([u[:-1, 0], u[1:, 0]]))[0, 1].item()) < 0.1


def test_runs_on_meta_tensors_without_host_reads():
    with torch.device("meta"):
        out = rnd.normal(1, torch.tensor(1.0), torch.arange(8), 4)
    assert out.shape == (8, 4) and out.device.type == "meta"
    with pytest.raises(ValueError, match="int64"):
        rnd.uniform(1, torch.tensor(1.0), torch.arange(8, dtype=torch.int32), 4)
