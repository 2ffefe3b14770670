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


def _bands_np(v, *, wavelet, level, mode, bands, levels, dims, shape):
    """[(subband, is_detail)] of one sample, PyWavelets order: cA_J, then details of levels J..1."""
    # level 1 through pywt.dwt2 / pywt.dwt, which compute on any size (wavedec2 would warn below its max level)
    if dims == 2:
        g = _grid_np(v, shape)
        c = [*pywt.dwt2(g, wavelet, mode=mode)] if level == 1 else pywt.wavedec2(g, wavelet, mode=mode, level=level)
        details = c[1:2] if levels == "deepest" else c[1:]
        high = [(b, True) for lvl in details for b in lvl]
    else:
        c = [*pywt.dwt(v, wavelet, mode=mode)] if level == 1 else pywt.wavedec(v, wavelet, mode=mode, level=level)
        details = c[1:2] if levels == "deepest" else c[1:]
        high = [(b, True) for b in details]
    return {"high": high, "low": [(c[0], False)], "both": [(c[0], False), *high]}[bands]


def _reference(s, t, *, wavelet="haar", level=1, mode="zero", bands="high", levels="all", dims=2, criterion="mse",
               reduction="mean_per_band", shape=None, temperature=4.0, noise=None):
    """Eq. 6 in numpy on pywt's subbands. ``noise``: one (B, *band shape) array per distilled detail
    subband, in PyWavelets order, added to the teacher's detail subbands."""
    kw = dict(wavelet=wavelet, level=level, mode=mode, bands=bands, levels=levels, dims=dims, shape=shape)
    per_sample = [(_bands_np(a, **kw), _bands_np(b, **kw)) for a, b in zip(s, t, strict=True)]
    B = len(per_sample)
    total, sums, count = 0.0, 0.0, 0
    noise = list(noise or [])
    for k in range(len(per_sample[0][0])):
        sk = np.stack([ps[k][0].ravel() for ps, _ in per_sample])
        tk = np.stack([pt[k][0].ravel() for _, pt in per_sample])
        if noise and per_sample[0][0][k][1]:  # a detail subband: the teacher is perturbed
            tk = tk + noise.pop(0).reshape(B, -1)
        if criterion in ("mse", "l1"):
            e = (sk - tk) ** 2 if criterion == "mse" else np.abs(sk - tk)
            if reduction == "mean_per_band":
                total += np.mean(e)  # 1/(B n_k) sum_b sum_i
            elif reduction == "sum_per_sample":
                total += np.sum(e) / B  # 1/B sum_b sum_i
            else:  # mean_all: one mean over every coefficient of every subband
                sums, count = sums + np.sum(e), count + e.size
        else:
            T = temperature
            ls = sk / T - np.log(np.exp(sk / T).sum(1, keepdims=True))
            lt = tk / T - np.log(np.exp(tk / T).sum(1, keepdims=True))
            total += np.mean((np.exp(lt) * (lt - ls)).sum(1)) * T * T
    assert not noise
    return sums / count if reduction == "mean_all" else total


def _logits(b, c, seed=0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    s = torch.randn(b, c, generator=g, dtype=dtype) * 2
    t = torch.randn(b, c, generator=g, dtype=dtype) * 4
    return s, t


PAD_SHAPES = {10: (4, 3), 40: (7, 6), 67: (9, 8), 100: (10, 10), 120: (11, 11), 200: (15, 14)}
#: grid="pad_floor": H = floor(sqrt C), W = ceil(C / H) (issue 14's examples: 14x15, 10x12, 8x9, 6x7)
PAD_FLOOR_SHAPES = {10: (3, 4), 40: (6, 7), 67: (8, 9), 100: (10, 10), 120: (10, 12), 200: (14, 15)}


def _shape(c, grid="pad"):
    return {"pad": PAD_SHAPES, "pad_floor": PAD_FLOOR_SHAPES}[grid][c]

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
    # Eq. 6's three normalisations (issue 14, point 1)
    dict(reduction="sum_per_sample"),
    dict(reduction="mean_all"),
    dict(reduction="sum_per_sample", criterion="l1", bands="both"),
    dict(reduction="mean_all", level=2, bands="both"),  # subbands of different sizes
    dict(reduction="mean_all", dims=1, level=3, wavelet="db2"),
    # "high" at J > 1: every level or the deepest only (point 2)
    dict(level=2, levels="deepest"),
    dict(level=3, levels="deepest", bands="both", reduction="sum_per_sample"),
    dict(level=2, levels="deepest", criterion="kl"),
    dict(dims=1, level=3, levels="deepest"),
    # the floor-based grid (point 4)
    dict(grid="pad_floor"),
    dict(grid="pad_floor", level=2, bands="both", wavelet="db2"),
]


