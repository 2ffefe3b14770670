"""figkd.wavelets against PyWavelets (the reference for every convention), gradients, errors, dtypes.

Inputs are tiny on purpose: the whole file runs in seconds on two CPU cores.
"""

from __future__ import annotations

import itertools
import warnings
import zlib

import numpy as np
import pytest
import pywt
import torch

from figkd import wavelets as W

MODES = ["zero", "constant", "symmetric", "reflect", "periodic", "periodization"]
# the paper's three (Table 16) and a few more: longer orthogonal, near-symmetric, coiflet,
# reverse biorthogonal with unequal effective supports
WAVELETS = ["haar", "db2", "bior1.3", "db4", "sym3", "coif1", "rbio3.5"]
PAPER_WAVELETS = ["haar", "db2", "bior1.3"]
RTOL = 1e-10


def _assert_close(actual: torch.Tensor, expected: np.ndarray, rtol: float = RTOL) -> None:
    """Same shape, and equal to ``rtol`` relative to the size of the reference values."""
    assert tuple(actual.shape) == expected.shape
    assert actual.dtype == torch.float64
    scale = max(1.0, float(np.abs(expected).max(initial=0.0)))
    np.testing.assert_allclose(actual.detach().numpy(), expected, rtol=rtol, atol=rtol * scale)


def _flat2(coeffs):
    """[cA, (cH, cV, cD), ...] -> [cA, cH, cV, cD, ...]"""
    return [coeffs[0], *(band for level in coeffs[1:] for band in level)]


def _rng(*key) -> np.random.Generator:
    return np.random.default_rng(zlib.crc32(repr(key).encode()))


def _t(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(a))


# --------------------------------------------------------------------------------------------
# Same numbers as pywt
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("wavelet", WAVELETS)
def test_dwt_idwt_match_pywt(wavelet, mode):
    rng = _rng("dwt", wavelet, mode)
    L = pywt.Wavelet(wavelet).dec_len
    # odd and even lengths, and lengths shorter than the filter (extension wraps around repeatedly)
    for n in [1, 2, 3, 4, 5, 7, 8, 13]:
        if mode == "reflect" and n == 1:
            continue
        x = rng.standard_normal((2, 3, n))
        ca, cd = pywt.dwt(x, wavelet, mode)
        ta, td = W.dwt(_t(x), wavelet, mode)
        _assert_close(ta, ca)
        _assert_close(td, cd)
        if mode == "periodization" or ca.shape[-1] >= L // 2:  # pywt's condition for idwt
            _assert_close(W.idwt(_t(ca), _t(cd), wavelet, mode), pywt.idwt(ca, cd, wavelet, mode))


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("wavelet", WAVELETS)
def test_dwt2_idwt2_match_pywt(wavelet, mode):
    rng = _rng("dwt2", wavelet, mode)
    L = pywt.Wavelet(wavelet).dec_len
    for shape in [(2, 3), (5, 5), (4, 7), (2, 9, 8), (2, 1, 10, 10), (3, 2)]:
        x = rng.standard_normal(shape)
        c = pywt.dwt2(x, wavelet, mode)
        t = W.dwt2(_t(x), wavelet, mode)
        for a, b in zip(_flat2(t), _flat2(c), strict=True):
            _assert_close(a, b)
        if mode == "periodization" or min(c[0].shape[-2:]) >= L // 2:
            rec = W.idwt2((_t(c[0]), tuple(_t(v) for v in c[1])), wavelet, mode)
            _assert_close(rec, pywt.idwt2(c, wavelet, mode))


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("wavelet", WAVELETS)
def test_wavedec_waverec_match_pywt(wavelet, mode):
    rng = _rng("wavedec", wavelet, mode)
    for n in [9, 16, 37]:
        x = rng.standard_normal((2, n))
        max_level = pywt.dwt_max_level(n, pywt.Wavelet(wavelet).dec_len)
        for level in [None, *range(max_level + 1)]:
            c = pywt.wavedec(x, wavelet, mode=mode, level=level)
            t = W.wavedec(_t(x), wavelet, mode, level)
            assert len(t) == len(c)
            for a, b in zip(t, c, strict=True):
                _assert_close(a, b)
            _assert_close(W.waverec([_t(v) for v in c], wavelet, mode), pywt.waverec(c, wavelet, mode))


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("wavelet", WAVELETS)
def test_wavedec2_waverec2_match_pywt(wavelet, mode):
    rng = _rng("wavedec2", wavelet, mode)
    # the paper's grids (CIFAR-100 10x10, Tiny-ImageNet 15x14, MIT67 9x8) and awkward ones
    for shape in [(10, 10), (3, 15, 14), (9, 8), (2, 7, 19), (16, 5)]:
        x = rng.standard_normal(shape)
        L = pywt.Wavelet(wavelet).dec_len
        max_level = min(pywt.dwt_max_level(s, L) for s in shape[-2:])
        for level in [None, *range(max_level + 1)]:
            c = pywt.wavedec2(x, wavelet, mode=mode, level=level)
            t = W.wavedec2(_t(x), wavelet, mode, level)
            assert len(t) == len(c)
            for a, b in zip(_flat2(t), _flat2(c), strict=True):
                _assert_close(a, b)
            tc = [_t(c[0]), *(tuple(_t(v) for v in d) for d in c[1:])]
            _assert_close(W.waverec2(tc, wavelet, mode), pywt.waverec2(c, wavelet, mode))


