"""FiGKD detail loss: an independent float64 computation through pywt, properties, every ablation.

The reference `_reference` below builds the padded grid with numpy, runs `pywt.wavedec2` /
`pywt.wavedec` sample by sample and applies the criterion in numpy; `figkd_loss` (torch transform
of `figkd.wavelets`) must give the same value to 1e-10 relative in float64.
"""

import itertools
import math
import warnings

import numpy as np
import pytest
import pywt
import torch

from figkd.losses import FiGKDLoss, figkd_loss

# ----------------------------------------------------------------------------- numpy + pywt reference


def _grid_np(v, shape):
    h, w = shape
    g = np.zeros(h * w)
    g[: v.shape[0]] = v
    return g.reshape(h, w)


def _bands_np(v, *, wavelet, level, mode, bands, dims, shape):
    if dims == 2:
        c = pywt.wavedec2(_grid_np(v, shape), wavelet, mode=mode, level=level)
        high = [b for lvl in c[1:] for b in lvl]
    else:
        c = pywt.wavedec(v, wavelet, mode=mode, level=level)
        high = list(c[1:])
    return {"high": high, "low": [c[0]], "both": [c[0], *high]}[bands]


def _reference(s, t, *, wavelet="haar", level=1, mode="zero", bands="high", dims=2, criterion="mse",
               shape=None, temperature=4.0):
    kw = dict(wavelet=wavelet, level=level, mode=mode, bands=bands, dims=dims, shape=shape)
    per_sample = [(_bands_np(a, **kw), _bands_np(b, **kw)) for a, b in zip(s, t, strict=True)]
    total = 0.0
    for k in range(len(per_sample[0][0])):
        sk = np.stack([ps[k].ravel() for ps, _ in per_sample])
        tk = np.stack([pt[k].ravel() for _, pt in per_sample])
        if criterion == "mse":
            total += np.mean((sk - tk) ** 2)
        elif criterion == "l1":
            total += np.mean(np.abs(sk - tk))
        else:
            T = temperature
            ls = sk / T - np.log(np.exp(sk / T).sum(1, keepdims=True))
            lt = tk / T - np.log(np.exp(tk / T).sum(1, keepdims=True))
            total += np.mean((np.exp(lt) * (lt - ls)).sum(1)) * T * T
    return total