def _case_id(case):
    return ",".join(f"{k}={v}" for k, v in case.items()) or "default"


@pytest.mark.parametrize("c", [100, 67, 200])
@pytest.mark.parametrize("case", REFERENCE_CASES, ids=_case_id)
def test_matches_pywt_reference(case, c):
    s, t = _logits(5, c, seed=c)
    opts = dict(case)
    shape = _shape(c, opts.get("grid", "pad"))
    if opts.get("dims", 2) == 2:
        max_level = min(pywt.dwt_max_level(n, pywt.Wavelet(opts.get("wavelet", "haar")).dec_len) for n in shape)
    else:
        max_level = pywt.dwt_max_level(c, pywt.Wavelet(opts.get("wavelet", "haar")).dec_len)
    if opts.get("level", 1) > max(max_level, 1):
        # pywt only warns there; figkd.wavelets refuses (every coefficient would be a boundary effect)
        with pytest.raises(ValueError, match="too high"):
            figkd_loss(s, t, **opts)
        return
    ref = _reference(s.numpy(), t.numpy(), shape=shape, **{k: v for k, v in opts.items() if k != "grid"})
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
    # only the detail subbands are perturbed: with "both" the approximation term stays 0 (3 sigma^2, not 4)
    v = float(figkd_loss(s, s, noise_std=sigma, bands="both", generator=torch.Generator().manual_seed(0)))
    assert v == pytest.approx(3 * sigma**2, rel=0.15)
    # only the teacher is perturbed: gradients still reach the student alone
    s.requires_grad_()
    FiGKDLoss(100, noise_std=0.1, generator=torch.Generator().manual_seed(0))(s, t).backward()
    assert s.grad is not None


NOISE_CASES = [dict(), dict(bands="both"), dict(bands="both", level=2, levels="deepest"), dict(level=3),
               dict(criterion="kl", bands="both"), dict(dims=1, level=2, bands="both", criterion="l1"),
               dict(wavelet="db2", reduction="mean_all", bands="both")]


@pytest.mark.parametrize("case", NOISE_CASES, ids=_case_id)
def test_noise_goes_to_the_teachers_detail_subbands_only(case):
    """Table 12: the pywt reference with the same N(0, sigma^2) draws added to the teacher's detail
    subbands only (one draw of each distilled detail subband's shape, in PyWavelets order)."""
    s, t = _logits(6, 100, seed=11)
    sigma, dims, level = 0.3, case.get("dims", 2), case.get("level", 1)
    kw = dict(wavelet=case.get("wavelet", "haar"), level=level, mode="zero", bands="high",
              levels=case.get("levels", "all"), dims=dims, shape=(10, 10))
    shapes = [band.shape for band, _ in _bands_np(s[0].numpy(), **kw)]
    g = torch.Generator().manual_seed(4)
    noise = [(sigma * torch.randn((6, *shape), generator=g, dtype=torch.float64)).numpy() for shape in shapes]
    ref = _reference(s.numpy(), t.numpy(), shape=(10, 10), noise=noise, **case)
    out = figkd_loss(s, t, noise_std=sigma, generator=torch.Generator().manual_seed(4), **case)
    assert abs(float(out) - ref) <= 1e-10 * abs(ref)
    if case.get("bands") == "both" and case.get("criterion", "mse") == "mse" and "reduction" not in case:
        # the approximation term is the noiseless one: both = low + high with the same noise
        clean_low = figkd_loss(s, t, **{**case, "bands": "low", "levels": "all"})
        high = figkd_loss(s, t, noise_std=sigma, generator=torch.Generator().manual_seed(4),
                          **{**case, "bands": "high"})
        assert math.isclose(float(out), float(clean_low + high), rel_tol=1e-12)


def test_noise_with_only_the_low_band_is_refused():
    s, t = _logits(4, 100)
    with pytest.raises(ValueError, match="noise_std perturbs the teacher's high-frequency.*bands='low' distils none"):
        figkd_loss(s, t, bands="low", noise_std=0.1)
    with pytest.raises(ValueError, match="noise_std"):
        FiGKDLoss(100, bands="low", noise_std=0.05)
    assert torch.isfinite(figkd_loss(s, t, bands="low", noise_std=0.0))