@pytest.mark.parametrize("wavelet", pywt.wavelist(kind="discrete"))
def test_every_discrete_wavelet_matches_pywt(wavelet):
    # one mode per wavelet, cycling through all of them; the 1D and 2D transforms and their inverses
    mode = MODES[pywt.wavelist(kind="discrete").index(wavelet) % len(MODES)]
    rng = _rng("all", wavelet)
    x = rng.standard_normal((2, 11))
    ca, cd = pywt.dwt(x, wavelet, mode)
    ta, td = W.dwt(_t(x), wavelet, mode)
    _assert_close(ta, ca)
    _assert_close(td, cd)
    _assert_close(W.idwt(ta, td, wavelet, mode), pywt.idwt(ca, cd, wavelet, mode))
    y = rng.standard_normal((5, 6))
    c = pywt.dwt2(y, wavelet, mode)
    t = W.dwt2(_t(y), wavelet, mode)
    for a, b in zip(_flat2(t), _flat2(c), strict=True):
        _assert_close(a, b)
    _assert_close(W.idwt2(t, wavelet, mode), pywt.idwt2(c, wavelet, mode))


def test_dwt_max_level_matches_pywt():
    for n, L in itertools.product(range(1, 70), [2, 4, 6, 8, 20, 102]):
        assert W.dwt_max_level(n, L) == pywt.dwt_max_level(n, L)
    assert W.dwt_max_level(100, "db2") == pywt.dwt_max_level(100, "db2")


def test_pywt_wavelet_objects_are_accepted():
    rng = _rng("objects")
    x = rng.standard_normal((3, 10))
    for w in [pywt.Wavelet("db2"), pywt.Wavelet("haar")]:
        for a, b in zip(W.wavedec(_t(x), w, "symmetric"), pywt.wavedec(x, w, "symmetric"), strict=True):
            _assert_close(a, b)
    # a user-defined filter bank (here: db3's filters under another name)
    custom = pywt.Wavelet("mine", filter_bank=pywt.Wavelet("db3").filter_bank)
    c = pywt.dwt2(x, custom, "reflect")
    for a, b in zip(_flat2(W.dwt2(_t(x), custom, "reflect")), _flat2(c), strict=True):
        _assert_close(a, b)


def test_missing_bands_are_zeros_as_in_pywt():
    rng = _rng("none")
    ca, cd = (rng.standard_normal((2, 6)) for _ in range(2))
    _assert_close(W.idwt(None, _t(cd), "db2", "symmetric"), pywt.idwt(None, cd, "db2", "symmetric"))
    _assert_close(W.idwt(_t(ca), None, "db2", "symmetric"), pywt.idwt(ca, None, "db2", "symmetric"))
    bands = [rng.standard_normal((4, 5)) for _ in range(4)]
    c = (bands[0], (None, bands[2], bands[3]))
    tc = (_t(bands[0]), (None, _t(bands[2]), _t(bands[3])))
    _assert_close(W.idwt2(tc, "bior1.3", "periodic"), pywt.idwt2(c, "bior1.3", "periodic"))
    c = (None, (bands[1], None, None))
    _assert_close(W.idwt2((None, (_t(bands[1]), None, None)), "haar"), pywt.idwt2(c, "haar", "zero"))


