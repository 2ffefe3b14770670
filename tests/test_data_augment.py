"""figkd.data.augment: shapes, ranges, padding, determinism and per-sample variation of each operation."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from PIL import Image, ImageOps

from figkd.data import compute_mean_std, recipe_for
from figkd.data.augment import (
    RANDAUG_OPS,
    cutout,
    derive_seed,
    draw_pad_crop,
    draw_strong,
    make_generator,
    normalize,
    pad_crop_flip,
    rand_augment,
    sample_resized_crop,
)
from figkd.data.digits import digits_arrays


def _images(n=8, h=16, w=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, 3, h, w), generator=g, dtype=torch.uint8)


def test_derive_seed_is_stable_and_distinct():
    assert derive_seed(0, 1, 2) == derive_seed(0, 1, 2)
    assert len({derive_seed(0, e, k) for e in range(20) for k in range(20)}) == 400
    assert derive_seed("batch", 0, 1) != derive_seed("strong", 0, 1)
    assert 0 <= derive_seed(-5, 2**40) < 2**63
    # pinned: a change would silently change every run's data order and resumed runs
    assert derive_seed("perm", 0, 0) == 5306003156936601658
    assert derive_seed("batch", 1, 2, 3) == 3589675029934347291


def test_pad_crop_flip_is_a_padded_crop():
    x = _images(6, 10, 12)
    offsets = torch.tensor([[0, 0], [8, 8], [4, 4], [1, 7], [4, 4], [3, 0]])
    flips = torch.tensor([False, False, False, True, True, False])
    out = pad_crop_flip(x, offsets, flips, pad=4)
    assert out.shape == x.shape and out.dtype == torch.uint8
    padded = torch.nn.functional.pad(x, (4, 4, 4, 4))
    for i in range(6):
        oy, ox = offsets[i].tolist()
        ref = padded[i, :, oy : oy + 10, ox : ox + 12]
        if flips[i]:
            ref = ref.flip(-1)
        assert torch.equal(out[i], ref)
    assert torch.equal(out[2], x[2])  # centre offset, no flip: the image itself
    assert torch.equal(out[4], x[4].flip(-1))
    # zero padding: offset (0, 0) leaves 4 zero rows at the top and 4 zero columns at the left
    assert out[0, :, :4].eq(0).all() and out[0, :, :, :4].eq(0).all()
    assert torch.equal(out[0, :, 4:, 4:], x[0, :, :6, :8])


def test_pad_crop_params_cover_range_and_vary():
    g = make_generator("t", 0)
    offsets, flips = draw_pad_crop(g, 2000, 4)
    assert offsets.min() == 0 and offsets.max() == 8
    assert 0.4 < flips.float().mean() < 0.6
    assert len({tuple(o) for o in offsets.tolist()}) == 81  # every offset pair occurs


def test_normalize():
    x = _images(2, 4, 4)
    mean = torch.tensor([0.5, 0.4, 0.3]).view(1, 3, 1, 1)
    std = torch.tensor([0.2, 0.25, 0.3]).view(1, 3, 1, 1)
    out = normalize(x, mean, std)
    assert out.dtype == torch.float32
    assert torch.allclose(out, (x.float() / 255 - mean) / std, atol=1e-6)
    assert x.dtype == torch.uint8  # input untouched


def test_resized_crop_params():
    g = make_generator("rrc", 1)
    areas, ratios = [], []
    for _ in range(300):
        left, top, w, h = sample_resized_crop(300, 200, g, (0.08, 1.0), (3 / 4, 4 / 3))
        assert 0 <= left and 0 <= top and 0 < w and 0 < h and left + w <= 300 and top + h <= 200
        areas.append(w * h / 60000)
        ratios.append(w / h)
    assert 0.07 < min(areas) < 0.2 and max(areas) > 0.8
    assert min(ratios) > 0.7 and max(ratios) < 1.4
    a = sample_resized_crop(300, 200, make_generator("x", 5), (0.08, 1.0), (3 / 4, 4 / 3))
    b = sample_resized_crop(300, 200, make_generator("x", 5), (0.08, 1.0), (3 / 4, 4 / 3))
    assert a == b
    # a very elongated image falls back to the largest centred crop of the extreme ratio
    g = torch.Generator().manual_seed(0)
    left, top, w, h = sample_resized_crop(1000, 10, g, (0.99, 1.0), (3 / 4, 4 / 3))
    assert (w, h) == (13, 10) and left == (1000 - 13) // 2


# ------------------------------------------------------------------------------------- RandAugment
def _op(name):
    return RANDAUG_OPS.index(name)


def _apply(x, name, sign=1):
    n = x.shape[0]
    ops = torch.tensor([[_op(name), _op("identity")]] * n)
    signs = torch.tensor([[sign, 1]] * n)
    return rand_augment(x.float(), ops, signs)


@pytest.mark.parametrize("name", RANDAUG_OPS)
def test_each_op_keeps_shape_range_and_integers(name):
    x = _images(4, 20, 24)
    for sign in (1, -1):
        out = _apply(x, name, sign)
        assert out.shape == x.shape and out.dtype == torch.float32
        assert out.min() >= 0 and out.max() <= 255 and torch.equal(out, out.round())
        if name == "identity":
            assert torch.equal(out, x.float())
        elif name != "autocontrast":  # random full-range images are already autocontrasted
            assert not torch.equal(out, x.float())


def test_ops_against_pil():
    x = _images(3, 24, 20, seed=3)
    for i in range(3):
        pil = Image.fromarray(x[i].permute(1, 2, 0).numpy())
        for name, ref in (
            ("posterize", ImageOps.posterize(pil, 7)),
            ("solarize", ImageOps.solarize(pil, 170)),
            ("equalize", ImageOps.equalize(pil)),
        ):
            out = _apply(x[i : i + 1], name)[0].permute(1, 2, 0).byte().numpy()
            assert np.array_equal(out, np.asarray(ref)), name


def test_geometric_ops():
    x = _images(2, 32, 32, seed=1)
    # translate by int(150 / 331 * 32 / 3) = 4 pixels, zero fill
    t = _apply(x, "translate_x", 1)
    assert torch.equal(t[..., 4:], x[..., :-4].float()) and t[..., :4].eq(0).all()
    t = _apply(x, "translate_y", -1)
    assert torch.equal(t[..., :-4, :], x[..., 4:, :].float()) and t[..., -4:, :].eq(0).all()
    # rotation by 10 degrees about the centre keeps the centre pixel, blanks corners
    r = _apply(x, "rotate", 1)
    assert torch.equal(r[..., 16, 16], x[..., 16, 16].float())
    assert r[..., 0, 0].eq(0).all() and not torch.equal(r, x.float())
    # shear about the top-left corner keeps the first row
    s = _apply(x, "shear_x", 1)
    assert torch.equal(s[..., 0, :], x[..., 0, :].float())


def test_enhance_factors():
    x = torch.full((2, 3, 8, 8), 100, dtype=torch.uint8)
    x[1, 0] = 200
    assert torch.equal(_apply(x, "brightness", 1)[0], torch.full((3, 8, 8), 130.0))
    assert torch.equal(_apply(x, "brightness", -1)[0], torch.full((3, 8, 8), 70.0))
    assert torch.equal(_apply(x, "contrast", 1)[0], x[0].float())  # uniform image: contrast changes nothing
    assert torch.equal(_apply(x, "sharpness", -1)[0], x[0].float())
    grey = _apply(x, "color", -1)[1]  # factor 0.7 towards the grey image: colours move together
    assert grey[0, 0, 0] < 200 and grey[1, 0, 0] > 100


def test_rand_augment_deterministic_and_per_sample():
    x = _images(64, 16, 16, seed=2).float()
    x[:] = x[0]  # the same image everywhere: any difference comes from per-sample parameters
    p = draw_strong(make_generator("s", 0, 0, 0), 64)
    a = rand_augment(x, p["ops"], p["signs"])
    b = rand_augment(x, p["ops"], p["signs"])
    assert torch.equal(a, b)
    assert len({tuple(o) for o in p["ops"].tolist()}) > 30  # operation pairs vary per sample
    distinct = {a[i].numpy().tobytes() for i in range(64)}
    assert len(distinct) > 30


def test_rand_augment_does_not_depend_on_batch_composition():
    x = _images(24, 16, 16, seed=4).float()
    p = draw_strong(make_generator("s", 1), 24)
    full = rand_augment(x, p["ops"], p["signs"])
    for lo, hi in ((0, 8), (8, 16), (5, 6), (16, 24)):
        part = rand_augment(x[lo:hi], p["ops"][lo:hi], p["signs"][lo:hi])
        assert torch.equal(part, full[lo:hi])


def test_rand_augment_uses_no_global_rng():
    x = _images(8, 16, 16).float()
    p = draw_strong(make_generator("s", 2), 8)
    torch.manual_seed(0)
    a = rand_augment(x, p["ops"], p["signs"])
    state = torch.get_rng_state()
    torch.manual_seed(123)
    b = rand_augment(x, p["ops"], p["signs"])
    assert torch.equal(a, b)
    torch.manual_seed(0)
    rand_augment(x, p["ops"], p["signs"])
    assert torch.equal(torch.get_rng_state(), state)


def test_cutout():
    x = torch.zeros(4, 3, 32, 32)
    params = torch.tensor(
        [[1.0, 0.5, 0.5], [0.5, 0.0, 0.0], [0.0, 0.3, 0.3], [0.25, 0.99, 0.99]], dtype=torch.float64
    )
    out = cutout(x, params)
    filled = (out[:, 0] == 125) & (out[:, 1] == 123) & (out[:, 2] == 114)
    assert filled[0].sum() == 16 * 16 and filled[0, 8:24, 8:24].all()  # side 0.5 * 32 centred
    assert filled[1].sum() == 8 * 8 and filled[1, :8, :8].all()  # clipped at the corner
    assert filled[2].sum() == 0
    assert filled[3, -1, -1] and filled[3].sum() < 64
    assert torch.equal(out[~filled[:, None].expand_as(out)], x[~filled[:, None].expand_as(x)])


# ------------------------------------------------------------------------------------------- stats
def test_digits_mean_std_matches_the_data():
    images, _ = digits_arrays(train=True)
    mean, std = compute_mean_std(images)
    r = recipe_for("digits")
    assert np.allclose(mean, r.mean, atol=5e-5) and np.allclose(std, r.std, atol=5e-5)
    small, _ = digits_arrays(train=True, upscale=2)
    assert small.shape[-2:] == (16, 16) and np.array_equal(small, images[:, :, ::2, ::2])
    r16 = recipe_for("digits_16")
    assert (r16.size, r16.pad, r16.mean, r16.std) == (16, 2, r.mean, r.std)
    assert np.allclose(compute_mean_std(small), (mean, std), atol=1e-12)


def test_compute_mean_std_on_dataset_and_array():
    x = torch.randint(0, 256, (5, 3, 6, 7), dtype=torch.uint8)
    mean, std = compute_mean_std(x)
    f = x.double() / 255
    assert np.allclose(mean, f.mean(dim=(0, 2, 3)).numpy())
    assert np.allclose(std, f.permute(1, 0, 2, 3).reshape(3, -1).std(dim=1, unbiased=False).numpy())
    items = [(x[i], 0) for i in range(5)]
    m2, s2 = compute_mean_std(items)
    assert np.allclose(m2, mean) and np.allclose(s2, std)
    assert math.isclose(sum(mean), sum(m2))


def test_stats_cli(capsys):
    from figkd.data.stats import main

    main(["digits"])
    out = capsys.readouterr().out
    assert '"mean": [0.3054, 0.3054, 0.3054]' in out and '"std": [0.376, 0.376, 0.376]' in out