def test_reductions_scale_as_the_issue_states():
    # J = 1: three detail subbands of n coefficients each. sum_per_sample = n x mean_per_band
    # (n = 25 on CIFAR-100's 10x10 grid, 56 on TinyImageNet's 15x14 -> 8x7 subbands); mean_all = 1/3 of it.
    for c, n in ((100, 25), (200, 56)):
        s, t = _logits(8, c, seed=c)
        base = float(figkd_loss(s, t))
        assert math.isclose(float(figkd_loss(s, t, reduction="sum_per_sample")), n * base, rel_tol=1e-12)
        assert math.isclose(float(figkd_loss(s, t, reduction="mean_all")), base / 3, rel_tol=1e-12)
    # Haar is orthonormal: on an even grid, "both" + sum_per_sample = the per-sample squared norm of s - t
    s, t = _logits(8, 100, seed=2)
    expected = float(((s - t) ** 2).sum(1).mean())
    assert math.isclose(float(figkd_loss(s, t, bands="both", reduction="sum_per_sample")), expected, rel_tol=1e-12)
    assert math.isclose(float(figkd_loss(s, t, bands="both", reduction="mean_all")), float(((s - t) ** 2).mean()),
                        rel_tol=1e-12)


def test_levels_deepest_is_all_at_level_one_and_a_part_of_it_deeper():
    s, t = _logits(8, 100, seed=5)
    assert torch.equal(figkd_loss(s, t, levels="deepest"), figkd_loss(s, t))
    # mse + mean_per_band is a sum over subbands: deepest (level J) + the shallower levels = all
    deep = figkd_loss(s, t, level=2, levels="deepest")
    all_levels = figkd_loss(s, t, level=2)
    shallow = figkd_loss(s, t, level=1)  # the level-1 details are the same at J = 1 and J = 2
    assert math.isclose(float(deep + shallow), float(all_levels), rel_tol=1e-12)
    with pytest.raises(ValueError, match="levels chooses the detail subbands.*bands='low'"):
        figkd_loss(s, t, level=2, bands="low", levels="deepest")
    with pytest.raises(ValueError, match="'all', 'deepest'"):
        figkd_loss(s, t, levels="last")


# J = 1 on grids below pywt.dwt_max_level's threshold (issue 14, point 5): the 2x1 grid of a binary task,
# MIT67's 9x8 and Stanford40's 7x6 with bior1.3 (filter length 6: dwt_max_level 0), as pywt.dwt2 computes.
LEVEL_ONE_GRIDS = {2: (2, 1), 67: (9, 8), 40: (7, 6)}


@pytest.mark.parametrize("c", sorted(LEVEL_ONE_GRIDS))
@pytest.mark.parametrize("wavelet", ["bior1.3", "db2", "haar"])
@pytest.mark.parametrize("bands", ["high", "both"])
def test_level_one_on_any_grid_matches_pywt_dwt2(c, wavelet, bands):
    shape = LEVEL_ONE_GRIDS[c]
    s, t = _logits(5, c, seed=c)
    ref = _reference(s.numpy(), t.numpy(), wavelet=wavelet, bands=bands, shape=shape)
    crit = FiGKDLoss(c, wavelet=wavelet, bands=bands)
    assert crit.grid_shape == shape
    assert abs(float(crit(s, t)) - ref) <= 1e-10 * abs(ref)
    assert abs(float(figkd_loss(s, t, wavelet=wavelet, bands=bands)) - ref) <= 1e-10 * abs(ref)


def test_deeper_levels_beyond_pywt_max_level_stay_errors():
    with pytest.raises(ValueError, match=r"level 2 is too high for the 2 x 1 grid of 2 classes.*maximum is 1"):
        FiGKDLoss(2, level=2)
    with pytest.raises(ValueError, match=r"level 2 is too high for the 9 x 8 grid of 67 classes.*'bior1.3'"):
        FiGKDLoss(67, level=2, wavelet="bior1.3")
    with pytest.raises(ValueError, match=r"level 2 is too high for the 2 logits \(dims=1\)"):
        FiGKDLoss(2, level=2, dims=1)
    with pytest.raises(ValueError, match="mode 'reflect' needs at least 2 samples per axis.*2 x 1 grid"):
        FiGKDLoss(2, mode="reflect")
    s, t = _logits(4, 2, seed=1)
    assert torch.isfinite(FiGKDLoss(2, dims=1, wavelet="bior1.3")(s, t))