# --------------------------------------------------------------------------------------------
# Perfect reconstruction (pywt has it for every discrete wavelet and each of these modes)
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("wavelet", WAVELETS)
def test_perfect_reconstruction(wavelet, mode):
    x = torch.randn(2, 3, 13, 10, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    rec2 = W.waverec2(W.wavedec2(x, wavelet, mode), wavelet, mode)
    torch.testing.assert_close(rec2[..., :13, :10], x, rtol=1e-10, atol=1e-10)
    rec1 = W.waverec(W.wavedec(x, wavelet, mode), wavelet, mode)
    torch.testing.assert_close(rec1[..., :10], x, rtol=1e-10, atol=1e-10)
    # one level of an odd signal comes back one sample longer (pywt's lengths); the rest is exact
    rec = W.idwt(*W.dwt(x[..., :7], wavelet, mode), wavelet, mode)
    torch.testing.assert_close(rec[..., :7], x[..., :7], rtol=1e-10, atol=1e-10)


# --------------------------------------------------------------------------------------------
# The Haar path
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
def test_haar_path_equals_filter_bank_path(mode):
    bank = W._as_bank("haar")
    g = torch.Generator().manual_seed(1)
    for shape in [(1, 1), (2, 5, 7), (4, 6), (3, 8, 3)]:
        if mode == "reflect" and 1 in shape:
            continue
        x = torch.randn(shape, dtype=torch.float64, generator=g)
        for a, b in zip(W._dwt_haar(x, mode), W._dwt_filter_bank(x, bank, mode), strict=True):
            torch.testing.assert_close(a, b, rtol=1e-14, atol=1e-14)
        fast, slow = W._dwt2_haar(x, mode), W._dwt2_filter_bank(x, bank, mode)
        for a, b in zip(_flat2(fast), _flat2(slow), strict=True):
            torch.testing.assert_close(a, b, rtol=1e-14, atol=1e-14)
        ca, cd = W._dwt_haar(x, mode)
        torch.testing.assert_close(W._idwt_haar(ca, cd), W._idwt_filter_bank(ca, cd, bank, mode))
        ca, (ch, cv, cd) = fast
        torch.testing.assert_close(
            W._idwt2_haar(ca, ch, cv, cd), W._idwt2_filter_bank(ca, ch, cv, cd, bank, mode)
        )


@pytest.mark.parametrize("wavelet", ["haar", "db1", "bior1.1", "rbio1.1", pywt.Wavelet("haar")])
def test_haar_and_its_aliases_take_the_haar_path(wavelet, monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("filter-bank path used for a Haar filter bank")

    for name in ["_dwt_filter_bank", "_idwt_filter_bank", "_dwt2_filter_bank", "_idwt2_filter_bank"]:
        monkeypatch.setattr(W, name, refuse)
    x = torch.randn(2, 9, 10, dtype=torch.float64)
    W.waverec(W.wavedec(x, wavelet, "symmetric"), wavelet, "symmetric")
    W.waverec2(W.wavedec2(x, wavelet, "symmetric"), wavelet, "symmetric")


@pytest.mark.parametrize("mode", MODES)
def test_haar_compiles_fullgraph(mode):
    # Dynamo traces the whole Haar path (wavelet lookup, mode extension of odd sizes, levels, 1D and
    # 2D) without a graph break; the "eager" backend keeps this fast.  Inductor: the slow test below.
    torch._dynamo.reset()
    x = torch.randn(2, 9, 10)

    def roundtrips(x):
        return (
            W.waverec2(W.wavedec2(x, "haar", mode, level=2), "haar", mode),
            W.idwt(*W.dwt(x, "haar", mode), "haar", mode),
        )

    compiled = torch.compile(roundtrips, fullgraph=True, backend="eager")
    for a, b in zip(compiled(x), roundtrips(x), strict=True):
        torch.testing.assert_close(a, b)


@pytest.mark.parametrize("mode", ["symmetric", "periodization"])
def test_filter_bank_path_compiles_fullgraph(mode):
    torch._dynamo.reset()
    x = torch.randn(2, 9, 12)

    def roundtrip(x):
        return W.waverec2(W.wavedec2(x, "db2", mode), "db2", mode)

    compiled = torch.compile(roundtrip, fullgraph=True, backend="eager")
    torch.testing.assert_close(compiled(x), roundtrip(x))


@pytest.mark.slow
def test_haar_dwt2_compiles_with_inductor():
    torch._dynamo.reset()
    x = torch.randn(2, 5, 7)  # odd sizes: the mode's one-sample extension is in the graph
    compiled = torch.compile(lambda x: W.dwt2(x, "haar", "symmetric"), fullgraph=True)
    for a, b in zip(_flat2(compiled(x)), _flat2(W.dwt2(x, "haar", "symmetric")), strict=True):
        torch.testing.assert_close(a, b)


# --------------------------------------------------------------------------------------------
# Gradients: autograd through extension and convolution is the true adjoint in every mode
# --------------------------------------------------------------------------------------------


# gradcheck's fast_mode compares random projections u^T J v of the analytical and numerical Jacobians,
# which a wrong backward fails with probability 1; the full Jacobian is compared below, against the
# transpose of pywt's own linear map, in every mode.


def _cat(tensors) -> torch.Tensor:
    return torch.cat([t.flatten() for t in tensors])


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("wavelet", PAPER_WAVELETS)
def test_gradcheck_forward(wavelet, mode):
    g = torch.Generator().manual_seed(2)
    x1 = torch.randn(2, 5, dtype=torch.float64, generator=g, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x: _cat(W.dwt(x, wavelet, mode)), (x1,), fast_mode=True)
    x2 = torch.randn(3, 4, dtype=torch.float64, generator=g, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x: _cat(_flat2(W.dwt2(x, wavelet, mode))), (x2,), fast_mode=True)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("wavelet", PAPER_WAVELETS)
def test_gradcheck_inverse(wavelet, mode):
    g = torch.Generator().manual_seed(3)
    m = 3 if mode == "periodization" else pywt.Wavelet(wavelet).dec_len // 2 + 1
    ca, cd = (torch.randn(m, dtype=torch.float64, generator=g, requires_grad=True) for _ in range(2))
    assert torch.autograd.gradcheck(lambda a, d: W.idwt(a, d, wavelet, mode), (ca, cd), fast_mode=True)
    bands = [torch.randn(m, 2 if mode == "periodization" else m, dtype=torch.float64, generator=g,
                         requires_grad=True) for _ in range(4)]
    assert torch.autograd.gradcheck(
        lambda a, h, v, d: W.idwt2((a, (h, v, d)), wavelet, mode), tuple(bands), fast_mode=True
    )


@pytest.mark.parametrize("mode", ["symmetric", "periodization"])
def test_gradcheck_multilevel(mode):
    x = torch.randn(12, 13, dtype=torch.float64, requires_grad=True)
    def f(x):
        return _cat(_flat2(W.wavedec2(x, "db2", mode, level=2)))

    assert torch.autograd.gradcheck(f, (x,), fast_mode=True)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("wavelet", PAPER_WAVELETS)
def test_gradient_is_the_adjoint(wavelet, mode):
    # the backward of dwt2 is the transpose of pywt's linear map (built column by column from unit
    # impulses): the true adjoint of the transform with its boundary extension
    shape = (5, 6)
    basis = np.eye(30).reshape(30, *shape)
    columns = [np.concatenate([b.ravel() for b in _flat2(pywt.dwt2(e, wavelet, mode))]) for e in basis]
    matrix = np.stack(columns, axis=1)
    y = torch.randn(matrix.shape[0], dtype=torch.float64)
    x = torch.zeros(shape, dtype=torch.float64, requires_grad=True)
    (_cat(_flat2(W.dwt2(x, wavelet, mode))) @ y).backward()
    np.testing.assert_allclose(x.grad.numpy().ravel(), matrix.T @ y.numpy(), rtol=1e-10, atol=1e-12)


# --------------------------------------------------------------------------------------------
# dtypes, devices, inference mode
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize("wavelet", ["haar", "db2"])
def test_half_precision_is_computed_in_float32(dtype, wavelet):
    x = torch.randn(2, 10, 10).to(dtype)
    out = W.wavedec2(x, wavelet, "zero")
    ref = W.wavedec2(x.float(), wavelet, "zero")
    for a, b in zip(_flat2(out), _flat2(ref), strict=True):
        assert a.dtype == torch.float32
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert W.waverec2(out, wavelet, "zero").dtype == torch.float32
    cA, cD = W.dwt(x, wavelet)
    assert cA.dtype == cD.dtype == torch.float32
    assert W.idwt(cA.to(dtype), cD.to(dtype), wavelet).dtype == torch.float32


def test_float32_stays_float32_and_matches_pywt():
    x = np.random.default_rng(4).standard_normal((3, 12, 13)).astype(np.float32)
    for wavelet in ["db2", "bior1.3"]:
        c = pywt.wavedec2(x, wavelet, "symmetric")
        t = W.wavedec2(torch.from_numpy(x), wavelet, "symmetric")
        for a, b in zip(_flat2(t), _flat2(c), strict=True):
            assert a.dtype == torch.float32
            np.testing.assert_allclose(a.numpy(), b, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("wavelet", ["haar", "db2"])
def test_autocast_does_not_lower_the_precision(wavelet):
    # the filter-bank path runs convolutions, which autocast would otherwise compute in bfloat16
    x = torch.randn(2, 9, 10)
    ref = W.wavedec2(x, wavelet, "symmetric")
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = W.wavedec2(x, wavelet, "symmetric")
        rec = W.waverec2(out, wavelet, "symmetric")
    for a, b in zip(_flat2(out), _flat2(ref), strict=True):
        assert a.dtype == torch.float32
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert rec.dtype == torch.float32
    torch.testing.assert_close(rec[..., :9, :10], x, rtol=1e-5, atol=1e-5)


def test_mixed_dtypes_promote_like_pywt():
    ca, cd = torch.randn(2, 4), torch.randn(2, 4, dtype=torch.float64)
    assert W.idwt(ca, cd, "db2").dtype == torch.float64


def test_first_call_in_inference_mode_does_not_break_autograd():
    # filters are cached per (wavelet, device, dtype); one created under inference_mode would be an
    # inference tensor that autograd cannot save for backward
    W._FILTER_CACHE.clear()
    x = torch.randn(2, 6, 6, dtype=torch.float64)
    with torch.inference_mode():
        W.dwt2(x, "db2", "symmetric")
        W.idwt2(W.dwt2(x, "db2", "symmetric"), "db2", "symmetric")
    x.requires_grad_(True)
    W.waverec2(W.wavedec2(x, "db2", "symmetric", level=1), "db2", "symmetric").sum().backward()
    assert x.grad is not None


@pytest.mark.parametrize("wavelet", ["haar", "db2"])
def test_meta_tensors_give_shapes(wavelet):
    # shape inference without data (e.g. complexity counting on the meta device)
    x = torch.empty(2, 9, 10, device="meta")
    coeffs = W.wavedec2(x, wavelet, "symmetric")
    ref = W.wavedec2(torch.zeros(2, 9, 10), wavelet, "symmetric")
    assert [t.shape for t in _flat2(coeffs)] == [t.shape for t in _flat2(ref)]
    assert W.waverec2(coeffs, wavelet, "symmetric").shape == W.waverec2(ref, wavelet, "symmetric").shape


def test_empty_batch():
    a, d = W.dwt(torch.randn(0, 7), "db2")
    assert a.shape == (0, 5) and W.idwt(a, d, "db2").shape == (0, 8)
    a, (h, v, dd) = W.dwt2(torch.randn(0, 3, 5, 6), "haar")
    assert a.shape == (0, 3, 3, 3)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("wavelet", PAPER_WAVELETS)
def test_cuda_matches_cpu(wavelet):
    x = torch.randn(4, 9, 10, dtype=torch.float64)
    for mode in MODES:
        cpu = W.wavedec2(x, wavelet, mode)
        gpu = W.wavedec2(x.cuda(), wavelet, mode)
        for a, b in zip(_flat2(gpu), _flat2(cpu), strict=True):
            assert a.is_cuda
            torch.testing.assert_close(a.cpu(), b, rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(W.waverec2(gpu, wavelet, mode).cpu(), W.waverec2(cpu, wavelet, mode))


# --------------------------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------------------------


def test_level_too_high_is_an_error_naming_size_wavelet_and_max():
    x = torch.randn(10, 10)
    with pytest.raises(ValueError, match=r"level 4 .*size 10x10.*'haar'.*maximum level is 3"):
        W.wavedec2(x, "haar", level=4)
    with pytest.raises(ValueError, match=r"level 2 .*size 9x8.*'db2'.*maximum level is 1"):
        W.wavedec2(torch.randn(9, 8), "db2", level=2)
    with pytest.raises(ValueError, match=r"level 3 .*size 5.*'db2'.*maximum level is 1 .*level 1 is always possible"):
        W.wavedec(torch.randn(2, 5), "db2", level=3)
    with pytest.raises(ValueError, match=r"level 2 .*size 2x1.*'haar'.*maximum level is 1"):
        W.wavedec2(torch.randn(2, 1), "haar", level=2)
    with pytest.raises(ValueError, match="level must be >= 0"):
        W.wavedec(torch.randn(8), level=-1)
    # pywt itself only warns
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        pywt.wavedec2(np.zeros((10, 10)), "haar", level=4)
    assert caught


@pytest.mark.parametrize("wavelet", ["bior1.3", "db4", "haar"])
@pytest.mark.parametrize("shape", [(2, 1), (9, 8), (7, 6), (1, 1)])
def test_level_one_is_one_dwt_on_any_size(wavelet, shape):
    """Level 1 below dwt_max_level's threshold: one dwt2 / dwt, as pywt computes them (pywt's
    wavedec2 would warn; figkd's computes the same coefficients)."""
    x = np.random.default_rng(0).standard_normal((3, *shape))
    for mode in ("zero", "symmetric", "periodization"):
        ref_a, ref_d = pywt.dwt2(x, wavelet, mode=mode)
        a, d = W.wavedec2(_t(x), wavelet, mode, level=1)
        np.testing.assert_allclose(a.numpy(), ref_a, rtol=1e-10, atol=1e-12)
        for got, want in zip(d, ref_d, strict=True):
            np.testing.assert_allclose(got.numpy(), want, rtol=1e-10, atol=1e-12)
        ref_a1, ref_d1 = pywt.dwt(x[..., 0, :], wavelet, mode=mode)
        a1, d1 = W.wavedec(_t(x[..., 0, :]), wavelet, mode, level=1)
        np.testing.assert_allclose(a1.numpy(), ref_a1, rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(d1.numpy(), ref_d1, rtol=1e-10, atol=1e-12)


def test_level_none_and_zero():
    x = torch.randn(2, 10, 10, dtype=torch.float64)
    assert len(W.wavedec2(x, "haar")) == 1 + 3
    assert len(W.wavedec2(x, "db2")) == 1 + 1
    (only,) = W.wavedec2(x, "haar", level=0)
    assert torch.equal(only, x)
    assert torch.equal(W.waverec2([x], "haar"), x)


@pytest.mark.parametrize("fn", [W.dwt, W.dwt2, W.wavedec, W.wavedec2])
def test_bad_mode_lists_valid_modes(fn):
    x = torch.randn(4, 4)
    with pytest.raises(ValueError, match="unknown mode 'sym'.*zero, constant, symmetric, reflect, periodic"):
        fn(x, "haar", "sym")
    with pytest.raises(ValueError, match="'smooth' is a pywt mode that figkd does not implement"):
        fn(x, "haar", "smooth")


def test_level_passed_as_mode_says_how_to_call():
    with pytest.raises(TypeError, match="argument order follows PyWavelets"):
        W.wavedec2(torch.randn(8, 8), "haar", 2)


def test_bad_wavelet_lists_valid_wavelets():
    x = torch.randn(8)
    with pytest.raises(ValueError, match=r"unknown wavelet 'db99'.*bior1\.3.*haar.*sym20"):
        W.dwt(x, "db99")
    with pytest.raises(ValueError, match="'morl' is a continuous wavelet"):
        W.dwt(x, "morl")
    with pytest.raises(TypeError, match="pywt.Wavelet"):
        W.dwt(x, 3)


def test_bad_inputs():
    with pytest.raises(TypeError, match="float32 or float64"):
        W.dwt(torch.arange(8))
    with pytest.raises(TypeError, match="torch.Tensor"):
        W.dwt(np.zeros(8))
    with pytest.raises(ValueError, match="last 2 axes"):
        W.dwt2(torch.randn(8))
    with pytest.raises(ValueError, match="'reflect' mode needs at least 2 samples"):
        W.dwt(torch.randn(3, 1), "haar", "reflect")
    with pytest.raises(ValueError, match="same shape"):
        W.idwt(torch.randn(4), torch.randn(3))
    with pytest.raises(ValueError, match="at least one coefficient band"):
        W.idwt(None, None)
    with pytest.raises(ValueError, match="too few for a filter of length 8"):
        W.idwt(torch.randn(3), torch.randn(3), "db4", "symmetric")
    with pytest.raises(ValueError, match="coefficient shape mismatch"):
        W.waverec([torch.randn(5), torch.randn(3)], "haar")
    with pytest.raises(ValueError, match=r"\(cA, \(cH, cV, cD\)\)"):
        W.idwt2((torch.randn(2, 2), torch.randn(2, 2)))
    with pytest.raises(ValueError, match="3-tuple"):
        W.waverec2([torch.randn(2, 2), torch.randn(2, 2)])