def _logits(b, c, seed=0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    s = torch.randn(b, c, generator=g, dtype=dtype) * 2
    t = torch.randn(b, c, generator=g, dtype=dtype) * 4
    return s, t


PAD_SHAPES = {10: (4, 3), 40: (7, 6), 67: (9, 8), 100: (10, 10), 120: (11, 11), 200: (15, 14)}

REFERENCE_CASES = [
    dict(),  # the paper's default: haar, J=1, 2D, high, mse, zero, pad
    dict(bands="low"),
    dict(bands="both"),
    dict(criterion="l1"),
    dict(criterion="kl"),
    dict(criterion="kl", temperature=1.5, bands="both"),
    dict(level=2),
    dict(level=3, bands="both"),
    dict(wavelet="db2"),
    dict(wavelet="bior1.3", bands="both"),
    dict(wavelet="db2", mode="symmetric", criterion="l1"),
    dict(mode="periodization", level=2),
    dict(mode="reflect", wavelet="db2"),
    dict(dims=1),
    dict(dims=1, level=3, bands="both", wavelet="db2"),
    dict(dims=1, mode="periodic", criterion="kl"),
]


def _case_id(case):
    return ",".join(f"{k}={v}" for k, v in case.items()) or "default"


@pytest.mark.parametrize("c", [100, 67, 200])
@pytest.mark.parametrize("case", REFERENCE_CASES, ids=_case_id)
def test_matches_pywt_reference(case, c):
    s, t = _logits(5, c, seed=c)
    opts = dict(case)
    if opts.get("dims", 2) == 2:
        max_level = min(pywt.dwt_max_level(n, pywt.Wavelet(opts.get("wavelet", "haar")).dec_len)
                        for n in PAD_SHAPES[c])
    else:
        max_level = pywt.dwt_max_level(c, pywt.Wavelet(opts.get("wavelet", "haar")).dec_len)
    if opts.get("level", 1) > max_level:
        # pywt only warns there; figkd.wavelets refuses (every coefficient would be a boundary effect)
        with pytest.raises(ValueError, match="too high"):
            figkd_loss(s, t, **opts)
        return
    ref = _reference(s.numpy(), t.numpy(), shape=PAD_SHAPES[c], **opts)
    out = figkd_loss(s, t, **opts)
    assert out.dtype == torch.float64
    assert abs(float(out) - ref) <= 1e-10 * abs(ref)


def test_explicit_and_factor_grids_match_reference():
    s, t = _logits(3, 200, seed=3)
    ref = _reference(s.numpy(), t.numpy(), shape=(10, 20))
    assert math.isclose(float(figkd_loss(s, t, grid="factor")), ref, rel_tol=1e-10)
    assert math.isclose(float(figkd_loss(s, t, grid=(10, 20))), ref, rel_tol=1e-10)
    ref16 = _reference(s.numpy(), t.numpy(), shape=(16, 13), bands="both")
    assert math.isclose(float(figkd_loss(s, t, grid=[16, 13], bands="both")), ref16, rel_tol=1e-10)


def test_zero_when_student_equals_teacher():
    s, _ = _logits(8, 100)
    for criterion in ("mse", "l1", "kl"):
        for dims in (1, 2):
            loss = figkd_loss(s, s.clone(), criterion=criterion, dims=dims, bands="both")
            assert float(loss) == pytest.approx(0.0, abs=1e-12)


def test_gradients_reach_only_the_student():
    s, t = _logits(8, 100)
    s.requires_grad_()
    t.requires_grad_()
    figkd_loss(s, t).backward()
    assert t.grad is None
    assert s.grad is not None and s.grad.abs().sum() > 0
    # through the module too, and the low band of a constant shift: only the student moves
    s.grad = None
    FiGKDLoss(100, bands="both", criterion="kl")(s, t).backward()
    assert t.grad is None and s.grad.abs().sum() > 0


def test_gradcheck():
    s, t = _logits(3, 10, seed=5)
    s.requires_grad_()
    for opts in (dict(), dict(wavelet="db2", dims=1, bands="both"), dict(criterion="kl", mode="symmetric")):
        assert torch.autograd.gradcheck(lambda x, o=opts: figkd_loss(x, t, **o), (s,))


def test_orthonormal_haar_both_bands_is_scaled_grid_mse():
    # Haar is orthonormal: a level-1 2D transform of an even H x W grid preserves the sum of squares,
    # and each of the 4 subbands has H*W/4 coefficients, so "both" + mse (sum over subbands of the
    # per-subband mean) = 4 * mean squared difference of the padded grids. Same for mode zero
    # (no padding is needed on an even grid) and periodization.
    s, t = _logits(16, 100)
    diff = (s - t).reshape(16, 10, 10)
    grid_mse = float((diff**2).mean())
    for mode in ("zero", "periodization"):
        assert math.isclose(float(figkd_loss(s, t, bands="both", mode=mode)), 4 * grid_mse, rel_tol=1e-12)
    # 200 -> 15 x 14 (odd height): explicit even grid 16 x 14 instead, zero padding included.
    s2, t2 = _logits(4, 200)
    padded = torch.nn.functional.pad(s2 - t2, (0, 16 * 14 - 200))
    expected = 4 * float((padded**2).mean())
    assert math.isclose(float(figkd_loss(s2, t2, bands="both", grid=(16, 14))), expected, rel_tol=1e-12)
    # 1D: two subbands of C/2 coefficients each.
    assert math.isclose(float(figkd_loss(s, t, bands="both", dims=1)), 2 * float(((s - t) ** 2).mean()),
                        rel_tol=1e-12)
    # high + low = both for mse
    parts = float(figkd_loss(s, t, bands="high")) + float(figkd_loss(s, t, bands="low"))
    assert math.isclose(parts, float(figkd_loss(s, t, bands="both")), rel_tol=1e-12)


def test_noise():
    s, t = _logits(64, 100)
    # noise_std = 0: deterministic, no generator needed
    assert torch.equal(figkd_loss(s, t), figkd_loss(s, t, noise_std=0.0))
    # reproducible with a generator, different without noise
    a = figkd_loss(s, t, noise_std=0.2, generator=torch.Generator().manual_seed(1))
    b = figkd_loss(s, t, noise_std=0.2, generator=torch.Generator().manual_seed(1))
    c = figkd_loss(s, t, noise_std=0.2, generator=torch.Generator().manual_seed(2))
    assert torch.equal(a, b) and not torch.equal(a, c) and not torch.equal(a, figkd_loss(s, t))
    # noise is added to the teacher's subbands: with s == t the mse per subband is ~ sigma^2
    # (3 high subbands of 25 coefficients x 64 samples: relative spread ~ 3.5%)
    sigma = 0.5
    v = float(figkd_loss(s, s, noise_std=sigma, generator=torch.Generator().manual_seed(0)))
    assert v == pytest.approx(3 * sigma**2, rel=0.15)
    v = float(figkd_loss(s, s, noise_std=sigma, bands="low", generator=torch.Generator().manual_seed(0)))
    assert v == pytest.approx(sigma**2, rel=0.15)
    # only the teacher is perturbed: gradients still reach the student alone
    s.requires_grad_()
    FiGKDLoss(100, noise_std=0.1, generator=torch.Generator().manual_seed(0))(s, t).backward()
    assert s.grad is not None


def test_precision_under_autocast_and_low_precision_inputs():
    s, t = _logits(8, 100, dtype=torch.float32)
    ref = figkd_loss(s, t)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        inside = figkd_loss(s, t)
        mod = FiGKDLoss(100, wavelet="db2", bands="both")(s, t)
    assert inside.dtype == torch.float32 and torch.equal(inside, ref)
    assert mod.dtype == torch.float32
    assert torch.equal(mod, FiGKDLoss(100, wavelet="db2", bands="both")(s, t))
    out = figkd_loss(s.bfloat16(), t.bfloat16())
    assert out.dtype == torch.float32
    assert torch.equal(out, figkd_loss(s.bfloat16().float(), t.bfloat16().float()))


def test_drop_in_module_eq7():
    s, t = _logits(8, 100)
    y = torch.randint(0, 100, (8,))
    crit = FiGKDLoss(100)
    assert crit.grid_shape == (10, 10)
    loss = torch.nn.functional.cross_entropy(s, y) + 2.0 * crit(s, t)
    assert torch.isfinite(loss)
    assert torch.equal(crit(s, t), figkd_loss(s, t))
    assert FiGKDLoss(200).grid_shape == (15, 14)
    assert FiGKDLoss(67).grid_shape == (9, 8)
    assert FiGKDLoss(100, dims=1).grid_shape is None
    assert "grid_shape=(10, 10)" in repr(crit)


def test_errors():
    s, t = _logits(4, 100)
    with pytest.raises(ValueError, match="num_classes=100 but got logits with 200"):
        FiGKDLoss(100)(*_logits(4, 200))
    with pytest.raises(ValueError, match="num_classes"):
        FiGKDLoss(0)
    with pytest.raises(ValueError, match="'high', 'low', 'both'"):
        figkd_loss(s, t, bands="mid")
    with pytest.raises(ValueError, match="criterion"):
        FiGKDLoss(100, criterion="kld")
    with pytest.raises(ValueError, match="wavelet"):
        figkd_loss(s, t, wavelet="morl")  # continuous wavelet
    with pytest.raises(ValueError, match="mode"):
        figkd_loss(s, t, mode="smooth")
    with pytest.raises(ValueError, match="dims"):
        figkd_loss(s, t, dims=3)
    with pytest.raises(ValueError, match="level"):
        figkd_loss(s, t, level=0)
    with pytest.raises(ValueError, match="too high for the 10 x 10 grid of 100 classes"):
        FiGKDLoss(100, level=4)
    with pytest.raises(ValueError, match="too high"):
        FiGKDLoss(100, level=2, wavelet="db2")
    with pytest.raises(ValueError, match="grid applies to dims=2"):
        FiGKDLoss(100, dims=1, grid="factor")
    with pytest.raises(ValueError, match="grid"):
        figkd_loss(s, t, grid="square")
    with pytest.raises(ValueError, match="fewer than"):
        figkd_loss(s, t, grid=(5, 5))
    with pytest.raises(ValueError, match="noise_std"):
        figkd_loss(s, t, noise_std=-0.1)
    with pytest.raises(ValueError, match="temperature"):
        figkd_loss(s, t, temperature=0.0)
    with pytest.raises(ValueError, match="shape"):
        figkd_loss(s, t[:, :50])


# ----------------------------------------------------------------------------- every ablation combination


def _max_level(c, wavelet, dims, grid):
    flen = pywt.Wavelet(wavelet).dec_len
    if dims == 1:
        return pywt.dwt_max_level(c, flen)
    h, w = {"pad": PAD_SHAPES.get(c), "factor": None}[grid] or _factor(c)
    return min(pywt.dwt_max_level(h, flen), pywt.dwt_max_level(w, flen))


def _factor(c):
    h = next(d for d in range(math.isqrt(c), 0, -1) if c % d == 0)
    return h, c // h


COMBOS = [
    (bands, dims, level, wavelet, criterion, grid)
    for bands, dims, level, wavelet, criterion, grid in itertools.product(
        ("high", "low", "both"), (2, 1), (1, 2, 3), ("haar", "db2", "bior1.3"), ("mse", "l1", "kl"),
        ("pad", "factor"))
    if not (dims == 1 and grid == "factor")
]


@pytest.mark.parametrize("c", [10, 67, 100, 200])
def test_every_ablation_combination_runs_forward_and_backward(c):
    s0, t = _logits(4, c, dtype=torch.float32)
    ran = 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # 'factor' on a prime C warns (1 x C grid)
        for bands, dims, level, wavelet, criterion, grid in COMBOS:
            opts = dict(bands=bands, dims=dims, level=level, wavelet=wavelet, criterion=criterion, grid=grid)
            if level > _max_level(c, wavelet, dims, grid):
                with pytest.raises(ValueError, match="too high"):
                    FiGKDLoss(c, **opts)
                continue
            noise = 0.1 if (ran % 3 == 0) else 0.0
            s = s0.clone().requires_grad_()
            loss = FiGKDLoss(c, noise_std=noise, **opts)(s, t)
            loss.backward()
            assert torch.isfinite(loss) and loss.dtype == torch.float32, opts
            assert s.grad is not None and torch.isfinite(s.grad).all(), opts
            ran += 1
    assert ran > 0