def test_defaults_are_declared_once():
    """The keyword parameters of figkd_loss are the one declaration; the module, the validation and the
    objective term read it (FiGKDLoss takes the options by keyword, checked against it)."""
    import inspect

    from figkd.losses import term_defaults
    from figkd.losses.figkd import DEFAULTS, validate_options

    kw = {n: p.default for n, p in inspect.signature(figkd_loss).parameters.items()
          if p.kind is inspect.Parameter.KEYWORD_ONLY and n != "generator"}
    assert kw == DEFAULTS and DEFAULTS["wavelet"] == "haar" and DEFAULTS["level"] == 1
    assert [n for n, p in inspect.signature(FiGKDLoss.__init__).parameters.items()
            if p.default is not inspect.Parameter.empty] == ["generator"]  # no second declaration
    assert validate_options() == DEFAULTS
    assert term_defaults("figkd") == DEFAULTS
    assert FiGKDLoss(100).options == DEFAULTS
    assert FiGKDLoss(100, level=2).options == {**DEFAULTS, "level": 2}
    for build in (lambda: validate_options(band="high"), lambda: FiGKDLoss(100, band="high")):
        with pytest.raises(ValueError, match=r"unknown option\(s\) \['band'\]; valid: \["):
            build()


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
    with pytest.raises(ValueError, match="grid policy 'square'; valid: 'pad', 'pad_floor', 'factor'"):
        figkd_loss(s, t, grid="square")
    with pytest.raises(ValueError, match="'mean_per_band', 'sum_per_sample', 'mean_all'"):
        figkd_loss(s, t, reduction="sum")
    with pytest.raises(ValueError, match="reduction applies to the elementwise criteria"):
        FiGKDLoss(100, criterion="kl", reduction="mean_all")
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
    """The deepest level figkd allows: pywt.dwt_max_level, and level 1 on any grid."""
    flen = pywt.Wavelet(wavelet).dec_len
    if dims == 1:
        return max(pywt.dwt_max_level(c, flen), 1)
    h, w = {"pad": PAD_SHAPES.get(c), "pad_floor": PAD_FLOOR_SHAPES.get(c), "factor": None}[grid] or _factor(c)
    return max(min(pywt.dwt_max_level(h, flen), pywt.dwt_max_level(w, flen)), 1)


def _factor(c):
    h = next(d for d in range(math.isqrt(c), 0, -1) if c % d == 0)
    return h, c // h


COMBOS = [
    (bands, dims, level, wavelet, criterion, grid)
    for bands, dims, level, wavelet, criterion, grid in itertools.product(
        ("high", "low", "both"), (2, 1), (1, 2, 3), ("haar", "db2", "bior1.3"), ("mse", "l1", "kl"),
        ("pad", "pad_floor", "factor"))
    if not (dims == 1 and grid != "pad")
]


@pytest.mark.parametrize("c", [10, 67, 100, 200])
def test_every_ablation_combination_runs_forward_and_backward(c):
    s0, t = _logits(4, c, dtype=torch.float32)
    ran = 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # 'factor' on a prime C warns (1 x C grid)
        for bands, dims, level, wavelet, criterion, grid in COMBOS:
            opts = dict(bands=bands, dims=dims, level=level, wavelet=wavelet, criterion=criterion, grid=grid)
            if criterion != "kl":  # the reductions and levels in turn (a full product would triple the time)
                opts["reduction"] = ("mean_per_band", "sum_per_sample", "mean_all")[ran % 3]
            if bands != "low":
                opts["levels"] = ("all", "deepest")[ran % 2]
            if level > _max_level(c, wavelet, dims, grid):
                with pytest.raises(ValueError, match="too high"):
                    FiGKDLoss(c, **opts)
                continue
            noise = 0.1 if (ran % 3 == 0 and bands != "low") else 0.0  # noise perturbs detail subbands
            s = s0.clone().requires_grad_()
            loss = FiGKDLoss(c, noise_std=noise, **opts)(s, t)
            loss.backward()
            assert torch.isfinite(loss) and loss.dtype == torch.float32, opts
            assert s.grad is not None and torch.isfinite(s.grad).all(), opts
            ran += 1
    assert ran > 0
